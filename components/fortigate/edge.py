"""The FortiGate edge of the code-server VM as one component (`hcs:fortigate:Edge`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.fortigate import payloads
from components.fortigate.resources import (
    CmdbObject,
    Connection,
    FirewallAddress,
    FirewallAddressGroup,
    FirewallPolicy,
    FirewallServiceCustom,
    FirewallVip,
    IpsSensor,
)
from components.settings.fortigate import API_TOKEN_KEY, FortigateSettings
from components.settings.topology import Topology

_CLASSES: dict[str, type[CmdbObject]] = {
    "address": FirewallAddress,
    "addrgrp": FirewallAddressGroup,
    "service": FirewallServiceCustom,
    "vip": FirewallVip,
    "ips-sensor": IpsSensor,
}


@dataclass(frozen=True)
class FortigateEdgeArgs:
    """The FortiGate settings and the shared topology (the VM, its neighbours, its egress).

    `vms`: a team's VMs as (name, that VM's topology), the primary (`PRIMARY_VM`, the stack's own
    VM) first; empty for the single VM of `topology`. Each VM's topology carries its own address
    and `ide_egress` (the union of its workspaces' names), so the FortiGate lets each VM reach
    only what its own workspaces may, as the VM's own UFW does; one VM's names are never opened
    for another.
    """

    fortigate: FortigateSettings
    topology: Topology
    vms: tuple[tuple[str, Topology], ...] = ()


class FortigateEdge(pulumi.ComponentResource):
    """Everything the FortiGate does for the code-server VM, through the FortiOS REST API.

    Builds (token `hcs:fortigate:Edge`): address objects for the VM, the front proxy, the
    management subnets and every egress destination, FQDN objects for the IDE proxy's names (a
    wildcard and its apex); address groups; one custom service per
    port; a VIP (public IP:443 on the WAN interface → the front proxy, TCP port-forward); an IPS
    sensor unless an existing one is named; and one ordered policy block:
    WAN → DMZ HTTPS to the VIP with UTM and IPS on, front proxy → VM gateway port, management
    subnets → VM SSH, the VM's egress allowlist, and a logged deny of all other VM egress.

    With a team (`args.vms`) every VM has its own address object, each distinct egress flow one
    policy from exactly the VMs that have it (a VM's own names from it alone), and one address
    group of all VMs is what the front proxy and management reach and what the deny covers.
    Adding a VM renames nothing that exists: it grows the group and the sources of the flows it
    shares, and adds a policy per new flow before the deny (`payloads.build`).

    Every policy also carries the whole block (its names in order and its placement), so the first
    policy whose create or update sees the block out of order repairs all of it in one pass.

    Outputs: `vip_name`, `policy_ids` (policy name → device policy ID, in evaluation order), `ips_sensor`.

    Why: only 443 reaches the DMZ, and only via the VIP, so nothing else on the VM is exposed;
    IPS drops known exploit patterns before the proxies see them; the egress allowlist is the
    same as the host's UFW (`Topology.egress_rules`) and ends in an explicit, logged deny, so a
    compromised VM can neither beacon out nor exfiltrate, and every attempt is visible. Every
    policy logs all traffic. Objects that already exist are never overwritten unless listed in
    `fortigateAdopt`. The API token is never an input: the provider reads it from the stack's
    secret config.
    """

    vip_name: pulumi.Output[str]
    policy_ids: pulumi.Output[dict[str, str]]
    ips_sensor: pulumi.Output[str]

    def __init__(self, name: str, args: FortigateEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:fortigate:Edge", name, None, opts)
        fg = args.fortigate
        plan = payloads.build(fg, args.topology, args.vms)
        connection = Connection(
            url=fg.url,
            vdom=fg.vdom,
            token_key=f"{pulumi.get_project()}:{API_TOKEN_KEY}",
            ca_bundle=fg.ca_bundle,
            insecure=fg.insecure,
        )
        created: dict[str, CmdbObject] = {}
        policies: list[FirewallPolicy] = []
        block = (tuple(spec.name for spec in plan.of_kind("policy")), fg.placement)
        for spec in plan.objects:
            deps = [created[d] for d in spec.depends_on if d in created]
            opts_child = pulumi.ResourceOptions(parent=self, depends_on=deps)
            adopt = spec.name in fg.adopt
            if spec.kind == "policy":
                resource: CmdbObject = FirewallPolicy(
                    f"{name}-{spec.name}", connection, spec.name, spec.payload,
                    placement=spec.placement or "top", block=block, adopt=adopt, opts=opts_child,
                )
                policies.append(resource)
            else:
                resource = _CLASSES[spec.kind](f"{name}-{spec.name}", connection, spec.name, spec.payload, adopt=adopt, opts=opts_child)
            created[spec.name] = resource

        self.vip_name = created[plan.vip].name if plan.vip in created else pulumi.Output.from_input(plan.vip)
        self.ips_sensor = (
            created[plan.ips_sensor].name if plan.ips_sensor in created else pulumi.Output.from_input(plan.ips_sensor)
        )
        names = [spec.name for spec in plan.of_kind("policy")]
        self.policy_ids = pulumi.Output.all(*[p.id for p in policies]).apply(lambda ids: dict(zip(names, ids)))
        self.register_outputs({"vip_name": self.vip_name, "policy_ids": self.policy_ids, "ips_sensor": self.ips_sensor})
