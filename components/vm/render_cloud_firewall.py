"""Pure renderer of a droplet's cloud firewall rules from the topology (no Pulumi, no I/O).

DigitalOcean's cloud firewall sits in front of the droplet as the FortiGate sits in front of a DMZ
VM: it admits SSH from the management subnets only and the gateway port from the front proxy only
(nothing with the Cloudflare edge, whose tunnel is outbound), and lets out exactly the flows of
`Topology.egress_rules` (a droplet firewall with outbound rules denies every other destination).
It cannot match owners or names: a rule by name (the IDE proxy's domains) is open to any address
on its port, as in UFW, where the owner match narrows it to the proxy's account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.settings.topology import Topology

ANYWHERE = ("0.0.0.0/0",)


@dataclass(frozen=True)
class Rule:
    """One cloud firewall rule: a protocol, a port and the addresses on the far side."""

    protocol: str
    port: int
    addresses: tuple[str, ...]

    def inbound(self) -> dict[str, object]:
        return {"protocol": self.protocol, "port_range": str(self.port), "source_addresses": list(self.addresses)}

    def outbound(self) -> dict[str, object]:
        return {"protocol": self.protocol, "port_range": str(self.port), "destination_addresses": list(self.addresses)}


def _merged(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """One rule per (protocol, port), its addresses in first-seen order (the API keeps one per pair)."""
    merged: dict[tuple[str, int], list[str]] = {}
    for rule in rules:
        addresses = merged.setdefault((rule.protocol, rule.port), [])
        addresses.extend(a for a in rule.addresses if a not in addresses)
    return tuple(Rule(protocol, port, tuple(addresses)) for (protocol, port), addresses in merged.items())


def inbound_rules(topology: Topology) -> tuple[Rule, ...]:
    """SSH from the management subnets; the gateway port from the front proxy (FortiGate edge only)."""
    rules = [Rule("tcp", topology.vm.ssh_port, tuple(str(n) for n in topology.management_subnets))]
    if topology.gateway_peers:
        rules.append(Rule("tcp", topology.gateway_port, tuple(f"{a}/32" for a in topology.gateway_peers)))
    return _merged(rules)


def outbound_rules(topology: Topology) -> tuple[Rule, ...]:
    """Exactly the VM's egress allowlist; a flow by name is open to any address on its port."""
    rules = []
    for egress in topology.egress_rules:
        addresses = tuple(str(d) if "/" in str(d) else f"{d}/32" for d in egress.destinations) or ANYWHERE
        rules.append(Rule(egress.protocol, egress.port, addresses))
    return _merged(rules)
