"""`workspaces`, `vms` and `workspaceDomain`: a team's isolated workspaces, read like every other key.

The dev stack switched to a team (its Entra group keys removed, as the team setup has none), then one
bad value at a time: the error names the key down to the field, and every problem comes at once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import ConfigError, Settings, load
from components.settings.workspaces import FIRST_PROXY_PORT, MAX_WORKSPACES, PRIMARY_VM, Limits
from scripts.lab.example import TODAY, dev_source

ALICE = "11111111-2222-3333-4444-555555555555"
BOB = "22222222-3333-4444-5555-666666666666"
DEVS = "33333333-4444-5555-6666-777777777777"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFm2gnyW1Yb3Xr1Zt7mB8x0fF3kJwq1rD9oYv2s6uQ5a"
NO_GROUP = {"entraGroupName": None, "entraGroupMembers": None}


def _team(workspaces: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {**NO_GROUP, "workspaces": json.dumps(workspaces), **changes}


def _load(**changes: Any) -> Settings:
    return load(dev_source(**changes), today=TODAY)


def _problems(**changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as error:
        _load(**changes)
    return [str(p) for p in error.value.problems]


TWO = [{"name": "alice", "users": [ALICE]},
       {"name": "devs", "groups": [DEVS], "users": [BOB], "limits": {"memoryMax": "4G", "cpuQuota": "200%", "tasksMax": 2048},
        "ideEgressDomains": ["pypi.org"]}]


def test_without_workspaces_the_stack_is_the_single_ide_user() -> None:
    settings = _load()
    assert settings.team is None and settings.entra.group is not None


def test_a_team_is_read_with_its_defaults_and_hosts() -> None:
    team = _load(**_team(TWO)).team
    assert team is not None
    assert team.domain == "example.com"  # hostname code.example.com without its first label
    assert [(v.name, str(v.address)) for v in team.vms] == [(PRIMARY_VM, "192.0.2.10")]
    alice, devs = team.workspaces
    assert (alice.account, alice.role, team.hostname(alice)) == ("ws-alice", "ws.alice", "alice.example.com")
    assert alice.users == (ALICE,) and alice.groups == () and alice.vm == PRIMARY_VM
    assert alice.limits == Limits("2G", "100%", 1024)
    # the dev stack lists no ideEgressDomains: alice reaches nothing off the VM and gets no proxy port
    assert alice.egress == () and alice.proxy_port is None
    assert devs.limits == Limits("4G", "200%", 2048) and [d.name for d in devs.egress] == ["pypi.org"]
    assert devs.proxy_port == FIRST_PROXY_PORT and devs.users == (BOB,) and devs.groups == (DEVS,)


def test_workspaces_spread_over_vms_get_proxy_ports_per_vm_and_the_stack_egress() -> None:
    vms = [{"name": "vm2", "address": "192.0.2.11", "hostKey": OTHER_KEY}]
    spread = [{"name": f"w{i}", "users": [ALICE], "vm": "vm2" if i % 2 else PRIMARY_VM} for i in range(4)]
    team = _load(**_team(spread, vms=json.dumps(vms), ideEgressDomains=json.dumps(["*.github.com"]),
                         workspaceDomain="ws.example.net")).team
    assert team is not None and team.domain == "ws.example.net"
    assert [(v.name, v.host_key) for v in team.vms][1] == ("vm2", OTHER_KEY)
    assert [(w.name, w.vm, w.proxy_port) for w in team.workspaces] == [
        ("w0", "vm", 3128), ("w1", "vm2", 3128), ("w2", "vm", 3129), ("w3", "vm2", 3129)]
    assert [w.name for w in team.on("vm2")] == ["w1", "w3"]
    assert all([d.name for d in w.egress] == ["*.github.com"] for w in team.workspaces)


def test_a_valid_team_at_the_limit_loads() -> None:
    many = [{"name": f"w{i}", "users": [ALICE]} for i in range(MAX_WORKSPACES)]
    team = _load(**_team(many)).team
    assert team is not None and len(team.workspaces) == MAX_WORKSPACES


BAD: list[tuple[str, list[dict[str, Any]], dict[str, Any], str, str]] = [
    ("upper-case name", [{"name": "Alice", "users": [ALICE]}], {}, "workspaces[0].name", "lower-case DNS label"),
    ("one-letter name", [{"name": "a", "users": [ALICE]}], {}, "workspaces[0].name", "2 to 21 characters"),
    ("trailing hyphen", [{"name": "ab-", "users": [ALICE]}], {}, "workspaces[0].name", "lower-case DNS label"),
    ("too long", [{"name": "a" * 22, "users": [ALICE]}], {}, "workspaces[0].name", "2 to 21 characters"),
    ("no name", [{"users": [ALICE]}], {}, "workspaces[0].name", "got None"),
    ("duplicate", [{"name": "alice", "users": [ALICE]}, {"name": "alice", "users": [BOB]}], {}, "workspaces[1].name",
     "is also workspaces[0]"),
    ("the stack's own host", [{"name": "code", "users": [ALICE]}], {}, "workspaces[0].name", "is the stack's hostname"),
    ("a named account", [{"name": "alice", "users": [ALICE]}], {"serviceUser": "ws-alice"}, "workspaces[0].name",
     "its account ws-alice is already an account the stack names"),
    ("nobody granted", [{"name": "alice"}], {}, "workspaces[0]", "expected users"),
    ("empty grants", [{"name": "alice", "users": [], "groups": []}], {}, "workspaces[0]", "expected users"),
    ("a user that is not an object ID", [{"name": "alice", "users": ["alice@example.com"]}], {}, "workspaces[0].users[0]",
     "alice@example.com"),
    ("a duplicate user", [{"name": "alice", "users": [ALICE, ALICE]}], {}, "workspaces[0].users", "no duplicate"),
    ("groups not a list", [{"name": "alice", "groups": DEVS}], {}, "workspaces[0].groups", "expected a list of strings"),
    ("a misspelt field", [{"name": "alice", "users": [ALICE], "user": [BOB]}], {}, "workspaces[0].user",
     "is not a field of a workspace"),
    ("an unknown VM", [{"name": "alice", "users": [ALICE], "vm": "vm9"}], {}, "workspaces[0].vm", "expected the name of a VM"),
    ("too little memory", [{"name": "alice", "users": [ALICE], "limits": {"memoryMax": "256M"}}], {},
     "workspaces[0].limits.memoryMax", "at least 512M"),
    ("memory in terabytes", [{"name": "alice", "users": [ALICE], "limits": {"memoryMax": "1T"}}], {},
     "workspaces[0].limits.memoryMax", "such as 2G"),
    ("a fractional CPU quota", [{"name": "alice", "users": [ALICE], "limits": {"cpuQuota": "1.5"}}], {},
     "workspaces[0].limits.cpuQuota", "such as 200%"),
    ("too few tasks", [{"name": "alice", "users": [ALICE], "limits": {"tasksMax": 10}}], {},
     "workspaces[0].limits.tasksMax", "from 64 to 32768"),
    ("tasks as text", [{"name": "alice", "users": [ALICE], "limits": {"tasksMax": "1024"}}], {},
     "workspaces[0].limits.tasksMax", "an integer"),
    ("a misspelt limit", [{"name": "alice", "users": [ALICE], "limits": {"memory": "2G"}}], {},
     "workspaces[0].limits.memory", "is not a field of limits"),
    ("an IP literal to reach", [{"name": "alice", "users": [ALICE], "ideEgressDomains": ["203.0.113.9"]}], {},
     "workspaces[0].ideEgressDomains[0]", "203.0.113.9"),
    ("a name the stack already allows", [{"name": "alice", "users": [ALICE], "ideEgressDomains": ["api.github.com"]}],
     {"ideEgressDomains": json.dumps(["*.github.com"])}, "workspaces[0].ideEgressDomains", "already covered by *.github.com"),
    ("a proxy port on the gateway's", [{"name": "alice", "users": [ALICE], "ideEgressDomains": ["pypi.org"]}],
     {"gatewayPort": 3128}, "workspaces[0].ideEgressDomains", "gatewayPort"),
    ("the Cloudflare edge", [{"name": "alice", "users": [ALICE]}], {"edge": "cloudflare"}, "workspaces", "edge cloudflare"),
    ("the group of the single-user stack", [{"name": "alice", "users": [ALICE]}], {"entraGroupName": "code-server-users"},
     "entraGroupName", "only applies without workspaces"),
    ("a VM named like the stack's", [{"name": "alice", "users": [ALICE]}],
     {"vms": json.dumps([{"name": "vm", "address": "192.0.2.11", "hostKey": OTHER_KEY}])}, "vms[0].name", "names another VM"),
    ("a VM at the stack VM's address", [{"name": "alice", "users": [ALICE], "vm": "vm2"}],
     {"vms": json.dumps([{"name": "vm2", "address": "192.0.2.10", "hostKey": OTHER_KEY}])}, "vms[0].address", "another VM's address"),
    ("an existing VM without its pin", [{"name": "alice", "users": [ALICE], "vm": "vm2"}],
     {"vms": json.dumps([{"name": "vm2", "address": "192.0.2.11"}])}, "vms[0].hostKey", "is required for an existing VM"),
    ("an address that is not text", [{"name": "alice", "users": [ALICE], "vm": "vm2"}],
     {"vms": json.dumps([{"name": "vm2", "address": 3221225995, "hostKey": OTHER_KEY}])}, "vms[0].address", "expected a string"),
    ("a VM hosting nobody", [{"name": "alice", "users": [ALICE]}],
     {"vms": json.dumps([{"name": "vm2", "address": "192.0.2.11", "hostKey": OTHER_KEY}])}, "vms", "hosts no workspace"),
    ("a workspace domain without the wildcard's shape", [{"name": "alice", "users": [ALICE]}], {"workspaceDomain": "not a domain"},
     "workspaceDomain", "not a domain"),
]


@pytest.mark.parametrize(("workspaces", "changes", "key", "says"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_each_bad_value_is_refused_naming_its_key(workspaces: list[dict[str, Any]], changes: dict[str, Any], key: str, says: str) -> None:
    problems = _problems(**_team(workspaces, **changes))
    named = [p for p in problems if p.startswith(f"config error: {key}: ")]
    assert named and any(says in p for p in named), problems


def test_more_workspaces_than_entra_has_redirect_uris_are_refused() -> None:
    many = [{"name": f"w{i}", "users": [ALICE]} for i in range(MAX_WORKSPACES + 1)]
    assert any(p.startswith("config error: workspaces: expected at most 256") for p in _problems(**_team(many)))


def test_not_a_list_of_objects_is_refused() -> None:
    problems = _problems(**NO_GROUP, workspaces=json.dumps(["alice"]))
    assert any(p.startswith("config error: workspaces: expected a list of objects") for p in problems), problems


@pytest.mark.parametrize("key", ["vms", "workspaceDomain"])
def test_the_team_keys_only_apply_with_workspaces(key: str) -> None:
    value = json.dumps([{"name": "vm2", "address": "192.0.2.11", "hostKey": OTHER_KEY}]) if key == "vms" else "example.com"
    assert f"config error: {key}: only applies with workspaces" in _problems(**{key: value})


def test_a_created_vm_takes_no_pin_and_every_problem_comes_at_once() -> None:
    created = {"vmProvider": "proxmox", "vmHostKey": None, "proxmoxEndpoint": "https://pve.example.com:8006/",
               "proxmoxNode": "pve1", "proxmoxTemplateVmId": 9000, "proxmoxBridge": "vmbr1", "proxmoxGateway": "192.0.2.1",
               "proxmoxSshUser": "root"}
    workspaces = [{"name": "Alice", "users": [ALICE]}, {"name": "bob", "vm": "vm2", "limits": {"tasksMax": 1}}]
    vms = [{"name": "vm2", "address": "192.0.2.11", "hostKey": OTHER_KEY}]
    keys = {p.split(": ")[1] for p in _problems(**_team(workspaces, vms=json.dumps(vms), **created))}
    assert {"workspaces[0].name", "workspaces[1]", "workspaces[1].limits.tasksMax", "vms[0].hostKey"} <= keys


def test_the_stacks_own_vm_must_host_a_workspace() -> None:
    """Every VM of a team converges as a team VM: the stack's own with none would serve nothing."""
    elsewhere = [{"name": "alice", "users": [ALICE], "vm": "vm2"}]
    vms = [{"name": "vm2", "address": "192.0.2.11", "hostKey": OTHER_KEY}]
    assert _problems(**_team(elsewhere, vms=json.dumps(vms))) == [
        f"config error: vms: the stack's own VM ('{PRIMARY_VM}', vmAddress) hosts no workspace; place one there (workspaces[].vm)"]
