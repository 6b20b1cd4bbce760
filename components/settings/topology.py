"""Where things are: the DMZ VM, who may reach it, and the egress allowlist it lives by.

These settings are shared by three layers that must agree: the FortiGate policies, the host's UFW
rules and the gateway's trusted proxies. Keeping them in one place, and deriving the egress
allowlist once (`egress_rules`), is what makes "the same allowlist as the firewall" true. What a
well-formed address, network or account may still not be is `rules`: e.g. a public management
network, a peer that is the VM itself, a Debian system account.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from components.settings import accounts, checks, ide, rules
from components.settings.reader import Reader

IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
#: Cloudflare's tunnel edge port (cloudflared dials it over QUIC/UDP, falling back to TCP).
CLOUDFLARE_TUNNEL_PORT = 7844


@dataclass(frozen=True)
class VmSettings:
    """How to reach the DMZ VM over SSH. `host_key` pins the server key (no trust on first use).

    `host_key` is None exactly when the program creates the VM (`vmProvider` other than existing):
    the pin is then the public half of the host key the program generates, never a pasted value.
    """

    address: IPv4
    ssh_port: int
    admin_user: str
    host_key: str | None
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


#: Package accounts that open the VM's outbound flows (Debian's names). The firewall hook skips a
#: name the VM does not have (nothing can run as it), so optional packages need no switch here.
ROOT = "root"
APT = "_apt"  # apt's download methods (http, https) drop to it
TIME_SYNC = ("systemd-timesync", "_chrony")  # systemd-timesyncd, or chrony if the image uses it
WAZUH = "wazuh"
ZABBIX = "zabbix"
#: Debian's Squid runs as `proxy`: with `ideEgressDomains` set it alone opens the IDE's way out.
SQUID = "proxy"
#: The IDE's allowlisting proxy listens here (loopback); only the IDE user may connect.
IDE_PROXY_PORT = 3128


@dataclass(frozen=True)
class EgressRule:
    """One allowed outbound flow from the VM: the firewall and UFW both render these.

    `identities` are the local accounts whose sockets may open it (the VM's own netfilter matches
    the owner); the FortiGate cannot see owners, so it gets the flow for the VM as a whole.

    A flow by name (`domains`, the IDE proxy's) has no `destinations`: netfilter cannot match a
    name, so on the VM the port is open to any address for `identities` alone (the proxy allows the
    names and logs the rest), and the FortiGate matches the names as FQDN objects.
    """

    name: str
    destinations: tuple[IPv4 | IPv4Net, ...]
    protocol: Literal["tcp", "udp"]
    port: int
    identities: tuple[str, ...]
    domains: tuple[ide.EgressDomain, ...] = ()


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
    #: What the IDE user may reach through the proxy; empty: no proxy, the IDE user reaches nothing.
    ide_egress: tuple[ide.EgressDomain, ...] = ()

    @property
    def ide_proxy(self) -> bool:
        """Whether the IDE's allowlisting proxy runs (it does exactly when a domain is listed)."""
        return bool(self.ide_egress)

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
        """The complete outbound allowlist of the VM, in a stable order; all else is denied.

        Each flow names who opens it, and only them: the IDE user has none, so a shell in the IDE
        reaches nothing off the VM, not even a resolver (DNS alone can carry data out).
        """
        svc = self.accounts.service_user
        # Who resolves names: apt (root and _apt), dockerd and restic (root), oauth2-proxy and
        # cloudflared (the service account), the time service (server names).
        resolvers = (ROOT, APT, svc, *TIME_SYNC) + ((SQUID,) if self.ide_proxy else ())
        rules = [
            EgressRule("dns-udp", self.dns_servers, "udp", 53, resolvers),
            EgressRule("dns-tcp", self.dns_servers, "tcp", 53, resolvers),
        ]
        if self.ntp_servers:
            rules.append(EgressRule("ntp", self.ntp_servers, "udp", 123, (ROOT, *TIME_SYNC)))
        if self.apt_proxy:
            rules.append(EgressRule("apt-proxy", (self.apt_proxy[0],), "tcp", self.apt_proxy[1], (ROOT, APT)))
        if self.backup.enabled and self.backup.address and self.backup.port:
            rules.append(EgressRule("backup", (self.backup.address,), "tcp", self.backup.port, (ROOT,)))
        if self.wazuh.enabled and self.wazuh.address:
            # wazuh-agentd drops to `wazuh`; enrolment (agent-auth) runs as root.
            rules.append(EgressRule("wazuh-events", (self.wazuh.address,), "tcp", 1514, (ROOT, WAZUH)))
            rules.append(EgressRule("wazuh-enroll", (self.wazuh.address,), "tcp", 1515, (ROOT, WAZUH)))
        if self.zabbix.enabled and self.zabbix.address:
            # Zabbix agent 2 runs in active mode only, so no inbound port is ever opened for it.
            rules.append(EgressRule("zabbix-active", (self.zabbix.address,), "tcp", 10051, (ZABBIX,)))
        # oauth2-proxy discovers the issuer and redeems/refreshes tokens at login.microsoftonline.com.
        rules.append(EgressRule("entra-login", self.entra_egress, "tcp", 443, (svc,)))
        if self.registry_egress:
            # dockerd (root) pulls the gateway's images.
            rules.append(EgressRule("registry", self.registry_egress, "tcp", 443, (ROOT,)))
        if self.edge == "cloudflare":
            rules.append(EgressRule("cf-tunnel-udp", self.tunnel_egress, "udp", CLOUDFLARE_TUNNEL_PORT, (svc,)))
            rules.append(EgressRule("cf-tunnel-tcp", self.tunnel_egress, "tcp", CLOUDFLARE_TUNNEL_PORT, (svc,)))
        if self.ide_proxy:
            # The IDE user's only way out: its proxy opens HTTPS to the listed names, plain HTTP to those marked.
            rules.append(EgressRule("ide-proxy-https", (), "tcp", 443, (SQUID,), self.ide_egress))
            plain = tuple(d for d in self.ide_egress if d.plain_http)
            if plain:
                rules.append(EgressRule("ide-proxy-http", (), "tcp", 80, (SQUID,), plain))
        return tuple(rules)


#: A peer's IPv4 address: a unicast host, never a special address.
_peer = rules.guard(checks.ipv4_address, rules.SPECIAL)


def _monitoring(r: Reader, enabled_key: str, address_key: str) -> MonitoringTarget | None:
    enabled = r.boolean(enabled_key)
    address = r.string(address_key, _peer, default=None)
    if enabled and address is None and not r.is_set(address_key):
        r.problem(address_key, f"is required when {enabled_key} is true (an IPv4 address)")
        return None
    return None if enabled is None else MonitoringTarget(enabled, address if enabled else None)


def _backup(r: Reader) -> Backup | None:
    enabled = r.boolean("backupEnabled")
    repository = r.string("backupRepository", default=None)
    address = r.string("backupRepositoryAddress", _peer, default=None)
    # 0, Pulumi.yaml's default, means not set: the CLI has no empty value for an integer key
    port = r.integer("backupRepositoryPort", lo=0, hi=65535, default=None)
    unset = {key: not r.is_set(key) for key in ("backupRepository", "backupRepositoryAddress", "backupRepositoryPort")}
    unset["backupRepositoryPort"] |= port == 0
    port = port or None
    if not enabled:
        return None if enabled is None else Backup(False, None, None, None)
    missing = False
    for key, value in (("backupRepository", repository), ("backupRepositoryAddress", address), ("backupRepositoryPort", port)):
        if value is None and unset[key]:
            r.problem(key, "is required when backupEnabled is true")
            missing = True
    if repository is not None and not repository.split(":", 1)[0] in ("rest", "sftp", "s3", "rclone"):
        r.problem("backupRepository", f"expected a restic repository such as rest:https://backup.example.com:8000/code, got {repository!r}")
        missing = True
    if repository is not None and address is not None and _url_ip(repository) not in (None, address):
        r.problem("backupRepositoryAddress", rules.violation("backup-address-mismatch", str(address)))
        missing = True
    if missing or None in (repository, address, port):
        return None
    return Backup(True, repository, address, port)


def _url_ip(repository: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP literal host of a restic `rest:`/`s3:` URL or `sftp:user@host:path`, if it has one."""
    rest = repository.split(":", 1)[1] if ":" in repository else ""
    host = urlsplit(rest).hostname if "//" in rest else rest.split("@")[-1].split(":")[0]
    try:
        return ipaddress.ip_address(host or "")
    except ValueError:
        return None


def _apt_proxy(r: Reader) -> tuple[IPv4, int] | None:
    address = r.string("aptProxyAddress", _peer, default=None)
    port = r.integer("aptProxyPort", lo=1, hi=65535)
    return (address, port) if address is not None and port is not None else None


def _ipv4_network(value: str) -> IPv4Net:
    network = checks.ip_network(value)
    if not isinstance(network, IPv4Net):
        raise ValueError("expected an IPv4 network in CIDR form")
    return network


def _egress_network(wide_ok: bool) -> Callable[[str], IPv4Net]:
    """An egress allowlist entry: bounded, never special; wide only when acknowledged."""
    tests = [("egress-unbounded", rules.unbounded_egress)]
    if not wide_ok:
        tests.append(("egress-wide", rules.wide_egress))
    tests.append(rules.SPECIAL)
    return rules.guard(_ipv4_network, *tests)


def _management_network(public_ok: bool) -> Callable[[str], Network]:
    """A management source: internal, or (acknowledged) one narrow public network; never special."""
    tests = [("management-wide", rules.wide_public_management), rules.SPECIAL]
    if not public_ok:
        tests.append(rules.PUBLIC_MANAGEMENT)
    return rules.guard(checks.ip_network, *tests)


def _account(value: str) -> str:
    name = checks.linux_user(value)
    if name in accounts.SYSTEM_NAMES:
        raise rules.BY_NAME["system-account"].error()
    return name


def _admin_group(value: str) -> str:
    name = checks.linux_user(value)
    if name in accounts.SYSTEM_NAMES:
        raise rules.BY_NAME["system-group"].error()
    return name


def _acknowledgement(r: Reader, key: str, acknowledged: bool, needed: bool) -> None:
    """An acknowledgement key set true must cover something (else it would cover the next mistake)."""
    if acknowledged and not needed:
        r.problem(key, rules.violation("ack-unused", True))


def _host_key(r: Reader, creates_vm: bool | None) -> str | None:
    """`vmHostKey`: required for an existing VM; refused for one the program creates (its key is generated)."""
    if not creates_vm:
        return r.string("vmHostKey", checks.ssh_host_key)
    if r.is_set("vmHostKey"):
        r.problem("vmHostKey", "must not be set when the program creates the VM (vmProvider other than existing): "
                  "the program generates the VM's host key and pins the connection to it; unset vmHostKey")
    return None


def parse(r: Reader, edge: str | None, creates_vm: bool | None = False) -> Topology | None:
    """Read the VM, account, neighbour and egress keys; None if any of them is wrong.

    `frontProxyAddresses` is required with the FortiGate edge and validated whenever set, so one
    stack file can switch edges with `edge` alone; likewise `cloudflareTunnelEgress`. `creates_vm`
    (None: `vmProvider` itself is wrong) decides whether `vmHostKey` is required or refused.
    """
    start = len(r.problems)
    vm_address = r.string("vmAddress", rules.guard(checks.ipv4_address, rules.SPECIAL))
    if vm_address is not None and edge == "fortigate" and not checks.is_internal(vm_address):
        r.problem("vmAddress", rules.violation("vm-public", str(vm_address)))
    ssh_port = r.integer("vmSshPort", lo=1, hi=65535)
    admin_user = r.string("vmAdminUser", _account)
    host_key = _host_key(r, creates_vm)
    private_key = r.secret("vmSshPrivateKey", checks.openssh_private_key)
    service_user = r.string("serviceUser", _account)
    ide_user = r.string("ideUser", _account)
    admin_group = r.string("adminGroup", _admin_group)
    names = [n for n in (service_user, ide_user, admin_user) if n]
    if len(set(names)) != len(names):
        r.problem("ideUser", "expected serviceUser, ideUser and vmAdminUser to be three different accounts; "
                  + rules.violation("account-collision", names))
    if admin_group is not None and admin_group in (service_user, ide_user):
        r.problem("adminGroup", rules.violation("account-collision", admin_group))
    front = r.strings("frontProxyAddresses", rules.guard(checks.ipv4_address, rules.SPECIAL, rules.PUBLIC_FRONT),
                      non_empty=edge == "fortigate")
    public_mgmt_ok = bool(r.boolean(rules.ACK_PUBLIC_MANAGEMENT))
    mgmt = r.strings("managementSubnets", _management_network(public_mgmt_ok), non_empty=True)
    _acknowledgement(r, rules.ACK_PUBLIC_MANAGEMENT, public_mgmt_ok, mgmt is None or any(not checks.is_internal(n) for n in mgmt))
    gateway_port = r.integer("gatewayPort", lo=1024, hi=65535)
    if gateway_port in (8080, 4180):
        r.problem("gatewayPort", "expected a port other than 8080 (code-server) and 4180 (oauth2-proxy); "
                  + rules.violation("port-collision", gateway_port))
    if ssh_port in (8080, 4180) or (ssh_port is not None and ssh_port == gateway_port):
        r.problem("vmSshPort", rules.violation("port-collision", ssh_port))
    dns = r.strings("dnsServers", _peer, non_empty=True)
    ntp = r.strings("ntpServers", _peer)
    apt = _apt_proxy(r)
    wazuh = _monitoring(r, "wazuhEnabled", "wazuhManagerAddress")
    zabbix = _monitoring(r, "zabbixEnabled", "zabbixServerAddress")
    backup = _backup(r)
    wide_ok = bool(r.boolean(rules.ACK_WIDE_EGRESS))
    entra_egress = r.strings("entraEgress", _egress_network(wide_ok), non_empty=True)
    registry_egress = r.strings("registryEgress", _egress_network(wide_ok))
    tunnel_egress = r.strings("cloudflareTunnelEgress", _egress_network(wide_ok), non_empty=True)
    ide_egress = r.strings("ideEgressDomains", ide.egress_domain)
    for covered, wildcard in ide.overlaps(ide_egress or ()):
        r.problem("ideEgressDomains", f"expected each name once: {covered!r} is listed twice; keep one entry" if covered == wildcard
                  else f"expected each name once: {covered!r} is already covered by {wildcard!r}; remove {covered!r}")
    lists = (entra_egress, registry_egress, tunnel_egress)
    _acknowledgement(r, rules.ACK_WIDE_EGRESS, wide_ok, None in lists or any(rules.wide_egress(n) for nets in lists for n in nets))
    if vm_address is not None and front and vm_address in front:
        r.problem("frontProxyAddresses", "expected the central proxy's address, not the VM's own; "
                  + rules.violation("peer-is-vm", str(vm_address)))
    peers: dict[str, tuple[Any, ...]] = {
        "dnsServers": dns or (), "ntpServers": ntp or (), "aptProxyAddress": (apt[0],) if apt else (),
        "wazuhManagerAddress": (wazuh.address,) if wazuh and wazuh.address else (),
        "zabbixServerAddress": (zabbix.address,) if zabbix and zabbix.address else (),
        "backupRepositoryAddress": (backup.address,) if backup and backup.address else (),
    }
    for key, addresses in peers.items():
        if vm_address is not None and vm_address in addresses:
            r.problem(key, rules.violation("peer-is-vm", str(vm_address)))
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
        ide_egress=ide_egress,
    )
