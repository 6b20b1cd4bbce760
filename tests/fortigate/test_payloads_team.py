"""The edge of a team: several VMs, each with its own address, its own allowlist and nothing else's.

The team comes from the dev stack's own settings (`workspaces`, `vms`) and each VM's topology is
made as the program makes it: the stack's, with that VM's address and the union of its
workspaces' names (`Settings.team_machines`). Limits are read from the FortiOS facts file, and the FortiOS
stand-in (its own name, field and reference checks) is the oracle for the objects themselves.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.fortigate import payloads, schema
from components.fortigate.schema import FACTS_FILE
from components.settings import Settings, load
from components.settings.topology import Topology
from components.settings.workspaces import PRIMARY_VM
from scripts.lab.example import TODAY, dev_source
from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope
from scripts.lab.fortios.stack import PROJECT, SECRETS, deploy_graph
from scripts.tools.offline import record
from tests.fortigate.conftest import TOKEN
from tests.fortigate.test_payloads import KIND_PATH, _fqdns, _ports, _resolve

ALICE = "11111111-2222-3333-4444-555555555555"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFm2gnyW1Yb3Xr1Zt7mB8x0fF3kJwq1rD9oYv2s6uQ5a"
#: The longest VM name settings allow: its policy names exceed FortiOS's limit and are digest-bounded.
LONG = "build-runner-gpu-0001"
#: The team's VMs after the primary: (name, address, what its one workspace may reach).
OTHERS = [
    (LONG, "192.0.2.11", ["*.pypi.org", "http://deb.example.org"]),
    ("data", "192.0.2.12", ["huggingface.co"]),
    ("extra", "192.0.2.13", ["crates.io", "git.example.com"]),
]
PRIMARY_DOMAINS = ["git.example.com"]
#: What each VM's workspaces may reach, by VM name (`http://` marks plain HTTP as well).
DOMAINS = {PRIMARY_VM: PRIMARY_DOMAINS, **{name: domains for name, _, domains in OTHERS}}


def _team_settings(vm_count: int) -> Settings:
    """The dev stack as a team over `vm_count` VMs: the primary, then `OTHERS` in order."""
    others = OTHERS[: vm_count - 1]
    workspaces = [{"name": "w-vm", "users": [ALICE], "ideEgressDomains": PRIMARY_DOMAINS}]
    workspaces += [{"name": f"w{i}", "users": [ALICE], "vm": name, "ideEgressDomains": domains}
                   for i, (name, _, domains) in enumerate(others)]
    vms = [{"name": name, "address": address, "hostKey": HOST_KEY} for name, address, _ in others]
    source = dev_source(entraGroupName=None, entraGroupMembers=None, workspaces=json.dumps(workspaces),
                        **({"vms": json.dumps(vms)} if vms else {}))
    return load(source, today=TODAY)


def team_vms(settings: Settings) -> tuple[tuple[str, Topology], ...]:
    """Every VM of the team with its own topology, as the program hands them to the edge."""
    return settings.team_machines


def _plan(vm_count: int) -> tuple[payloads.EdgePlan, Settings, tuple[tuple[str, Topology], ...]]:
    settings = _team_settings(vm_count)
    vms = team_vms(settings)
    return payloads.build(settings.fortigate, settings.topology, vms), settings, vms


@pytest.fixture(scope="module")
def team3() -> tuple[payloads.EdgePlan, Settings, tuple[tuple[str, Topology], ...]]:
    return _plan(3)


def _address_of(plan: payloads.EdgePlan, vm_topo: Topology) -> str:
    subnet = str(ipaddress.IPv4Network(str(vm_topo.vm.address)))
    (found,) = [o.name for o in plan.of_kind("address") if o.payload.get("subnet") == subnet]
    return found


def _vm_networks(vms: tuple[tuple[str, Topology], ...]) -> set[ipaddress.IPv4Network]:
    return {ipaddress.IPv4Network(str(t.vm.address)) for _, t in vms}


def _flow(plan: payloads.EdgePlan, policy: payloads.CmdbSpec) -> tuple[Any, ...]:
    """What an accept opens: its service's ports, its destination networks and its names."""
    by_name = {o.name: o for o in plan.objects}
    members = [by_name[m["name"]] for m in policy.payload["dstaddr"]]
    names = [{"name": o.name} for o in members if o.payload.get("type") == "fqdn"]
    networks = [{"name": o.name} for o in members if o.payload.get("type") != "fqdn"]
    return (frozenset(_ports(plan, policy.payload["service"])), frozenset(_resolve(plan, networks)),
            frozenset(_fqdns(plan, names)))


def _rule_flow(rule: Any) -> tuple[Any, ...]:
    return (frozenset({(rule.protocol, rule.port)}), frozenset(ipaddress.IPv4Network(str(d)) for d in rule.destinations),
            frozenset(v for d in rule.domains for v in payloads.fqdn_targets(d)))


def test_each_vm_reaches_exactly_its_own_flows_and_shares_only_identical_ones(team3) -> None:
    plan, _, vms = team3
    assert [name for name, _ in vms] == [PRIMARY_VM, LONG, "data"]
    accepts = [p for p in plan.of_kind("policy") if p.payload["srcintf"] == [{"name": "dmz"}] and p.payload["action"] == "accept"]
    for name, vm_topo in vms:
        own = _address_of(plan, vm_topo)
        mine = [p for p in accepts if {"name": own} in p.payload["srcaddr"]]
        # every rule of the VM once, nothing else: another VM's names never reach it
        assert sorted(map(repr, (_flow(plan, p) for p in mine))) == sorted(map(repr, map(_rule_flow, vm_topo.egress_rules))), name
        for policy in mine:
            assert (policy.payload["action"], policy.payload["logtraffic"]) == ("accept", "all")
        assert {d.name for r in vm_topo.egress_rules for d in r.domains} == {d.removeprefix("http://") for d in DOMAINS[name]}
    # a policy's sources are exactly the VMs whose own rules hold that flow
    for policy in accepts:
        holders = {_address_of(plan, t) for _, t in vms if _flow(plan, policy) in map(_rule_flow, t.egress_rules)}
        assert {m["name"] for m in policy.payload["srcaddr"]} == holders, policy.name
    # one policy per distinct flow: the shared ones (resolvers, apt proxy, agents) once, not per VM
    assert len(accepts) == len({repr(_flow(plan, p)) for p in accepts}) < sum(len(t.egress_rules) for _, t in vms)


def test_the_deny_is_last_and_covers_every_vm_as_do_proxy_and_management(team3) -> None:
    plan, settings, vms = team3
    policies = plan.of_kind("policy")
    deny = policies[-1]
    assert deny.name == "hcs-out-deny" and [p for p in policies if p.payload["action"] == "deny"] == [deny]
    assert (deny.payload["dstaddr"], deny.payload["service"], deny.payload["logtraffic"]) == ([{"name": "all"}], [{"name": "ALL"}], "all")
    assert _resolve(plan, deny.payload["srcaddr"]) == _vm_networks(vms)
    by_name = {p.name: p for p in policies}
    proxy, ssh = by_name["hcs-proxy-to-vm"], by_name["hcs-mgmt-ssh"]
    assert _resolve(plan, proxy.payload["dstaddr"]) == _resolve(plan, ssh.payload["dstaddr"]) == _vm_networks(vms)
    assert _ports(plan, proxy.payload["service"]) == {("tcp", settings.topology.gateway_port)}
    assert _ports(plan, ssh.payload["service"]) == {("tcp", settings.topology.vm.ssh_port)}
    # order: inbound, management SSH, each VM's egress in the team's order, the deny
    assert [p.name for p in policies[:3]] == ["hcs-in-https", "hcs-proxy-to-vm", "hcs-mgmt-ssh"]
    # each flow where its first VM (in the team's order) first has it
    firsts = [next(n for n, t in vms if p.payload["srcaddr"][0] == {"name": _address_of(plan, t)}) for p in policies[3:-1]]
    assert firsts == sorted(firsts, key=[n for n, _ in vms].index)
    for previous, policy in zip(policies, policies[1:]):
        assert policy.placement == f"after:{previous.name}" and previous.name in policy.depends_on


def test_names_are_unique_and_within_the_devices_limits(team3) -> None:
    plan, _, _ = team3
    facts = json.loads(FACTS_FILE.read_text())["tables"]
    names = [o.name for o in plan.objects]
    assert len(names) == len(set(names))
    for obj in plan.objects:
        assert len(obj.name) <= facts[KIND_PATH[obj.kind]]["name"]["max_length"], obj.name
    policy_limit = facts["firewall/policy"]["name"]["max_length"]
    bounded = [p.name for p in plan.of_kind("policy") if len(p.name) == policy_limit and p.name.startswith(f"hcs-{LONG[:10]}")]
    assert bounded, "the long VM name's policies were meant to need bounding"
    again, _, _ = _plan(3)
    assert again.objects == plan.objects  # deterministic


def test_adding_a_vm_changes_no_object_of_the_others(team3) -> None:
    plan3, _, vms3 = team3
    plan4, _, vms4 = _plan(4)
    assert [n for n, _ in vms4[:3]] == [n for n, _ in vms3]
    four = {o.name: o for o in plan4.objects}
    for obj in plan3.objects:
        after = four[obj.name]  # nothing renamed
        if obj.name == "hcs-vms":  # the group grows by the new VM's address, at the end
            assert after.payload["member"][:-1] == obj.payload["member"]
            assert _resolve(plan4, after.payload["member"][-1:]) == {ipaddress.IPv4Network("192.0.2.13/32")}
        elif obj.name == "hcs-out-deny":  # still last, now after the new VM's policies
            assert after.payload == obj.payload and plan4.of_kind("policy")[-1] == after
        elif obj.kind == "policy" and after.payload["srcaddr"] != obj.payload["srcaddr"]:
            # a flow the new VM shares: its address joins the sources at the end, nothing else changes
            assert after.payload["srcaddr"][:-1] == obj.payload["srcaddr"]
            assert _resolve(plan4, after.payload["srcaddr"][-1:]) == {ipaddress.IPv4Network("192.0.2.13/32")}
            assert {**after.payload, "srcaddr": obj.payload["srcaddr"]} == obj.payload
        else:
            assert after == obj, obj.name
    new_policies = [p.name for p in plan4.of_kind("policy") if p.name not in {o.name for o in plan3.objects}]
    assert new_policies and all(p.startswith("hcs-extra-out-") for p in new_policies)


def test_a_one_vm_team_is_the_single_vm_plan_with_the_vm_as_a_group() -> None:
    """Decided: a team uses the group form from its first VM on, so its second VM changes no
    policy (only the group's members); apart from that group it is the single-VM plan exactly."""
    settings = _team_settings(1)
    (vm,) = team_vms(settings)
    topo = vm[1]  # the primary's own allowlist: its workspace's names
    single = payloads.build(settings.fortigate, topo)
    assert payloads.build(settings.fortigate, topo, ()) == single
    team = payloads.build(settings.fortigate, settings.topology, [vm])

    def as_single(obj: payloads.CmdbSpec) -> payloads.CmdbSpec:
        swap = {"hcs-vms": "hcs-vm"}
        payload = {k: [{"name": swap.get(m["name"], m["name"])} for m in v] if k in ("srcaddr", "dstaddr") else v
                   for k, v in obj.payload.items()}
        return replace(obj, payload=payload, depends_on=tuple(swap.get(d, d) for d in obj.depends_on))

    group = [o for o in team.objects if o.name == "hcs-vms"]
    assert [o.payload["member"] for o in group] == [[{"name": "hcs-vm"}]]
    assert tuple(as_single(o) for o in team.objects if o.name != "hcs-vms") == single.objects


def test_the_team_must_start_with_the_stacks_own_vm_and_share_its_ports(team3) -> None:
    _, settings, vms = team3
    with pytest.raises(ValueError, match="first VM must be 'vm'"):
        payloads.build(settings.fortigate, settings.topology, vms[1:])
    other_port = (vms[1][0], replace(vms[1][1], vm=replace(vms[1][1].vm, ssh_port=2222)))
    with pytest.raises(ValueError, match="SSH and gateway ports"):
        payloads.build(settings.fortigate, settings.topology, (vms[0], other_port))
    with pytest.raises(ValueError, match="a name and an address of its own"):
        payloads.build(settings.fortigate, settings.topology, (vms[0], vms[1], vms[1]))


def test_the_provider_and_the_device_accept_every_object_in_plan_order(team3, certificate: tuple[Path, Path]) -> None:
    plan, _, _ = team3
    names = [o.name for o in plan.objects]
    cert, key = certificate
    # a device that wants policy names unique (some do) refuses a duplicate the plan might hold
    device = FortiOSEmulator(cert, key, {TOKEN: TokenScope(vdoms=frozenset({"root"}))}, unique_policy_names=True).start()
    try:
        with httpx.Client(base_url=f"{device.url}/api/v2/cmdb/", headers={"Authorization": f"Bearer {TOKEN}"},
                          verify=ssl.create_default_context(cafile=cert), params={"vdom": "root"}) as api:
            for obj in plan.objects:
                assert set(obj.depends_on) <= set(names[: names.index(obj.name)])
                body = {**obj.payload, "name": obj.name}
                assert schema.check_payload(schema.table(KIND_PATH[obj.kind]), obj.payload)[1] == [], obj.name
                response = api.post(KIND_PATH[obj.kind], json=body)
                assert response.status_code == 200, (obj.name, response.json().get("cli_error"))
        assert [p["name"] for p in device.table("root", "firewall/policy")] == [p.name for p in plan.of_kind("policy")]
    finally:
        device.stop()


def _register(settings: Settings, vms: tuple[tuple[str, Topology], ...]) -> list[Any]:
    from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs

    def build() -> None:
        FortigateEdge("edge", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology, vms=vms))

    return record(build, project=PROJECT, stack="dev").resources


def test_the_edge_registers_the_team_plan(team3) -> None:
    plan, settings, vms = team3
    resources = _register(settings, vms)
    assert resources[0].type == "hcs:fortigate:Edge"
    assert sorted(r.inputs["name"] for r in resources[1:]) == sorted(o.name for o in plan.objects)
    policies = [r for r in resources[1:] if r.inputs["path"] == "firewall/policy"]
    assert policies[0].inputs["block"]["names"] == [p.name for p in plan.of_kind("policy")]


@pytest.mark.slow
def test_the_team_edge_deploys_in_order(team3, emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> None:
    from scripts.lab.fortios.host import TOKEN_KEY, ProviderHost

    plan, settings, vms = team3
    token = SECRETS["fortigateApiToken"]
    emulator.tokens[token] = TokenScope()
    emulator.seed_policy("root", "lan-out")
    with ProviderHost() as host:
        host.configure({TOKEN_KEY: token}, secret_keys=(TOKEN_KEY,))
        deploy_graph(host, _register(settings, vms), emulator.url, str(certificate[0]))
    assert [p["name"] for p in emulator.table("root", "firewall/policy")] == [*(p.name for p in plan.of_kind("policy")), "lan-out"]
