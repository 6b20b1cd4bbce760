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

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tests.livepath import standin_oauth2_proxy as standin

SESSION = "s3ss10n-value-for-tests-0123456789"
IDENT = standin.Identity(user="alice", email="alice@example.com")
ORIGIN = "https://code.example.com"


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


def _start_standin(loop: _Loop, upstream_port: int) -> int:
    config = standin.Config("127.0.0.1", 0, "127.0.0.1", upstream_port, {SESSION: IDENT})

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


def test_no_session_redirects_to_sign_in_and_never_reaches_upstream(http_chain: str) -> None:
    _Echo.seen.clear()
    for cookie in (None, "_oauth2_proxy=wrong-value-0123456789", f"other={SESSION}"):
        headers = {"cookie": cookie} if cookie else {}
        response = httpx.get(f"{http_chain}/static/x.js?v=1", headers=headers)
        assert response.status_code == 302
        assert response.headers["location"] == "/oauth2/start?rd=%2Fstatic%2Fx.js%3Fv%3D1"
    assert httpx.post(f"{http_chain}/healthz", content=b"x" * 5000).status_code == 302
    assert _Echo.seen == []


def test_public_endpoints_are_the_stand_in_own(http_chain: str) -> None:
    _Echo.seen.clear()
    assert httpx.get(f"{http_chain}/ping").text == "OK"
    assert httpx.get(f"{http_chain}/ready").text == "OK"
    assert httpx.get(f"{http_chain}/oauth2/start?rd=%2F").status_code == 501
    assert httpx.get(f"{http_chain}/oauth2/auth").status_code == 401
    assert httpx.get(f"{http_chain}/oauth2/auth", cookies={"_oauth2_proxy": SESSION}).status_code == 202
    assert httpx.get(f"{http_chain}/oauth2/userinfo", cookies={"_oauth2_proxy": SESSION}).json() == {"user": "alice", "email": "alice@example.com"}
    assert httpx.get(f"{http_chain}/oauth2/other").status_code == 404
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
        "cookie": f"a=b; _oauth2_proxy={SESSION}",
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
    response = httpx.get(f"http://127.0.0.1:{port}/", cookies={"_oauth2_proxy": SESSION})
    assert response.status_code == 502


def test_websocket_tunnel_keeps_upstream_decisions_and_frames(loop: _Loop, ws_chain: str) -> None:
    cookie = {"cookie": f"_oauth2_proxy={SESSION}"}

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

    asyncio.run(scenario())
    # Without a session the upgrade request is answered by the stand-in itself (the websockets
    # client would follow the redirect, so the handshake is sent by hand).
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "origin": ORIGIN}
    anonymous = httpx.get(ws_chain.replace("ws://", "http://") + "/stable-x?reconnectionToken=t", headers=upgrade)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/oauth2/start?rd=")


def test_sessions_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    for content in ("[]", "{}", json.dumps({"short": {"user": "a", "email": "b"}}), json.dumps({SESSION: {"user": "a"}})):
        bad.write_text(content)
        with pytest.raises(ValueError, match="s.json"):
            standin.load_sessions(bad)
    bad.write_text(json.dumps({SESSION: {"user": "a", "email": "a@example.com"}}))
    assert standin.load_sessions(bad) == {SESSION: standin.Identity("a", "a@example.com")}


def test_cli_starts_reports_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions.json"
    sessions.write_text(json.dumps({SESSION: {"user": "a", "email": "a@example.com"}}))
    proc = subprocess.Popen(
        [sys.executable, standin.__file__, "--listen", "127.0.0.1:0", "--sessions", str(sessions)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    assert "STAND-IN" in proc.stderr.read()
