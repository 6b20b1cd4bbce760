"""How pulumi-docker reaches the VM's Docker engine: `ssh://` with the host key pinned (pure).

pulumi-docker runs the deployer's own `ssh` binary (then `docker system dial-stdio` on the VM),
not a Go SSH client, so the pinning that pulumi-command gets from `host_key` has to be spelled
out as ssh options here:

* the only acceptable host key is the configured one, supplied by `KnownHostsCommand` (OpenSSH
  >= 8.5; executed directly, not through a shell) while the known_hosts files are ignored
  (`/dev/null`) and `StrictHostKeyChecking=yes` refuses anything else: no trust on first use,
  no dependency on the deployer's ~/.ssh/known_hosts, no file to write before connecting;
* the admin key comes from the deployer's ssh-agent (`BatchMode`: never a prompt), so the
  private key is never written to disk by the program:
  `pulumi config get vmSshPrivateKey | ssh-add -`;
* one multiplexed connection (`ControlMaster`) serves the provider's parallel sessions, which
  would otherwise trip sshd's `MaxStartups` ("Error pinging Docker server").
"""

from __future__ import annotations

from components.settings.topology import VmSettings

#: Where ssh keeps the shared connection; %C is a hash of the connection's parameters.
CONTROL_PATH = "~/.ssh/hcs-docker-%C"


def docker_host(vm: VmSettings) -> str:
    """The Docker host URL: the admin account on the VM's SSH port."""
    return f"ssh://{vm.admin_user}@{vm.address}:{vm.ssh_port}"


def known_hosts_line(vm: VmSettings) -> str:
    """The known_hosts entry for the pinned key (`[addr]:port` form for a non-default port)."""
    name = str(vm.address) if vm.ssh_port == 22 else f"[{vm.address}]:{vm.ssh_port}"
    return f"{name} {vm.host_key}"


def ssh_options(vm: VmSettings, control_path: str = CONTROL_PATH) -> list[str]:
    """The `ssh_opts` of the Docker provider (one argv word per element)."""
    settings = [
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        f"KnownHostsCommand=/bin/echo {known_hosts_line(vm)}",
        "CheckHostIP=no",
        "BatchMode=yes",
        "ControlMaster=auto",
        f"ControlPath={control_path}",
        "ControlPersist=60",
        "ServerAliveInterval=15",
    ]
    return [word for setting in settings for word in ("-o", setting)]
