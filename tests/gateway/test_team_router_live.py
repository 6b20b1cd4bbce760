"""A team VM's gateway, run by the real Caddy on 127.0.0.1, with Unix-socket echo servers as workspaces.

Workspaces a and b (and ab, whose role `ws.ab` begins with `ws.a`) each have an echo server on their
gateway-facing socket that says which workspace it is and what it received. The router is asked
directly, the way oauth2-proxy asks it: with the workspace's Host and the X-Forwarded-Groups oauth2-proxy
builds from its session (the roles joined with ","). The outer site's upstream is a TCP echo standing
for oauth2-proxy, to see what a client's request looks like when it gets there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve, unix_serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response
from websockets.sync.client import connect

from components import layout
from components.gateway import render_caddy as c
from tests.gateway.team import team
from tests.gateway.test_caddy_live import FRONT, free_port, wait_for_port

pytestmark = pytest.mark.slow

NAMES = ("a", "b", "ab")


@dataclass
class Echo:
    """A workspace (or oauth2-proxy) stand-in: answers its name and the request's headers; greets on a WebSocket."""

    name: str
    seen: list[dict[str, str]] = field(default_factory=list)

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        record = {"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}}
        self.seen.append(record)
        if record.get("upgrade", "").lower() == "websocket":
            return None
        return conn.respond(HTTPStatus.OK, json.dumps({"workspace": self.name, **record}))

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(f"hello from {self.name}")
        async for message in ws:
            await ws.send(f"{self.name} got: {message}")


@dataclass
class Live:
    port: int
    router: int
    echoes: dict[str, Echo]
    oauth2_proxy: Echo

    def ask_router(self, host: str, groups: str | None, headers: dict[str, str] | None = None) -> httpx.Response:
        """What oauth2-proxy sends the router for a session holding `groups` (None: no roles at all)."""
        extra = {"Host": host, **({"X-Forwarded-Groups": groups} if groups is not None else {}), **(headers or {})}
        with httpx.Client(trust_env=False, timeout=10) as client:
            return client.get(f"http://127.0.0.1:{self.router}/some/path", headers=extra)

    def ask_gateway(self, host: str, headers: dict[str, str]) -> httpx.Response:
        """What the front proxy sends the gateway."""
        with httpx.Client(transport=httpx.HTTPTransport(local_address=FRONT), trust_env=False, timeout=10) as client:
            return client.get(f"http://127.0.0.1:{self.port}/", headers={"Host": host, "X-Forwarded-For": "198.51.100.7", **headers})


def serve_all(tmp: Path, echoes: dict[str, Echo], oauth2_proxy: Echo, oauth2_port: int) -> threading.Event:
    stop, ready = threading.Event(), threading.Event()

    async def main() -> None:
        servers = [await unix_serve(e.handler, layout.workspace_gateway_socket(f"ws-{n}", str(tmp)), process_request=e.process_request,
                                    server_header=None) for n, e in echoes.items()]
        servers.append(await serve(oauth2_proxy.handler, "127.0.0.1", oauth2_port, process_request=oauth2_proxy.process_request))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for server in servers:
            server.close()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    assert ready.wait(10), "echo servers did not start"
    return stop


@pytest.fixture(scope="module")
def live(caddy_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("team-live")
    sockets = tmp / "ws-gw"
    sockets.mkdir()
    echoes = {n: Echo(f"ws-{n}") for n in NAMES}
    oauth2_proxy, oauth2_port = Echo("oauth2-proxy"), free_port()
    stop = serve_all(sockets, echoes, oauth2_proxy, oauth2_port)
    port, router = free_port(), free_port()
    gateway = c.GatewayParams(hostname="a.example.com", port=port, listen=(ipaddress.ip_address("127.0.0.1"),),
                              front_proxies=(ipaddress.ip_address(FRONT),), upstream=f"127.0.0.1:{oauth2_port}",
                              access_log=str(tmp / "access.log"))
    params = c.TeamGatewayParams(gateway, team(*NAMES), "vm", router_port=router, socket_dir=str(sockets))
    (tmp / "Caddyfile").write_text(c.team_gateway(params))
    xdg = tmp / "xdg"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(xdg / "home"), "XDG_DATA_HOME": str(xdg / "data"), "XDG_CONFIG_HOME": str(xdg / "config")}
    proc = subprocess.Popen([caddy_bin, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        wait_for_port(router, proc)
        yield Live(port, router, echoes, oauth2_proxy)
    finally:
        proc.terminate()
        proc.wait(10)
        stop.set()


def reached(r: httpx.Response) -> str:
    assert r.status_code == 200, (r.status_code, r.text)
    return json.loads(r.text)["workspace"]


def test_a_session_with_role_a_reaches_a_and_nothing_else(live: Live) -> None:
    assert reached(live.ask_router("a.example.com", "ws.a")) == "ws-a"
    before = {n: len(e.seen) for n, e in live.echoes.items()}
    for host in ("b.example.com", "ab.example.com", "z.example.com", "unknown.example.com"):
        assert live.ask_router(host, "ws.a").status_code == 403, host
    assert {n: len(e.seen) for n, e in live.echoes.items()} == before, "a refused request reached a workspace"


@pytest.mark.parametrize("groups", ["ws.ab", "ws.a x", "ws.a;ws.b", "xws.a", "ws.a.b", "ws-a", "ws.A", "", None])
def test_the_role_must_match_exactly(live: Live, groups: str | None) -> None:
    assert live.ask_router("a.example.com", groups).status_code == 403


@pytest.mark.parametrize("groups", ["x,ws.a,y", "ws.b,ws.a", "ws.a,ws.ab", "ws.ab,ws.a"])
def test_the_role_is_found_among_others(live: Live, groups: str) -> None:
    assert reached(live.ask_router("a.example.com", groups)) == "ws-a"


def test_ab_is_its_own_workspace(live: Live) -> None:
    assert reached(live.ask_router("ab.example.com", "ws.ab")) == "ws-ab"
    assert live.ask_router("ab.example.com", "ws.a,ws.b").status_code == 403


def test_no_cookie_reaches_the_workspace_and_its_host_does(live: Live) -> None:
    cookie = "__Host-oauth2_proxy=c2Vzc2lvbg; __Host-oauth2_proxy_1=bW9yZQ"
    seen = json.loads(live.ask_router("b.example.com", "ws.b", {"Cookie": cookie}).text)
    assert seen["workspace"] == "ws-b"
    assert "cookie" not in seen and not any("c2Vzc2lvbg" in v for v in seen.values())
    assert seen["host"] == "b.example.com" and seen["x-forwarded-proto"] == "https"


@pytest.mark.parametrize("origin", ["https://b.example.com", "https://evil.example.net", "http://a.example.com",
                                    "https://a.example.com:444", "null"])
def test_a_foreign_origin_is_refused(live: Live, origin: str) -> None:
    assert live.ask_router("a.example.com", "ws.a,ws.b", {"Origin": origin}).status_code == 403


def test_its_own_origin_passes(live: Live) -> None:
    assert reached(live.ask_router("a.example.com", "ws.a", {"Origin": "https://a.example.com"})) == "ws-a"


def router_socket(live: Live) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.router))


def test_a_websocket_reaches_the_right_workspace(live: Live) -> None:
    headers = Headers({"X-Forwarded-Groups": "ws.a,ws.b"})
    with connect("ws://b.example.com/stable-commit?reconnectionToken=t", sock=router_socket(live), origin="https://b.example.com",
                 additional_headers=headers, proxy=None, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "hello from ws-b"
        ws.send("keystrokes")
        assert ws.recv(timeout=10) == "ws-b got: keystrokes"


@pytest.mark.parametrize(("groups", "origin"), [("ws.a", "https://b.example.com"), ("ws.b", "https://a.example.com")])
def test_a_websocket_without_the_role_or_from_another_origin_is_refused(live: Live, groups: str, origin: str) -> None:
    with pytest.raises(InvalidStatus) as err:
        connect("ws://b.example.com/stable-commit", sock=router_socket(live), origin=origin,
                additional_headers=Headers({"X-Forwarded-Groups": groups}), proxy=None, open_timeout=10)
    assert err.value.response.status_code == 403


def test_a_clients_forwarded_identity_never_reaches_oauth2_proxy(live: Live) -> None:
    forged = {"X-Forwarded-Groups": "ws.b", "X_Forwarded_Groups": "ws.b", "X-Forwarded-User": "mallory",
              "X-Forwarded-Email": "mallory@example.com", "X-Forwarded-Preferred-Username": "mallory",
              "X_Forwarded_User": "mallory", "X-Auth-Request-Groups": "ws.b", "X-Forwarded-Host": "evil.example.net"}
    r = live.ask_gateway("a.example.com", forged)
    assert r.status_code == 200, r.text
    seen = live.oauth2_proxy.seen[-1]
    assert "ws.b" not in json.dumps(seen) and "mallory" not in json.dumps(seen), seen
    # the admitted host, whatever the front proxy or the client said: oauth2-proxy's callback URL is built from it
    assert seen["x-forwarded-host"] == "a.example.com" and seen["host"] == "a.example.com"


@pytest.mark.parametrize("host", ["z.example.com", "code.example.com", "a.example.com.evil.example.net"])
def test_a_host_not_on_this_vm_is_misdirected(live: Live, host: str) -> None:
    before = len(live.oauth2_proxy.seen)
    assert live.ask_gateway(host, {}).status_code == 421
    assert len(live.oauth2_proxy.seen) == before


def test_the_router_listens_on_loopback_only(live: Live) -> None:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    assert f"127.0.0.1:{live.router} " in out and f"0.0.0.0:{live.router} " not in out and f"*:{live.router} " not in out

