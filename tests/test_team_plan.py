"""A team's whole graph, from the real `__main__.py` under Pulumi's mock runtime: every VM its own
host steps, gateway and hop, each gateway serving only its own workspaces; the shipped 50-workspace,
10-VM example stack; and a resource count that grows linearly with workspaces and VMs."""

from __future__ import annotations

import collections
import re
import tomllib
from typing import Any

import pytest
import yaml

from components.layout import WORKSPACE_GATEWAY_SOCKET_DIR
from scripts import REPOSITORY
from scripts.tools import bench_plan
from scripts.tools.offline import PlanResult, StackConfig, load_stack_config, run_program

ALICE, BOB, CAROL = (f"66666666-7777-8888-9999-00000000000{n}" for n in (1, 2, 3))
NO_GROUP: dict[str, Any] = {"entraGroupName": None, "entraGroupMembers": None}
#: The example team stack's extra VMs (their pinned keys are valid ed25519 keys).
EXAMPLE_VMS: list[dict[str, str]] = yaml.safe_load((REPOSITORY / "Pulumi.team.yaml").read_text())["config"]["hardened-code-server:vms"]
TEAM = [{"name": "alice", "users": [ALICE]}, {"name": "bob", "users": [BOB]},
        {"name": "carol", "users": [CAROL], "vm": EXAMPLE_VMS[0]["name"], "ideEgressDomains": ["pypi.org"]}]
OTHER = EXAMPLE_VMS[0]["name"]
FILE = "hcs:files:File"


@pytest.fixture(scope="module")
def team_plan(dev_config: StackConfig) -> PlanResult:
    return run_program(dev_config.with_values(**NO_GROUP, workspaces=TEAM, vms=EXAMPLE_VMS[:1]))


def _file(plan: PlanResult, role: str, suffix: str) -> str:
    (found,) = [r.inputs["content"] for r in plan.of_type(FILE) if r.inputs["role"] == role and r.inputs["path"].endswith(suffix)]
    return str(found)


def _named(plan: PlanResult, type_token: str) -> list[str]:
    return sorted(r.name for r in plan.of_type(type_token))


def test_each_vm_has_its_own_host_gateway_and_hop_and_no_urn_is_shared(team_plan: PlanResult) -> None:
    assert _named(team_plan, "hcs:host:DmzHost") == sorted(["vm", f"vm-{OTHER}"])
    assert _named(team_plan, "hcs:gateway:Stack") == sorted(["gateway", f"gateway-{OTHER}"])
    assert _named(team_plan, "hcs:gateway:HopPki") == sorted(["gateway-hop", f"gateway-{OTHER}-hop"])
    urns = [r.urn for r in team_plan.resources]
    assert len(urns) == len(set(urns)), [u for u, n in collections.Counter(urns).items() if n > 1]
    # The other VM's steps go to its own address, pinned to its own key.
    other = [r for r in team_plan.of_type("command:remote:Command") if r.name.startswith(f"vm-{OTHER}-")]
    assert other and {(r.values["connection"]["host"], r.values["connection"]["hostKey"]) for r in other} == {
        (EXAMPLE_VMS[0]["address"], EXAMPLE_VMS[0]["hostKey"])}


def test_each_gateway_serves_and_admits_only_its_own_workspaces(team_plan: PlanResult) -> None:
    first, second = _file(team_plan, "vm", "/Caddyfile"), _file(team_plan, f"vm-{OTHER}", "/Caddyfile")
    assert "alice.example.com" in first and "bob.example.com" in first and "carol.example.com" not in first
    assert "carol.example.com" in second and "alice.example.com" not in second
    for role, roles in (("vm", ["ws.alice", "ws.bob"]), (f"vm-{OTHER}", ["ws.carol"])):
        config = tomllib.loads(_file(team_plan, role, "/oauth2-proxy.cfg").split("\n", 1)[1])
        assert config["allowed_groups"] == roles and config["oidc_groups_claim"] == "roles" and "redirect_url" not in config
    for gateway in team_plan.of_type("docker:index/container:Container"):
        if gateway.values["name"] == "caddy-gateway":
            mounts = {m["source"]: m.get("readOnly") for m in gateway.values["mounts"]}
            assert mounts[WORKSPACE_GATEWAY_SOCKET_DIR] is True


def test_the_hop_names_every_host_of_its_vm_and_the_front_proxy_gets_a_site_per_vm(team_plan: PlanResult) -> None:
    requests = {r.name: r.values["dnsNames"] for r in team_plan.of_type("tls:index/certRequest:CertRequest")
                if r.name.endswith("-gateway-request")}
    assert requests == {"gateway-hop-gateway-request": ["alice.example.com", "bob.example.com"],
                        f"gateway-{OTHER}-hop-gateway-request": ["carol.example.com"]}
    sites = {r.inputs["path"]: str(r.inputs["content"]) for r in team_plan.of_type(FILE)
             if r.inputs["role"] == "front-proxy" and r.inputs["path"].startswith("/etc/caddy/sites/")}
    assert sorted(sites) == ["/etc/caddy/sites/dmz2.example.com.caddy", "/etc/caddy/sites/vm.example.com.caddy"]
    assert "tls_server_name carol.example.com" in sites["/etc/caddy/sites/dmz2.example.com.caddy"]
    assert team_plan.outputs["workspaces"] == {w["name"]: f"https://{w['name']}.example.com" for w in TEAM}


def test_the_shipped_team_stack_is_fifty_workspaces_on_ten_vms() -> None:
    plan = run_program(load_stack_config("team"))
    assert len(plan.of_type("hcs:host:DmzHost")) == 10 and len(plan.of_type("hcs:gateway:Stack")) == 10
    assert len(plan.outputs["workspaces"]) == 50 and not plan.of_type("azuread:index/group:Group")
    (app,) = plan.of_type("azuread:index/application:Application")
    assert len(app.values["appRoles"]) == 50 and len(app.values["web"]["redirectUris"]) == 50
    accounts = [r.values["create"] for r in plan.of_type("command:remote:Command") if r.name.endswith("-accounts")]
    assert sorted(a for text in accounts for a in re.findall(r"HCS_WORKSPACES=.?(ws-[^']*)", text)[0].split()) == [
        f"ws-dev{n:02d}" for n in range(1, 51)]


def _count(dev_config: StackConfig, workspaces: int, vms: int) -> int:
    """Resources of a uniform team (`bench_plan.uniform_team`: one person each, round-robin over the VMs)."""
    return len(run_program(bench_plan.uniform_team(dev_config, workspaces, vms)).resources)


def test_the_resource_count_grows_linearly_with_workspaces_and_vms(dev_config: StackConfig) -> None:
    """count = base + per_vm·VMs + per_workspace·workspaces, from three small teams; then 1, 10 and 50
    workspaces (on 1, 2 and 10 VMs) must be exactly that line (printed: `pytest -s`)."""
    one = _count(dev_config, 1, 1)
    per_workspace = _count(dev_config, 2, 1) - one
    per_vm = _count(dev_config, 2, 2) - one - per_workspace
    for workspaces, vms in bench_plan.SIZES:
        counted = _count(dev_config, workspaces, vms)
        print(f"{workspaces} workspaces on {vms} VMs: {counted} resources")
        assert counted == one + per_vm * (vms - 1) + per_workspace * (workspaces - 1)
    assert per_workspace <= 3, "a workspace costs its drop-in and its role assignment, not a VM's worth"


def test_no_file_of_one_vm_is_recorded_as_another_vms(team_plan: PlanResult) -> None:
    records = [(r.inputs["role"], r.inputs["path"]) for r in team_plan.of_type(FILE)]
    assert len(records) == len(set(records))
    roles = collections.Counter(role for role, _ in records)
    assert set(roles) == {"vm", f"vm-{OTHER}", "front-proxy"}

