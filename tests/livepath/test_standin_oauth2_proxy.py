"""Fast tests of the oauth2-proxy STAND-IN: its contract, checked against real local upstreams.

The upstreams are a real HTTP server (stdlib) that echoes what it received, and a real WebSocket
server (`websockets`) with an Origin allowlist, standing where code-server stands; clients are
`httpx` and `websockets`. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import tomli_w
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tests.livepath import standin_oauth2_proxy as standin

SESSION = "s3ss10n-value-for-tests-0123456789"
IDENT = standin.Identity(user="alice", email="alice@example.com")
ORIGIN = "https://code.example.com"
TENANT = "11111111-2222-3333-4444-555555555555"
# The options the stack renders for oauth2-proxy (the shape of components/gateway's renderer).
OPTIONS = {
    "provider": "entra-id",
    "oidc_issuer_url": f"https://login.microsoftonline.com/{TENANT}/v2.0",
    "client_id": "00000000-0000-0000-0000-000000000001",
    "redirect_url": "https://code.example.com/oauth2/callback",
    "scope": "openid email profile offline_access",
    "skip_provider_button": True,
    "http_address": "127.0.0.1:4180",
    "upstreams": ["http://127.0.0.1:8080"],
    "pass_host_header": True,
    "proxy_websockets": True,
    "reverse_proxy": True,
    "cookie_name": "__Host-oauth2_proxy",
    "cookie_secure": True,
    "ping_path": "/oauth2/ping",
    "ready_path": "/oauth2/ready",
}
COOKIE = f"__Host-oauth2_proxy={SESSION}"


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received, as JSON (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        _Echo.seen.append(self.path)
        payload = json.dumps({"method": self.command, "path": self.path, "headers": [[k.lower(), v] for k, v in self.headers.items()], "body": body}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("x-upstream", "echo")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Loop:
    """An asyncio loop in a thread, so the stand-in and WebSocket upstream serve synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def loop() -> Iterator[_Loop]:
    runner = _Loop()
    yield runner
    runner.stop()


def _start_standin(loop: _Loop, upstream_port: int, **overrides: object) -> int:
    options = {**OPTIONS, "http_address": "127.0.0.1:0", "upstreams": [f"http://127.0.0.1:{upstream_port}"], **overrides}
    config = standin.config_from_options(options, {SESSION: IDENT})

    async def start() -> int:
        server = await standin.StandinProxy(config).serve()
        return server.sockets[0].getsockname()[1]

    return loop.run(start())


@pytest.fixture(scope="module")
def http_chain(loop: _Loop) -> Iterator[str]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = _start_standin(loop, upstream.server_address[1])
    yield f"http://127.0.0.1:{port}"
    upstream.shutdown()


@pytest.fixture(scope="module")
def ws_chain(loop: _Loop) -> Iterator[str]:
    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async def start() -> int:
        server = await serve(echo, "127.0.0.1", 0, origins=[ORIGIN])
        return server.sockets[0].getsockname()[1]

    port = _start_standin(loop, loop.run(start()))
    yield f"ws://127.0.0.1:{port}"


def test_no_session_starts_sign_in_at_entra_and_never_reaches_upstream(http_chain: str) -> None:
    _Echo.seen.clear()
    for cookie in (None, "__Host-oauth2_proxy=wrong-value-0123456789", f"_oauth2_proxy={SESSION}"):
        headers = {"cookie": cookie} if cookie else {}
        response = httpx.get(f"{http_chain}/static/x.js?v=1", headers=headers)
        assert response.status_code == 302
        location = urlsplit(response.headers["location"])
        assert (location.scheme, location.hostname, location.path) == ("https", "login.microsoftonline.com", f"/{TENANT}/oauth2/v2.0/authorize")
        query = parse_qs(location.query)
        assert query["client_id"] == [OPTIONS["client_id"]] and query["redirect_uri"] == [OPTIONS["redirect_url"]]
        assert query["state"][0].endswith(":/static/x.js?v=1")
    assert httpx.post(f"{http_chain}/healthz", content=b"x" * 5000).status_code == 302
    assert httpx.get(f"{http_chain}/healthz", headers={"accept": "application/json"}).status_code == 401
    assert _Echo.seen == []


def test_without_skip_provider_button_a_sign_in_page_is_shown(loop: _Loop) -> None:
    port = _start_standin(loop, 1, skip_provider_button=False)
    response = httpx.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 403 and "/oauth2/start?rd=%2F" in response.text


def test_proxy_own_endpoints_answer_without_reaching_upstream(http_chain: str) -> None:
    _Echo.seen.clear()
    assert httpx.get(f"{http_chain}/oauth2/ping").text == "OK"
    assert httpx.get(f"{http_chain}/oauth2/ready").text == "OK"
    start = httpx.get(f"{http_chain}/oauth2/start?rd=%2Fx")
    assert start.status_code == 302 and parse_qs(urlsplit(start.headers["location"]).query)["state"][0].endswith(":/x")
    assert httpx.get(f"{http_chain}/oauth2/callback?code=x&state=y").status_code == 403
    assert httpx.get(f"{http_chain}/oauth2/auth").status_code == 401
    assert httpx.get(f"{http_chain}/oauth2/auth", headers={"cookie": COOKIE}).status_code == 202
    assert httpx.get(f"{http_chain}/oauth2/userinfo", headers={"cookie": COOKIE}).json() == {"user": "alice", "email": "alice@example.com"}
    assert httpx.get(f"{http_chain}/oauth2/other", headers={"cookie": COOKIE}).status_code == 404
    assert httpx.get(f"{http_chain}/ping").status_code == 302  # the default path is not configured here
    assert _Echo.seen == []


def test_session_proxies_transparently_and_sets_identity(http_chain: str) -> None:
    sent = {
        "host": "code.example.com",
        "origin": ORIGIN,
        "x-forwarded-host": "code.example.com",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-user": "mallory",
        "X-Forwarded-Email": "mallory@evil.example",
        "cookie": f"a=b; {COOKIE}",
    }
    with httpx.Client() as client:
        first = client.post(f"{http_chain}/p?q=1", headers=sent, content=b"payload")
        second = client.get(f"{http_chain}/second", headers=sent)
    assert first.status_code == 201 and first.headers["x-upstream"] == "echo"
    echoed = first.json()
    headers = dict(echoed["headers"])
    assert echoed["method"] == "POST" and echoed["path"] == "/p?q=1" and echoed["body"] == "payload"
    for name in ("host", "origin", "x-forwarded-host", "x-forwarded-proto", "cookie"):
        assert headers[name] == sent[name]
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert [v for k, v in echoed["headers"] if k == "x-forwarded-user"] == ["alice"]
    assert [v for k, v in echoed["headers"] if k == "x-forwarded-email"] == ["alice@example.com"]
    assert second.json()["path"] == "/second"


def test_upstream_down_is_502(loop: _Loop) -> None:
    port = _start_standin(loop, 1)  # nothing listens on port 1
    response = httpx.get(f"http://127.0.0.1:{port}/", headers={"cookie": COOKIE})
    assert response.status_code == 502


def test_websocket_tunnel_keeps_upstream_decisions_and_frames(loop: _Loop, ws_chain: str) -> None:
    cookie = {"cookie": COOKIE}

    async def scenario() -> None:
        async with connect(f"{ws_chain}/stable-x?reconnectionToken=t", origin=ORIGIN, additional_headers=cookie) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00" * 100_000)
            assert await ws.recv() == b"\x00" * 100_000
            await asyncio.wait_for(await ws.ping(), timeout=5)  # pong from the upstream, through the tunnel
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(f"{ws_chain}/stable-x", origin="https://evil.example", additional_headers=cookie):
                pass
        assert refused.value.response.status_code == 403  # the upstream's Origin check, passed through

    loop.run(scenario())  # on the fixture's loop: asyncio.run would unset the main thread's loop for later tests
    # Without a session the upgrade request is answered by the stand-in itself (the websockets
    # client would follow the redirect, so the handshake is sent by hand).
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "origin": ORIGIN}
    anonymous = httpx.get(ws_chain.replace("ws://", "http://") + "/stable-x?reconnectionToken=t", headers=upgrade)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("https://login.microsoftonline.com/")


def test_sessions_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    for content in ("[]", "{}", json.dumps({"short": {"user": "a", "email": "b"}}), json.dumps({SESSION: {"user": "a"}})):
        bad.write_text(content)
        with pytest.raises(ValueError, match="s.json"):
            standin.load_sessions(bad)
    bad.write_text(json.dumps({SESSION: {"user": "a", "email": "a@example.com"}}))
    assert standin.load_sessions(bad) == {SESSION: standin.Identity("a", "a@example.com")}


def test_options_that_change_access_are_refused() -> None:
    for extra, message in (
        ({"skip_auth_routes": ["GET=^/healthz$"]}, "skip_auth_routes"),
        ({"api_routes": ["^/api"]}, "api_routes"),
        ({"pass_access_token": True}, "pass_access_token"),
        ({"upstreams": ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]}, "upstreams"),
        ({"oidc_issuer_url": "https://idp.example.com"}, "oidc_issuer_url"),
    ):
        with pytest.raises(ValueError, match=message):
            standin.config_from_options({**OPTIONS, **extra}, {SESSION: IDENT})


def test_cli_reads_the_rendered_config_reports_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps({SESSION: {"user": "a", "email": "a@example.com"}}))
    config = tmp_path / "oauth2-proxy.cfg"
    config.write_text(tomli_w.dumps({**OPTIONS, "http_address": "127.0.0.1:0"}))
    proc = subprocess.Popen(
        [sys.executable, standin.__file__, "--config", str(config), "--sessions", str(sessions)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    assert "STAND-IN" in proc.stderr.read()
