"""The stand-in's HTTPS endpoints, on Entra v2.0's paths (a small `http.server`, one thread per request).

    GET  /<tenant>/v2.0/.well-known/openid-configuration   discovery (for people; oauth2-proxy skips it)
    GET  /<tenant>/oauth2/v2.0/authorize                    checks the request, then the login form
                                                            (or, with a live IdP session, the code at once)
    POST /<tenant>/login                                    the form: username + password
    POST /<tenant>/oauth2/v2.0/token                        authorization_code (PKCE S256) and refresh_token
    GET  /<tenant>/discovery/v2.0/keys                      JWKS
    GET  /<tenant>/oauth2/v2.0/logout                       ends the IdP session, back to an allowed URI
    POST /stand-in/revoke        (admin bearer token)       revokes a user's refresh tokens and IdP sessions
    GET  /stand-in/events        (admin bearer token)       what happened: sign-ins, grants, logouts (no secrets)

As strict as Entra or stricter: the redirect URI must equal a registered one (no prefix or
wildcard match, AADSTS50011), PKCE with S256 is required (Entra accepts none or `plain`), a client
registered with `require_nonce` (oauth2-proxy's, which the product configures to send one) gets
an `invalid_request` error (AADSTS900144) at its redirect URI for an authorize request without
`nonce`, where Entra insists on a nonce only for ID tokens from the authorize endpoint; the code
is bound to client, redirect URI, challenge and nonce, lives 60 s and works once (a replay also
revokes what it issued, RFC 9700), the client secret is checked on every token call (Basic or
form), refresh tokens rotate (a new one on every use; the used one stays valid until it expires
or is revoked, as with Entra), revocation ends them at once, and post-logout redirects go only to
a registered redirect URI of the client named by `client_id`.

As Entra, the ID token's `groups` claim follows the app registration's `groupMembershipClaims`
(`ApplicationGroup`: only the user's groups assigned to the app; `SecurityGroup`/`All`: all of
them; `None` or unset: no claim; `directory.groups_claim`), its `roles` claim holds the app roles
assigned to the user or to one of the user's groups (`directory.roles_claim`), and `amr` says `pwd` only: the login
form takes a password and nothing else.

Not modelled (they stay Entra's and are not proven by tests using this): MFA (no second factor is
asked, so none is claimed), Conditional Access, the refusal of users without an app role
assignment (Entra refuses an unassigned user before any token exists; here the relying party's
own group check is what decides, so that check stays testable), consent, the groups overage
(`_claim_names`), nested groups, token lifetime policies, front-channel logout of other apps,
and keys rotating during a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from scripts.lab.idp import tokens
from scripts.lab.idp.directory import (
    Client,
    Directory,
    User,
    groups_claim,
    roles_claim,
    secret_matches,
)
from scripts.lab.tls_server import https_server

CODE_LIFETIME = 60
FLOW_LIFETIME = 600
SESSION_COOKIE = "ESTSAUTH"
SESSION_LIFETIME = 8 * 3600
REFRESH_LIFETIME = 24 * 3600
_PKCE_VERIFIER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class AuthRequest:
    """A checked authorize request, waiting for the user (the login form carries only its ID)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str | None
    code_challenge: str
    created: float


@dataclass
class Grant:
    """What an authorization code stands for; `used` makes it single-use."""

    request: AuthRequest
    username: str
    sid: str
    created: float
    used: bool = False
    refresh_digest: str | None = None


@dataclass
class RefreshGrant:
    client_id: str
    username: str
    sid: str
    scope: str
    created: float


@dataclass
class State:
    """Everything the stand-in remembers, in memory (a restart signs everyone out)."""

    directory: Directory
    signer: tokens.Signer = field(default_factory=tokens.Signer)
    requests: dict[str, AuthRequest] = field(default_factory=dict)
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)  # IdP session id -> (username, created)
    codes: dict[str, Grant] = field(default_factory=dict)  # digest -> grant
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)  # digest -> grant
    revoked: dict[str, str] = field(default_factory=dict)  # digest -> username, to name refused refreshes
    events: list[dict[str, Any]] = field(default_factory=list)
    admin_token: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, kind: str, **details: Any) -> None:
        self.events.append({"time": time.time(), "event": kind, **details})

    def revoke_user(self, username: str) -> int:
        """Revoke every refresh token and IdP session of `username`, as Entra's revokeSignInSessions does."""
        doomed = [d for d, g in self.refresh.items() if g.username == username]
        for digest in doomed:
            del self.refresh[digest]
            self.revoked[digest] = username
        for sid in [s for s, (user, _) in self.sessions.items() if user == username]:
            del self.sessions[sid]
        self.event("revoke", user=username, refresh_tokens=len(doomed))
        return len(doomed)


class _Refused(Exception):
    """An OAuth error answer: `error` and `description` as Entra names them."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:26em;margin:4em auto}}label,input{{display:block;width:100%;margin:.4em 0}}
.banner{{background:#fde7c8;padding:.5em;border-radius:4px}}.error{{color:#a4262c}}</style></head>
<body><p class="banner">Test identity provider &mdash; a stand-in for Microsoft Entra ID. Not Entra.</p>
<h1>{title}</h1>{body}</body></html>
"""

_FORM = """<form method="post" action="/{tenant}/login">
<input type="hidden" name="flow" value="{flow}">
<label for="username">Email or username</label><input id="username" name="username" type="email" autocomplete="username" value="{username}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
{error}<input id="signin" type="submit" value="Sign in"></form>
"""


class Handler(BaseHTTPRequestHandler):
    """One request. Secrets (passwords, codes, tokens) are never logged, only events without them."""

    server_version = "EntraStandIn/1"
    state: State  # set on the subclass made by `make_server`

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # The request line holds codes and state; log method and path only.
        print(f"{self.address_string()} {self.command} {urlsplit(self.path).path} {args[1] if len(args) > 1 else ''}", flush=True)

    # --- plumbing ----------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self.state.directory.tenant_id

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None, cookies: list[str] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

    def _page(self, status: int, title: str, body: str, cookies: list[str] = ()) -> None:
        # form-action also governs where the form's answer may redirect: the clients' callbacks.
        origins = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for c in self.state.directory.clients.values() for u in c.redirect_uris})
        csp = f"default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {' '.join(origins)}; frame-ancestors 'none'"
        headers = {"Content-Security-Policy": csp, "X-Frame-Options": "DENY"}
        self._send(status, _PAGE.format(title=html.escape(title), body=body).encode(), "text/html; charset=utf-8", headers, cookies)

    def _redirect(self, location: str, cookies: list[str] = ()) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": location}, cookies)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            raise _Refused(413, "invalid_request", "request too large")
        if length and not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            raise _Refused(400, "invalid_request", "AADSTS900144: expected application/x-www-form-urlencoded")
        return self._single(parse_qs(self.rfile.read(length).decode(), keep_blank_values=True))

    @staticmethod
    def _single(query: dict[str, list[str]]) -> dict[str, str]:
        for name, values in query.items():
            if len(values) != 1:
                raise _Refused(400, "invalid_request", f"AADSTS90015: parameter {name} given more than once")
        return {k: v[0] for k, v in query.items()}

    def _query(self) -> dict[str, str]:
        return self._single(parse_qs(urlsplit(self.path).query, keep_blank_values=True))

    def _idp_session(self) -> tuple[str, str] | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        sid = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else ""
        entry = self.state.sessions.get(sid)
        if entry is None or time.time() - entry[1] > SESSION_LIFETIME:
            return None
        return sid, entry[0]

    def _admin(self) -> bool:
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        return bool(self.state.admin_token) and hmac.compare_digest(given.encode(), self.state.admin_token.encode())

    # --- routing -----------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route({
            f"/{self.tenant}/v2.0/.well-known/openid-configuration": self.discovery,
            f"/{self.tenant}/oauth2/v2.0/authorize": self.authorize,
            f"/{self.tenant}/discovery/v2.0/keys": self.keys,
            f"/{self.tenant}/oauth2/v2.0/logout": self.logout,
            "/stand-in/events": self.events,
        })

    def do_POST(self) -> None:
        self._route({
            f"/{self.tenant}/login": self.login,
            f"/{self.tenant}/oauth2/v2.0/token": self.token,
            "/stand-in/revoke": self.revoke,
        })

    def _route(self, routes: dict[str, Any]) -> None:
        handler = routes.get(urlsplit(self.path).path)
        try:
            if handler is None:
                raise _Refused(404, "not_found", "no such endpoint")
            with self.state.lock:
                handler()
        except _Refused as refused:
            if urlsplit(self.path).path.endswith(("/token", "/revoke", "/events")):
                self._json(refused.status, {"error": refused.error, "error_description": refused.description})
            else:
                self._page(refused.status, "Sign-in error", f'<p class="error">{html.escape(refused.description)}</p>')

    # --- endpoints ---------------------------------------------------------------------

    def discovery(self) -> None:
        base = f"https://{self.headers.get('Host')}/{self.tenant}"
        self._json(200, {
            "issuer": tokens.issuer(self.tenant),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["pairwise"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        })

    def keys(self) -> None:
        self._json(200, self.state.signer.jwks())

    def _client(self, client_id: str) -> Client:
        client = self.state.directory.clients.get(client_id)
        if client is None:
            raise _Refused(400, "unauthorized_client", f"AADSTS700016: application {client_id!r} was not found in the tenant")
        return client

    def authorize(self) -> None:
        q = self._query()
        client = self._client(q.get("client_id", ""))
        # A wrong redirect URI is never redirected to (it is exactly what an attacker would send).
        if q.get("redirect_uri") not in client.redirect_uris:
            raise _Refused(400, "invalid_request", "AADSTS50011: the redirect URI does not match the redirect URIs configured for the application")
        if q.get("response_type") != "code":
            raise _Refused(400, "unsupported_response_type", "AADSTS700054: only response_type=code is enabled for this application")
        if "openid" not in q.get("scope", "").split():
            raise _Refused(400, "invalid_scope", "AADSTS70011: scope must include openid")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            raise _Refused(400, "invalid_request", "PKCE required: code_challenge (43 characters) with code_challenge_method=S256")
        if not q.get("state"):
            raise _Refused(400, "invalid_request", "state is required (CSRF protection of the relying party)")
        if client.require_nonce and not q.get("nonce"):
            # Client and redirect URI are verified, so the error goes back to the client (RFC 6749
            # §4.1.2.1), with Entra's code for a missing required parameter; no form, no code.
            self.state.event("authorize-refused", client_id=client.client_id, reason="nonce missing")
            error = {"error": "invalid_request", "error_description": "AADSTS900144: The request body must contain the following parameter: 'nonce'.",
                     "state": q["state"]}
            self._redirect(f"{q['redirect_uri']}?{urlencode(error)}")
            return
        request = AuthRequest(client.client_id, q["redirect_uri"], q["scope"], q["state"], q.get("nonce") or None, q["code_challenge"], time.time())
        session = self._idp_session()
        if session is not None and q.get("prompt") != "login":
            self.state.event("sso", user=session[1], client_id=client.client_id)
            self._redirect(self._issue_code(request, session[1], session[0]))
            return
        flow = secrets.token_urlsafe(24)
        self.state.requests[flow] = request
        self._page(200, "Sign in", _FORM.format(tenant=self.tenant, flow=flow, username=html.escape(q.get("login_hint", "")), error=""))

    def login(self) -> None:
        form = self._form()
        request = self.state.requests.get(form.get("flow", ""))
        if request is None or time.time() - request.created > FLOW_LIFETIME:
            raise _Refused(400, "invalid_request", "AADSTS50058: the sign-in request expired or is unknown; start again from the application")
        user = self.state.directory.user(form.get("username", ""))
        if user is None or not secret_matches(form.get("password", ""), user.password_scrypt):
            self.state.event("sign-in-failed", user=form.get("username", "")[:100])
            error = '<p class="error" id="error">AADSTS50126: invalid username or password.</p>'
            self._page(200, "Sign in", _FORM.format(tenant=self.tenant, flow=html.escape(form["flow"]), username=html.escape(form.get("username", "")), error=error))
            return
        del self.state.requests[form["flow"]]
        sid = str(uuid.uuid4())
        self.state.sessions[sid] = (user.username, time.time())
        self.state.event("sign-in", user=user.username, client_id=request.client_id)
        cookie = f"{SESSION_COOKIE}={sid}; Path=/; Secure; HttpOnly; SameSite=None"
        self._redirect(self._issue_code(request, user.username, sid), [cookie])

    def _issue_code(self, request: AuthRequest, username: str, sid: str) -> str:
        code = secrets.token_urlsafe(48)
        self.state.codes[_digest(code)] = Grant(request, username, sid, time.time())
        return f"{request.redirect_uri}?{urlencode({'code': code, 'state': request.state, 'session_state': sid})}"

    def _authenticate_client(self, form: dict[str, str]) -> Client:
        basic = self.headers.get("Authorization") or ""
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if form.get("client_id", client_id) != client_id:
                raise _Refused(400, "invalid_request", "client_id differs between Authorization and body")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.state.directory.clients.get(client_id)
        if client is None or not secret or not secret_matches(secret, client.secret_scrypt):
            raise _Refused(401, "invalid_client", "AADSTS7000215: invalid client secret provided")
        return client

    def token(self) -> None:
        form = self._form()
        client = self._authenticate_client(form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            self._json(200, self._redeem_code(client, form))
        elif grant_type == "refresh_token":
            self._json(200, self._redeem_refresh(client, form))
        else:
            raise _Refused(400, "unsupported_grant_type", f"AADSTS70003: grant_type {grant_type!r} is not supported")

    def _redeem_code(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        grant = self.state.codes.get(_digest(form.get("code", "")))
        if grant is None:
            raise _Refused(400, "invalid_grant", "AADSTS70000: the authorization code is unknown")
        if grant.used:
            # A replayed code: refuse, and revoke what the first redemption issued (RFC 9700 §4.5).
            if grant.refresh_digest:
                self.state.refresh.pop(grant.refresh_digest, None)
            self.state.event("token", grant_type="authorization_code", user=grant.username, ok=False, reason="code replayed")
            raise _Refused(400, "invalid_grant", "AADSTS54005: the authorization code was already redeemed")
        grant.used = True
        request = grant.request
        checks = (
            (time.time() - grant.created <= CODE_LIFETIME, "AADSTS70008: the authorization code has expired"),
            (request.client_id == client.client_id, "AADSTS70000: the code was issued to another client"),
            (form.get("redirect_uri") == request.redirect_uri, "AADSTS70000: redirect_uri differs from the authorize request"),
            (self._pkce_ok(form.get("code_verifier", ""), request.code_challenge), "AADSTS501481: the code_verifier does not match the code_challenge"),
        )
        for ok, description in checks:
            if not ok:
                self.state.event("token", grant_type="authorization_code", user=grant.username, ok=False, reason=description)
                raise _Refused(400, "invalid_grant", description)
        user = self.state.directory.users[grant.username]
        response, digest = self._tokens(client, user, grant.sid, request.scope, request.nonce)
        grant.refresh_digest = digest
        self.state.event("token", grant_type="authorization_code", user=user.username, ok=True)
        return response

    @staticmethod
    def _pkce_ok(verifier: str, challenge: str) -> bool:
        if not 43 <= len(verifier) <= 128 or not set(verifier) <= _PKCE_VERIFIER:
            return False
        return hmac.compare_digest(s256(verifier), challenge)

    def _redeem_refresh(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        digest = _digest(form.get("refresh_token", ""))
        grant = self.state.refresh.get(digest)
        if grant is None or grant.client_id != client.client_id or time.time() - grant.created > REFRESH_LIFETIME:
            user = grant.username if grant else self.state.revoked.get(digest)
            self.state.event("token", grant_type="refresh_token", user=user, ok=False, reason="refresh token unknown, revoked or expired")
            raise _Refused(400, "invalid_grant", "AADSTS70043: the refresh token has expired or is invalid due to sign-in frequency checks by conditional access")
        # Rotation as Entra does it: every use returns a new refresh token, and the used one stays
        # valid until it expires or is revoked. (A single-use rule here logged users out: after
        # cookie_refresh the workbench's parallel requests each refresh with the same token, since
        # oauth2-proxy's cookie sessions have no lock, and all but one got invalid_grant.)
        user = self.state.directory.users[grant.username]
        response, _ = self._tokens(client, user, grant.sid, grant.scope, None)
        self.state.event("token", grant_type="refresh_token", user=user.username, ok=True)
        return response

    def _tokens(self, client: Client, user: User, sid: str, scope: str, nonce: str | None) -> tuple[dict[str, Any], str | None]:
        response: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scope.split() if s != "openid") + " User.Read",
            "expires_in": tokens.TOKEN_LIFETIME - 1,
            "ext_expires_in": tokens.TOKEN_LIFETIME - 1,
            "access_token": tokens.access_token(self.state.signer, self.tenant, client.client_id, user, sid, scope),
            "id_token": tokens.id_token(self.state.signer, self.tenant, client.client_id, user, sid, nonce, groups_claim(client, user),
                                        roles=roles_claim(client, user)),
        }
        digest = None
        if "offline_access" in scope.split():
            refresh = tokens.refresh_token()
            digest = _digest(refresh)
            self.state.refresh[digest] = RefreshGrant(client.client_id, user.username, sid, scope, time.time())
            response["refresh_token"] = refresh
        return response, digest

    def logout(self) -> None:
        q = self._query()
        session = self._idp_session()
        if session is not None:
            del self.state.sessions[session[0]]
        self.state.event("logout", user=session[1] if session else None)
        clear = f"{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=None; Max-Age=0"
        target = q.get("post_logout_redirect_uri", "")
        # Only back to a URI registered for the client the request names (OIDC RP-initiated logout).
        allowed = set(self._client(q["client_id"]).redirect_uris) if q.get("client_id") else set()
        if target in allowed:
            self._redirect(target + (f"?{urlencode({'state': q['state']})}" if q.get("state") else ""), [clear])
        else:
            # Entra shows its own page when the URI is missing or not registered; it never redirects there.
            self._page(200, "Signed out", "<p id=\"signed-out\">You signed out of your account. Close the browser window.</p>", [clear])

    def revoke(self) -> None:
        if not self._admin():
            raise _Refused(401, "unauthorized", "admin token required")
        form = self._form()
        self._json(200, {"revoked": self.state.revoke_user(form.get("username", "").lower())})

    def events(self) -> None:
        if not self._admin():
            raise _Refused(401, "unauthorized", "admin token required")
        self._json(200, self.state.events)


def make_server(state: State, host: str, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    """The HTTPS server (TLS 1.2+) on `host:port`; `serve_forever()` runs it."""
    handler = type("BoundHandler", (Handler,), {"state": state})
    return https_server(handler, host, port, cert, key)
