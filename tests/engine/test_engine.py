"""The real Pulumi engine runs the product's FortiGate edge and host file records (issue 16).

The CLI's own config check of the product's Pulumi.yaml first (a bare stack, then both example
stacks), then one stack, in order: config checks, preview (unknowns), the policy pack through the real
analyzer, up against the FortiOS emulator, a no-op up, drift repaired after refresh, a one-key
change, the exported state searched for secrets, destroy. Each command's wall time is printed at
the end (run with `-s` to see it).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from components.fortigate import payloads
from components.settings import ConfigError, MappingSource, load
from scripts import REPOSITORY
from scripts.lab.example import TODAY, dev_settings
from scripts.lab.fortios.emulator import TABLES, FortiOSEmulator
from scripts.tools.offline import load_stack_config
from tests.engine.cli import Engine, Run
from tests.engine.conftest import (
    SECRETS,
    config_json,
    project_dir,
    set_values,
    stack_values,
)

pytestmark = pytest.mark.slow

PACK = REPOSITORY / "scripts" / "policy"
TIMINGS: dict[str, float] = {}
STEPS: dict[str, dict[str, int]] = {}
WRITES = ("POST", "PUT", "DELETE")


def timed(label: str, run: Run) -> Run:
    TIMINGS[label] = run.seconds
    return run


def plan_objects(emulator: FortiOSEmulator) -> list[payloads.CmdbSpec]:
    """What the FortiGate component should make for this stack, by the product's own payload plan."""
    settings = dev_settings(fortigateUrl=emulator.url, fortigateCaBundle=str(emulator.ca_bundle),  # type: ignore[attr-defined]
                            fortigateApiToken=SECRETS["fortigateApiToken"])
    assert settings.fortigate is not None
    return list(payloads.build(settings.fortigate, settings.topology).objects)


def on_device(emulator: FortiOSEmulator) -> dict[str, set[str]]:
    """Every object name per CMDB table of the emulator's root VDOM (policies by name)."""
    return {path: {str(o.get("name")) for o in emulator.table("root", path)} for path in TABLES}


def writes(emulator: FortiOSEmulator) -> int:
    return sum(count for method, count in emulator.requests.items() if method in WRITES)


def ops(run: Run) -> Counter[str]:
    return Counter(step["op"] for step in run.json()["steps"])


@pytest.fixture(scope="module")
def seeded(emulator: FortiOSEmulator) -> dict[str, set[str]]:
    """The device before the stack: what destroy must return it to."""
    return on_device(emulator)


@pytest.fixture(scope="module")
def policy_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/policy as a binary analyzer plugin: pulumi-policy's own server, unchanged.

    `--policy-pack DIR` would start it through the Python language host, which cannot be built
    here; an executable path is launched directly by the same analyzer code in the CLI.
    """
    launcher = tmp_path_factory.mktemp("policy") / "hardened-code-server-policy"
    launcher.write_text(f'#!/bin/sh\ncd "{PACK}" && exec "{sys.executable}" -u __main__.py "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


def always_required(project: Path, stack: str) -> set[str]:
    """The keys the product's settings report as required in `stack` of `project` while it sets
    nothing (Pulumi.yaml's defaults only, no secret): the only keys the CLI may require."""
    (project / f"Pulumi.{stack}.yaml").write_text("config: {}\n", encoding="utf-8")
    config = load_stack_config(stack, project)
    empty = config.with_values(**dict.fromkeys(config.placeholders))
    with pytest.raises(ConfigError) as refused:
        load(MappingSource(empty.values, empty.secret_keys), today=TODAY)
    return {p.key for p in refused.value.problems if p.message.startswith("is required")}


def missing_keys(run: Run) -> set[str]:
    """The keys named by the CLI's "Stack '…' is missing configuration values 'a', 'b' and 'c'"."""
    found = re.search(r"is missing configuration values? (.*)", run.output)
    assert found, run.output
    return set(re.findall(r"'([^']+)'", found.group(1)))


def test_the_cli_enforces_every_declared_key(engine: Engine, emulator: FortiOSEmulator) -> None:
    """The product's Pulumi.yaml as the CLI reads it: a key declared without a default is one the
    settings always require; every other key has a default, so a stack setting just the required
    keys passes the CLI's check and reaches the program, whose errors name the conditional keys."""
    bare = Engine(engine.cli, project_dir(engine.project_dir.parent / "bare-project"), engine.home, engine.passphrase, stack="bare")
    bare.run("stack", "init", bare.stack)
    settings_require = always_required(bare.project_dir, bare.stack)
    refused = bare.run("preview", program=True, check=False)
    assert refused.returncode != 0
    required = missing_keys(refused)
    assert required <= settings_require, required - settings_require
    dev = {**stack_values(emulator), **SECRETS}
    set_values(bare, {key: dev[key] for key in required - set(SECRETS)}, required & set(SECRETS))
    accepted = bare.run("preview", program=True, check=False)
    assert "missing configuration values" not in accepted.output and "validating stack config" not in accepted.output
    reported = {line.split("config error: ", 1)[1].split(":", 1)[0] for line in accepted.output.splitlines() if "config error: " in line}
    declared = yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    assert reported and all("default" in declared[key] for key in reported), reported
    assert "Traceback" not in accepted.output
    bare.run("stack", "rm", "--yes", "--force", bare.stack)


@pytest.mark.parametrize("example", ["dev", "cloudflare"])
def test_the_cli_accepts_the_example_stacks(engine: Engine, emulator: FortiOSEmulator, example: str) -> None:
    """Pulumi.<example>.yaml's values (the device pointed at the emulator) and the test secrets, on the
    product's Pulumi.yaml: the CLI's config check passes and the program previews."""
    stack = Engine(engine.cli, project_dir(engine.project_dir.parent / f"{example}-project"), engine.home,
                   engine.passphrase, stack=f"example-{example}")
    stack.run("stack", "init", stack.stack)
    set_values(stack, stack_values(emulator, example))
    previewed = timed(f"preview of Pulumi.{example}.yaml", stack.run("preview", program=True))
    assert "missing configuration values" not in previewed.output and "config error" not in previewed.output
    stack.run("stack", "rm", "--yes", stack.stack)


def test_config_of_the_wrong_type_is_refused_before_the_program_runs(engine: Engine) -> None:
    engine.run("config", "set", "vmSshPort", "twenty-two")  # `config set` stores it; the schema is checked on use
    refused = engine.run("preview", program=True, check=False)
    assert refused.returncode != 0
    assert "configuration key 'vmSshPort' must be of type 'integer'" in refused.output, refused.output
    engine.run("config", "rm", "vmSshPort")


def test_a_list_of_workspaces_reaches_the_program_as_objects(engine: Engine, emulator: FortiOSEmulator) -> None:
    """Pulumi.yaml declares `workspaces` an array of objects: the real CLI takes the objects, checks the
    type and passes them to the program, whose settings read them field by field (the engine's program
    exports what they read)."""
    team = [{"name": "alice", "users": ["11111111-2222-3333-4444-555555555555"], "limits": {"memoryMax": "4G", "tasksMax": 512}}]
    engine.run("config", "rm", "entraGroupName")
    engine.run("config", "rm", "entraGroupMembers")
    engine.run("config", "set-all", "--json", config_json({"workspaces": team}))
    lines = [line.strip() for line in engine.run("preview", program=True).output.splitlines()]
    read = lines.index("alice: [")  # the stack's outputs, as the preview prints them
    assert lines[read + 1:read + 4] == ['[0]: "alice.example.com"', '[1]: "4G"', "[2]: 512"], lines
    engine.run("config", "rm", "workspaces")
    dev = stack_values(emulator)
    set_values(engine, {"entraGroupName": dev["entraGroupName"], "entraGroupMembers": dev["entraGroupMembers"]}, ())


def test_the_programs_config_errors_reach_the_cli_without_a_traceback(engine: Engine) -> None:
    engine.run("config", "set", "hostname", "not a host name")
    engine.run("config", "set", "entraSecretEndDate", "2020-01-01")
    refused = engine.run("preview", program=True, check=False)
    assert refused.returncode != 0
    lines = [line.strip() for line in refused.output.splitlines() if "config error:" in line]
    # every problem at once, each on its own line (the first one behind the CLI's "error: ")
    assert any(line.removeprefix("error: ").startswith("config error: hostname:") for line in lines), refused.output
    assert any(line.startswith("config error: entraSecretEndDate:") for line in lines), refused.output
    assert "Traceback" not in refused.output
    engine.run("config", "set-all", "--json", config_json({"hostname": "code.example.com", "entraSecretEndDate": "2028-06-30"}))


def test_preview_plans_every_object_with_unknown_ids(engine: Engine, emulator: FortiOSEmulator, seeded: dict[str, set[str]]) -> None:
    run = timed("preview", engine.run("preview", "--json", program=True))
    steps = run.json()["steps"]
    STEPS["first preview"] = dict(ops(run))
    assert set(ops(run)) == {"create"}
    dynamic = {s["newState"]["inputs"]["name"] for s in steps if s["newState"]["type"].startswith("pulumi-python:dynamic/fortios:")}
    assert dynamic == {spec.name for spec in plan_objects(emulator)}
    files = [s for s in steps if s["newState"]["type"] == "hcs:files:File"]
    assert any(s["newState"]["inputs"]["path"] == "/etc/ssh/sshd_config.d/00-hardening.conf" for s in files)
    text = engine.run("preview", program=True)
    # the policy IDs come from the device: unknown until up (the mock runtime always knew them)
    assert "policyIds: [unknown]" in text.stdout, text.stdout[-3000:]
    assert writes(emulator) == 0


def test_the_policy_pack_passes_the_stack_and_one_value_makes_it_fail(engine: Engine, policy_pack: Path) -> None:
    passed = timed("preview with policy pack", engine.run("preview", "--policy-pack", str(policy_pack), program=True))
    assert "hardened-code-server" in passed.stdout and "mandatory" not in passed.stdout
    engine.run("config", "set", "engine:hostFiles", "false")
    failed = engine.run("preview", "--policy-pack", str(policy_pack), program=True, check=False)
    engine.run("config", "rm", "engine:hostFiles")
    assert failed.returncode != 0
    assert "sshd-keys-only" in failed.output and "mandatory" in failed.output, failed.output
    assert "no /etc/ssh/sshd_config.d/00-hardening.conf is installed" in failed.output


def test_up_converges_the_device(engine: Engine, emulator: FortiOSEmulator, seeded: dict[str, set[str]]) -> None:
    timed("up (first)", engine.run("up", "--yes", "--skip-preview", program=True))
    device = on_device(emulator)
    made = set().union(*(device[path] - seeded[path] for path in TABLES))
    assert made == {spec.name for spec in plan_objects(emulator)}
    outputs = json.loads(engine.run("stack", "output", "--json").stdout)
    assert {emulator.find("root", "firewall/policy", pid)["name"] for pid in outputs["policyIds"].values()} == set(outputs["policyIds"])


def test_a_second_up_changes_nothing_and_writes_nothing(engine: Engine, emulator: FortiOSEmulator) -> None:
    emulator.reset_counts()
    timed("up (no-op)", engine.run("up", "--yes", "--expect-no-changes", program=True))
    assert writes(emulator) == 0
    STEPS["no-op up: device requests by method"] = dict(emulator.requests)


def test_refresh_sees_drift_on_the_device_and_up_repairs_it(engine: Engine, emulator: FortiOSEmulator) -> None:
    emulator.poke("root", "firewall/vip", "hcs-vip-https", extport="8443")
    refreshed = timed("refresh", engine.run("refresh", "--yes", "--json", program=True))
    # the --json plan lists every resource as "refresh"; what the reads found is in the events
    summary = next(e["summaryEvent"] for e in refreshed.events() if "summaryEvent" in e)
    STEPS["refresh after drift"] = summary["resourceChanges"]
    drifted = [m["urn"] for e in refreshed.events() if (m := (e.get("resOutputsEvent") or {}).get("metadata"))
               and m["old"]["outputs"] != m["new"]["outputs"]]
    assert summary["resourceChanges"].get("update") == 1
    assert len(drifted) == 1 and drifted[0].endswith("::fortigate-hcs-vip-https"), drifted
    repair = engine.run("preview", "--json", program=True)
    assert ops(repair)["update"] == 1
    engine.run("up", "--yes", "--skip-preview", program=True)
    assert emulator.find("root", "firewall/vip", "hcs-vip-https")["extport"] == "443"
    engine.run("preview", "--expect-no-changes", program=True)


def test_one_config_change_touches_only_the_vip(engine: Engine, emulator: FortiOSEmulator) -> None:
    engine.run("config", "set", "fortigatePublicIp", "203.0.113.11")
    plan = engine.run("preview", "--json", program=True)
    updates = [s["urn"] for s in plan.json()["steps"] if s["op"] == "update"]
    assert updates == [u for u in updates if u.endswith("::fortigate-hcs-vip-https")] and len(updates) == 1
    summary = plan.json()["changeSummary"]
    STEPS["one-key change"] = summary
    assert set(summary) == {"same", "update"} and summary["update"] == 1
    engine.run("up", "--yes", "--skip-preview", program=True)
    assert emulator.find("root", "firewall/vip", "hcs-vip-https")["extip"] == "203.0.113.11"


def test_no_secret_is_in_the_state_or_any_output(engine: Engine) -> None:
    exported = engine.run("stack", "export").stdout
    on_disk = "".join(p.read_text(errors="replace") for p in (engine.home / "state").rglob("*") if p.is_file())
    printed = "".join(run.output for run in engine.runs)
    stack_file = (engine.project_dir / f"Pulumi.{engine.stack}.yaml").read_text(encoding="utf-8")
    needles = {key: value.strip().splitlines()[1] if "PRIVATE KEY" in value else value for key, value in SECRETS.items()}
    for key, needle in {**needles, "passphrase": engine.passphrase}.items():
        for where, text in (("export", exported), ("state", on_disk), ("CLI output", printed), ("stack file", stack_file)):
            assert needle not in text, f"{key} in plain text in the {where}"
    assert '"ciphertext"' in exported  # the secrets are there, encrypted


def test_destroy_leaves_the_device_as_it_was(engine: Engine, emulator: FortiOSEmulator, seeded: dict[str, set[str]]) -> None:
    timed("destroy", engine.run("destroy", "--yes", program=True))
    assert on_device(emulator) == seeded
    assert json.loads(engine.run("stack", "export").stdout)["deployment"].get("resources") in (None, [])


def test_report_timings() -> None:
    print("\n[engine] wall times (s): " + json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}), file=sys.stderr)
    print("[engine] steps: " + json.dumps(STEPS), file=sys.stderr)
    assert {"preview", "up (first)", "up (no-op)", "refresh", "destroy"} <= set(TIMINGS)
