#!/usr/bin/env python3
"""A STAND-IN for oauth2-proxy, for the live-path tests only. It is not oauth2-proxy.

No oauth2-proxy binary or image can be had on the test machine, and Entra ID is not reachable, so
the live-path tests put this small program on 127.0.0.1:4180 in its place. It keeps the contract
oauth2-proxy has *as this stack configures it* (reverse-proxy mode, `upstreams` = code-server,
`pass_user_headers`, WebSockets proxied), which is what the plumbing around it depends on:

* a request without a valid session cookie (`_oauth2_proxy`) never reaches the upstream: it gets
  `302 Location: /oauth2/start?rd=<original URI>` (the sign-in entry point; the real proxy then
  hands over to Entra ID, which this stand-in does not model: `/oauth2/start` answers 501);
* a request with a valid session is reverse-proxied to the upstream *transparently*: Host, Origin
  and the `X-Forwarded-*` headers the gateway set pass unchanged; the client's own
  `X-Forwarded-User/Email/Groups/Preferred-Username` are stripped and the session's identity is
  set instead; the peer address is appended to `X-Forwarded-For` (as Go's ReverseProxy does);
* a WebSocket upgrade is forwarded and, once the upstream answers 101, bytes are copied both ways
  untouched, so the upstream's own handshake decision (code-server's Origin check) and its frames
  (ping/pong included) reach the client as they are;
* `/ping` and `/ready` answer `OK` without a session, like oauth2-proxy's health endpoints;
  `/oauth2/auth` answers 202/401 and `/oauth2/userinfo` the identity, for forward-auth designs.

Sessions are not minted here: the test writes a JSON file `{"<cookie value>": {"user": ...,
"email": ...}}` and passes its path, so no session value appears on a command line. What this
tests is the chain around oauth2-proxy (routing, headers, upgrades, loopback binding), never
oauth2-proxy's own authentication, which the product leaves to the real, pinned oauth2-proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import signal
import sys
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import quote

import h11

COOKIE_NAME = "_oauth2_proxy"
# Identity headers oauth2-proxy injects with pass_user_headers; a client must never supply them.
IDENTITY_HEADERS = frozenset({b"x-forwarded-user", b"x-forwarded-email", b"x-forwarded-groups", b"x-forwarded-preferred-username"})
# Hop-by-hop headers (RFC 9110 §7.6.1) are per connection; h11 frames bodies itself.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
PUBLIC_HEALTH_PATHS = frozenset({"/ping", "/ready"})
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024

log = logging.getLogger("standin-oauth2-proxy")


@dataclass(frozen=True)
class Identity:
    """Who a session cookie belongs to, as oauth2-proxy would pass it upstream."""

    user: str
    email: str


@dataclass(frozen=True)
class Config:
    """Where the stand-in listens, what it protects and which sessions it accepts."""

    listen_host: str
    listen_port: int
    upstream_host: str
    upstream_port: int
    sessions: dict[str, Identity]


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


def session_identity(headers: list[tuple[bytes, bytes]], sessions: dict[str, Identity]) -> Identity | None:
    """The identity of the request's `_oauth2_proxy` cookie, or None (compared in constant time)."""
    for name, value in headers:
        if name != b"cookie":
            continue
        jar = SimpleCookie()
        try:
            jar.load(value.decode("latin-1"))
        except CookieError:
            continue
        morsel = jar.get(COOKIE_NAME)
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


def upstream_headers(headers: list[tuple[bytes, bytes]], ident: Identity, peer: str) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream: the client's, minus hop-by-hop and spoofable identity, plus ours."""
    upgrade = _header(headers, b"upgrade") if is_upgrade(headers) else None
    out = [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in IDENTITY_HEADERS and k != b"x-forwarded-for"]
    forwarded_for = b", ".join(v for k, v in headers if k == b"x-forwarded-for")
    out.append((b"x-forwarded-for", forwarded_for + b", " + peer.encode() if forwarded_for else peer.encode()))
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
        return await asyncio.start_server(self._client, self.config.listen_host, self.config.listen_port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_addr = writer.get_extra_info("peername")[0]
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
        while not isinstance(await client.next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
            pass  # a local answer still has to consume the request body
        if client.conn.their_state is h11.MIGHT_SWITCH_PROTOCOL or client.conn.their_state is h11.DONE:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
            await client.send(h11.Response(status_code=status, headers=headers + list(extra)))
            if request.method != b"HEAD":
                await client.send(h11.Data(data=body))
            await client.send(h11.EndOfMessage())
        log.info('%s "%s %s" %d (stand-in)', client.writer.get_extra_info("peername")[0], request.method.decode(), request.target.decode("latin-1"), status)

    async def _one(self, client: _Peer, request: h11.Request, peer: str, upstream: _Peer | None) -> tuple[_Peer | None, bool]:
        """Answer one request; returns the (reusable) upstream connection and whether it switched."""
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        ident = session_identity(request.headers, self.config.sessions)
        if path in PUBLIC_HEALTH_PATHS:
            await self._local(client, request, 200, b"OK")
            return upstream, False
        if path == "/oauth2/start":
            await self._local(client, request, 501, b"oauth2-proxy STAND-IN: the Entra ID sign-in flow is not modelled; tests set the session cookie.\n")
            return upstream, False
        if path == "/oauth2/auth":
            await self._local(client, request, 202 if ident else 401, b"")
            return upstream, False
        if path == "/oauth2/userinfo":
            if ident is None:
                await self._local(client, request, 401, b"")
            else:
                await self._local(client, request, 200, json.dumps({"user": ident.user, "email": ident.email}).encode())
            return upstream, False
        if path == "/oauth2/sign_out":
            clear = (b"set-cookie", f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax".encode())
            await self._local(client, request, 302, b"", (clear, (b"location", b"/")))
            return upstream, False
        if path.startswith("/oauth2/"):
            await self._local(client, request, 404, b"404 page not found\n")
            return upstream, False
        if ident is None:
            location = "/oauth2/start?rd=" + quote(target, safe="")
            await self._local(client, request, 302, b"", ((b"location", location.encode()),))
            return upstream, False
        return await self._proxy(client, request, ident, peer, upstream)

    async def _proxy(self, client: _Peer, request: h11.Request, ident: Identity, peer: str, upstream: _Peer | None) -> tuple[_Peer | None, bool]:
        if upstream is None:
            try:
                reader, writer = await asyncio.open_connection(self.config.upstream_host, self.config.upstream_port)
            except OSError as error:
                log.warning("upstream %s:%d unreachable: %s", self.config.upstream_host, self.config.upstream_port, error)
                await self._local(client, request, 502, b"502 Bad Gateway\n")
                return None, False
            upstream = _Peer(h11.CLIENT, reader, writer)
        headers = upstream_headers(request.headers, ident, peer)
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


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="oauth2-proxy STAND-IN for the live-path tests (not oauth2-proxy).")
    parser.add_argument("--listen", type=_hostport, default=("127.0.0.1", 4180), help="HOST:PORT (default 127.0.0.1:4180)")
    parser.add_argument("--upstream", type=_hostport, default=("127.0.0.1", 8080), help="HOST:PORT of code-server (default 127.0.0.1:8080)")
    parser.add_argument("--sessions", type=Path, required=True, help="JSON file: cookie value -> {user, email}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    config = Config(args.listen[0], args.listen[1], args.upstream[0], args.upstream[1], load_sessions(args.sessions))

    async def run() -> None:
        server = await StandinProxy(config).serve()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("oauth2-proxy STAND-IN listening on %s:%d -> upstream %s:%d", config.listen_host, config.listen_port, config.upstream_host, config.upstream_port)
        print("ready", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
