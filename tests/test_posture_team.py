"""A team's posture: the per-IDE-user controls read for the workspaces, the team's own rows, and the
policy pack's verdict for a team; each team control weakened in the plan turns its row OFF."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scripts.policy.rules import RULES
from scripts.tools import posture
from scripts.tools.offline import PlanResult, load_stack_config, run_program

TEAM_ONLY = {c.control for c in posture.CONTROLS if c.team_only}
LIMITS = next(c.control for c in posture.CONTROLS if c.control.startswith("Workspace limits"))
ROUTER = next(c.control for c in posture.CONTROLS if c.control.startswith("The router:"))
CODE_SERVER = next(c.team for c in posture.CONTROLS if c.team.startswith("code-server on a socket per workspace"))
IDLE = next(c.team for c in posture.CONTROLS if c.team.startswith("A workspace nobody has open stops"))
BACKUPS = next(c.team for c in posture.CONTROLS if c.team.startswith("Backups per workspace"))
BIND = next(c.team for c in posture.CONTROLS if c.team.startswith("Every workspace's unit binds no IP port"))
PORT_PROXY = next(c.control for c in posture.CONTROLS if c.control.startswith("code-server port proxy off"))
TRANSFERS = next(c.control for c in posture.CONTROLS if c.control.startswith("code-server's download and upload actions off"))


def _team() -> PlanResult:
    return run_program(load_stack_config("team"))


@pytest.fixture(scope="module")
def team_rows() -> list[posture.Row]:
    return posture.posture(_team(), "fortigate")


def test_the_shipped_team_passes_every_policy_and_has_every_control(team_rows: list[posture.Row]) -> None:
    assert team_rows[-1].control == f"Policy pack: {len(RULES)}/{len(RULES)} mandatory policies pass"
    assert team_rows[-1].status == "on"
    # Only the opt-in download/upload switch is off, as for the single user's example stack.
    assert {r.control for r in team_rows if r.status not in ("on", "n/a")} == {TRANSFERS}
    status = {r.control: r for r in team_rows}
    for control in (CODE_SERVER, IDLE, BACKUPS, BIND, LIMITS, ROUTER):
        assert status[control].status == "on" and status[control].resources, control
    assert len(status[LIMITS].resources) == 50 and len(status[ROUTER].resources) == 10
    assert not [r for r in team_rows if "IDE user" in r.control and r.status == "OFF"]


def test_a_single_users_posture_has_no_team_rows(dev_plan: PlanResult) -> None:
    rows = posture.posture(dev_plan, "fortigate")
    assert not TEAM_ONLY & {r.control for r in rows}
    single = [rule for rule in RULES if not rule.team]
    assert rows[-1].control == f"Policy pack: {len(single)}/{len(single)} mandatory policies pass"


def _weaken(plan: PlanResult, suffix: str, role: str, change: Callable[[str], str]) -> None:
    (record,) = [r for r in plan.of_type("hcs:files:File") if r.inputs["role"] == role and str(r.inputs["path"]).endswith(suffix)]
    before = str(record.inputs["content"])
    record.inputs["content"] = change(before)
    assert record.inputs["content"] != before


@pytest.mark.parametrize(("control", "suffix", "role", "old", "new", "rule"), [
    (LIMITS, "code-server@ws-dev07.service.d/20-hcs-workspace.conf", "vm-dmz2", "MemoryMax=2G\n", "", "workspace-limits"),
    (ROUTER, "/caddy/Caddyfile", "vm-dmz3", "`(^|,)ws\\.dev11(,|$)`", "`ws\\.dev11`", "workspace-router-grants"),
    (BIND, "10-hcs-sandbox.conf", "vm-dmz4", "SocketBindDeny=any\n", "SocketBindAllow=tcp:8080\nSocketBindDeny=any\n", "egress-by-identity"),
    (BACKUPS, "/hcs-backup@.service", "vm", "--tag ws:%i ", "", "workspace-isolation"),
    (BACKUPS, "/usr/local/sbin/hcs-restore", "vm-dmz7", 'restic dump --tag "ws:$account"', "restic dump", None),
    (IDLE, "/hcs-team.yaml", "vm-dmz5", "idle-timeout-seconds: 3600\n", "", None),
    (PORT_PROXY, "/hcs-team.yaml", "vm-dmz6", "disable-proxy: true", "disable-proxy: false",
     "code-server-port-proxy-off"),
])
def test_a_weakened_team_control_is_off_and_the_pack_names_its_rule(control: str, suffix: str, role: str, old: str, new: str,
                                                                     rule: str | None) -> None:
    """One VM or one workspace of fifty weakened is enough: a team's control is on only if all have it."""
    plan = _team()
    _weaken(plan, suffix, role, lambda text: text.replace(old, new))
    rows = posture.posture(plan, "fortigate")
    assert {r.control: r.status for r in rows}[control] == "OFF"
    if rule is not None:
        assert rows[-1].status == "OFF" and rule in rows[-1].note
        assert f"Policy pack: {len(RULES) - 1}/{len(RULES)}" in rows[-1].control
