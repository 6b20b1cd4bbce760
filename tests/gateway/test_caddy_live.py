"""The generated gateway Caddyfile, run by the real Caddy on 127.0.0.1, against a stand-in upstream.

Loopback aliases play the parts: 127.0.0.2 is the trusted front proxy, 127.0.0.1 is a peer that
is served (the health check) but not trusted, and 127.0.0.3 is a stranger that reached the port
directly. The upstream stands in for oauth2-proxy and code-server: it echoes what it received,
sets headers the gateway must override, and, like code-server, refuses a WebSocket whose Origin
does not match the Host it sees.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response
from websockets.sync.client import connect

from components.gateway import render_caddy as c

pytestmark = pytest.mark.slow

HOST = "code.example.com"
FRONT, LOCAL, STRANGER = "127.0.0.2", "127.0.0.1", "127.0.0.3"
CLIENT = "198.51.100.77"
REAL_EMAIL, REAL_SUB, FORGED = "alice@example.com", "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "mallory@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Upstream:
    """A stand-in for oauth2-proxy + code-server on loopback, recording every request."""

    port: int
    seen: list[dict[str, str]] = field(default_factory=list)

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        record = {"path": request.path, **headers}
        self.seen.append(record)
        if headers.get("upgrade", "").lower() == "websocket":
            # code-server's rule: the Origin must name the host the request was sent to
            host = headers.get("x-forwarded-host") or headers["host"]
            if urlsplit(headers.get("origin", "")).netloc != host:
                return conn.respond(HTTPStatus.FORBIDDEN, "origin mismatch\n")
            return None
        if request.path == c.HEALTH_PATH:
            return conn.respond(HTTPStatus.OK, "OK")
        response = conn.respond(HTTPStatus.OK, json.dumps(record))
        response.headers["Server"] = "stand-in-upstream"
        response.headers["X-Content-Type-Options"] = "upstream-value"
        if request.path == "/own-csp":
            response.headers["Content-Security-Policy"] = "default-src 'self'"
        if request.path.startswith("/signed-in"):
            # What oauth2-proxy sends back for a signed-in request: its own identity headers first...
            response.headers["X-Auth-Request-Email"] = REAL_EMAIL
            response.headers["X-Auth-Request-User"] = REAL_SUB
            response.headers["X-Auth-Request-Groups"] = "5f5f5f5f-6a6a-7b7b-8c8c-9d9d9d9d9d9d"
            if request.path == "/signed-in/forged":
                # ...then, appended by Go's ReverseProxy, what a process behind it answered under the same names.
                response.headers["X-Auth-Request-Email"] = FORGED
                response.headers["X-Auth-Request-User"] = FORGED
        return response

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send("hello from upstream")
        async for message in ws:
            await ws.send(f"upstream got: {message}")


@dataclass
class Live:
    port: int
    upstream: Upstream
    access_log: Path
    caddy: subprocess.Popen[bytes]
    xdg: Path

    def get(self, source: str, path: str = "/", headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, trust_env=False, timeout=10) as client:
            return client.get(f"http://127.0.0.1:{self.port}{path}", headers={"Host": HOST, **(headers or {})})

    def echoed(self, response: httpx.Response) -> dict[str, str]:
        assert response.status_code == 200, response.text
        return json.loads(response.text)


def start_upstream(upstream: Upstream) -> threading.Event:
    stop = threading.Event()
    ready = threading.Event()

    async def main() -> None:
        async with serve(upstream.handler, "127.0.0.1", upstream.port, process_request=upstream.process_request, server_header=None):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    assert ready.wait(10), "stand-in upstream did not start"
    return stop


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"caddy exited: {proc.stderr.read().decode() if proc.stderr else ''}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("caddy did not start listening")


@pytest.fixture(scope="module")
def live(caddy_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("caddy-live")
    upstream = Upstream(free_port())
    stop = start_upstream(upstream)
    port = free_port()
    params = c.GatewayParams(
        hostname=HOST,
        port=port,
        listen=(ipaddress.ip_address("127.0.0.1"),),
        front_proxies=(ipaddress.ip_address(FRONT),),
        upstream=f"127.0.0.1:{upstream.port}",
        access_log=str(tmp / "access.log"),
    )
    (tmp / "Caddyfile").write_text(c.gateway(params))
    xdg = tmp / "xdg"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(xdg / "home"), "XDG_DATA_HOME": str(xdg / "data"), "XDG_CONFIG_HOME": str(xdg / "config")}
    proc = subprocess.Popen([caddy_bin, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        yield Live(port, upstream, tmp / "access.log", proc, xdg)
    finally:
        proc.terminate()
        proc.wait(10)
        stop.set()


def strong_hsts(value: str) -> bool:
    """RFC 6797 syntax; strong as hstspreload.org requires: max-age of a year or more, includeSubDomains."""
    directives = {d.strip().split("=", 1)[0].lower(): d.strip().partition("=")[2] for d in value.split(";") if d.strip()}
    return directives.get("max-age", "0").isdigit() and int(directives["max-age"]) >= 31536000 and "includesubdomains" in directives


def test_security_headers_are_set_and_override_upstream(live: Live) -> None:
    r = live.get(FRONT, headers={"X-Forwarded-For": CLIENT})
    assert strong_hsts(r.headers["Strict-Transport-Security"]), r.headers["Strict-Transport-Security"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert r.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert "Server" not in r.headers


def test_an_upstream_csp_is_kept_not_replaced(live: Live) -> None:
    r = live.get(FRONT, "/own-csp", headers={"X-Forwarded-For": CLIENT})
    assert r.headers.get_list("Content-Security-Policy") == ["default-src 'self'"]
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_client_ip_comes_from_the_trusted_front_proxy(live: Live) -> None:
    seen = live.echoed(live.get(FRONT, headers={"X-Forwarded-For": CLIENT}))
    assert seen["x-real-ip"] == CLIENT
    # a client that sent its own X-Forwarded-For to the front proxy: the rightmost untrusted hop wins
    seen = live.echoed(live.get(FRONT, headers={"X-Forwarded-For": f"203.0.113.66, {CLIENT}"}))
    assert seen["x-real-ip"] == CLIENT


def test_client_ip_cannot_be_spoofed_by_an_untrusted_peer(live: Live) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66", "X-Forwarded-Host": "evil.example.net"}
    seen = live.echoed(live.get(LOCAL, headers=spoof))
    assert seen["x-real-ip"] == LOCAL
    assert "203.0.113.66" not in seen["x-forwarded-for"]
    assert seen["x-forwarded-host"] == HOST


def test_host_is_preserved_and_misleading_headers_are_dropped(live: Live) -> None:
    extra = {"X-Forwarded-For": CLIENT, "X-Forwarded-Uri": "/oauth2/ping", "Forwarded": "host=evil.example.net"}
    seen = live.echoed(live.get(FRONT, "/some/path?q=1", headers=extra))
    assert seen["host"] == HOST
    assert seen["path"] == "/some/path?q=1"
    assert "x-forwarded-uri" not in seen and "forwarded" not in seen


def test_a_direct_client_is_refused_and_logged(live: Live) -> None:
    before = len(live.upstream.seen)
    r = live.get(STRANGER, headers={"X-Forwarded-For": CLIENT})
    assert r.status_code == 403
    assert len(live.upstream.seen) == before, "a refused request reached the upstream"
    assert strong_hsts(r.headers["Strict-Transport-Security"]), r.headers["Strict-Transport-Security"]


def test_a_foreign_host_is_not_proxied(live: Live) -> None:
    before = len(live.upstream.seen)
    r = live.get(FRONT, headers={"Host": "other.example.com", "X-Forwarded-For": CLIENT})
    assert r.status_code == 421
    assert len(live.upstream.seen) == before


def front_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((FRONT, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_websocket_with_matching_origin_goes_through_both_ways(live: Live) -> None:
    headers = Headers({"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"})
    with connect(f"ws://{HOST}/stable-commit?reconnectionToken=t", sock=front_socket(live.port), origin=f"https://{HOST}",
                 additional_headers=headers, proxy=None, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "hello from upstream"
        ws.send("keystrokes")
        assert ws.recv(timeout=10) == "upstream got: keystrokes"
    upgrade = [s for s in live.upstream.seen if s["path"].startswith("/stable-commit")][-1]
    assert upgrade["host"] == HOST and upgrade["origin"] == f"https://{HOST}" and upgrade["x-real-ip"] == CLIENT


def test_websocket_with_foreign_origin_is_refused_by_the_upstream(live: Live) -> None:
    with pytest.raises(InvalidStatus) as err:
        connect(f"ws://{HOST}/stable-commit", sock=front_socket(live.port), origin="https://evil.example.net",
                additional_headers=Headers({"X-Forwarded-For": CLIENT}), proxy=None, open_timeout=10)
    assert err.value.response.status_code == 403


def test_health_check_command_succeeds_and_is_not_logged(live: Live) -> None:
    params = c.GatewayParams(HOST, live.port, (ipaddress.ip_address("127.0.0.1"),), (ipaddress.ip_address(FRONT),))
    result = subprocess.run(["busybox", *c.health_check(params)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert any(s["path"] == c.HEALTH_PATH and s["user-agent"] == "Wget" for s in live.upstream.seen)


def test_admin_endpoint_is_not_listening_and_gateway_is_the_only_listener(live: Live) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", 2019), timeout=2).close()
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    mine = [line.split()[3] for line in out.splitlines() if f"pid={live.caddy.pid}," in line]
    assert mine == [f"127.0.0.1:{live.port}"]


def test_caddy_writes_only_storage_bookkeeping(live: Live) -> None:
    # Why a read-only root with a small tmpfs at the image's XDG_DATA_HOME is enough: no config
    # autosave (admin off, persist_config off), no certificates; only the TLS app's storage
    # housekeeping (instance id, clean stamp, lock dir) is written.
    live.get(FRONT, headers={"X-Forwarded-For": CLIENT})
    written = {p.relative_to(live.xdg).as_posix() for p in live.xdg.rglob("*") if p.is_file()}
    assert written <= {"data/caddy/instance.uuid", "data/caddy/last_clean.json"}, written
    assert not (live.xdg / "config").exists()


def test_access_log_is_json_with_the_real_client_and_the_refusals(live: Live) -> None:
    live.get(FRONT, "/logged", headers={"X-Forwarded-For": CLIENT})
    live.get(STRANGER, "/direct")
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(line) for line in live.access_log.read_text().splitlines()]
        paths = {e["request"]["uri"] for e in entries}
        if {"/logged", "/direct"} <= paths or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    logged = [e for e in entries if e["request"]["uri"] == "/logged"][-1]
    assert logged["request"]["client_ip"] == CLIENT and logged["request"]["remote_ip"] == FRONT and logged["status"] == 200
    direct = [e for e in entries if e["request"]["uri"] == "/direct"][-1]
    assert direct["request"]["client_ip"] == STRANGER and direct["status"] == 403
    assert not any(e["request"]["uri"] == c.HEALTH_PATH for e in entries)


def test_access_log_keeps_no_access_token_and_no_oauth_code_or_state(live: Live) -> None:
    jwt, code, state = "eyJhbGciOi.access-jwt-value.sig", "0.AXoA-authorization-code", "state-nonce-value"
    live.get(FRONT, f"/oauth2/callback?code={code}&state={state}&x=kept", headers={"X-Forwarded-For": CLIENT, c.ACCESS_JWT_HEADER: jwt})
    deadline = time.monotonic() + 5
    while "/oauth2/callback" not in live.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = live.access_log.read_text()
    assert jwt not in text and code not in text and state not in text
    (entry,) = [json.loads(line) for line in text.splitlines() if "/oauth2/callback" in line]
    assert entry["request"]["uri"] == "/oauth2/callback?code=REDACTED&state=REDACTED&x=kept"
    assert "Cf-Access-Jwt-Assertion" not in entry["request"]["headers"] and entry["request"]["client_ip"] == CLIENT
    # ...while the request itself reached the upstream unchanged (only the log is filtered)
    seen = [r for r in live.upstream.seen if r["path"].startswith("/oauth2/callback")][-1]
    assert seen["path"].endswith(f"code={code}&state={state}&x=kept") and seen["cf-access-jwt-assertion"] == jwt


def _logged(live: Live, uri: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 5
    while not (found := [json.loads(line) for line in live.access_log.read_text().splitlines() if f'"uri":"{uri}"' in line]):
        assert time.monotonic() < deadline, f"no log line for {uri}"
        time.sleep(0.1)
    return found[-1]


def test_the_log_names_the_user_oauth2_proxy_asserted_and_the_browser_gets_none_of_it(live: Live) -> None:
    r = live.get(FRONT, "/signed-in/plain", headers={"X-Forwarded-For": CLIENT})
    assert r.status_code == 200 and not [h for h in r.headers if h.lower().startswith("x-auth-request-")], r.headers
    entry = _logged(live, "/signed-in/plain")
    assert (entry["user_email"], entry["user_id"]) == (REAL_EMAIL, REAL_SUB)
    # the same ID went to oauth2-proxy (which logs it) as X-Request-Id
    seen = [s for s in live.upstream.seen if s["path"] == "/signed-in/plain"][-1]
    assert entry["uuid"] == seen["x-request-id"] and len(entry["uuid"]) == 36


def test_an_identity_the_upstream_appends_is_not_logged(live: Live) -> None:
    r = live.get(FRONT, "/signed-in/forged", headers={"X-Forwarded-For": CLIENT})
    assert r.status_code == 200 and FORGED not in str(r.headers)
    entry = _logged(live, "/signed-in/forged")
    assert (entry["user_email"], entry["user_id"]) == (REAL_EMAIL, REAL_SUB)
    assert FORGED not in json.dumps(entry)


def test_an_identity_the_client_sends_reaches_neither_the_log_nor_the_upstream(live: Live) -> None:
    forged = {"X-Forwarded-For": CLIENT, "X-Auth-Request-Email": FORGED, "X-Auth-Request-User": FORGED, "X-Request-Id": FORGED}
    live.get(FRONT, "/not-signed-in", headers=forged)
    entry = _logged(live, "/not-signed-in")
    assert FORGED not in json.dumps(entry), json.dumps(entry)
    assert entry["user_email"] is None and entry["user_id"] is None
    seen = [s for s in live.upstream.seen if s["path"] == "/not-signed-in"][-1]
    assert FORGED not in json.dumps(seen) and seen["x-request-id"] == entry["uuid"]
