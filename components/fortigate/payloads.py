"""The FortiGate edge as data: every CMDB object the stack manages, built from settings.

Pure (settings in, payload dicts out, no pulumi), so the rule set is tested without a device.
Field names are the device's own. The egress policies come from `Topology.egress_rules`, the
same allowlist the host's UFW renders, so the two firewalls cannot disagree. A flow by name (the
IDE proxy's `domains`) goes to FQDN address objects: the VM's host firewall cannot match names,
so for those flows the FortiGate is the network layer that holds the proxy to its list. The
FortiGate resolves a plain FQDN object itself, but fills a wildcard one only from DNS answers it
forwards: the VM's resolvers (`dnsServers`) must sit beyond the FortiGate, and the FortiGate
should ask the same servers, or a CDN name may resolve differently on each side (refused, logged;
FortiOS admin guide, "Using wildcard FQDN addresses in firewall policies").

The policies form one ordered block: inbound HTTPS to the VIP, the front proxy to the gateway,
management SSH, one accept per egress rule, then an explicit, logged deny of everything else
the VM tries. The block sits where `fortigatePolicyPlacement` says; each later policy is placed
directly after the previous one (by name), so a foreign policy slipped in between shows as drift.

A team (`build`'s `vms`) spreads workspaces over several VMs, each with an allowlist of its own
(its workspaces' names). Each VM gets its own address object; each distinct flow one accept whose
sources are exactly the VMs that have it (the resolvers or the apt proxy: every VM; a VM's IDE
proxy names: that VM), so no VM borrows another's names and the device holds a policy per flow,
not per flow and VM; one address group of all VMs is what the front proxy and management may
reach and what the final deny covers. The primary VM keeps the single-VM names (`{p}-vm`,
`{p}-out-<rule>`), a flow first seen on another VM is named after that VM, so turning a stack into
a team, or adding a VM, renames nothing that exists: the group and a shared flow's sources grow,
and a new flow's policy goes in before the deny.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from components.fortigate.schema import TABLES
from components.settings.fortigate import FortigateSettings
from components.settings.ide import EgressDomain
from components.settings.topology import Topology
from components.settings.workspaces import PRIMARY_VM

HTTPS_PORT = 443
#: FortiOS 7.4's limit for a firewall address name (fortios_7_4.json, firewall/address name).
ADDRESS_NAME_LIMIT = TABLES["firewall/address"].name_limit
#: FortiOS 7.4's limit for a firewall policy name (fortios_7_4.json, firewall/policy name): 35,
#: which a team VM's `{p}-<vm>-out-<rule>` can exceed.
POLICY_NAME_LIMIT = TABLES["firewall/policy"].name_limit


@dataclass(frozen=True)
class CmdbSpec:
    """One object: its table kind, its name on the device, and the fields the stack manages."""

    kind: str  # address | addrgrp | service | vip | ips-sensor | policy
    name: str
    payload: dict[str, Any]
    placement: str | None = None
    depends_on: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class EdgePlan:
    """All objects in creation order (references before referrers; policies in their order)."""

    objects: tuple[CmdbSpec, ...]
    ips_sensor: str | None  # None without an inbound path (Cloudflare edge)
    vip: str | None

    def of_kind(self, kind: str) -> tuple[CmdbSpec, ...]:
        return tuple(o for o in self.objects if o.kind == kind)


def _members(*names: str) -> list[dict[str, str]]:
    return [{"name": n} for n in names]


def _subnet(network: ipaddress.IPv4Network | ipaddress.IPv4Address) -> str:
    return str(ipaddress.IPv4Network(str(network)))


def _service_name(prefix: str, protocol: str, port: int) -> str:
    return f"{prefix}-{protocol}-{port}"


def _bounded(name: str, limit: int = ADDRESS_NAME_LIMIT) -> str:
    """`name`, or its head and a digest of the whole when too long (FortiOS refuses, never truncates)."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def fqdn_targets(domain: EgressDomain) -> tuple[str, ...]:
    """The FortiOS FQDN values that allow `domain`: `*.example.com` needs `example.com` as well.

    FortiOS (6.2.2 and later, 7.4 included) writes a wildcard as `type fqdn` with `fqdn
    "*.example.com"`; `type wildcard-fqdn` is gone from 7.4 (not in its `type` options), and the
    separate `firewall wildcard-fqdn custom` table serves SSL-inspection exemptions, not policies.
    Our `*.` covers the apex too; FortiOS documents its wildcard for the names under it only, so
    the apex gets an object of its own instead of relying on the pattern.
    """
    return (domain.name, domain.base) if domain.wildcard else (domain.name,)


@dataclass(frozen=True)
class _Host:
    """One VM the edge serves: its name, its address object, and the topology of its egress."""

    vm: str
    address: str
    topology: Topology


def _hosts(p: str, topo: Topology, vms: Sequence[tuple[str, Topology]]) -> list[_Host]:
    """The VMs of the plan: the stack's own alone, or every VM of a team, the primary first.

    A team VM's names derive from its own name only (never its position), so adding a VM renames
    no other; the primary keeps the single-VM names. Shared flows (front proxy, management) use
    one port per stack, so every VM must agree with `topo` on them.
    """
    if not vms:
        return [_Host(PRIMARY_VM, f"{p}-vm", topo)]
    names = [name for name, _ in vms]
    if names[0] != PRIMARY_VM or vms[0][1].vm.address != topo.vm.address:
        raise ValueError(f"vms: the first VM must be {PRIMARY_VM!r} at the stack's vmAddress {topo.vm.address}, "
                         f"got {names[0]!r} at {vms[0][1].vm.address}")
    if len(set(names)) != len(names) or len({str(t.vm.address) for _, t in vms}) != len(vms):
        raise ValueError(f"vms: every VM needs a name and an address of its own, got {names}")
    for name, vm_topo in vms:
        if (vm_topo.vm.ssh_port, vm_topo.gateway_port) != (topo.vm.ssh_port, topo.gateway_port):
            raise ValueError(f"vms: VM {name!r} must use the stack's SSH and gateway ports (one policy serves every VM)")
    return [_Host(name, f"{p}-vm" if name == PRIMARY_VM else _bounded(f"{p}-vm-{name}"), vm_topo) for name, vm_topo in vms]


def build(fg: FortigateSettings, topo: Topology, vms: Sequence[tuple[str, Topology]] = ()) -> EdgePlan:
    """Every object of the edge, from the FortiGate settings and the shared topology.

    `vms` empty: the stack's one VM (`topo.vm`, `topo.egress_rules`). Otherwise every VM of a team
    as (its name, its topology: its address and its own `ide_egress`), the primary first; `topo`
    then supplies what the VMs share (front proxy, management, ports, VIP) and the VMs their
    egress. Even one VM gets the group form then, so a second one only grows the group.
    """
    p = fg.name_prefix
    comment = "managed by pulumi (hardened-code-server)"
    objects: list[CmdbSpec] = []
    addresses: dict[str, str] = {}  # IP/CIDR text -> address object name

    def address(label: str, net: Any) -> str:
        key = _subnet(net)
        if key not in addresses:
            name = f"{p}-{label}-{key.replace('/32', '').replace('/', '_')}"
            addresses[key] = name
            objects.append(CmdbSpec("address", name, {"subnet": key, "comment": comment}))
        return addresses[key]

    for net in topo.management_subnets:
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"managementSubnets: the FortiGate edge manages IPv4 addresses only, got {net}")

    hosts = _hosts(p, topo, vms)
    for host in hosts:
        subnet = _subnet(host.topology.vm.address)
        addresses[subnet] = host.address
        label = "code-server VM" if host.vm == PRIMARY_VM else f"code-server VM {host.vm}"
        objects.append(CmdbSpec("address", host.address, {"subnet": subnet, "comment": f"{label}; " + comment}))
    # What the front proxy and management reach and what the deny covers: the VM, or all of them.
    vm = hosts[0].address
    if vms:
        vm = f"{p}-vms"
        members = tuple(h.address for h in hosts)
        objects.append(CmdbSpec("addrgrp", vm, {"member": _members(*members), "comment": "the team's code-server VMs; " + comment},
                                depends_on=members))
    front_group = f"{p}-front-proxy"
    if fg.inbound:
        front = [address("front-proxy", a) for a in topo.gateway_peers]
        objects.append(CmdbSpec("addrgrp", front_group, {"member": _members(*front), "comment": comment}, depends_on=tuple(front)))
    mgmt = [address("mgmt", n) for n in topo.management_subnets]
    mgmt_group = f"{p}-mgmt"
    objects.append(CmdbSpec("addrgrp", mgmt_group, {"member": _members(*mgmt), "comment": comment}, depends_on=tuple(mgmt)))

    fqdns: dict[str, str] = {}  # FQDN value -> address object name

    def fqdn(value: str) -> str:
        # Plain names and wildcards in name spaces of their own, so the two never share a name.
        if value not in fqdns:
            name = _bounded(f"{p}-wildcard-{value[2:]}" if value.startswith("*.") else f"{p}-fqdn-{value}")
            fqdns[value] = name
            objects.append(CmdbSpec("address", name, {"type": "fqdn", "fqdn": value, "comment": comment}))
        return fqdns[value]

    egress_dst: dict[tuple[str, str], list[str]] = {}  # (VM, rule) -> destination object names
    for host in hosts:
        for rule in host.topology.egress_rules:
            dst = [address(rule.name.split("-")[0], d) for d in rule.destinations]
            dst += [fqdn(value) for d in rule.domains for value in fqdn_targets(d)]
            if not dst:
                raise ValueError(f"egress rule {rule.name}: neither addresses nor names (a policy to nowhere)")
            egress_dst[(host.vm, rule.name)] = list(dict.fromkeys(dst))

    services: dict[tuple[str, int], str] = {}

    def service(protocol: str, port: int) -> str:
        if (protocol, port) not in services:
            name = _service_name(p, protocol, port)
            services[(protocol, port)] = name
            objects.append(CmdbSpec("service", name, {f"{protocol}-portrange": str(port), "comment": comment}))
        return services[(protocol, port)]

    https = service("tcp", HTTPS_PORT) if fg.inbound else None
    gateway = service("tcp", topo.gateway_port) if fg.inbound else None
    ssh = service("tcp", topo.vm.ssh_port)
    egress_svc = {(host.vm, rule.name): service(rule.protocol, rule.port)
                  for host in hosts for rule in host.topology.egress_rules}

    if not fg.inbound:
        sensor = None
    elif fg.ips_sensor is None:
        sensor = f"{p}-ips"
        objects.append(CmdbSpec("ips-sensor", sensor, {
            "comment": "server-side exploits against the code-server edge; " + comment,
            "block-malicious-url": "enable",
            "entries": [{
                "id": 1, "location": "server", "severity": "medium high critical",
                "status": "enable", "action": "block", "log": "enable", "log-packet": "enable",
            }],
        }))
    else:
        sensor = fg.ips_sensor

    vip = f"{p}-vip-https" if fg.inbound else None
    if vip is not None:
        objects.append(CmdbSpec("vip", vip, {
            "comment": "public HTTPS to the front proxy; " + comment,
            "type": "static-nat",
            "extip": str(fg.public_ip),
            "extintf": fg.wan_interface,
            "mappedip": [{"range": str(topo.front_proxy_addresses[0])}],
            "portforward": "enable",
            "protocol": "tcp",
            "extport": str(HTTPS_PORT),
            "mappedport": str(HTTPS_PORT),
        }))

    def policy(**fields: Any) -> dict[str, Any]:
        base = {"action": "accept", "schedule": "always", "logtraffic": "all", "status": "enable",
                "nat": "disable", "comments": comment}
        return {**base, **fields}

    inbound: list[tuple[str, dict[str, Any]]] = [
        (f"{p}-in-https", policy(
            srcintf=_members(fg.wan_interface), dstintf=_members(fg.dmz_interface),
            srcaddr=_members("all"), dstaddr=_members(vip), service=_members(https),
            **{"utm-status": "enable", "inspection-mode": "flow", "ips-sensor": sensor,
               "ssl-ssh-profile": fg.ssl_profile},
        )),
        (f"{p}-proxy-to-vm", policy(
            srcintf=_members("any"), dstintf=_members(fg.dmz_interface),
            srcaddr=_members(front_group), dstaddr=_members(vm), service=_members(gateway),
        )),
    ] if fg.inbound else []
    policies: list[tuple[str, dict[str, Any]]] = [
        *inbound,
        (f"{p}-mgmt-ssh", policy(
            srcintf=_members("any"), dstintf=_members(fg.dmz_interface),
            srcaddr=_members(mgmt_group), dstaddr=_members(vm), service=_members(ssh),
        )),
    ]
    # One accept per distinct flow: a rule whose service and destinations are the same on several
    # VMs (the resolvers, the apt proxy, the agents' managers) is one policy from exactly those
    # VMs; a rule that differs (the IDE proxy's names) is a policy of its own. So no VM gets
    # another's names, and the device holds one policy per flow, not one per flow and VM.
    egress: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[str]]] = {}  # flow -> (policy, sources)
    for host in hosts:
        for rule in host.topology.egress_rules:
            key = (host.vm, rule.name)
            flow = (rule.name, egress_svc[key], tuple(egress_dst[key]))
            if flow in egress:
                egress[flow][1].append(host.address)
                continue
            name = (f"{p}-out-{rule.name}" if host.vm == PRIMARY_VM
                    else _bounded(f"{p}-{host.vm}-out-{rule.name}", POLICY_NAME_LIMIT))
            egress[flow] = (name, [host.address])
    for (rule_name, svc, dst), (name, sources) in egress.items():
        # Named by the first VM with the flow: a VM added later with the same flow only joins its
        # sources, one with another flow adds a policy; nothing that exists is renamed.
        first = next(h.vm for h in hosts if h.address == sources[0])
        policies.append((name, policy(
            srcintf=_members(fg.dmz_interface), dstintf=_members("any"),
            srcaddr=_members(*sources), dstaddr=_members(*dst), service=_members(svc),
            nat="enable" if fg.egress_nat else "disable",
            **({} if first == PRIMARY_VM else {"comments": f"egress {rule_name} of VM {first} and any with the same flow; " + comment}),
        )))
    policies.append((f"{p}-out-deny", policy(
        srcintf=_members(fg.dmz_interface), dstintf=_members("any"),
        srcaddr=_members(vm), dstaddr=_members("all"), service=_members("ALL"), action="deny",
    )))

    previous: str | None = None
    for name, payload in policies:
        refs = tuple(
            m["name"] for key in ("srcaddr", "dstaddr", "service") for m in payload[key]
            if m["name"] not in ("all", "ALL")
        ) + ((sensor,) if fg.ips_sensor is None and "ips-sensor" in payload else ())
        objects.append(CmdbSpec(
            "policy", name, payload,
            placement=fg.placement if previous is None else f"after:{previous}",
            depends_on=refs + ((previous,) if previous else ()),
        ))
        previous = name
    names = [o.name for o in objects]
    if len(set(names)) != len(names):  # a digest-bounded name met another: refuse rather than merge two objects
        raise ValueError(f"FortiGate object names collide: {sorted({n for n in names if names.count(n) > 1})}")
    return EdgePlan(objects=tuple(objects), ips_sensor=sensor, vip=vip)
