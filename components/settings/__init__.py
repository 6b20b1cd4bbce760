"""The program's only reader of stack config: one validated, frozen `Settings` object.

`load()` reads every layer's keys through one `Reader`, so a stack with several mistakes gets
them all reported at once (`ConfigError`), before a single resource is registered.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from components.settings import checks, cloudflare, entra, fortigate, gateway, host, provider, topology, workspaces
from components.settings.reader import ConfigError, ConfigSource, Problem, Reader
from components.settings.source import MappingSource, PulumiConfigSource

__all__ = ["ConfigError", "Machine", "MappingSource", "Problem", "PulumiConfigSource", "Settings", "load"]


@dataclass(frozen=True)
class Machine:
    """One VM the stack converges: its name, its topology, the workspaces it hosts (none for the
    single IDE user) and the host name its created machine is labelled with."""

    name: str
    topology: topology.Topology
    workspaces: tuple[workspaces.Workspace, ...]
    hostname: str

    def resource(self, base: str) -> str:
        """A resource name of this VM (`workspaces.resource_name`)."""
        return workspaces.resource_name(base, self.name)


@dataclass(frozen=True)
class Settings:
    """Everything the components need, validated; components never read config themselves."""

    hostname: str
    edge: str
    entra: entra.EntraSettings
    topology: topology.Topology
    vm_provider: provider.VmProvider
    host: host.HostSettings
    gateway: gateway.GatewaySettings
    cloudflare: cloudflare.CloudflareSettings | None
    fortigate: fortigate.FortigateSettings | None
    #: The team's workspaces; None for the single IDE user of `ideUser` (no `workspaces`).
    team: workspaces.Team | None = None

    @property
    def public_url(self) -> str:
        return f"https://{self.hostname}"

    @functools.cached_property
    def machines(self) -> tuple[Machine, ...]:
        """Every VM the stack converges, the stack's own (`vmAddress`) first: one without a team
        (derived once: the program, the FortiGate edge and the tests read it)."""
        if self.team is None:
            return (Machine(workspaces.PRIMARY_VM, self.topology, (), self.hostname),)
        label, _, rest = self.hostname.partition(".")
        return tuple(Machine(vm.name, self.team.topology(vm, self.topology), self.team.on(vm.name),
                             self.hostname if vm.name == workspaces.PRIMARY_VM else f"{label}-{vm.name}.{rest}")
                     for vm in self.team.vms)

    @property
    def team_machines(self) -> tuple[tuple[str, topology.Topology], ...]:
        """A team's VMs as the FortiGate edge takes them (name, topology), each with objects of its
        own; empty without a team (the edge's single `vm` address, as always)."""
        return tuple((m.name, m.topology) for m in self.machines) if self.team else ()

    @property
    def workspace_urls(self) -> dict[str, str]:
        """Each workspace's URL by name; empty without a team."""
        team = self.team
        return {w.name: f"https://{team.hostname(w)}" for w in team.workspaces} if team else {}


def load(source: ConfigSource, today: dt.date | None = None) -> Settings:
    """Build `Settings` from `source` or raise `ConfigError` listing every problem."""
    r = Reader(source)
    hostname = r.string("hostname", checks.fqdn)
    edge = r.string("edge", checks.one_of("fortigate", "cloudflare"))
    today = today or dt.date.today()
    team_entries = r.objects("workspaces")
    entra_settings = entra.parse(r, hostname, today, team=bool(team_entries))
    vm_provider = provider.kind(r)
    release = host.release(r)
    creates_vm = None if vm_provider is None else vm_provider != provider.EXISTING
    topology_settings = topology.parse(r, edge, creates_vm)
    team = workspaces.parse(r, team_entries, hostname=hostname, edge=edge, topology=topology_settings, creates_vm=creates_vm)
    host_settings = host.parse(r, topology_settings, today, release)
    provider_settings = provider.parse(r, vm_provider, release, None if topology_settings is None else topology_settings.vm.address)
    gateway_settings = gateway.parse(r)
    cloudflare_settings = cloudflare.parse(r, edge)
    fortigate_settings = fortigate.parse(r, edge)
    r.finish()
    # finish() raised if any parser recorded a problem, so nothing below is None
    assert hostname and edge and entra_settings and topology_settings and provider_settings and host_settings and gateway_settings
    return Settings(
        hostname=hostname,
        edge=edge,
        entra=entra_settings,
        topology=topology_settings,
        vm_provider=provider_settings,
        host=host_settings,
        gateway=gateway_settings,
        cloudflare=cloudflare_settings,
        fortigate=fortigate_settings,
        team=team,
    )
