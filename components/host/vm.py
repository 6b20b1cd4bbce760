"""The DMZ VM as a component: a pinned SSH connection and the host setup steps run over it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pulumi
from pulumi_command import remote

from components.installer import run_step, script_text
from components.host.steps import host_steps
from components.settings.host import HostSettings
from components.settings.topology import Topology, VmSettings
from components.settings.workspaces import Workspace


def connection_args(vm: VmSettings, host_key: pulumi.Input[str] | None = None) -> remote.ConnectionArgs:
    """SSH to the VM as its admin, pinned to the configured host key (`vmHostKey`), or for a VM the
    program creates to `host_key`, the public half of the key it generated (`CreatedVmIdentity`).

    pulumi-command 1.2.1 turns `host_key` into Go's `ssh.FixedHostKey` and restricts the offered
    host key algorithms to that key's type, so a server presenting any other key fails the
    handshake ("ssh: host key mismatch") and nothing runs. Without `host_key` it would accept any
    key (`InsecureIgnoreHostKey`); so a connection without a pin is refused here.
    """
    pin = vm.host_key if host_key is None else host_key
    if pin is None:
        raise ValueError("no host key to pin the VM's SSH connection to (vmHostKey, or the created VM's generated key)")
    return remote.ConnectionArgs(
        host=str(vm.address),
        port=vm.ssh_port,
        user=vm.admin_user,
        private_key=vm.private_key,
        host_key=pin,
        dial_error_limit=3,
        per_dial_timeout=15,
    )


class CreatedMachine(Protocol):
    """What `DmzHost` needs of a VM the program created (`components.vm.created.CreatedVm`)."""

    host_key: pulumi.Output[str]
    machine_id: pulumi.Output[str]
    ready: list[pulumi.Resource]


class DmzHost(pulumi.ComponentResource):
    """The hardened DMZ VM (token `hcs:host:DmzHost`); other layers depend on it.

    Children: one `remote.Command` per concern (see `components.host.steps`) and a `FileRecord`
    for every file the VM receives. Outputs: `address`, `connection` (for `HostFiles` of other
    layers), `ready` (the firewall step's stdout, known once the whole host is converged).

    With `created` (a VM the program made) the pin is the generated key, the first step waits for
    cloud-init, and every step is tied to the machine's id: a replaced VM gets the whole setup again.
    With `workspaces` (a team VM; `topology` is that VM's) the steps make one isolated workspace
    each instead of the single IDE user (`host_steps`).

    Why: SSH is pinned to the configured host key, so a swapped or intercepted VM gets no command
    and no secret; steps run with `sudo -n` and take secrets only on stdin; the firewall closes
    the host last, after every download, with the same egress allowlist as the FortiGate.
    """

    address: pulumi.Output[str]
    ready: pulumi.Output[str]

    def __init__(self, name: str, topology: Topology, host: HostSettings, created: CreatedMachine | None = None,
                 opts: pulumi.ResourceOptions | None = None, workspaces: Sequence[Workspace] = ()) -> None:
        super().__init__("hcs:host:DmzHost", name, None, opts)
        self.connection = connection_args(topology.vm, None if created is None else created.host_key)
        commands: dict[str, remote.Command] = {}
        # The files' machine role is the component's name: "vm", or a team VM's own (`resource_name`).
        for step in host_steps(topology, host, first_boot=created is not None, workspaces=workspaces, role=name):
            commands[step.name] = run_step(
                self,
                f"{name}-{step.name}",
                step.name,
                script_text(step.script),
                step.env,
                step.files,
                self.connection,
                [commands[a] for a in step.after] or (list(created.ready) if created else []),
                None if created is None else created.machine_id,
            )
        self.address = pulumi.Output.from_input(str(topology.vm.address))
        self.ready = commands["firewall"].stdout
        self.register_outputs({"address": self.address, "ready": self.ready})
