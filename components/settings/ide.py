"""What the IDE user may reach, and what its editor installs: the allowlisting proxy's domains, the
extension gallery and the VSIX files pre-installed by the converge.

The IDE user has no flow off the VM of its own; with `ideEgressDomains` set, one logged door opens:
a forward proxy on the VM's loopback that lets it reach exactly these names (HTTPS by CONNECT to
port 443; plain HTTP on port 80 only where an entry says `http://`). Names, never addresses: an IP
literal would bypass what the proxy, its log and the FortiGate's FQDN objects judge by name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from components.settings import checks, rules

#: code-server's own default gallery (Open VSX); `ideExtensionGallery` names another Open VSX.
OPEN_VSX = "https://open-vsx.org"
_SHA256_SUFFIX = re.compile(r"^(?P<url>https?://\S+\.vsix)@sha256:(?P<digest>[0-9a-f]{64})$")


@dataclass(frozen=True)
class EgressDomain:
    """One allowlisted name: `host.example.com`, or `*.example.com` (the name and every name under it)."""

    name: str
    #: Plain HTTP (port 80) as well as HTTPS: only where the entry is written `http://name`.
    plain_http: bool = False

    @property
    def wildcard(self) -> bool:
        return self.name.startswith("*.")

    @property
    def base(self) -> str:
        """The name without its wildcard (`example.com` for `*.example.com`)."""
        return self.name.removeprefix("*.")

    def covers(self, host: str) -> bool:
        """Whether a request for `host` is allowed by this entry."""
        host = host.lower()
        return host == self.base or (self.wildcard and host.endswith("." + self.base))


@dataclass(frozen=True)
class Vsix:
    """An extension file the converge downloads, checks by SHA-256 and installs for the IDE user."""

    url: str
    sha256: str


@dataclass(frozen=True)
class Gallery:
    """An Open VSX (compatible) gallery: the three URLs code-server's `EXTENSIONS_GALLERY` names."""

    base: str

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or ""

    @property
    def product(self) -> dict[str, str]:
        """`EXTENSIONS_GALLERY`'s JSON object (code-server reads it in place of product.json's)."""
        return {
            "serviceUrl": f"{self.base}/vscode/gallery",
            "itemUrl": f"{self.base}/vscode/item",
            "resourceUrlTemplate": f"{self.base}/vscode/unpkg/{{publisher}}/{{name}}/{{version}}/{{path}}",
        }


def egress_domain(value: str) -> EgressDomain:
    """`name`, `*.name` or `http://name` (also plain HTTP); never an IP literal, never a bare TLD."""
    text = value.strip().lower()
    plain_http = text.startswith("http://")
    text = text.removeprefix("http://")
    try:
        ipaddress.ip_address(text.removeprefix("*.").strip("[]"))
    except ValueError:
        pass
    else:
        raise rules.BY_NAME["egress-domain-ip"].error()
    if "/" in text or ":" in text:
        raise ValueError("expected a host name (www.example.com), a wildcard (*.example.com) or http://name; "
                         "no scheme but http://, no port, no path: HTTPS goes to port 443 only")
    wildcard = text.startswith("*.")
    base = text.removeprefix("*.")
    if "*" in base:
        raise ValueError("expected '*.' only as the whole first label (*.example.com)")
    if "." not in base:
        raise rules.BY_NAME["egress-domain-tld"].error()
    try:
        name = checks.fqdn(base)
    except ValueError as error:
        raise ValueError(f"expected a host name or *.name: {error}") from None
    return EgressDomain(("*." if wildcard else "") + name, plain_http)


def overlaps(domains: tuple[EgressDomain, ...]) -> list[tuple[str, str]]:
    """(covered, wildcard) pairs where one entry is already covered by another's wildcard.

    Squid refuses such a list in one ACL (a name inside a wildcard of the same list), and it hides
    which entry was meant; the stack lists each name once (also not as both `name` and `http://name`).
    """
    pairs = [(d.name, w.name) for d in domains for w in domains if w.wildcard and d is not w and w.covers(d.base)]
    names = [d.name for d in domains]
    return pairs + [(name, name) for name in sorted(set(names)) if names.count(name) > 1]


def gallery(value: str) -> Gallery:
    """The base URL of an Open VSX (https, a host name, no query): e.g. https://open-vsx.org."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username or parts.port:
        raise ValueError("expected the https:// base URL of an Open VSX gallery, e.g. https://open-vsx.org (no port, query or credentials)")
    egress_domain(parts.hostname)
    return Gallery(value.strip().rstrip("/"))


def vsix(value: str) -> Vsix:
    """`https://host/path/name.vsix@sha256:<64 hex>`: the file and the digest it must have."""
    match = _SHA256_SUFFIX.match(value.strip())
    if not match:
        raise ValueError("expected <url of a .vsix>@sha256:<64 lower-case hex digits>, "
                         "e.g. https://files.example.com/ext-1.0.0.vsix@sha256:" + "0" * 64)
    return Vsix(match["url"], match["digest"])
