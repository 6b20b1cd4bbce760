"""What a well-formed value may still not be: values that would weaken a control below the design's
baseline, or make a setup step harm the host, refused before any resource exists.

The rules are data (which keys, what is refused, a one-line reason, and the acknowledgement key
where a wide value has a legitimate use), so the settings parsers, the configuration
reference (docs/configuration.md) and the tests all read the same list. The predicates live beside the data: `guard` wraps
a value parser with single-value rules; cross-key rules are checked by the layer parsers with
`violation`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from components.settings import checks

T = TypeVar("T")

#: An egress allowlist entry wider than this many prefix bits is "wide" (needs acknowledging) ...
WIDE_EGRESS_PREFIX = 16
#: ... and wider than this is refused even when acknowledged.
MAX_EGRESS_PREFIX = 8
#: Public management networks, when acknowledged, must be at least this narrow (IPv4, IPv6).
PUBLIC_MANAGEMENT_PREFIX = {4: 24, 6: 64}
#: Top-level system trees: the layout step makes the workspace path the IDE user's (mode 700).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt/code-server",
                "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var")

ACK_PUBLIC_MANAGEMENT = "acknowledgePublicManagement"
ACK_WIDE_EGRESS = "acknowledgeWideEgress"

PEER_KEYS = ("vmAddress", "frontProxyAddresses", "dnsServers", "ntpServers", "aptProxyAddress", "wazuhManagerAddress",
             "zabbixServerAddress", "backupRepositoryAddress", "fortigatePublicIp")
EGRESS_KEYS = ("entraEgress", "registryEgress", "cloudflareTunnelEgress")
DURATION_KEYS = ("cookieExpire", "cookieRefresh", "cloudflareAccessSessionDuration", "codeServerIdleTimeout")


@dataclass(frozen=True)
class Rule:
    """One refusal: the keys it judges, the values it refuses and why (one line each)."""

    name: str
    keys: tuple[str, ...]
    refuses: str
    reason: str
    acknowledge: str | None = None

    def error(self) -> ValueError:
        """The ValueError a parser raises (the Reader adds the key and the value given)."""
        return ValueError(self.message())

    def message(self) -> str:
        ack = f"; or set {self.acknowledge}: true to accept it" if self.acknowledge else ""
        return f"refused: {self.refuses} ({self.reason}{ack})"


RULES: tuple[Rule, ...] = (
    Rule("special-address", PEER_KEYS + ("managementSubnets",) + EGRESS_KEYS,
         "unspecified 0.0.0.0/8 and ::, loopback, link-local 169.254/16 and fe80::/10, multicast, reserved 240/4 and broadcast",
         "no peer lives there: traffic stays on the VM, reaches every host, or hits the cloud metadata service"),
    Rule("peer-is-vm", ("frontProxyAddresses", "dnsServers", "ntpServers", "aptProxyAddress", "wazuhManagerAddress",
                        "zabbixServerAddress", "backupRepositoryAddress"),
         "vmAddress itself",
         "the VM is not its own peer: as its own front proxy it would vouch for its own X-Forwarded-For, as a target it hides a typo"),
    Rule("front-proxy-public", ("frontProxyAddresses",),
         "public (globally routable) addresses",
         "the central Caddy is an internal DMZ host; a public peer and trusted proxy lets an internet host reach the gateway and set the client IP"),
    Rule("vm-public", ("vmAddress",),
         "a public address with edge fortigate",
         "with the FortiGate edge the VM sits in an internal DMZ reached only through the VIP; a public address bypasses the edge"),
    Rule("management-public", ("managementSubnets",),
         "public (globally routable) networks",
         "SSH only from internal management subnets, never the public internet", ACK_PUBLIC_MANAGEMENT),
    Rule("management-wide", ("managementSubnets",),
         "public networks wider than /24 (IPv4) or /64 (IPv6), even acknowledged; so 0.0.0.0/0 and ::/0 always",
         "an acknowledged public source is one bastion or office, not a slice of the internet"),
    Rule("egress-wide", EGRESS_KEYS,
         f"networks wider than /{WIDE_EGRESS_PREFIX}",
         "a wide allowlist entry lets the VM reach large parts of the internet: exfiltration, second stages, C2", ACK_WIDE_EGRESS),
    Rule("egress-unbounded", EGRESS_KEYS,
         f"networks wider than /{MAX_EGRESS_PREFIX}, even acknowledged; so 0.0.0.0/0 always",
         "that is no allowlist"),
    Rule("egress-domain-ip", ("ideEgressDomains",),
         "IP literals (IPv4 or IPv6, bracketed or not)",
         "the proxy, its log and the FortiGate's FQDN objects judge by name; an address bypasses all three"),
    Rule("egress-domain-tld", ("ideEgressDomains",),
         "a single label, bare or as a wildcard (com, *.com)",
         "it opens a whole top-level domain, or a name no one can register"),
    Rule("ack-unused", (ACK_PUBLIC_MANAGEMENT, ACK_WIDE_EGRESS),
         "true while no value needs it",
         "a stale acknowledgement would silently cover the next mistake"),
    Rule("workspace-system-path", ("workspaceVolumePath",),
         "/, anything in " + ", ".join(SYSTEM_TREES) + ", and any directory above them (/opt)",
         "the layout step makes the path the IDE user's (mode 700): an unprivileged owner of a system directory is root, and the host breaks for everyone else"),
    Rule("system-account", ("serviceUser", "ideUser", "vmAdminUser"),
         "Debian 12 system users and groups (base-passwd, sysusers.d) and those of packages the VM installs (sshd, docker, wazuh, zabbix, …)",
         "the accounts step rewrites a named account in place (groups, shell, password): nobody in the docker group is root for every nobody process"),
    Rule("system-group", ("adminGroup",),
         "Debian 12 system groups and package groups (sudo, users, docker, …)",
         "AllowGroups must name a group that exists only to admit admins; docker also holds the service account"),
    Rule("account-collision", ("ideUser", "adminGroup"),
         "ideUser, serviceUser and vmAdminUser not all different; adminGroup equal to ideUser or serviceUser",
         "the split of duties needs three accounts, and an account's own group as AllowGroups lets it log in over SSH"),
    Rule("port-collision", ("vmSshPort", "gatewayPort"),
         "vmSshPort equal to gatewayPort, and either equal to 8080 (code-server) or 4180 (oauth2-proxy)",
         "one of the services fails to bind, and UFW would open that port to the other service's peers"),
    Rule("go-duration", DURATION_KEYS,
         "anything Go's time.ParseDuration refuses (e.g. 1d, 12 hours), zero or negative, fractions of a second",
         "oauth2-proxy reads durations with Go's parser (every duration key shares its syntax), and the renderers write whole seconds"),
    Rule("cookie-expire-long", ("cookieExpire",),
         "more than 24h",
         "sign-in with MFA is repeated at least daily (like the Access session cap); a longer cookie lets a stolen one outlive the day"),
    Rule("cookie-refresh-short", ("cookieRefresh",),
         "less than 1m",
         "a refresh on (almost) every request throttles Entra's token endpoint, and the IDE's WebSocket drops (1006)"),
    Rule("idle-timeout-short", ("codeServerIdleTimeout",),
         "1m or less",
         "code-server 4.139.1 refuses an idle-timeout-seconds of 60 or less and would not start"),
    Rule("idle-timeout-long", ("codeServerIdleTimeout",),
         "more than 24h",
         "what the terminal left running with no browser attached would outlive the day's sign-in (cookieExpire is at most 24h)"),
    Rule("session-whole-minutes", ("cloudflareAccessSessionDuration",),
         "durations with seconds",
         "Cloudflare is sent <h>h<m>m, so seconds would be dropped without a word"),
    Rule("secret-end-date-far", ("entraSecretEndDate",),
         "more than two years after today",
         "a client secret that outlives two years is one that is never rotated (Entra's portal offers at most 24 months)"),
    Rule("backup-address-mismatch", ("backupRepositoryAddress",),
         "an address other than the IP literal in backupRepository's URL",
         "the egress allowlist would open one host while restic dials another, and no backup would run"),
    Rule("calendar-systemd", ("backupSchedule",),
         "expressions outside the systemd OnCalendar grammar checked here (shorthands, weekdays, Y-M-D, h:m[:s] with lists, ranges, repetitions)",
         "systemd would refuse the timer, or read it differently, and no backup would run"),
    Rule("calendar-never", ("backupSchedule",),
         "expressions that never elapse (e.g. *-02-30, a past year) or leave more than 35 days between runs within the next four years",
         "systemd accepts the timer but the workspace goes without backups (at least monthly is the floor)"),
)
BY_NAME = {rule.name: rule for rule in RULES}


def rules_for(key: str) -> tuple[Rule, ...]:
    """The rules that judge `key` (for the configuration reference, docs/configuration.md)."""
    return tuple(rule for rule in RULES if key in rule.keys)


def guard(parse: Callable[[Any], T], *tests: tuple[str, Callable[[T], bool]]) -> Callable[[Any], T]:
    """`parse`, then refuse the value if any `(rule name, refused?)` test says so."""

    def guarded(value: Any) -> T:
        parsed = parse(value)
        for name, refused in tests:
            if refused(parsed):
                raise BY_NAME[name].error()
        return parsed

    return guarded


def violation(name: str, got: Any) -> str:
    """The problem text of a cross-key rule, with the offending value."""
    return f"{BY_NAME[name].message()}, got {got!r}"


# --- predicates ------------------------------------------------------------------------------

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


SPECIAL = ("special-address", checks.is_special)
PUBLIC_FRONT = ("front-proxy-public", lambda a: not checks.is_internal(a))
PUBLIC_MANAGEMENT = ("management-public", lambda n: not checks.is_internal(n))


def wide_public_management(net: Net) -> bool:
    """Public and wider than one bastion's or office's network (a special range is judged as such)."""
    within_special = any(net.version == s.version and net.subnet_of(s) for s in checks.SPECIAL)  # type: ignore[arg-type]
    return not checks.is_internal(net) and not within_special and net.prefixlen < PUBLIC_MANAGEMENT_PREFIX[net.version]


def wide_egress(net: Net) -> bool:
    return net.prefixlen < WIDE_EGRESS_PREFIX


def unbounded_egress(net: Net) -> bool:
    return net.prefixlen < MAX_EGRESS_PREFIX


def system_path(path: str) -> bool:
    """`/`, inside a system tree, or above one (owning /opt lets you rename /opt/code-server)."""
    return path == "/" or any(path == tree or path.startswith(tree + "/") or tree.startswith(path + "/")
                              for tree in SYSTEM_TREES)


def duration(value: str) -> Any:
    """`checks.duration`, its refusal tied to the go-duration rule (the detail first, then why)."""
    try:
        return checks.duration(value)
    except ValueError as err:
        raise ValueError(f"{err}; {BY_NAME['go-duration'].message()}") from None
