"""The engine test project's program: the product's layers whose providers exist on this machine.

It reads the stack through the product's own settings code (every key, as `__main__.py` does) and
composes the FortiGate edge (a Python dynamic provider, driven by the real engine against the
FortiOS emulator) and the records of every file the DMZ host installs (`FileRecord`s, rendered by
the host's own steps: what the policy pack judges the SSH drop-in by). The host's `remote.Command`s
are left out because the pulumi-command provider cannot be built here (scripts/tools/go_cache.py says
why); the identity, gateway and Cloudflare layers need Terraform-bridged providers, not buildable
either.

A team's workspaces are exported as the settings read them (the CLI passes a list of objects).

One test-only key outside the product's namespace, `engine:hostFiles` (default true), leaves the
host's files out: the policy pack must then fail the preview (no SSH drop-in on the VM).
"""

from __future__ import annotations

import pulumi

from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs
from components.host.steps import host_steps
from components.installer import record_files
from components.settings import PulumiConfigSource, load


def main() -> None:
    settings = load(PulumiConfigSource(pulumi.get_project()))
    if settings.fortigate is None:
        raise pulumi.RunError("the engine test stack must use edge: fortigate")
    if pulumi.Config("engine").get_bool("hostFiles") is not False:
        records = pulumi.ComponentResource("hcs:engine:HostFileRecords", "vm")
        for step in host_steps(settings.topology, settings.host):
            record_files(records, step.files)
    edge = FortigateEdge("fortigate", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology))
    pulumi.export("vipName", edge.vip_name)
    pulumi.export("policyIds", edge.policy_ids)
    pulumi.export("ipsSensor", edge.ips_sensor)
    if settings.team is not None:  # what the settings read of a team, as the CLI passed it
        pulumi.export("workspaces", {w.name: [settings.team.hostname(w), w.limits.memory_max, w.limits.tasks_max]
                                     for w in settings.team.workspaces})
