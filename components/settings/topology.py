"""Where things are: the DMZ VM, who may reach it, and the egress allowlist it lives by.

These settings are shared by three layers that must agree: the FortiGate policies, the host's UFW
rules and the gateway's trusted proxies. Keeping them in one place, and deriving the egress
allowlist once (`egress_rules`), is what makes "the same allowlist as the firewall" true.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from components.settings import checks
from components.settings.reader import Reader

IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
#: Cloudflare's tunnel edge port (cloudflared dials it over QUIC/UDP, falling back to TCP).
CLOUDFLARE_TUNNEL_PORT = 7844


@dataclass(frozen=True)
class VmSettings:
    """How to reach the DMZ VM over SSH. `host_key` pins the server key (no trust on first use)."""

    address: IPv4
    ssh_port: int
    admin_user: str
    host_key: str
    private_key: Any  # pulumi.Output[str], secret


@dataclass(frozen=True)
class Accounts:
    """The design's split of duties: a no-login service account and an unprivileged IDE user."""

    service_user: str
    ide_user: str
    admin_group: str


@dataclass(frozen=True)
class MonitoringTarget:
    """An optional manager the VM talks to (outbound only)."""

    enabled: bool
    address: IPv4 | None


@dataclass(frozen=True)
class Backup:
    """restic backups to one repository the VM may reach."""

    enabled: bool
    repository: str | None
    address: IPv4 | None
    port: int | None


@dataclass(frozen=True)
class EgressRule:
    """One allowed outbound flow from the VM: the firewall and UFW both render these."""

    name: str
    destinations: tuple[IPv4 | IPv4Net, ...]
    protocol: Literal["tcp", "udp"]
    port: int


@dataclass(frozen=True)
class Topology:
    """The VM, its neighbours, and what may flow in and out, for the chosen edge.

    With the FortiGate edge the central Caddy (`front_proxy_addresses`) is the only peer of the
    gateway port; with the Cloudflare edge, cloudflared runs on the VM and reaches the gateway
    on loopback, so nothing on the network may reach that port at all.
    """

    edge: str
    vm: VmSettings
    accounts: Accounts
    front_proxy_addresses: tuple[IPv4, ...]
    management_subnets: tuple[Network, ...]
    gateway_port: int
    dns_servers: tuple[IPv4, ...]
    ntp_servers: tuple[IPv4, ...]
    apt_proxy: tuple[IPv4, int] | None
    wazuh: MonitoringTarget
    zabbix: MonitoringTarget
    backup: Backup
    entra_egress: tuple[IPv4Net, ...]
    registry_egress: tuple[IPv4Net, ...]
    tunnel_egress: tuple[IPv4Net, ...]

    @property
    def gateway_peers(self) -> tuple[IPv4, ...]:
        """Who may open connections to the gateway port over the network (UFW, FortiGate)."""
        return self.front_proxy_addresses if self.edge == "fortigate" else ()

    @property
    def trusted_proxies(self) -> tuple[IPv4, ...]:
        """Whose X-Forwarded-For the gateway believes: the front proxy, or the local cloudflared."""
        return self.front_proxy_addresses if self.edge == "fortigate" else (LOOPBACK,)

    @property
    def gateway_listen(self) -> tuple[IPv4, ...]:
        """Addresses the gateway binds: the VM's own only when a network peer must reach it."""
        return (self.vm.address, LOOPBACK) if self.gateway_peers else (LOOPBACK,)

    @property
    def egress_rules(self) -> tuple[EgressRule, ...]:
        """The complete outbound allowlist of the VM, in a stable order; all else is denied."""
        rules = [
            EgressRule("dns-udp", self.dns_servers, "udp", 53),
            EgressRule("dns-tcp", self.dns_servers, "tcp", 53),
        ]
        if self.ntp_servers:
            rules.append(EgressRule("ntp", self.ntp_servers, "udp", 123))
        if self.apt_proxy:
            rules.append(EgressRule("apt-proxy", (self.apt_proxy[0],), "tcp", self.apt_proxy[1]))
        if self.backup.enabled and self.backup.address and self.backup.port:
            rules.append(EgressRule("backup", (self.backup.address,), "tcp", self.backup.port))
        if self.wazuh.enabled and self.wazuh.address:
            rules.append(EgressRule("wazuh-events", (self.wazuh.address,), "tcp", 1514))
            rules.append(EgressRule("wazuh-enroll", (self.wazuh.address,), "tcp", 1515))
        if self.zabbix.enabled and self.zabbix.address:
            # Zabbix agent 2 runs in active mode only, so no inbound port is ever opened for it.
            rules.append(EgressRule("zabbix-active", (self.zabbix.address,), "tcp", 10051))
        # oauth2-proxy discovers the issuer and redeems/refreshes tokens at login.microsoftonline.com.
        rules.append(EgressRule("entra-login", self.entra_egress, "tcp", 443))
        if self.registry_egress:
            rules.append(EgressRule("registry", self.registry_egress, "tcp", 443))
        if self.edge == "cloudflare":
            rules.append(EgressRule("cf-tunnel-udp", self.tunnel_egress, "udp", CLOUDFLARE_TUNNEL_PORT))
            rules.append(EgressRule("cf-tunnel-tcp", self.tunnel_egress, "tcp", CLOUDFLARE_TUNNEL_PORT))
        return tuple(rules)


def _monitoring(r: Reader, enabled_key: str, address_key: str) -> MonitoringTarget | None:
    enabled = r.boolean(enabled_key)
    address = r.string(address_key, checks.ipv4_address, default=None)
    if enabled and address is None and not r.is_set(address_key):
        r.problem(address_key, f"is required when {enabled_key} is true (an IPv4 address)")
        return None
    return None if enabled is None else MonitoringTarget(enabled, address if enabled else None)


def _backup(r: Reader) -> Backup | None:
    enabled = r.boolean("backupEnabled")
    repository = r.string("backupRepository", default=None)
    address = r.string("backupRepositoryAddress", checks.ipv4_address, default=None)
    port = r.integer("backupRepositoryPort", lo=1, hi=65535, default=None)
    if not enabled:
        return None if enabled is None else Backup(False, None, None, None)
    missing = False
    for key, value in (("backupRepository", repository), ("backupRepositoryAddress", address), ("backupRepositoryPort", port)):
        if value is None and not r.is_set(key):
            r.problem(key, "is required when backupEnabled is true")
            missing = True
    if repository is not None and not repository.split(":", 1)[0] in ("rest", "sftp", "s3", "rclone"):
        r.problem("backupRepository", f"expected a restic repository such as rest:https://backup.example.com:8000/code, got {repository!r}")
        missing = True
    if missing or None in (repository, address, port):
        return None
    return Backup(True, repository, address, port)


def _apt_proxy(r: Reader) -> tuple[IPv4, int] | None:
    address = r.string("aptProxyAddress", checks.ipv4_address, default=None)
    port = r.integer("aptProxyPort", lo=1, hi=65535)
    return (address, port) if address is not None and port is not None else None


def _ipv4_network(value: str) -> IPv4Net:
    network = checks.ip_network(value)
    if not isinstance(network, IPv4Net):
        raise ValueError("expected an IPv4 network in CIDR form")
    if network.prefixlen == 0:
        raise ValueError("expected a bounded network, not 0.0.0.0/0 (that is no allowlist)")
    return network


def parse(r: Reader, edge: str | None) -> Topology | None:
    """Read the VM, account, neighbour and egress keys; None if any of them is wrong.

    `frontProxyAddresses` is required with the FortiGate edge and validated whenever set, so one
    stack file can switch edges with `edge` alone; likewise `cloudflareTunnelEgress`.
    """
    start = len(r.problems)
    vm_address = r.string("vmAddress", checks.ipv4_address)
    ssh_port = r.integer("vmSshPort", lo=1, hi=65535)
    admin_user = r.string("vmAdminUser", checks.linux_user)
    host_key = r.string("vmHostKey", checks.ssh_host_key)
    private_key = r.secret("vmSshPrivateKey", checks.openssh_private_key)
    service_user = r.string("serviceUser", checks.linux_user)
    ide_user = r.string("ideUser", checks.linux_user)
    admin_group = r.string("adminGroup", checks.linux_user)
    names = [n for n in (service_user, ide_user, admin_user) if n]
    if len(set(names)) != len(names):
        r.problem("ideUser", "expected serviceUser, ideUser and vmAdminUser to be three different accounts")
    front = r.strings("frontProxyAddresses", checks.ipv4_address, non_empty=True,
                      **({} if edge == "fortigate" else {"default": []}))
    mgmt = r.strings("managementSubnets", checks.ip_network, non_empty=True)
    gateway_port = r.integer("gatewayPort", lo=1024, hi=65535)
    if gateway_port in (8080, 4180):
        r.problem("gatewayPort", "expected a port other than 8080 (code-server) and 4180 (oauth2-proxy)")
    dns = r.strings("dnsServers", checks.ipv4_address, non_empty=True)
    ntp = r.strings("ntpServers", checks.ipv4_address, default=[])
    apt = _apt_proxy(r)
    wazuh = _monitoring(r, "wazuhEnabled", "wazuhManagerAddress")
    zabbix = _monitoring(r, "zabbixEnabled", "zabbixServerAddress")
    backup = _backup(r)
    entra_egress = r.strings("entraEgress", _ipv4_network, non_empty=True)
    registry_egress = r.strings("registryEgress", _ipv4_network)
    tunnel_egress = r.strings("cloudflareTunnelEgress", _ipv4_network, non_empty=True)
    if vm_address is not None and front and vm_address in front:
        r.problem("frontProxyAddresses", "expected the central proxy's address, not the VM's own")
    if len(r.problems) > start:
        return None
    return Topology(
        edge=edge,
        vm=VmSettings(vm_address, ssh_port, admin_user, host_key, private_key),
        accounts=Accounts(service_user, ide_user, admin_group),
        front_proxy_addresses=front,
        management_subnets=mgmt,
        gateway_port=gateway_port,
        dns_servers=dns,
        ntp_servers=ntp,
        apt_proxy=apt,
        wazuh=wazuh,
        zabbix=zabbix,
        backup=backup,
        entra_egress=entra_egress,
        registry_egress=registry_egress,
        tunnel_egress=tunnel_egress,
    )
