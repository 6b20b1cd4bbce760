"""A team VM's sign-in chain on 127.0.0.1: the real gateway Caddy, the real oauth2-proxy v7.15.6 with the
rendered team config, the Entra stand-in issuing a `roles` claim, and Unix-socket echo servers as workspaces.

alice holds the app role ws.a; bob holds only ws.z, a workspace of another VM. The front proxy is played
by requests from 127.0.0.2 (the gateway's trusted proxy) carrying the public Host. oauth2-proxy runs the
rendered team config with only these test changes: the stand-in's endpoints (`skip_oidc_discovery`,
`login_url`, `redeem_url`, `oidc_jwks_url`, `provider_ca_files`, as the live path does) and where its
files, socket and upstream are (`client_secret_file`, `cookie_secret_file`, `http_address`, `upstreams`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import re
import secrets
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import tomli_w
import tomllib
from websockets.asyncio.server import unix_serve

from components import layout
from components.gateway import render_caddy as c
from components.gateway import render_oauth2_proxy as o
from scripts.lab.idp import certs, directory, server
from scripts.tools import go_cache
from tests.gateway.team import team
from tests.gateway.test_caddy_live import FRONT, free_port, wait_for_port
from tests.gateway.test_team_router_live import Echo

pytestmark = pytest.mark.slow

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"
ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())
PASSWORD = secrets.token_urlsafe(12)


@dataclass
class Chain:
    port: int
    idp: str
    idp_http: httpx.Client
    echoes: dict[str, Echo]
    o2p_log: Path

    def gateway(self, host: str, path: str, cookies: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        """A request as the front proxy forwards it (from its address, the public Host, https)."""
        sent = {"Host": host, "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https", **(headers or {})}
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        with httpx.Client(transport=httpx.HTTPTransport(local_address=FRONT), trust_env=False, timeout=15) as client:
            r = client.get(f"http://127.0.0.1:{self.port}{path}", headers=sent)
        for line in r.headers.get_list("set-cookie"):
            name, _, value = line.split(";")[0].partition("=")
            cookies[name] = value  # a browser's jar, reduced to what the test needs (all cookies here are host-only)
        return r

    def sign_in(self, host: str, user: str) -> tuple[dict[str, str], httpx.Response, str]:
        """The browser's sign-in at `host` as `user`: (its cookies, the callback's response, the redirect_uri sent to Entra)."""
        cookies: dict[str, str] = {}
        r = self.gateway(host, "/", cookies)
        while r.status_code == 302 and urlsplit(r.headers["location"]).netloc in ("", host):
            r = self.gateway(host, urlsplit(r.headers["location"]).path + "?" + urlsplit(r.headers["location"]).query, cookies)
        assert r.status_code == 302 and r.headers["location"].startswith(self.idp), (r.status_code, r.headers, r.text[:300])
        authorize = r.headers["location"]
        redirect_uri = parse_qs(urlsplit(authorize).query)["redirect_uri"][0]
        self.idp_http.cookies.clear()
        form = self.idp_http.get(authorize)
        assert form.status_code == 200 and 'type="password"' in form.text, form.text[:300]
        flow = re.search(r'name="flow" value="([^"]+)"', form.text)[1]  # type: ignore[index]
        done = self.idp_http.post(f"{self.idp}/{TENANT}/login", data={"flow": flow, "username": user, "password": PASSWORD})
        assert done.status_code == 302, done.text[:300]
        back = urlsplit(done.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == redirect_uri
        return cookies, self.gateway(host, f"{back.path}?{back.query}", cookies), redirect_uri


def tenant() -> directory.Directory:
    team_ = team("a", "b")
    callbacks = tuple(f"https://{team_.hostname(w)}{layout.CALLBACK_PATH}" for w in team_.workspaces)
    roles = {value: str(uuid.uuid5(uuid.NAMESPACE_URL, value)) for value in ("ws.a", "ws.z")}
    client = directory.Client(CLIENT, "", callbacks, ("None",), (), True, app_roles=tuple((r, v) for v, r in roles.items()),
                              role_assignments=((roles["ws.a"], ALICE), (roles["ws.z"], BOB)))
    users = {f"{n}@example.com": directory.User(f"{n}@example.com", directory.hash_secret(PASSWORD), oid, n.title(), f"{n}@example.com", ())
             for n, oid in (("alice", ALICE), ("bob", BOB))}
    return directory.Directory(TENANT, {CLIENT: client}, users)


def oauth2_proxy_config(tmp: Path, idp: str, ca: Path, socket: Path, router: int) -> str:
    params = o.TeamOAuth2ProxyParams(issuer_url=f"https://login.microsoftonline.com/{TENANT}/v2.0", client_id=CLIENT, team=team("a", "b"),
                                     vm="vm", email_domains=("example.com",), cookie_expire=dt.timedelta(hours=12),
                                     cookie_refresh=dt.timedelta(minutes=30))
    options = tomllib.loads(o.render_team(params))
    (tmp / "client-secret").write_text("client-secret-value")
    (tmp / "cookie-secret").write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))
    test = {
        "skip_oidc_discovery": True,
        "login_url": f"{idp}/{TENANT}/oauth2/v2.0/authorize",
        "redeem_url": f"{idp}/{TENANT}/oauth2/v2.0/token",
        "oidc_jwks_url": f"{idp}/{TENANT}/discovery/v2.0/keys",
        "provider_ca_files": [str(ca)],
        "client_secret_file": str(tmp / "client-secret"),
        "cookie_secret_file": str(tmp / "cookie-secret"),
        "http_address": f"unix://{socket}",
        "upstreams": [f"http://127.0.0.1:{router}"],
    }
    assert set(test) - {"skip_oidc_discovery", "login_url", "redeem_url", "oidc_jwks_url", "provider_ca_files"} <= set(options)
    return tomli_w.dumps({**options, **test})


def serve_workspaces(directory_: Path, echoes: dict[str, Echo]) -> threading.Event:
    stop, ready = threading.Event(), threading.Event()

    async def main() -> None:
        servers = [await unix_serve(e.handler, layout.workspace_gateway_socket(account, str(directory_)), process_request=e.process_request)
                   for account, e in echoes.items()]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for s in servers:
            s.close()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    assert ready.wait(10)
    return stop


@pytest.fixture(scope="module")
def chain(caddy_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    binary = go_cache.ensure("oauth2-proxy")
    tmp = tmp_path_factory.mktemp("team-chain")
    tls = certs.make(tmp / "idp-tls", "127.0.0.1")
    client = tenant().clients[CLIENT]
    idp_state = server.State(replace(tenant(), clients={CLIENT: replace(client, secret_scrypt=directory.hash_secret("client-secret-value"))}))
    httpd = server.make_server(idp_state, "127.0.0.1", 0, str(tls.cert), str(tls.key))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    idp = f"https://127.0.0.1:{httpd.server_address[1]}"
    sockets = tmp / "ws-gw"
    sockets.mkdir()
    echoes = {"ws-a": Echo("ws-a"), "ws-b": Echo("ws-b")}
    stop = serve_workspaces(sockets, echoes)
    port, router, o2p_socket = free_port(), free_port(), tmp / "o2p.sock"
    (tmp / "o2p.cfg").write_text(oauth2_proxy_config(tmp, idp, tls.ca_cert, o2p_socket, router))
    gateway = c.GatewayParams(hostname="a.example.com", port=port, listen=(ipaddress.ip_address("127.0.0.1"),),
                              front_proxies=(ipaddress.ip_address(FRONT),), upstream=f"unix/{o2p_socket}", access_log=str(tmp / "access.log"))
    (tmp / "Caddyfile").write_text(c.team_gateway(c.TeamGatewayParams(gateway, team("a", "b"), "vm", router_port=router, socket_dir=str(sockets))))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "xdg"), "XDG_CONFIG_HOME": str(tmp / "xdg")}
    o2p_log = tmp / "oauth2-proxy.log"
    with o2p_log.open("wb") as log:
        o2p = subprocess.Popen([str(binary), "--config", str(tmp / "o2p.cfg")], stdout=log, stderr=subprocess.STDOUT, env=env)
    caddy = subprocess.Popen([caddy_bin, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, caddy)
        deadline = time.monotonic() + 15
        while not o2p_socket.exists():
            assert o2p.poll() is None and time.monotonic() < deadline, o2p_log.read_text()[-3000:]
            time.sleep(0.05)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert)), follow_redirects=False, timeout=15) as idp_http:
            yield Chain(port, idp, idp_http, echoes, o2p_log)
    finally:
        for proc in (caddy, o2p):
            proc.terminate()
            proc.wait(10)
        httpd.shutdown()
        stop.set()


def test_alice_reaches_her_workspace_with_a_callback_on_its_own_host(chain: Chain) -> None:
    cookies, callback, redirect_uri = chain.sign_in("a.example.com", "alice@example.com")
    assert redirect_uri == "https://a.example.com/oauth2/callback"  # built from the admitted host: no fixed redirect_url
    assert callback.status_code == 302, (callback.status_code, callback.text[:300], chain.o2p_log.read_text()[-2000:])
    r = chain.gateway("a.example.com", "/", cookies)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    seen = json.loads(r.text)
    assert seen["workspace"] == "ws-a" and seen["x-forwarded-groups"] == "ws.a"
    assert "cookie" not in seen  # the session stays in the gateway


def test_a_client_sent_role_does_not_get_alice_into_b(chain: Chain) -> None:
    cookies, callback, _ = chain.sign_in("a.example.com", "alice@example.com")
    assert callback.status_code == 302
    before = len(chain.echoes["ws-b"].seen)
    # one VM's session cookie is valid on all its hosts: the router's role check is what keeps her out
    for forged in ({}, {"X-Forwarded-Groups": "ws.b"}, {"X_Forwarded_Groups": "ws.b"}, {"X-Auth-Request-Groups": "ws.b"},
                   {"X-Forwarded-Groups": "ws.a,ws.b", "X-Forwarded-User": "carol"}):
        r = chain.gateway("b.example.com", "/", dict(cookies), forged)
        assert r.status_code == 403, (forged, r.status_code, r.text[:200])
    assert len(chain.echoes["ws-b"].seen) == before
    # on her own host a forged role is replaced by the session's
    seen = json.loads(chain.gateway("a.example.com", "/", dict(cookies), {"X-Forwarded-Groups": "ws.b"}).text)
    assert seen["workspace"] == "ws-a" and seen["x-forwarded-groups"] == "ws.a"


def test_a_person_granted_only_another_vms_workspace_is_refused_here(chain: Chain) -> None:
    cookies, callback, _ = chain.sign_in("a.example.com", "bob@example.com")
    assert callback.status_code == 403, (callback.status_code, callback.text[:200])
    assert not cookies.get(o.COOKIE_NAME), cookies


def test_without_a_session_a_forged_role_gets_the_sign_in_not_the_workspace(chain: Chain) -> None:
    before = len(chain.echoes["ws-a"].seen)
    r = chain.gateway("a.example.com", "/", {}, {"X-Forwarded-Groups": "ws.a", "X_Forwarded_Groups": "ws.a"})
    assert r.status_code in (302, 401, 403) and len(chain.echoes["ws-a"].seen) == before
