"""The program's only reader of stack config: one validated, frozen `Settings` object.

`load()` reads every layer's keys through one `Reader`, so a stack with several mistakes gets
them all reported at once (`ConfigError`), before a single resource is registered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from components.settings import checks, cloudflare, entra, fortigate, gateway, host, provider, topology, workspaces
from components.settings.reader import ConfigError, ConfigSource, Problem, Reader
from components.settings.source import MappingSource, PulumiConfigSource

__all__ = ["ConfigError", "MappingSource", "Problem", "PulumiConfigSource", "Settings", "load"]


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
