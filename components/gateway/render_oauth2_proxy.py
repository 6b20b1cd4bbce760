"""oauth2-proxy's config file for Entra ID in front of code-server (pure: no Pulumi, no I/O).

The file is oauth2-proxy's `--config` format (TOML, the "legacy" options, which v7.15.x loads
with unknown keys treated as fatal). Secrets never appear in it: the client secret and the
cookie secret are separate files named by `client_secret_file` / `cookie_secret_file`, so the
config can be shown in plans and diffs, and nothing secret reaches the container's environment
or command line.

`options()` builds the settings, `check_options()` refuses the combinations that open the door
(a TCP listener instead of the Unix socket, any domain without a group, skipped issuer or TLS verification,
anonymous routes, a `SameSite` that breaks the callback or invites CSRF, secrets inline, a
redirect allowed to any host but Entra's) and
`render()` does both and serialises. `check_options()` runs on every render, so a later edit
that weakens the output fails the deployment instead of shipping.

Team workspaces (`team_options()`, `render_team()`): one oauth2-proxy per VM, admitting the Entra app
roles (`ws.<name>`) of the workspaces on that VM instead of a group, and building the callback URL
from the request's host (one per workspace), which the gateway admits only for that VM's hosts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tomli_w

from components.layout import CALLBACK_PATH, CODE_SERVER_PORT, ENTRA_HOST, OAUTH2_PROXY_SOCKET
from components.settings.workspaces import Team

#: Where the container sees its files (the host directory is mounted read-only here).
CONFIG_DIR = "/etc/oauth2-proxy"
CONFIG_FILE = f"{CONFIG_DIR}/oauth2-proxy.cfg"
CLIENT_SECRET_FILE = f"{CONFIG_DIR}/client-secret"
COOKIE_SECRET_FILE = f"{CONFIG_DIR}/cookie-secret"

#: A Unix socket (the container sees the host's socket directory at the same path): no TCP port
#: another local uid could reach, or bind while oauth2-proxy is down and receive the sessions.
LISTEN_ADDRESS = f"unix://{OAUTH2_PROXY_SOCKET}"
#: code-server stays on TCP loopback: v7.15.6 cannot proxy a WebSocket to a `unix://` upstream.
UPSTREAM = f"http://127.0.0.1:{CODE_SERVER_PORT}"
#: Must be non-empty for oauth2-proxy to honour X-Real-IP at all; on its Unix listener every peer
#: counts as trusted (v7.15.x `CanTrustForwardedHeaders`), and only the service account can open
#: that socket (its directory is 0750), i.e. the gateway.
GATEWAY_ADDRESSES = ("127.0.0.1",)
#: `__Host-` makes the browser refuse the cookie unless Secure, Path=/ and without Domain:
#: no sibling host under the wildcard certificate can set or shadow the session.
COOKIE_NAME = "__Host-oauth2_proxy"
#: Health endpoints under the proxy prefix, so they never shadow a code-server path.
PING_PATH = "/oauth2/ping"
READY_PATH = "/oauth2/ready"
SCOPE = "openid email profile offline_access"
#: Entra ID access tokens live 60-90 minutes; the session must refresh before the shortest.
ENTRA_TOKEN_LIFETIME = dt.timedelta(hours=1)
COOKIE_SECRET_BYTES = 32
#: At most this many sign-in attempts in flight per browser (each holds a ~0.4 KB CSRF cookie).
CSRF_COOKIE_LIMIT = 5
#: The request ID both logs share: the gateway sets it to its own per-request UUID (a client's value
#: never arrives), and oauth2-proxy puts it in its auth and request lines.
REQUEST_ID_HEADER = "X-Request-Id"
#: What starts every auth and request line (the journal's syslog identifier is the container's tag).
LOG_TAG = "hcs-oauth2-proxy"
#: v7.15's templates offer `Username` only: the session's email (the `sub` claim when it has none).
#: The auth line's message adds the session (`Session{email:… user:<sub> …}`; it says only whether
#: tokens exist, never their values).
AUTH_LOG_FORMAT = (LOG_TAG + " auth user={{.Username}} status={{.Status}} client={{.Client}} request_id={{.RequestID}} "
                   "{{.RequestMethod}} {{.Host}} {{.Message}}")
REQUEST_LOG_FORMAT = (LOG_TAG + " request user={{.Username}} client={{.Client}} request_id={{.RequestID}} {{.RequestMethod}} "
                      "{{.Host}} {{.RequestURI}} status={{.StatusCode}} bytes={{.ResponseSize}} seconds={{.RequestDuration}} "
                      "upstream={{.Upstream}}")

_ISSUER = re.compile(r"^https://login\.microsoftonline\.com/(?P<tenant>[0-9a-fA-F-]{36})/v2\.0$")
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_INSECURE_KEYS = (
    "insecure_oidc_skip_issuer_verification",
    "insecure_oidc_allow_unverified_email",
    "insecure_oidc_skip_nonce",
    "ssl_insecure_skip_verify",
    "ssl_upstream_insecure_skip_verify",
    "skip_oidc_discovery",
    "skip_jwt_bearer_tokens",
)
_INLINE_SECRETS = ("client_secret", "cookie_secret")
#: Team mode reads Entra app roles: the ID token's `roles` claim fills the session's groups
#: (v7.15.6 `providers/provider_data.go:281` reads `GroupsClaim`, set from `oidc_groups_claim` in
#: `providers/providers.go:151`). Entra's overage handling concerns the `groups` claim only
#: (`providers/ms_entra_id.go:225`).
ROLES_CLAIM = "roles"
#: A workspace role value (`Workspace.role`): no "," (oauth2-proxy joins the session's groups with ","
#: in X-Forwarded-Groups, `pkg/middleware/headers.go:49`, which the gateway's router splits on).
_ROLE = re.compile(r"^ws\.[a-z0-9-]+$")


class UnsafeConfig(ValueError):
    """The oauth2-proxy options would weaken the authentication layer; lists every reason."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("unsafe oauth2-proxy config: " + "; ".join(reasons))


@dataclass(frozen=True)
class OAuth2ProxyParams:
    """The deployment-specific inputs: who the IdP is, who may enter, how long sessions live."""

    hostname: str
    issuer_url: str
    client_id: str
    allowed_group: str
    email_domains: tuple[str, ...]
    cookie_expire: dt.timedelta
    cookie_refresh: dt.timedelta


@dataclass(frozen=True)
class TeamOAuth2ProxyParams:
    """oauth2-proxy of one VM of a team: who the IdP is, the team and which VM, how long sessions live."""

    issuer_url: str
    client_id: str
    team: Team
    vm: str
    email_domains: tuple[str, ...]
    cookie_expire: dt.timedelta
    cookie_refresh: dt.timedelta


def go_duration(value: dt.timedelta) -> str:
    """A positive whole-second timedelta in Go's `time.ParseDuration` syntax (`1h30m`)."""
    seconds = int(value.total_seconds())
    if seconds <= 0 or seconds != value.total_seconds():
        raise ValueError(f"expected a positive whole number of seconds, got {value}")
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)


def parse_go_duration(text: str) -> dt.timedelta:
    """The inverse of `go_duration` for the h/m/s subset it writes."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"expected a duration such as 12h or 1h30m, got {text!r}")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return dt.timedelta(hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def secret_bytes(secret: str) -> bytes:
    """The AES key oauth2-proxy derives from a cookie secret (the rule of v7.15.x).

    Unpadded URL-safe base64 that decodes to 16, 24 or 32 bytes is used decoded (Go's decoder
    skips CR/LF); anything else is used as raw bytes. So a standard-base64 secret containing
    `+` or `/` silently becomes a 44-byte key, which oauth2-proxy rejects at start.
    """
    text = secret.rstrip("=").replace("\r", "").replace("\n", "")
    if text and set(text) <= _URLSAFE and len(text) % 4 != 1:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if len(decoded) in (16, 24, 32):
            return decoded
    return secret.encode()


def cookie_secret(random_base64: str) -> str:
    """The cookie-secret file's content from `RandomBytes(length=32).base64` (standard base64).

    Re-encoded as URL-safe base64 without padding or newline, the form oauth2-proxy decodes.
    """
    try:
        raw = base64.b64decode(random_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("cookie secret: expected standard base64 from RandomBytes.base64") from None
    if len(raw) != COOKIE_SECRET_BYTES:
        raise ValueError(f"cookie secret: expected {COOKIE_SECRET_BYTES} random bytes, got {len(raw)}")
    secret = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert len(secret_bytes(secret)) == COOKIE_SECRET_BYTES
    return secret


def options(p: OAuth2ProxyParams) -> dict[str, Any]:
    """The oauth2-proxy options for `p`, keyed by their config-file names."""
    return {
        "provider": "entra-id",
        "oidc_issuer_url": p.issuer_url,
        "client_id": p.client_id,
        "client_secret_file": CLIENT_SECRET_FILE,
        "code_challenge_method": "S256",
        # v7.15's default is true (skip): without this no nonce is sent or checked, and a
        # replayed ID token from another sign-in would pass.
        "insecure_oidc_skip_nonce": False,
        "scope": SCOPE,
        "allowed_groups": [p.allowed_group],
        "email_domains": list(p.email_domains),
        "redirect_url": f"https://{p.hostname}{CALLBACK_PATH}",
        "whitelist_domains": [ENTRA_HOST],
        "skip_provider_button": True,
        "http_address": LISTEN_ADDRESS,
        "upstreams": [UPSTREAM],
        "pass_host_header": True,
        "proxy_websockets": True,
        "pass_basic_auth": False,
        "pass_access_token": False,
        "reverse_proxy": True,
        "trusted_proxy_ips": list(GATEWAY_ADDRESSES),
        "real_client_ip_header": "X-Real-IP",
        "cookie_name": COOKIE_NAME,
        "cookie_secret_file": COOKIE_SECRET_FILE,
        "cookie_secure": True,
        "cookie_httponly": True,
        "cookie_samesite": "lax",
        "cookie_path": "/",
        # One CSRF cookie per sign-in attempt: with a single one, a second unauthenticated request
        # (the browser's /favicon.ico, another tab) starts another sign-in and overwrites it, and
        # the first callback then fails with 500 (its PKCE verifier is gone). The limit keeps the
        # Cookie header bounded (the session cookie alone is ~7.3 KB with Entra-sized tokens).
        "cookie_csrf_per_request": True,
        "cookie_csrf_per_request_limit": CSRF_COOKIE_LIMIT,
        "cookie_expire": go_duration(p.cookie_expire),
        "cookie_refresh": go_duration(p.cookie_refresh),
        "session_store_type": "cookie",
        # Attribution: the identity as response headers (X-Auth-Request-User = the `sub` claim,
        # -Email, -Preferred-Username, -Groups), which the gateway logs and removes before the
        # browser sees them. Never with pass_access_token (the token would become a header too).
        "set_xauthrequest": True,
        "auth_logging": True,
        "auth_logging_format": AUTH_LOG_FORMAT,
        "request_logging": True,
        "request_logging_format": REQUEST_LOG_FORMAT,
        "request_id_header": REQUEST_ID_HEADER,
        # The callback's URI carries the authorization code and state; its outcome, with the user,
        # is the auth line.
        "exclude_logging_paths": [CALLBACK_PATH],
        "ping_path": PING_PATH,
        "ready_path": READY_PATH,
        "silence_ping_logging": True,
        "show_debug_on_error": False,
    }


def team_options(p: TeamOAuth2ProxyParams) -> dict[str, Any]:
    """The single-user options with three changes for a VM of a team.

    - `oidc_groups_claim = "roles"`: the session's groups are the person's app roles.
    - `allowed_groups` = the roles of the workspaces on this VM only, so a person granted only
      workspaces elsewhere is refused here at the callback and on every request (v7.15.6
      `oauthproxy.go:988` and `:1192` call `Authorize`, `providers/provider_default.go:129-140`:
      no matching group, or none at all, is a refusal).
    - no `redirect_url`: each workspace host has its own callback. Unset, v7.15.6 builds it from the
      request (`oauthproxy.go:176-178` gives the path `/oauth2/callback`, `getOAuthRedirectURI` at
      `:1150-1172` the host from X-Forwarded-Host, believed only from `trusted_proxy_ips`
      (`pkg/requests/util/util.go:30-36`), else Host; https because `cookie_secure`). The gateway
      sets X-Forwarded-Host to the Host it admitted, one of this VM's workspace hosts.
    """
    roles = [w.role for w in p.team.on(p.vm)]
    if not roles:
        raise ValueError(f"TeamOAuth2ProxyParams.vm: {p.vm!r} hosts no workspace")
    # The single-user options less its host and group, which the team replaces.
    single = options(OAuth2ProxyParams(hostname="", issuer_url=p.issuer_url, client_id=p.client_id, allowed_group="",
                                       email_domains=p.email_domains, cookie_expire=p.cookie_expire, cookie_refresh=p.cookie_refresh))
    opts = {k: v for k, v in single.items() if k != "redirect_url"}
    opts["allowed_groups"] = roles
    opts["oidc_groups_claim"] = ROLES_CLAIM
    return opts


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_networks(values: Any) -> bool:
    try:
        return bool(values) and all(ipaddress.ip_network(v, strict=False).subnet_of(ipaddress.ip_network("127.0.0.0/8")) for v in values)
    except (TypeError, ValueError):
        return False


def _guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def check_options(opts: Mapping[str, Any]) -> None:
    """Raise `UnsafeConfig` naming every option that would weaken authentication."""
    reasons: list[str] = []

    def need(ok: bool, reason: str) -> None:
        if not ok:
            reasons.append(reason)

    need(opts.get("provider") == "entra-id", "provider must be entra-id")
    issuer = _ISSUER.match(str(opts.get("oidc_issuer_url", "")))
    need(issuer is not None and _guid(issuer["tenant"]), "oidc_issuer_url must be https://login.microsoftonline.com/<tenant GUID>/v2.0 (single tenant)")
    need(bool(opts.get("client_id")), "client_id is required")
    for key in _INLINE_SECRETS:
        need(key not in opts, f"{key} must not be inline: use {key}_file so the config holds no secret")
    need(opts.get("client_secret_file") == CLIENT_SECRET_FILE, f"client_secret_file must be {CLIENT_SECRET_FILE}")
    need(opts.get("cookie_secret_file") == COOKIE_SECRET_FILE, f"cookie_secret_file must be {COOKIE_SECRET_FILE}")
    for key in _INSECURE_KEYS:
        need(opts.get(key) is not True, f"{key} must not be enabled")
    need(opts.get("insecure_oidc_skip_nonce") is False,
         "insecure_oidc_skip_nonce must be set to false explicitly (oauth2-proxy's default is true: no nonce)")
    for key in ("skip_auth_regex", "skip_auth_routes", "api_routes", "trusted_ips"):
        need(not opts.get(key), f"{key} must be empty: no route or address may skip authentication")

    need(opts.get("http_address") == LISTEN_ADDRESS,
         f"http_address must be {LISTEN_ADDRESS} (a Unix socket only the service account can reach), never a TCP address")
    need(not opts.get("https_address") and not opts.get("tls_cert_file"), "oauth2-proxy must not open a TLS listener (TLS ends at the front proxy)")
    need(opts.get("upstreams") == [UPSTREAM], f"upstreams must be [{UPSTREAM!r}] (code-server on loopback)")
    if opts.get("reverse_proxy"):
        need(_loopback_networks(opts.get("trusted_proxy_ips")),
             "trusted_proxy_ips must list only the loopback gateway with reverse_proxy (empty trusts every client's X-Forwarded-*)")

    groups = opts.get("allowed_groups") or []
    claim = opts.get("oidc_groups_claim", "groups")
    need(claim in ("groups", ROLES_CLAIM), f"oidc_groups_claim must be groups (one user group) or {ROLES_CLAIM} (team workspaces)")
    if claim == ROLES_CLAIM:
        _check_team(opts, groups, need)
    else:
        need(all(_guid(g) for g in groups), "allowed_groups must be Entra group object IDs (GUIDs: the groups claim carries IDs)")
        redirect = urlsplit(str(opts.get("redirect_url", "")))
        need(redirect.scheme == "https" and bool(redirect.hostname) and redirect.path == CALLBACK_PATH,
             "redirect_url must be https://<hostname>/oauth2/callback")
    domains = opts.get("email_domains") or []
    need(bool(domains), "email_domains is required")
    need(not ("*" in domains and not groups), "email_domains = * needs allowed_groups, or every account of every tenant gets in")

    scope = str(opts.get("scope", "")).split()
    need("openid" in scope and "offline_access" in scope, "scope must include openid and offline_access (refresh tokens)")
    need(opts.get("code_challenge_method") == "S256", "code_challenge_method must be S256 (PKCE)")
    need(not (opts.get("set_xauthrequest") and opts.get("pass_access_token")),
         "set_xauthrequest with pass_access_token would put the access token in a response header")
    need(opts.get("auth_logging") is not False and opts.get("request_logging") is not False,
         "auth_logging and request_logging must stay on: they are who signed in and what they did")
    need(CALLBACK_PATH in (opts.get("exclude_logging_paths") or []),
         f"exclude_logging_paths must hold {CALLBACK_PATH}: its URI carries the authorization code")
    need(opts.get("whitelist_domains", []) in ([], [ENTRA_HOST]),
         f"whitelist_domains may only be [{ENTRA_HOST!r}] (Entra's sign-out): any other entry is an open redirect after sign-in")

    need(str(opts.get("cookie_name", "")).startswith("__Host-"), "cookie_name must start with __Host- (host-only, Secure, Path=/)")
    need(not opts.get("cookie_domains") and opts.get("cookie_path", "/") == "/", "a __Host- cookie takes no cookie_domains and cookie_path /")
    need(opts.get("cookie_secure") is True, "cookie_secure must be true")
    need(opts.get("cookie_httponly") is True, "cookie_httponly must be true")
    need(opts.get("cookie_samesite") == "lax",
         "cookie_samesite must be lax (strict drops the cookie on the Entra callback: 403; none allows cross-site requests)")
    try:
        expire = parse_go_duration(str(opts.get("cookie_expire", "")))
        refresh = parse_go_duration(str(opts.get("cookie_refresh", "")))
    except ValueError as err:
        reasons.append(f"cookie_expire/cookie_refresh: {err}")
    else:
        need(dt.timedelta(0) < refresh < expire, "cookie_refresh must be set and shorter than cookie_expire")
        need(refresh < ENTRA_TOKEN_LIFETIME, "cookie_refresh must be shorter than Entra ID's 1h token lifetime")
    if reasons:
        raise UnsafeConfig(reasons)


def _check_team(opts: Mapping[str, Any], roles: list[Any], need: Callable[[bool, str], None]) -> None:
    """The team branch of `check_options` (`oidc_groups_claim = roles`)."""
    need(bool(roles), "allowed_groups is required with oidc_groups_claim = roles: without it every account the Entra app admits "
                      "gets past oauth2-proxy")
    need(all(isinstance(r, str) and _ROLE.match(r) for r in roles),
         "allowed_groups must be workspace roles ws.<name> (lower-case letters, digits, '-') with oidc_groups_claim = roles: "
         "group object IDs are not in the roles claim, and a ',' would break the gateway's role match")
    need(len(set(map(str, roles))) == len(roles), "allowed_groups must not repeat a role")
    need("redirect_url" not in opts,
         "redirect_url must be unset with oidc_groups_claim = roles: each workspace host has its own callback, built from the "
         "host the gateway admitted")
    need(opts.get("relative_redirect_url") is not True, "relative_redirect_url must not be enabled (Entra needs the absolute callback)")
    need(opts.get("pass_user_headers") is not False,
         "pass_user_headers must stay on with oidc_groups_claim = roles: it puts the session's roles in X-Forwarded-Groups for "
         "the gateway's router and deletes a client's own copies")


def render(p: OAuth2ProxyParams) -> str:
    """The config file text for `p`, checked by `check_options` first."""
    opts = options(p)
    check_options(opts)
    header = "# oauth2-proxy config, generated by hardened-code-server; secrets are in separate files.\n"
    return header + tomli_w.dumps(opts)


def render_team(p: TeamOAuth2ProxyParams) -> str:
    """The config file text of one VM of a team, checked by `check_options` first."""
    opts = team_options(p)
    check_options(opts)
    header = "# oauth2-proxy config (team workspaces), generated by hardened-code-server; secrets are in separate files.\n"
    return header + tomli_w.dumps(opts)
