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
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
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


def duration(value: str) -> dt.timedelta:
    """A Go-style duration like `12h`, `30m`, `1h30m` (the form oauth2-proxy uses)."""
    match = _DURATION.match(value.strip())
    if not value.strip() or not match or not any(match.groupdict().values()):
        raise ValueError("expected a duration such as 8h, 45m or 1h30m")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    result = dt.timedelta(hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    if result <= dt.timedelta(0):
        raise ValueError("expected a duration greater than zero")
    return result


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
