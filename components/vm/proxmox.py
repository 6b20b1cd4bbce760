"""A Proxmox VE clone as the DMZ VM: from a cloud-init template, on the DMZ bridge, at its static address."""

from __future__ import annotations

import hashlib
import re

import pulumi
import pulumi_proxmoxve as proxmoxve

from components.settings.provider import ProxmoxVm
from components.vm.machine import MachineArgs


def snippet_name(hostname: str, user_data: str) -> str:
    """The user-data snippet's file name: the deployment's, and the document's digest.

    A new document gets a new file, hence a new `user_data_file_id`, which replaces the VM:
    cloud-init reads user-data at first boot only, so a changed one on a running VM would be a lie.
    """
    label = re.sub(r"[^a-z0-9-]", "-", hostname.lower())
    return f"hcs-{label}-{hashlib.sha256(user_data.encode()).hexdigest()[:16]}.yaml"


class ProxmoxClone(pulumi.ComponentResource):
    """The Proxmox VM (token `hcs:vm:ProxmoxClone`).

    Children: an explicit `proxmoxve` provider (API token and node SSH key from stack config, TLS
    verified), the user-data as a `snippets` file (`FileLegacy`: the API cannot upload snippets, so the
    provider does over SSH) and the VM (`VmLegacy`, bpg's `proxmox_virtual_environment_vm`: the
    resource with `clone` and `initialization`) cloned in full from the template. Outputs: `machine_id`
    (the VM's id: a new VM re-runs every host step), `ready`.

    Why: the static address and route come from the cloud-init drive (the FortiGate's VIP and
    policies name `vmAddress`); the NIC is on the DMZ bridge/VLAN only; no guest agent (it would let
    the hypervisor run commands in the VM past sshd); Proxmox's own firewall flag is left to the
    operator (the FortiGate and UFW filter already).
    """

    machine_id: pulumi.Output[str]

    def __init__(self, name: str, args: MachineArgs[ProxmoxVm], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:vm:ProxmoxClone", name, None, opts)
        s, topo = args.settings, args.topology
        provider = proxmoxve.Provider(
            f"{name}-provider",
            endpoint=s.endpoint,
            api_token=s.api_token,
            insecure=False,
            ssh={"username": s.ssh_user, "private_key": s.ssh_private_key, "agent": False},
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        user_data = pulumi.Output.from_input(args.user_data)
        snippet = proxmoxve.FileLegacy(
            f"{name}-user-data",
            node_name=s.node,
            datastore_id=s.snippet_datastore,
            content_type="snippets",
            # The name is not secret: 64 bits of a digest reveal nothing of the document's 256-bit key.
            source_raw={"data": user_data,
                        "file_name": pulumi.Output.unsecret(user_data.apply(lambda text: snippet_name(args.hostname, text)))},
            opts=child,
        )
        vm = proxmoxve.VmLegacy(
            f"{name}-vm",
            node_name=s.node,
            name=args.hostname.split(".", 1)[0],
            description="hardened-code-server DMZ VM (managed by Pulumi)",
            tags=["hardened-code-server"],
            clone={"vm_id": s.template_vm_id, "full": True},
            cpu={"cores": s.cores, "type": "x86-64-v2-AES"},
            memory={"dedicated": s.memory_mib},
            disks=[{"interface": "scsi0", "datastore_id": s.datastore, "size": s.disk_gib, "discard": "on", "iothread": True}],
            network_devices=[{"bridge": s.bridge, "model": "virtio", **({"vlan_id": s.vlan_tag} if s.vlan_tag else {})}],
            initialization={
                "datastore_id": s.datastore,
                "ip_configs": [{"ipv4": {"address": f"{topo.vm.address}/{s.prefix_length}", "gateway": str(s.gateway)}}],
                "dns": {"servers": [str(d) for d in topo.dns_servers]},
                "user_data_file_id": snippet.id,
            },
            agent={"enabled": False},
            operating_system={"type": "l26"},
            scsi_hardware="virtio-scsi-single",
            on_boot=True,
            started=True,
            # Another template or user-data is another machine (cloud-init reads user-data at first boot only).
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(replace_on_changes=["clone", "initialization.userDataFileId"])),
        )
        self.machine_id = vm.id
        self.ready: list[pulumi.Resource] = [vm]
        self.register_outputs({"machine_id": self.machine_id})
