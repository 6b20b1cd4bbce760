"""The posture report and the CI workflows (issue: guardrails)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts import REPOSITORY
from scripts.lab.example import TEST_SECRETS
from scripts.policy.rules import RULES
from scripts.tools import posture
from scripts.tools.offline import (
    PlanResult,
    StackConfig,
    load_stack_config,
    run_program,
)

#: The rules a single user's posture counts (a team's rules read team files only, and count for a team).
SINGLE_USER_RULES = [rule for rule in RULES if not rule.team]
WORKFLOWS = sorted((REPOSITORY / ".github" / "workflows").glob("*.yml"))


#: Without ideEgressDomains the IDE's proxy is off (the IDE user then reaches nothing off the VM).
IDE_PROXY = next(c.control for c in posture.CONTROLS if c.control.startswith("The IDE's way out"))
NO_PROXY = {IDE_PROXY: "switched off: ideEgressDomains (empty: no proxy runs and the IDE user reaches nothing off the VM)"}
#: code-server's download and upload actions are opt-in: on by default, so their row is OFF.
TRANSFERS = next(c.control for c in posture.CONTROLS if c.control.startswith("code-server's download and upload actions off"))
DEFAULT_OFF = {**NO_PROXY, TRANSFERS: "switched off: codeServerDisableFileDownloads and codeServerDisableFileUploads (opt-in)"}
IDLE = next(c.control for c in posture.CONTROLS if c.control.startswith("An IDE nobody has open ends"))
CREATED = next(c.control for c in posture.CONTROLS if c.control.startswith("The VM made from code"))
DROPLET_FIREWALL = next(c.control for c in posture.CONTROLS if c.control.startswith("DigitalOcean cloud firewall"))


def _status(rows: list[posture.Row]) -> dict[str, str]:
    return {row.control: row.status for row in rows}


def test_dev_stack_has_every_control_on_or_not_applicable(dev_plan: PlanResult) -> None:
    rows = posture.posture(dev_plan, "fortigate")
    assert {r.control: r.note for r in rows if r.status not in ("on", "n/a")} == DEFAULT_OFF
    assert {r.control for r in rows if r.status == "n/a"} == {
        "Cloudflare Tunnel: outbound only, no inbound port",
        "Cloudflare Access on every request, enforced at the connector",
        CREATED,
        DROPLET_FIREWALL,
    }
    assert rows[-1].control == f"Policy pack: {len(SINGLE_USER_RULES)}/{len(SINGLE_USER_RULES)} mandatory policies pass"
    assert all(r.resources for r in rows[:-1] if r.status == "on")


@pytest.mark.parametrize(("stack", "machine", "droplet_firewall"), [
    ("proxmox", "machine-proxmox-vm", "n/a"), ("digitalocean", "machine-droplet-droplet", "on")])
def test_a_created_vm_is_in_the_posture_with_its_provider(stack: str, machine: str, droplet_firewall: str) -> None:
    plan = run_program(load_stack_config(stack))
    rows = {r.control: r for r in posture.posture(plan, plan.outputs["edge"])}
    assert rows[CREATED].status == "on" and rows[CREATED].note == f"made by vmProvider {stack}"
    assert set(rows[CREATED].resources) == {"machine-identity-host-key", "vm-first-boot", machine}
    assert rows[DROPLET_FIREWALL].status == droplet_firewall
    assert [r.control for r in rows.values() if r.status not in ("on", "n/a")] == list(DEFAULT_OFF)


def test_cloudflare_edge_marks_the_fortigate_inbound_path_not_applicable(dev_config: StackConfig) -> None:
    rows = posture.posture(run_program(dev_config.with_values(edge="cloudflare")), "cloudflare")
    status = _status(rows)
    assert status["FortiGate VIP: only TCP 443 forwarded, to the front proxy"] == "n/a"
    assert status["Central Caddy (wildcard TLS) → local gateway site block"] == "n/a"
    assert status["Cloudflare Access on every request, enforced at the connector"] == "on"
    assert [control for control, s in status.items() if s == "OFF"] == [IDE_PROXY, TRANSFERS]


def test_a_switched_off_control_is_shown_loudly(dev_config: StackConfig) -> None:
    plan = run_program(dev_config.with_values(wazuhEnabled=False, ufwDenyOutgoing=False, **TEST_SECRETS))
    rows = posture.posture(plan, "fortigate")
    off = {r.control: r.note for r in rows if r.status == "OFF"}
    assert off == {
        "Wazuh file-integrity monitoring (proxy stack, /etc/ssh, units)": "switched off: wazuhEnabled",
        "UFW default deny out, same allowlist as the firewall": "switched off: ufwDenyOutgoing",
        **DEFAULT_OFF,
    }
    text = posture.terminal(rows)
    assert "OFF  <--" in text and "WARNING: control OFF: Detection: Wazuh" in text
    assert "| **OFF** |" in posture.markdown(rows, "dev", "fortigate")


def test_conditional_access_off_is_a_warning(dev_config: StackConfig) -> None:
    rows = posture.posture(run_program(dev_config.with_values(entraConditionalAccess=False)), "fortigate")
    off = {r.control: r.note for r in rows if r.status == "OFF"}
    assert off == {"Entra Conditional Access: MFA required, sign-in frequency = the session's maximum": "switched off: entraConditionalAccess",
                   **DEFAULT_OFF}
    assert "WARNING: control OFF: Identity: Entra Conditional Access" in posture.terminal(rows)


def test_opting_into_the_port_proxy_is_a_warning_and_a_policy_failure(dev_config: StackConfig) -> None:
    rows = posture.posture(run_program(dev_config.with_values(codeServerPortProxy=True)), "fortigate")
    off = {r.control: r.note for r in rows if r.status == "OFF"}
    assert off["code-server port proxy off (/proxy/<port>, /absproxy/<port>)"] == "switched off: codeServerPortProxy (set it false)"
    assert "code-server-port-proxy-off" in off[f"Policy pack: {len(SINGLE_USER_RULES) - 1}/{len(SINGLE_USER_RULES)} mandatory policies pass"]
    assert len(off) == 4 and IDE_PROXY in off and TRANSFERS in off


def test_download_and_upload_switches_turn_their_row_on_one_alone_is_a_warning(dev_config: StackConfig) -> None:
    both = _status(posture.posture(run_program(dev_config.with_values(
        codeServerDisableFileDownloads=True, codeServerDisableFileUploads=True)), "fortigate"))
    assert both[TRANSFERS] == "on" and both[IDLE] == "on"
    rows = posture.posture(run_program(dev_config.with_values(codeServerDisableFileDownloads=True)), "fortigate")
    weakened = {r.control: r.note for r in rows if r.status == "WEAKENED"}
    assert weakened == {TRANSFERS: "acknowledged: uploads still on (codeServerDisableFileUploads)"}
    assert f"WARNING: control WEAKENED: Host: {TRANSFERS}" in posture.terminal(rows)


def test_the_idle_timeout_row_reads_the_rendered_config(dev_plan: PlanResult) -> None:
    """On by default (1h); a config without the line (or with 0) shows the row OFF."""
    assert _status(posture.posture(dev_plan, "fortigate"))[IDLE] == "on"
    config = next(r for r in dev_plan.resources if str(r.inputs.get("path", "")) == "/etc/code-server/hcs.yaml")
    assert "idle-timeout-seconds: 3600\n" in str(config.inputs["content"])
    idle = next(c for c in posture.CONTROLS if c.control == IDLE)
    original = config.inputs["content"]
    try:
        config.inputs["content"] = str(original).replace("idle-timeout-seconds: 3600\n", "idle-timeout-seconds: 0\n")
        assert idle.select(dev_plan) == []
    finally:
        config.inputs["content"] = original


def test_make_plan_writes_the_posture(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.tools.plan", "--stack", "dev", "--out", str(tmp_path)],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Posture (edge: fortigate):" in done.stdout and f"Policy pack: {len(SINGLE_USER_RULES)}/{len(SINGLE_USER_RULES)}" in done.stdout
    assert (tmp_path / "posture.md").read_text().startswith("Posture of stack `dev` (edge: fortigate)")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflows_parse_and_pin_every_action_to_a_commit(workflow: Path) -> None:
    document = yaml.safe_load(workflow.read_text())
    assert document["jobs"] and document["permissions"]
    uses = [step["uses"] for job in document["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses, "every workflow checks the code out"
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned to a full commit SHA"


def test_the_workflows_cover_tests_preview_deploy_and_drift() -> None:
    docs = {w.stem: yaml.safe_load(w.read_text()) for w in WORKFLOWS}
    steps = {name: [s for job in d["jobs"].values() for s in job["steps"]] for name, d in docs.items()}
    assert any(s.get("run") == "make test" for s in steps["test"])
    pulumi = {name: next(s["with"] for s in st if "pulumi/actions" in s.get("uses", "")) for name, st in steps.items()
              if name not in ("test", "advisories")}
    assert pulumi["preview"]["command"] == "preview" and pulumi["preview"]["policyPacks"] == "scripts/policy"
    assert pulumi["preview"]["comment-on-pr"] is True
    assert pulumi["deploy"]["command"] == "up" and pulumi["deploy"]["policyPacks"] == "scripts/policy"
    assert docs["deploy"]["jobs"]["up"]["environment"] == "${{ matrix.stack }}"
    assert pulumi["drift"] == {"command": "preview", "stack-name": "${{ matrix.stack }}", "refresh": True, "expect-no-changes": True}
    assert "schedule" in docs["drift"][True]  # YAML 1.1 reads the key `on` as True
    assert "schedule" in docs["advisories"][True] and any(s.get("run", "").endswith("-m scripts.tools.advisories") for s in steps["advisories"])


def test_each_flow_off_the_vm_names_its_accounts_and_a_switched_off_service_has_none(dev_config: StackConfig) -> None:
    """Written from the design: apt's proxy for root and _apt, the backup for root, Entra for the service
    account; with backups, Wazuh and Zabbix off their flows are gone; the Cloudflare tunnel is cloudflared's."""
    on = {f.name: f.accounts for f in posture.egress_flows(run_program(dev_config.with_values(**TEST_SECRETS)))}
    assert on["apt-proxy"] == ("root", "_apt") and on["backup"] == ("root",) and on["entra-login"] == ("codesvc",)
    assert on["zabbix-active"] == ("zabbix",) and "coder" not in {a for accounts in on.values() for a in accounts}
    off = posture.egress_flows(run_program(dev_config.with_values(
        backupEnabled="false", backupPassword=None, backupRestPassword=None, wazuhEnabled="false", zabbixEnabled="false", zabbixPsk=None)))
    assert {f.name for f in off} == set(on) - {"backup", "wazuh-events", "wazuh-enroll", "zabbix-active"}
    tunnel = {f.name: f.accounts for f in posture.egress_flows(run_program(dev_config.with_values(**TEST_SECRETS, edge="cloudflare")))}
    assert tunnel["cf-tunnel-udp"] == tunnel["cf-tunnel-tcp"] == ("codesvc",)


def test_the_ide_proxys_flows_show_the_names_the_proxy_lets_through(dev_config: StackConfig) -> None:
    """Read from the hook the plan installs: to any address for Squid's account, the names as listed
    (a wildcard as written), plain HTTP only where asked; no names, no such flow."""
    plan = run_program(dev_config.with_values(**TEST_SECRETS, ideEgressDomains=["git.example.com", "*.pypi.org", "http://deb.example.org"]))
    flows = {f.name: f for f in posture.egress_flows(plan)}
    https, http = flows["ide-proxy-https"], flows["ide-proxy-http"]
    assert (https.protocol, https.port, https.destinations, https.domains) == \
        ("tcp", "443", ("any address",), ("git.example.com", "*.pypi.org", "deb.example.org"))
    assert (http.protocol, http.port, http.domains) == ("tcp", "80", ("deb.example.org",))
    assert not [f for f in flows.values() if f.domains and f.name not in ("ide-proxy-https", "ide-proxy-http")]
    table = posture.markdown([], "dev", "fortigate", list(flows.values()))
    assert "| ide-proxy-http | any address, by name: `deb.example.org` | tcp/80 | `proxy` |" in table
    assert not [f for f in posture.egress_flows(run_program(dev_config.with_values(**TEST_SECRETS))) if f.domains or "ide" in f.name]


def test_a_code_server_release_below_the_known_fixed_floor_turns_its_update_row_off(dev_config: StackConfig) -> None:
    """unattended-upgrades does not cover the .deb: the posture says so, and a pin under the floor is OFF."""
    deb = next(c.control for c in posture.CONTROLS if c.control.startswith("code-server's .deb"))
    assert "unattended-upgrades does not cover" in deb and "Renovate" in deb
    assert _status(posture.posture(run_program(dev_config), "fortigate"))[deb] == "on"
    rows = posture.posture(run_program(dev_config.with_values(codeServerVersion="4.99.0")), "fortigate")
    off = {r.control: r.note for r in rows if r.status == "OFF"}
    assert off[deb].startswith("switched off: codeServerVersion below the known-fixed floor")
    assert "known-fixed-versions" in off[f"Policy pack: {len(SINGLE_USER_RULES) - 1}/{len(SINGLE_USER_RULES)} mandatory policies pass"]
