"""A team's workspaces: who may use which isolated IDE, on which VM, within which limits.

Each workspace is its own Unix account (`ws-<name>`, no sudo), its own code-server started on demand
behind a socket of its own, its own allowlisting-proxy port and backup set, served at its own
hostname `<name>.<workspaceDomain>` (under the wildcard certificate the front proxy already holds, so
no two workspaces share an origin: not their cookies, service workers, webviews or storage).

Who may use it is an Entra app role, `ws.<name>`, assigned to its users and groups: the ID token's
`roles` claim carries exactly the workspaces a person was granted, oauth2-proxy reads it from its own
session and the gateway grants a host only to a session holding that host's role. Without
`workspaces` the stack keeps the single IDE user of `ideUser` (`Team` is None).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from components.settings import ide

#: A workspace's name: a DNS label that also fits `ws-<name>` into Debian's 32-character user names
#: and systemd's instance names, and never ends with a hyphen.
NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}[a-z0-9]$")
#: Workspace accounts are made in this uid (and gid) range, so the VM's firewall hook and audit
#: rules match every workspace with one rule and never change when a workspace is added.
UID_RANGE = (20000, 29999)
#: Entra lets an app registration list at most 256 redirect URIs; each workspace host needs one.
MAX_WORKSPACES = 256
#: The VM the stack's own `vmAddress` (and `vmHostKey`) names; `vms` adds others under other names.
PRIMARY_VM = "vm"
#: The first workspace proxy port on each VM (the single-user IDE proxy's port); then one each.
FIRST_PROXY_PORT = 3128


@dataclass(frozen=True)
class Limits:
    """What one workspace may use of its VM (systemd resource control on its code-server unit)."""

    #: `MemoryMax=`: e.g. "2G"; the kernel's OOM killer ends the workspace, not its neighbours.
    memory_max: str = "2G"
    #: `CPUQuota=`: "100%" is one core.
    cpu_quota: str = "100%"
    #: `TasksMax=`: processes and threads, so a fork bomb stays inside its workspace.
    tasks_max: int = 1024


@dataclass(frozen=True)
class Workspace:
    """One isolated IDE: its people, its VM, its limits and what it may reach off the VM."""

    name: str
    #: Entra user object IDs granted this workspace (its app role is assigned to each).
    users: tuple[str, ...]
    #: Entra group object IDs granted this workspace (its app role is assigned to each group).
    groups: tuple[str, ...]
    #: The name of the VM it runs on (`PRIMARY_VM` or an entry of `vms`).
    vm: str
    limits: Limits
    #: The stack's `ideEgressDomains` plus its own: what its allowlisting proxy lets it reach.
    egress: tuple[ide.EgressDomain, ...]
    #: Its allowlisting proxy's loopback port on its VM (only its account may connect).
    proxy_port: int

    @property
    def account(self) -> str:
        """Its Unix account (and group), made in `UID_RANGE`."""
        return f"ws-{self.name}"

    @property
    def role(self) -> str:
        """The value of its Entra app role: what the `roles` claim of a granted person holds."""
        return f"ws.{self.name}"

    def hostname(self, domain: str) -> str:
        return f"{self.name}.{domain}"


@dataclass(frozen=True)
class TeamVm:
    """A VM that hosts workspaces, reached over SSH as the stack's VM is (same admin, key and port).
    The first is always `PRIMARY_VM`, the stack's own `vmAddress`."""

    name: str
    address: ipaddress.IPv4Address
    #: The pinned SSH host key; None when the program creates the VM (its generated key is the pin).
    host_key: str | None


@dataclass(frozen=True)
class Team:
    """The workspaces of a stack, the VMs they are spread over, and the domain their hosts live in."""

    domain: str
    vms: tuple[TeamVm, ...]
    workspaces: tuple[Workspace, ...]

    def on(self, vm: str) -> tuple[Workspace, ...]:
        """The workspaces hosted on `vm`, in config order."""
        return tuple(w for w in self.workspaces if w.vm == vm)

    def hostname(self, workspace: Workspace) -> str:
        return workspace.hostname(self.domain)
