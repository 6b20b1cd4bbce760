"""Gateway settings: the two pinned images and the oauth2-proxy session policy.

The images are the supply chain of the internet-facing stack, so they must be pinned by digest,
and a tag, when given, must name a release with the fixes this design relies on (Caddy >= 2.8
for `trusted_proxies_strict` and `{client_ip}`; oauth2-proxy >= 7.15.3, which closes the 7.x
authentication-bypass advisories). The session policy must keep refreshing tokens inside Entra
ID's access-token lifetime, or code-server's WebSocket dies with 1006 after an hour.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from components.settings import checks, rules
from components.settings.reader import Reader

#: Entra ID issues access tokens for 60-90 minutes; refreshing later than the lower bound lets
#: a session outlive its token.
ENTRA_TOKEN_LIFETIME = dt.timedelta(hours=1)
#: Sign-in (with MFA) is repeated at least daily, like the Cloudflare Access session cap.
MAX_COOKIE_EXPIRE = dt.timedelta(hours=24)
#: Refreshing more often sends (almost) every request to Entra's token endpoint.
MIN_COOKIE_REFRESH = dt.timedelta(minutes=1)
MIN_CADDY = (2, 8)
MIN_OAUTH2_PROXY = (7, 15, 3)

_TAG = re.compile(r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@sha256:")
_CADDY_TAG = re.compile(r"^(?P<major>\d+)(?:\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?)?(?:-[a-z0-9.-]+)?$")
_OAUTH2_PROXY_TAG = re.compile(r"^v(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?:-[a-z0-9.-]+)?$")
_DOMAIN = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?:\.(?!-)[a-z0-9-]{1,63})+$")


@dataclass(frozen=True)
class GatewaySettings:
    """What the gateway stack needs beyond the shared topology."""

    caddy_image: str
    oauth2_proxy_image: str
    cookie_expire: dt.timedelta
    cookie_refresh: dt.timedelta
    email_domains: tuple[str, ...]
    cookie_secret_rotation: str
    hop: HopLifetimes


@dataclass(frozen=True)
class HopLifetimes:
    """Lifetimes of the DMZ hop's certificates (mutual TLS between the central Caddy and the gateway).

    The leaf certificates live `cert_days` and are replaced by the first `pulumi up` in their last
    `renew_days` (pulumi-tls marks them ready for renewal), so a monthly `up` keeps them current;
    the CA lives `ca_days` and is rotated by replacing it (docs/operations.md: rotating the hop CA).
    """

    cert_days: int
    renew_days: int
    ca_days: int


def image_tag(reference: str) -> str | None:
    """The tag of a digest-pinned reference (`repo:tag@sha256:…`), or None if it has none."""
    match = _TAG.search(reference)
    return match.group("tag") if match else None


def caddy_image(value: str) -> str:
    """A digest-pinned Caddy 2.x image; a tag, if present, must be 2.8 or later."""
    reference = checks.pinned_image(value)
    tag = image_tag(reference)
    if tag is not None:
        match = _CADDY_TAG.match(tag)
        if not match or int(match["major"]) != 2:
            raise ValueError("expected a Caddy 2.x image tag such as caddy:2.11.7-alpine@sha256:<64 hex>")
        if match["minor"] is not None and (2, int(match["minor"])) < MIN_CADDY:
            raise ValueError("expected Caddy 2.8 or later (trusted_proxies_strict, {client_ip})")
    return reference


def oauth2_proxy_image(value: str) -> str:
    """A digest-pinned oauth2-proxy image; a tag, if present, must be v7.15.3 or later."""
    reference = checks.pinned_image(value)
    tag = image_tag(reference)
    if tag is not None:
        match = _OAUTH2_PROXY_TAG.match(tag)
        if not match:
            raise ValueError("expected an oauth2-proxy release tag such as v7.15.3 before the digest")
        release = (int(match["major"]), int(match["minor"]), int(match["patch"]))
        if release < MIN_OAUTH2_PROXY:
            raise ValueError("expected oauth2-proxy v7.15.3 or later (earlier 7.x releases have authentication bypasses)")
    return reference


def email_domain(value: str) -> str:
    """`*` (any address; the allowed group is then the only gate) or a DNS domain."""
    domain = value.strip().lower()
    if domain != "*" and not _DOMAIN.match(domain):
        raise ValueError("expected an e-mail domain such as example.com, or *")
    return domain


def parse(r: Reader) -> GatewaySettings | None:
    """Read the gateway keys; None if any of them is wrong (problems are recorded in `r`)."""
    start = len(r.problems)
    caddy = r.string("caddyImage", caddy_image)
    oauth2_proxy = r.string("oauth2ProxyImage", oauth2_proxy_image)
    expire = r.string("cookieExpire", rules.guard(rules.duration, ("cookie-expire-long", lambda d: d > MAX_COOKIE_EXPIRE)))
    refresh = r.string("cookieRefresh", rules.guard(rules.duration, ("cookie-refresh-short", lambda d: d < MIN_COOKIE_REFRESH)))
    if refresh is not None and refresh >= ENTRA_TOKEN_LIFETIME:
        r.problem("cookieRefresh", "expected less than 1h, Entra ID's shortest access-token lifetime")
    if refresh is not None and expire is not None and refresh >= expire:
        r.problem("cookieRefresh", f"expected less than cookieExpire ({expire}), got {refresh}")
    domains = r.strings("emailDomains", email_domain, non_empty=True)
    if domains is not None and "*" in domains and len(domains) > 1:
        r.problem("emailDomains", "expected either [\"*\"] or a list of domains, not both")
    cert_days = r.integer("hopCertValidityDays", lo=2, hi=397)
    renew_days = r.integer("hopCertRenewDays", lo=1, hi=396)
    ca_days = r.integer("hopCaValidityDays", lo=30, hi=3650)
    if cert_days is not None and renew_days is not None and renew_days >= cert_days:
        r.problem("hopCertRenewDays", f"expected fewer days than hopCertValidityDays ({cert_days}), got {renew_days}: "
                  "the certificates would be renewed on every up")
    if cert_days is not None and ca_days is not None and ca_days <= cert_days:
        r.problem("hopCaValidityDays", f"expected more days than hopCertValidityDays ({cert_days}), got {ca_days}: "
                  "a certificate must not outlive the CA that signed it")
    rotation = r.string("cookieSecretRotation")
    if rotation is not None and not rotation.strip():
        r.problem("cookieSecretRotation", "expected a non-empty label (change it to rotate the cookie secret)")
    if len(r.problems) > start:
        return None
    return GatewaySettings(caddy, oauth2_proxy, expire, refresh, domains, rotation.strip(),
                           HopLifetimes(cert_days, renew_days, ca_days))
