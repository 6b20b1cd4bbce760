"""The VM the program creates: its generated identity and the provider's machine, as one component."""

from __future__ import annotations

import pulumi

from components.vm.identity import CreatedVmArgs, CreatedVmIdentity
from components.settings.provider import DIGITALOCEAN, PROXMOX, VmProvider
from components.settings.topology import Topology
from components.vm.machine import MachineArgs


class CreatedVm(pulumi.ComponentResource):
    """A created DMZ VM (token `hcs:vm:CreatedVm`): `CreatedVmIdentity`, then a `ProxmoxClone` or `DropletVm`.

    Outputs for `DmzHost`: `host_key` (the pin: the generated key's public half), `machine_id` (a
    replaced machine re-runs every host step), `ready` (what the first host step waits for). The
    posture reads the provider from the `vmProvider` stack output. The provider SDKs are imported
    only for their own provider.
    """

    host_key: pulumi.Output[str]
    machine_id: pulumi.Output[str]

    def __init__(self, name: str, hostname: str, provider: VmProvider, topology: Topology,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:vm:CreatedVm", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vm = topology.vm
        identity = CreatedVmIdentity(f"{name}-identity", CreatedVmArgs(vm.admin_user, topology.accounts.admin_group, vm.private_key), child)
        if provider.kind == PROXMOX and provider.proxmox is not None:
            from components.vm.proxmox import ProxmoxClone

            machine: ProxmoxClone | DropletVm = ProxmoxClone(
                f"{name}-proxmox", MachineArgs(hostname, provider.proxmox, topology, identity.user_data), child)
        elif provider.kind == DIGITALOCEAN and provider.digitalocean is not None:
            from components.vm.digitalocean import DropletVm

            machine = DropletVm(f"{name}-droplet", MachineArgs(hostname, provider.digitalocean, topology, identity.user_data), child)
        else:
            raise ValueError(f"vmProvider {provider.kind}: not a provider the program creates VMs with")
        self.host_key = identity.host_key
        self.machine_id = machine.machine_id
        self.ready = machine.ready
        self.register_outputs({"host_key": self.host_key, "machine_id": self.machine_id})
