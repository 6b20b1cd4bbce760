"""A droplet as the DMZ VM: behind its cloud firewall from creation, on a reserved IP that outlives it."""

from __future__ import annotations

import re

import pulumi
import pulumi_digitalocean as do

from components.settings.provider import DigitalOceanDroplet
from components.vm import render_cloud_firewall
from components.vm.machine import MachineArgs


def tag_name(hostname: str) -> str:
    """The droplet's tag, which its firewall selects: one per deployment (DO tags: letters, digits, `-`, `_`, `:`)."""
    return "hcs-" + re.sub(r"[^a-z0-9-]", "-", hostname.lower())


class DropletVm(pulumi.ComponentResource):
    """The droplet (token `hcs:vm:DropletVm`).

    Children: an explicit `digitalocean` provider (the token from stack config, never the
    environment), the deployment's `Tag`, the `Firewall` that selects that tag, the `Droplet`
    (created with the tag, so the firewall covers it from creation, once DigitalOcean has applied it:
    the API reports that as `pendingChanges`; meanwhile sshd answers only the pinned admin key) and the
    `ReservedIpAssignment` of `vmAddress`. Outputs: `machine_id` (the droplet's id: a new droplet
    re-runs every host step), `ready` (resources the host steps wait for).

    Why: no DigitalOcean SSH key (the key would be root's; the admin comes from the user-data, root
    is disabled), no DigitalOcean agent (its web console logs in past sshd), no metrics agent and no
    IPv6 (neither is in the egress allowlist), no provider backups (restic is the backup, off the VM).
    The reserved IP is what the front proxy, the hop certificate and the pin's connection name, so a
    replaced droplet changes none of them.
    """

    machine_id: pulumi.Output[str]

    def __init__(self, name: str, args: MachineArgs[DigitalOceanDroplet], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:vm:DropletVm", name, None, opts)
        s, topo = args.settings, args.topology
        provider = do.Provider(f"{name}-provider", token=s.api_token, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        tag = do.Tag(f"{name}-tag", name=tag_name(args.hostname), opts=child)
        firewall = do.Firewall(
            f"{name}-firewall",
            name=tag_name(args.hostname),
            tags=[tag.name],
            inbound_rules=[rule.inbound() for rule in render_cloud_firewall.inbound_rules(topo)],
            outbound_rules=[rule.outbound() for rule in render_cloud_firewall.outbound_rules(topo)],
            opts=child,
        )
        droplet = do.Droplet(
            f"{name}-droplet",
            name=args.hostname.split(".", 1)[0],
            image=s.image,
            region=s.region,
            size=s.size,
            vpc_uuid=s.vpc_uuid,
            user_data=args.user_data,
            tags=[tag.id],
            ipv6=False,
            monitoring=False,
            droplet_agent=False,
            backups=False,
            graceful_shutdown=True,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[firewall])),
        )
        assignment = do.ReservedIpAssignment(f"{name}-address", ip_address=str(topo.vm.address), droplet_id=droplet.id.apply(int),
                                             opts=child)
        self.machine_id = droplet.id
        self.ready: list[pulumi.Resource] = [firewall, assignment]
        self.register_outputs({"machine_id": self.machine_id})
