#!/usr/bin/env python3
"""How long the offline plan of a team takes to evaluate, and how its resource count grows.

Evaluates the real `__main__.py` under Pulumi's mock runtime (`run_program`, as `make plan` does)
for the shipped team stack (Pulumi.team.yaml: 50 workspaces on 10 VMs), `--runs` times after one
unmeasured run, and prints min/median/max of the evaluation alone (no interpreter start, no
posture, no files written). Then the resource count of uniform teams, 1, 10 and 50 workspaces of
one person each on 1, 2 and 10 VMs, the line tests/test_team_plan.py holds exactly. Goal: < 3 s.
A measurement, not a test: it never fails on the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import yaml

from scripts import REPOSITORY
from scripts.tools.offline import StackConfig, load_stack_config, run_program

GOAL_SECONDS = 3.0
#: The example team stack's VMs besides the stack's own (valid, distinct pinned keys).
EXAMPLE_VMS: list[dict[str, str]] = yaml.safe_load((REPOSITORY / "Pulumi.team.yaml").read_text())["config"]["hardened-code-server:vms"]
#: (workspaces, VMs) of the printed counts.
SIZES = ((1, 1), (10, 2), (50, 10))


def uniform_team(config: StackConfig, workspaces: int, vms: int) -> StackConfig:
    """`config` (single-user) as a team of `workspaces`, one person each, round-robin over `vms` VMs."""
    names = ["vm", *[v["name"] for v in EXAMPLE_VMS[: vms - 1]]]
    team: list[dict[str, Any]] = [{"name": f"w{i:02d}", "users": [f"66666666-7777-8888-9999-{i:012d}"], "vm": names[i % vms]}
                                  for i in range(workspaces)]
    return config.with_values(entraGroupName=None, entraGroupMembers=None, workspaces=team, vms=EXAMPLE_VMS[: vms - 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    team = load_stack_config("team")
    resources = len(run_program(team).resources)
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run_program(team)
        seconds.append(time.perf_counter() - started)
    print(f"team stack (50 workspaces, 10 VMs, {resources} resources): evaluation min {min(seconds):.2f} s, "
          f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s over {args.runs} runs "
          f"(goal < {GOAL_SECONDS:.0f} s: {'met' if statistics.median(seconds) < GOAL_SECONDS else 'MISSED'})")
    dev = load_stack_config("dev")
    for workspaces, vms in SIZES:
        print(f"{workspaces:>3} workspaces on {vms:>2} VMs: {len(run_program(uniform_team(dev, workspaces, vms)).resources)} resources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
