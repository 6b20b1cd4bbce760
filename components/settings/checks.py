"""Value parsers for config keys: each returns a typed value or raises ValueError("expected …").

They are pure and shared by every layer's settings, so one kind of value (a hostname, a CIDR,
a pinned image) is judged the same way wherever it appears.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_DIGEST_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?@sha256:(?P<digest>[0-9a-f]{64})$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|rsa-sha2-512|rsa-sha2-256|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")


def fqdn(value: str) -> str:
    """A fully qualified DNS name (at least two labels, no trailing dot, lower case)."""
    name = value.strip().lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise ValueError("expected a fully qualified host name such as code.example.com")
    if labels[-1].isdigit():
        raise ValueError("expected a host name, not an IP address")
    return name


def guid(value: str) -> str:
    """A GUID (Entra tenant and object IDs), normalised to lower case."""
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("expected a GUID like 00000000-0000-0000-0000-000000000000") from None


def ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A single IPv4/IPv6 address."""
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError("expected an IP address such as 192.0.2.10") from None


def ipv4_address(value: str) -> ipaddress.IPv4Address:
    """A single IPv4 address (FortiOS address objects and VIPs are IPv4 here)."""
    address = ip_address(value)
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError("expected an IPv4 address such as 192.0.2.10")
    return address


def ip_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR network with no host bits set (a bare address means /32 or /128)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        raise ValueError("expected a network in CIDR form with no host bits, such as 198.51.100.0/24") from None


def port(value: int | str) -> int:
    """A TCP/UDP port number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a port number from 1 to 65535") from None
    if not 1 <= number <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return number


def linux_user(value: str) -> str:
    """A portable Linux user or group name (useradd's default NAME_REGEX, 32 chars at most)."""
    if not _USER.match(value) or value == "root":
        raise ValueError("expected a Linux account name: lower case letters, digits, _ or -, not root")
    return value


def pinned_image(value: str) -> str:
    """A container image reference pinned by digest (`repo[:tag]@sha256:<64 hex>`)."""
    if not _DIGEST_IMAGE.match(value.strip()):
        raise ValueError("expected an image pinned by digest, such as docker.io/library/caddy:2.11@sha256:<64 hex>")
    return value.strip()


_GO_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_MAX = 1 << 63


def go_duration_ns(text: str) -> int:
    """Nanoseconds of `text` exactly as Go's `time.ParseDuration` reads it, or ValueError.

    A transcription of Go's algorithm (src/time/format.go): optional sign, then one or more
    `<digits>[.<digits>]<unit>` with units ns, us, µs, ms, s, m, h, in any order; "0" alone is
    the only unit-less value; fractions are scaled in float64 as Go does; int64 overflow is an
    error. oauth2-proxy reads its duration options with it, so this decides what it would accept.
    """
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError("invalid duration")
    total = 0
    while s:
        if not (s[0] == "." or s[0].isascii() and s[0].isdigit()):
            raise ValueError("invalid duration")
        digits = len(s) - len(s.lstrip("0123456789"))
        whole = 0
        for c in s[:digits]:
            if whole > _GO_MAX // 10:
                raise ValueError("invalid duration (overflow)")
            whole = whole * 10 + int(c)
            if whole > _GO_MAX:
                raise ValueError("invalid duration (overflow)")
        s = s[digits:]
        fraction, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            count = len(s) - len(s.lstrip("0123456789"))
            post = count > 0
            overflow = False
            for c in s[:count]:
                if overflow:
                    continue
                if fraction > (_GO_MAX - 1) // 10:
                    overflow = True
                    continue
                y = fraction * 10 + int(c)
                if y > _GO_MAX:
                    overflow = True
                    continue
                fraction, scale = y, scale * 10
            s = s[count:]
        if not digits and not post:
            raise ValueError("invalid duration")
        end = next((i for i, c in enumerate(s) if c == "." or c in "0123456789"), len(s))
        if end == 0:
            raise ValueError("missing unit in duration")
        unit = _GO_UNITS.get(s[:end])
        if unit is None:
            raise ValueError(f"unknown unit {s[:end]!r} in duration")
        s = s[end:]
        if whole > _GO_MAX // unit:
            raise ValueError("invalid duration (overflow)")
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _GO_MAX:
                raise ValueError("invalid duration (overflow)")
        total += value
        if total > _GO_MAX:
            raise ValueError("invalid duration (overflow)")
    if neg:
        return -total
    if total > _GO_MAX - 1:
        raise ValueError("invalid duration (overflow)")
    return total


def duration(value: str) -> dt.timedelta:
    """A positive duration in Go's `time.ParseDuration` syntax (what oauth2-proxy reads), whole seconds.

    The renderers write durations back as `1h30m5s`, so sub-second parts would be lost: refused.
    """
    try:
        ns = go_duration_ns(value.strip())
    except ValueError:
        raise ValueError("expected a Go duration such as 8h, 45m, 1h30m or 1.5h (units ns, us, ms, s, m, h)") from None
    if ns <= 0:
        raise ValueError("expected a duration greater than zero")
    if ns % 10**9:
        raise ValueError("expected a whole number of seconds")
    return dt.timedelta(seconds=ns // 10**9)


def iso_date(value: str) -> dt.date:
    """A calendar date `YYYY-MM-DD`."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


def sha256_hex(value: str) -> str:
    """A SHA-256 digest as 64 lower-case hex characters."""
    if not _SHA256.match(value.strip()):
        raise ValueError("expected a SHA-256 digest of 64 lower-case hex characters")
    return value.strip()


def version(value: str) -> str:
    """A plain `X.Y.Z` release number."""
    if not _VERSION.match(value.strip()):
        raise ValueError("expected a release number such as 4.139.1")
    return value.strip()


def ssh_host_key(value: str) -> str:
    """A public SSH host key `<type> <base64>` as printed by `ssh-keyscan` (comment dropped)."""
    fields = value.strip().split()
    key = " ".join(fields[:2])
    if len(fields) < 2 or not _HOST_KEY.match(key):
        raise ValueError("expected a public host key such as 'ssh-ed25519 AAAA…' (from ssh-keyscan)")
    try:
        base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected a public host key whose key part is valid base64") from None
    return key


def matching(pattern: str, what: str) -> Callable[[str], str]:
    """A parser accepting a whole-string match of `pattern` (surrounding blanks dropped)."""
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value.strip()):
            raise ValueError(f"expected {what}")
        return value.strip()

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    """A parser accepting exactly one of `choices`."""

    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value

    return parse


def openssh_private_key(value: str) -> None:
    """An unencrypted-at-rest-in-Pulumi PEM/OpenSSH private key (content is never echoed)."""
    text = value.strip()
    if not (text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text.splitlines()[0]):
        raise ValueError("expected an SSH private key in OpenSSH/PEM form (-----BEGIN … PRIVATE KEY-----)")


def min_length(n: int) -> Callable[[str], None]:
    """A secret check: at least `n` characters (used for passwords and PSKs)."""

    def check(value: str) -> None:
        if len(value) < n:
            raise ValueError(f"expected at least {n} characters")

    return check


#: Not routed on the public internet, so fit for internal peers: RFC 1918, RFC 6598 shared address
#: space (CGNAT, overlay VPNs), RFC 5737 documentation ranges (the example stacks' stand-ins for
#: private ranges), IPv6 unique local (RFC 4193) and documentation (RFC 3849) prefixes.
NON_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "fc00::/7", "2001:db8::/32",
))
#: No host a peer can be: "this network"/unspecified, loopback, link-local (incl. cloud metadata at
#: 169.254.169.254), multicast, reserved and broadcast (240.0.0.0/4 holds 255.255.255.255).
SPECIAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "fe80::/10", "ff00::/8",
))


def _network(value: ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value)


def is_internal(value: ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether an address or network lies wholly inside one `NON_PUBLIC` range."""
    net = _network(value)
    return any(net.version == r.version and net.subnet_of(r) for r in NON_PUBLIC)  # type: ignore[arg-type]


def is_special(value: ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether an address or network overlaps a `SPECIAL` range (no peer lives there)."""
    net = _network(value)
    return any(net.version == r.version and net.overlaps(r) for r in SPECIAL)  # type: ignore[arg-type]
