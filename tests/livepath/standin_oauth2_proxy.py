#!/usr/bin/env python3
"""A STAND-IN for oauth2-proxy, for the live-path tests only. It is not oauth2-proxy.

No oauth2-proxy binary or image can be had on the test machine, and Entra ID is not reachable, so
the live-path tests put this small program where oauth2-proxy listens (its Unix socket, or a TCP address). It reads
the oauth2-proxy config file the stack renders and keeps oauth2-proxy's contract *as that file
configures it* (behaviour taken from oauth2-proxy v7's `oauthproxy.go`), which is what the plumbing
around it depends on:

* a request without a valid session cookie (`cookie_name`) never reaches the upstream. Like
  oauth2-proxy's `ErrNeedsLogin` branch: an Ajax request (`Accept: application/json`) gets 401;
  otherwise, with `skip_provider_button`, a 302 that starts the sign-in at the identity provider
  (Entra ID's authorize endpoint, derived from `oidc_issuer_url`, with `client_id`,
  `redirect_url`, `scope` and a `state` that carries the original URI), and without it a 403
  sign-in page. `<proxy_prefix>/start` and `/sign_in` start the sign-in the same way;
* a request with a valid session is reverse-proxied to the single upstream *transparently*: with
  `pass_host_header` the Host is kept, Origin and the `X-Forwarded-*` headers the gateway set pass
  unchanged; the client's own `X-Forwarded-User/Email/Groups/Preferred-Username` are stripped and
  the session's identity is set instead (`pass_user_headers`); the peer address is appended to
  `X-Forwarded-For`, as Go's ReverseProxy does;
* with `proxy_websockets`, an upgrade is forwarded and, once the upstream answers 101, bytes are
  copied both ways untouched, so the upstream's own handshake decision (code-server's Origin
  check) and its frames (ping/pong included) reach the client as they are;
* `ping_path` and `ready_path` answer `OK` without a session; `<proxy_prefix>/auth` answers
  202/401 and `/userinfo` the identity; other `<proxy_prefix>/` paths are the proxy's own (404).

Options that would change who gets through (`skip_auth_routes`, `api_routes`, ...) are not
modelled, so a config that sets them is refused rather than silently misrepresented; the session
and sign-in internals (secrets, cookie flags, groups, domains) are listed in
`NOT_MODELLED` and ignored, because no sign-in happens here. Sessions are not minted: the test
writes `{"<cookie value>": {"user": ..., "email": ...}}` to a file whose path it passes, so no
session value appears on a command line.

What this tests is the chain around oauth2-proxy (routing, headers, upgrades, loopback binding),
never oauth2-proxy's own authentication, which the product leaves to the real, pinned oauth2-proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import re
import secrets
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import h11

# Identity headers oauth2-proxy injects with pass_user_headers; a client must never supply them.
IDENTITY_HEADERS = frozenset({b"x-forwarded-user", b"x-forwarded-email", b"x-forwarded-groups", b"x-forwarded-preferred-username"})
# Hop-by-hop headers (RFC 9110 §7.6.1) are per connection; h11 frames bodies itself.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
# oauth2-proxy options this stand-in implements (see the module docstring).
MODELLED = frozenset(
    {
        "http_address", "upstreams", "cookie_name", "skip_provider_button", "oidc_issuer_url", "client_id",
        "redirect_url", "scope", "pass_host_header", "proxy_websockets", "pass_user_headers", "ping_path",
        "ready_path", "proxy_prefix", "reverse_proxy", "pass_basic_auth", "pass_access_token",
    }
)
# Sign-in and session internals: meaningful only to a real sign-in, which never happens here.
NOT_MODELLED = frozenset(
    {
        "provider", "client_secret_file", "code_challenge_method", "allowed_groups", "email_domains",
        "cookie_secret_file", "cookie_secure", "cookie_httponly", "cookie_samesite", "cookie_path",
        "cookie_expire", "cookie_refresh", "cookie_domains", "session_store_type", "silence_ping_logging",
        "show_debug_on_error", "trusted_proxy_ips", "real_client_ip_header", "request_logging", "auth_logging",
        "standard_logging", "skip_claims_from_profile_url", "oidc_groups_claim", "oidc_email_claim",
    }
)
_ENTRA_ISSUER = re.compile(r"^https://login\.microsoftonline\.com/(?P<tenant>[0-9a-fA-F-]{36})/v2\.0$")


@dataclass(frozen=True)
class Identity:
    """Who a session cookie belongs to, as oauth2-proxy would pass it upstream."""

    user: str
    email: str


@dataclass(frozen=True)
class Config:
    """The modelled part of an oauth2-proxy config, plus the sessions the test made up."""

    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int
    sessions: dict[str, Identity]
    cookie_name: str = "_oauth2_proxy"
    authorize_url: str = ""
    client_id: str = ""
    redirect_url: str = ""
    scope: str = ""
    skip_provider_button: bool = False
    pass_host_header: bool = True
    proxy_websockets: bool = True
    pass_user_headers: bool = True
    ping_path: str = "/ping"
    ready_path: str = "/ready"
    proxy_prefix: str = "/oauth2"
    #: `http_address = "unix://<path>"`: listen on that Unix socket instead of listen_host:listen_port.
    listen_socket: str = ""


def _hostport(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{what}: expected HOST:PORT, got {value!r}")
    return host, int(port)


def config_from_options(options: Mapping[str, Any], sessions: dict[str, Identity]) -> Config:
    """Map oauth2-proxy options (config-file names) onto the stand-in, refusing what it cannot model."""
    unknown = sorted(set(options) - MODELLED - NOT_MODELLED)
    if unknown:
        raise ValueError(f"oauth2-proxy options not modelled by the stand-in (refused, not ignored): {', '.join(unknown)}")
    for flag in ("pass_basic_auth", "pass_access_token"):
        if options.get(flag):
            raise ValueError(f"{flag}: the stand-in does not model passing credentials upstream")
    upstreams = options.get("upstreams") or []
    if len(upstreams) != 1 or urlsplit(upstreams[0]).scheme != "http" or urlsplit(upstreams[0]).path not in ("", "/"):
        raise ValueError(f"upstreams: the stand-in models exactly one http://HOST:PORT upstream, got {upstreams!r}")
    upstream = urlsplit(upstreams[0])
    address = str(options.get("http_address", "127.0.0.1:4180"))
    # oauth2-proxy's own rule (pkg/proxyhttp/server.go): `unix://<path>` is a Unix socket.
    listen_socket = address[len("unix://"):] if address.startswith("unix://") else ""
    if listen_socket and not listen_socket.startswith("/"):
        raise ValueError(f"http_address: expected unix:///absolute/path, got {address!r}")
    listen_host, listen_port = ("", 0) if listen_socket else _hostport(address, "http_address")
    authorize_url = ""
    issuer = str(options.get("oidc_issuer_url", ""))
    if issuer:
        match = _ENTRA_ISSUER.match(issuer)
        if not match:
            raise ValueError(f"oidc_issuer_url: the stand-in knows Entra ID issuers only, got {issuer!r}")
        # What Entra's discovery document announces for this issuer.
        authorize_url = f"https://login.microsoftonline.com/{match['tenant']}/oauth2/v2.0/authorize"
    if options.get("skip_provider_button") and not authorize_url:
        raise ValueError("skip_provider_button needs oidc_issuer_url to know where sign-in starts")
    return Config(
        listen_host=listen_host,
        listen_port=listen_port,
        listen_socket=listen_socket,
        upstream_host=upstream.hostname or "",
        upstream_port=upstream.port or 80,
        sessions=sessions,
        cookie_name=str(options.get("cookie_name", "_oauth2_proxy")),
        authorize_url=authorize_url,
        client_id=str(options.get("client_id", "")),
        redirect_url=str(options.get("redirect_url", "")),
        scope=str(options.get("scope", "")),
        skip_provider_button=bool(options.get("skip_provider_button", False)),
        pass_host_header=bool(options.get("pass_host_header", True)),
        proxy_websockets=bool(options.get("proxy_websockets", True)),
        pass_user_headers=bool(options.get("pass_user_headers", True)),
        ping_path=str(options.get("ping_path", "/ping")),
        ready_path=str(options.get("ready_path", "/ready")),
        proxy_prefix=str(options.get("proxy_prefix", "/oauth2")).rstrip("/"),
    )


log = logging.getLogger("standin-oauth2-proxy")


def load_sessions(path: Path) -> dict[str, Identity]:
    """Read `{"<cookie value>": {"user": ..., "email": ...}}`; reject anything else loudly."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a non-empty JSON object of cookie value -> identity")
    sessions: dict[str, Identity] = {}
    for value, ident in raw.items():
        if not isinstance(ident, dict) or not isinstance(ident.get("user"), str) or not isinstance(ident.get("email"), str):
            raise ValueError(f"{path}: session entries need string 'user' and 'email'")
        if len(value) < 16:
            raise ValueError(f"{path}: session values must be at least 16 characters")
        sessions[value] = Identity(user=ident["user"], email=ident["email"])
    return sessions


def session_identity(headers: list[tuple[bytes, bytes]], cookie_name: str, sessions: dict[str, Identity]) -> Identity | None:
    """The identity of the request's session cookie, or None (compared in constant time)."""
    for name, value in headers:
        if name != b"cookie":
            continue
        jar = SimpleCookie()
        try:
            jar.load(value.decode("latin-1"))
        except CookieError:
            continue
        morsel = jar.get(cookie_name)
        if morsel is None:
            continue
        for known, ident in sessions.items():
            if hmac.compare_digest(morsel.value.encode(), known.encode()):
                return ident
    return None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def is_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    connection = b",".join(v for k, v in headers if k == b"connection").lower()
    return b"upgrade" in [token.strip() for token in connection.split(b",")] and _header(headers, b"upgrade") is not None


def upstream_headers(headers: list[tuple[bytes, bytes]], ident: Identity, peer: str, config: Config) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream: the client's, minus hop-by-hop and spoofable identity, plus ours."""
    upgrade = _header(headers, b"upgrade") if is_upgrade(headers) else None
    out = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in IDENTITY_HEADERS and k != b"x-forwarded-for"]
    if not config.pass_host_header:
        out = [(k, v) for k, v in out if k != b"host"] + [(b"host", f"{config.upstream_host}:{config.upstream_port}".encode())]
    forwarded_for = b", ".join(v for k, v in headers if k == b"x-forwarded-for")
    if peer == "@":
        # A Unix-socket peer has no address: oauth2-proxy then passes X-Forwarded-For unchanged
        # (its reverse proxy's SplitHostPort fails and nothing is appended, pkg/upstream/http.go).
        if forwarded_for:
            out.append((b"x-forwarded-for", forwarded_for))
    else:
        out.append((b"x-forwarded-for", forwarded_for + b", " + peer.encode() if forwarded_for else peer.encode()))
    if config.pass_user_headers:
        out.append((b"x-forwarded-user", ident.user.encode()))
        out.append((b"x-forwarded-email", ident.email.encode()))
    if upgrade is not None:
        out += [(b"connection", b"Upgrade"), (b"upgrade", upgrade)]
    return out


def response_headers(headers: list[tuple[bytes, bytes]], switching: bool) -> list[tuple[bytes, bytes]]:
    out = [(k, v) for k, v in headers if k not in HOP_BY_HOP]
    if switching:
        out += [(b"connection", b"Upgrade"), (b"upgrade", _header(headers, b"upgrade") or b"websocket")]
    return out


class _Peer:
    """One side of a connection: an asyncio stream and its h11 state machine."""

    def __init__(self, role: type, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = h11.Connection(role, max_incomplete_event_size=MAX_HEAD)
        self.reader = reader
        self.writer = writer

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(CHUNK))

    async def send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


class StandinProxy:
    """Serves the stand-in contract described in the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def serve(self) -> asyncio.Server:
        if self.config.listen_socket:
            return await asyncio.start_unix_server(self._client, self.config.listen_socket)
        return await asyncio.start_server(self._client, self.config.listen_host, self.config.listen_port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        # A Unix-socket peer has no address; Go reports it as "@" (oauth2-proxy logs that).
        peer_addr = peer[0] if isinstance(peer, tuple) else "@"
        client = _Peer(h11.SERVER, reader, writer)
        upstream: _Peer | None = None
        try:
            while True:
                request = await client.next_event()
                if not isinstance(request, h11.Request):
                    return
                upstream, switched = await self._one(client, request, peer_addr, upstream)
                if switched:
                    return
                if client.conn.our_state is h11.MUST_CLOSE or client.conn.their_state is h11.MUST_CLOSE:
                    return
                client.conn.start_next_cycle()
                if upstream is not None:
                    if upstream.conn.our_state is h11.DONE and upstream.conn.their_state is h11.DONE:
                        upstream.conn.start_next_cycle()
                    else:
                        upstream.close()
                        upstream = None
        except (h11.ProtocolError, ConnectionError, asyncio.IncompleteReadError) as error:
            log.info("%s: connection ended: %s", peer_addr, error)
        finally:
            if upstream is not None:
                upstream.close()
            writer.close()

    async def _local(self, client: _Peer, request: h11.Request, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Answer from the stand-in itself (never the upstream)."""
        while not isinstance(await client.next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
            pass  # a local answer still has to consume the request body
        if client.conn.their_state is h11.MIGHT_SWITCH_PROTOCOL or client.conn.their_state is h11.DONE:
            headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"), *extra]
            if not any(name == b"content-type" for name, _ in headers):
                headers.append((b"content-type", b"text/plain; charset=utf-8"))
            await client.send(h11.Response(status_code=status, headers=headers))
            if request.method != b"HEAD":
                await client.send(h11.Data(data=body))
            await client.send(h11.EndOfMessage())
        log.info('%s "%s %s" %d (stand-in)', client.writer.get_extra_info("peername")[0], request.method.decode(), request.target.decode("latin-1"), status)

    def _sign_in_start(self, rd: str) -> tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]:
        """Where an unauthenticated browser is sent: the IdP (skip_provider_button) or a sign-in page."""
        c = self.config
        if not c.skip_provider_button:
            page = f'<a href="{c.proxy_prefix}/start?rd={quote(rd, safe="")}">Sign in (oauth2-proxy STAND-IN)</a>\n'
            return 403, page.encode(), ((b"content-type", b"text/html; charset=utf-8"),)
        query = urlencode(
            {"client_id": c.client_id, "redirect_uri": c.redirect_url, "response_type": "code", "scope": c.scope, "state": f"{secrets.token_urlsafe(16)}:{rd}"}
        )
        return 302, b"", ((b"location", f"{c.authorize_url}?{query}".encode()),)

    async def _one(self, client: _Peer, request: h11.Request, peer: str, upstream: _Peer | None) -> tuple[_Peer | None, bool]:
        """Answer one request; returns the (reusable) upstream connection and whether it switched."""
        c = self.config
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        ident = session_identity(request.headers, c.cookie_name, c.sessions)
        if path in (c.ping_path, c.ready_path):
            await self._local(client, request, 200, b"OK")
        elif path in (f"{c.proxy_prefix}/start", f"{c.proxy_prefix}/sign_in"):
            rd = (parse_qs(urlsplit(target).query).get("rd") or ["/"])[0]
            await self._local(client, request, *self._sign_in_start(rd))
        elif path == f"{c.proxy_prefix}/callback":
            await self._local(client, request, 403, b"oauth2-proxy STAND-IN: no sign-in to complete; tests set the session cookie.\n")
        elif path == f"{c.proxy_prefix}/auth":
            await self._local(client, request, 202 if ident else 401, b"")
        elif path == f"{c.proxy_prefix}/userinfo":
            body = json.dumps({"user": ident.user, "email": ident.email}).encode() if ident else b""
            await self._local(client, request, 200 if ident else 401, body)
        elif path == f"{c.proxy_prefix}/sign_out":
            clear = (b"set-cookie", f"{c.cookie_name}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax".encode())
            await self._local(client, request, 302, b"", (clear, (b"location", b"/")))
        elif path.startswith(f"{c.proxy_prefix}/"):
            await self._local(client, request, 404, b"404 page not found\n")
        elif ident is None:
            accept = [item.split(";")[0].strip() for item in (_header(request.headers, b"accept") or b"").decode("latin-1").split(",")]
            if "application/json" in accept:  # oauth2-proxy's isAjax: no point redirecting
                await self._local(client, request, 401, json.dumps({"code": 401, "message": "Unauthorized"}).encode())
            else:
                await self._local(client, request, *self._sign_in_start(target))
        elif is_upgrade(request.headers) and not c.proxy_websockets:
            await self._local(client, request, 400, b"WebSockets are not proxied\n")
        else:
            return await self._proxy(client, request, ident, peer, upstream)
        return upstream, False

    async def _proxy(self, client: _Peer, request: h11.Request, ident: Identity, peer: str, upstream: _Peer | None) -> tuple[_Peer | None, bool]:
        if upstream is None:
            try:
                reader, writer = await asyncio.open_connection(self.config.upstream_host, self.config.upstream_port)
            except OSError as error:
                log.warning("upstream %s:%d unreachable: %s", self.config.upstream_host, self.config.upstream_port, error)
                await self._local(client, request, 502, b"502 Bad Gateway\n")
                return None, False
            upstream = _Peer(h11.CLIENT, reader, writer)
        headers = upstream_headers(request.headers, ident, peer, self.config)
        await upstream.send(h11.Request(method=request.method, target=request.target, headers=headers))
        while True:
            event = await client.next_event()
            if isinstance(event, h11.Data):
                await upstream.send(event)
            elif isinstance(event, h11.EndOfMessage):
                await upstream.send(h11.EndOfMessage())
                break
            else:  # the client went away mid-body
                upstream.close()
                return None, True
        while True:
            event = await upstream.next_event()
            if isinstance(event, h11.InformationalResponse):
                switching = event.status_code == 101
                await client.send(h11.InformationalResponse(status_code=event.status_code, headers=response_headers(event.headers, switching), reason=event.reason))
                if switching:
                    log.info('%s "%s %s" 101 user=%s', peer, request.method.decode(), request.target.decode("latin-1"), ident.user)
                    await self._tunnel(client, upstream)
                    return None, True
            elif isinstance(event, h11.Response):
                await client.send(h11.Response(status_code=event.status_code, headers=response_headers(event.headers, False), reason=event.reason))
                log.info('%s "%s %s" %d user=%s', peer, request.method.decode(), request.target.decode("latin-1"), event.status_code, ident.user)
            elif isinstance(event, h11.Data):
                await client.send(event)
            elif isinstance(event, h11.EndOfMessage):
                await client.send(h11.EndOfMessage())
                return upstream, False
            else:
                raise ConnectionError("upstream closed the connection mid-response")

    async def _tunnel(self, client: _Peer, upstream: _Peer) -> None:
        """After a 101, copy bytes both ways untouched until either side closes."""
        client_rest, _ = client.conn.trailing_data
        upstream_rest, _ = upstream.conn.trailing_data
        if upstream_rest:
            client.writer.write(upstream_rest)
        if client_rest:
            upstream.writer.write(client_rest)
        tasks = [asyncio.create_task(_pipe(client.reader, upstream.writer)), asyncio.create_task(_pipe(upstream.reader, client.writer))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="oauth2-proxy STAND-IN for the live-path tests (not oauth2-proxy).")
    parser.add_argument("--config", type=Path, required=True, help="the oauth2-proxy config file (TOML) the stack renders")
    parser.add_argument("--sessions", type=Path, required=True, help="JSON file: cookie value -> {user, email}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    options = tomllib.loads(args.config.read_text(encoding="utf-8"))
    config = config_from_options(options, load_sessions(args.sessions))

    async def run() -> None:
        server = await StandinProxy(config).serve()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        where = config.listen_socket or f"{config.listen_host}:{config.listen_port}"
        log.info("oauth2-proxy STAND-IN listening on %s -> upstream %s:%d", where, config.upstream_host, config.upstream_port)
        print("ready", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
