"""Signing key, JWKS and Entra-shaped tokens of the stand-in (JOSE by `joserfc`, no hand-made crypto).

Sizes matter because oauth2-proxy keeps the tokens in its session cookie: the claims follow what
Entra puts in a v2.0 ID token and in a Microsoft Graph access token (opaque fields such as `aio`,
`rh`, `xms_ftd` are random strings of Entra's usual length, so they do not compress), and the
refresh token is an opaque string of Entra's usual size (~1.4 KB).

What the claims say is only what happened: `groups` is what the app registration's
`groupMembershipClaims` lets through (`directory.groups_claim`, absent when there is none), and
`amr` is `["pwd"]`, since the login form asks for a password and nothing else; the stand-in has no
second factor, so no token of it claims `mfa`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from scripts.lab.idp.directory import User

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
#: Entra's ID and access tokens live 60-90 minutes; the stand-in issues the lower bound.
TOKEN_LIFETIME = 3600


def issuer(tenant_id: str) -> str:
    """Entra's v2.0 issuer, the only form oauth2-proxy's entra-id provider accepts."""
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


def _opaque(length: int) -> str:
    """A random URL-safe string of `length` characters (Entra's opaque claim values)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(length)).decode().rstrip("=")[:length]


def pairwise_sub(oid: str, client_id: str) -> str:
    """Entra's `sub`: opaque, but the same for one person and one app every time (a pairwise ID), and
    another for another app. The gateway logs it as the person's ID, so it must not change per sign-in."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"{oid}:{client_id}".encode()).digest()).decode().rstrip("=")


@dataclass
class Signer:
    """One RS256 signing key (a new one per run, as the stand-in keeps no state on disk)."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, private=True))

    @property
    def kid(self) -> str:
        return self.key.kid or self.key.thumbprint()

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return KeySet([RSAKey.import_key(public, {"kid": self.kid})]).as_dict(private=False)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"typ": "JWT", "alg": "RS256", "kid": self.kid}, claims, self.key)


def id_token(signer: Signer, tenant_id: str, client_id: str, user: User, sid: str, nonce: str | None, groups: list[str] | None,
             now: int | None = None, roles: list[str] | None = None) -> str:
    """An Entra v2.0 ID token for `user` (with `nonce` at sign-in; refreshed tokens carry none), with
    `groups` and `roles` as claims when not None."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer(tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME,
        "aio": _opaque(148),
        "email": user.email,
        "name": user.name,
        "oid": user.oid,
        "preferred_username": user.username,
        "rh": f"1.A{_opaque(62)}.",
        "sid": sid,
        "sub": pairwise_sub(user.oid, client_id),
        "tid": tenant_id,
        "uti": _opaque(22),
        "ver": "2.0",
    }
    if groups is not None:
        claims["groups"] = list(groups)
    if roles is not None:
        claims["roles"] = list(roles)
    if nonce is not None:
        claims["nonce"] = nonce
    return signer.sign(claims)


def access_token(signer: Signer, tenant_id: str, client_id: str, user: User, sid: str, scope: str, now: int | None = None) -> str:
    """A Microsoft Graph access token as Entra issues it for `openid email profile offline_access`."""
    now = int(time.time()) if now is None else now
    given, _, family = user.name.partition(" ")
    claims: dict[str, Any] = {
        "aud": GRAPH_APP_ID,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME,
        "acct": 0,
        "acr": "1",
        "aio": _opaque(276),
        "amr": ["pwd"],  # a password, nothing more: the stand-in has no second factor
        "app_displayname": "code-server (code.example.com)",
        "appid": client_id,
        "appidacr": "1",
        "family_name": family or user.name,
        "given_name": given,
        "idtyp": "user",
        "ipaddr": "203.0.113.50",
        "name": user.name,
        "oid": user.oid,
        "platf": "3",
        "puid": secrets.token_hex(8).upper(),
        "rh": f"1.A{_opaque(62)}.",
        "scp": " ".join(s for s in scope.split() if s not in ("openid", "offline_access")) + " User.Read",
        "sid": sid,
        "signin_state": ["kmsi"],
        "sub": pairwise_sub(user.oid, GRAPH_APP_ID),
        "tenant_region_scope": "EU",
        "tid": tenant_id,
        "unique_name": user.username,
        "upn": user.username,
        "uti": _opaque(22),
        "ver": "1.0",
        "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        "xms_ftd": _opaque(64),
        "xms_idrel": "1 20",
        "xms_st": {"sub": _opaque(43)},
        "xms_tcdt": 1600000000,
        "xms_tdbr": "EU",
    }
    return signer.sign(claims)


def refresh_token() -> str:
    """An opaque refresh token of Entra's usual length; only its hash is kept by the server."""
    return f"1.A{_opaque(1440)}"
