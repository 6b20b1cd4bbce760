"""The live path, end to end: a real browser and real clients through the whole chain.

One chain per module (see `chain.py` for what is the product's and what is the test's). The
browser and the probes sit on the front proxy's side of the namespace pair, reach
`https://<hostname>` through the front Caddy's TLS, and are checked the way a user would see it.
"""

from __future__ import annotations

import datetime as dt
import html
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components import layout
from scripts.lab.example import hop_pki
from scripts.lab.livepath.browser import signed_in_cookie
from scripts.lab.livepath.chain import (
    CADDY_ADMIN_PORT,
    CODE_SERVER_PORT,
    OAUTH2_PROXY_SOCKET,
    OLD_OAUTH2_PROXY_PORT,
    LiveChain,
)

pytestmark = pytest.mark.slow

FOREIGN_ORIGIN = "https://evil.example"
# What code-server serves (checked to exist on loopback below), none of which may leak.
CODE_SERVER_PATHS = (
    "/",
    "/healthz",
    "/login",
    "/manifest.json",
    "/_static/src/browser/media/favicon.ico",
    "/stable-{commit}/static/out/vs/code/browser/workbench/workbench.js",
    # With `auth: none` this reads any file the IDE user can: the reason nothing may pass unsigned.
    "/vscode-remote-resource?path=/etc/passwd&tkn=x",
    "/proxy/9/",
    "/absproxy/9/",
)
# The only paths answered without a session: oauth2-proxy's own (sign-in flow and health).
PUBLIC_PATHS = {
    "/oauth2/ping": (200, "liveness of oauth2-proxy, used by the gateway's health check"),
    "/oauth2/ready": (200, "readiness of oauth2-proxy"),
    "/oauth2/start?rd=%2F": (302, "starts the Entra ID sign-in"),
    "/oauth2/sign_in": (302, "starts the Entra ID sign-in (skip_provider_button)"),
    "/oauth2/callback?code=x&state=y": (500, "the sign-in callback; refuses a state it did not issue (oauth2-proxy answers 500)"),
    "/oauth2/auth": (401, "session check; 401 without one"),
    "/oauth2/userinfo": (401, "identity of the session; 401 without one"),
    "/oauth2/sign_out": (302, "clears the session cookie"),
}


def ws_url(chain: LiveChain, base: str | None = None) -> str:
    return f"{base or chain.plan.public_url}/stable-{chain.code_server.commit}?reconnectionToken={uuid.uuid4()}&reconnection=false&skipWebSocketFrames=false"


def _is_sign_in_start(chain: LiveChain, location: str) -> bool:
    parts = urlsplit(location)
    query = parse_qs(parts.query)
    tenant = chain.settings.entra.tenant_id
    return (
        (parts.scheme, parts.hostname, parts.path) == ("https", "login.microsoftonline.com", f"/{tenant}/oauth2/v2.0/authorize")
        and query.get("redirect_uri") == [f"{chain.plan.public_url}/oauth2/callback"]
    )


def test_code_server_paths_exist_on_loopback(live_chain: LiveChain) -> None:
    """The paths below are real: code-server answers them directly (so their refusal means something)."""
    answered = {}
    for path in CODE_SERVER_PATHS:
        url = f"http://127.0.0.1:{CODE_SERVER_PORT}{path.format(commit=live_chain.code_server.commit)}"
        answered[path] = live_chain.probe("http", url, side="vm").get("status", 0)
    assert answered["/healthz"] == 200 and answered["/"] == 302
    assert answered["/stable-{commit}/static/out/vs/code/browser/workbench/workbench.js"] == 200
    assert all(status != 0 for status in answered.values()), answered
    leak = live_chain.probe("http", f"http://127.0.0.1:{CODE_SERVER_PORT}/vscode-remote-resource?path=/etc/passwd&tkn=x", side="vm")
    assert leak["body"].startswith("root:x:0:0:")


def test_without_session_nothing_of_code_server_is_served(live_chain: LiveChain) -> None:
    for path in CODE_SERVER_PATHS:
        url = live_chain.plan.public_url + path.format(commit=live_chain.code_server.commit)
        page = live_chain.probe("http", url)
        assert page["status"] == 302 and _is_sign_in_start(live_chain, page["headers"]["location"]), (path, page)
        # Go's redirect body: one link to the sign-in, nothing of code-server.
        assert page["body"].strip() in ("", f'<a href="{html.escape(page["headers"]["location"])}">Found</a>.'), (path, page["body"][:300])
        api = live_chain.probe("http", url, "--header", "Accept: application/json")
        assert api["status"] == 401, (path, api)
    # Nor the IDE's WebSocket: the upgrade is answered by the sign-in redirect, not code-server.
    anonymous = live_chain.probe("ws", ws_url(live_chain), "--origin", live_chain.plan.public_url)
    assert anonymous["status"] == 302


def test_only_oauth2_proxy_paths_are_public(live_chain: LiveChain) -> None:
    for path, (status, _why) in PUBLIC_PATHS.items():
        answer = live_chain.probe("http", live_chain.plan.public_url + path)
        assert answer["status"] == status, (path, answer)
        if status == 302 and path != "/oauth2/sign_out":
            assert _is_sign_in_start(live_chain, answer["headers"]["location"])
        assert "code-server" not in answer["body"].lower() and "vscode" not in answer["body"].lower()


def test_websocket_upgrades_with_own_origin_and_code_server_refuses_foreign(live_chain: LiveChain) -> None:
    chain = live_chain
    cookie = signed_in_cookie(chain)  # a real sign-in on the stand-in's form
    good = chain.probe("ws", ws_url(chain), "--origin", chain.plan.public_url, "--cookie", cookie)
    foreign = chain.probe("ws", ws_url(chain), "--origin", FOREIGN_ORIGIN, "--cookie", cookie)
    assert good["status"] == 101 and good["pong_ms"] > 0
    assert foreign["status"] == 403
    # The 403 is code-server's own Origin check (the same request straight to it is refused too),
    # and code-server accepts its own origin: so Host and X-Forwarded-Host reached it intact.
    local = f"http://127.0.0.1:{CODE_SERVER_PORT}"
    assert chain.probe("ws", ws_url(chain, local), "--origin", FOREIGN_ORIGIN, side="vm")["status"] == 403
    assert chain.probe("ws", ws_url(chain, local), "--origin", local, side="vm")["status"] == 101
    upgrades = [e for e in chain.gateway_log_entries() if e["request"]["uri"].startswith("/stable-") and e["status"] in (101, 403)]
    assert upgrades, "the gateway logged no WebSocket request"
    for entry in upgrades:
        request = entry["request"]
        assert request["host"] == chain.plan.hostname
        assert request["headers"]["X-Forwarded-Host"] == [chain.plan.hostname]
        assert request["headers"]["X-Forwarded-Proto"] == ["https"]
        assert request["remote_ip"] == chain.plan.front_ip


def _uid(chain: LiveChain, user: str) -> int:
    return int(chain.root.chroot_run(["id", "-u", user]).stdout)


def test_internal_services_answer_on_loopback_only(live_chain: LiveChain) -> None:
    chain = live_chain
    for source in (chain.plan.outsider_ip, chain.plan.front_ip):
        for port in (CODE_SERVER_PORT, OLD_OAUTH2_PROXY_PORT, CADDY_ADMIN_PORT):
            answer = chain.probe("http", f"http://{chain.plan.vm_ip}:{port}/", source=source)
            assert not answer["ok"] and "ConnectError" in answer["error"], (source, port, answer)
    # On the VM itself they are up, on loopback; the gateway has no admin endpoint at all.
    assert chain.probe("http", f"http://127.0.0.1:{CODE_SERVER_PORT}/healthz", side="vm")["status"] == 200
    # oauth2-proxy has no TCP port at all: only its Unix socket, which the IDE user cannot open.
    assert not chain.probe("http", f"http://127.0.0.1:{OLD_OAUTH2_PROXY_PORT}/oauth2/ping", side="vm")["ok"]
    ping = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "--unix-socket", OAUTH2_PROXY_SOCKET,
            "http://localhost/oauth2/ping"]
    assert chain.root.chroot_run(ping, user=chain.plan.service_user, check=False).stdout == "200"
    # The IDE user can neither connect to that socket nor put its own in its place (the hijack).
    for attempt in ("connect", "bind"):
        code = f"import socket; socket.socket(socket.AF_UNIX).{attempt}({OAUTH2_PROXY_SOCKET!r})"
        as_ide = chain.root.chroot_run(["python3", "-c", code], user=chain.plan.ide_user, check=False)
        assert as_ide.returncode == 1 and "PermissionError" in as_ide.stderr, (attempt, as_ide.stderr)
    assert not chain.probe("http", f"http://127.0.0.1:{CADDY_ADMIN_PORT}/config/", side="vm")["ok"]
    listeners = chain.root.chroot_run(["ss", "-Hltn"]).stdout.split("\n")
    exposed = sorted({line.split()[3] for line in listeners if line.strip() and not line.split()[3].startswith(("127.0.0.1:", "[::1]:"))})
    assert exposed == sorted({f"{chain.plan.vm_ip}:{chain.plan.gateway_port}", "0.0.0.0:22", "[::]:22"}), exposed


def test_ide_user_cannot_read_the_proxy_stack_or_write_outside_home_and_workspace(live_chain: LiveChain) -> None:
    chain = live_chain
    ide = chain.plan.ide_user
    for argv in (
        ["ls", layout.PROXY_STACK_DIR],
        ["cat", layout.PROXY_ENV_FILE],
        ["cat", f"{layout.PROXY_STACK_DIR}/Caddyfile"],
        ["cat", f"{layout.PROXY_STACK_DIR}/oauth2-proxy/oauth2-proxy.cfg"],
        ["cat", layout.GATEWAY_ACCESS_LOG],
    ):
        denied = chain.root.chroot_run(argv, user=ide, check=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, argv
    find = chain.root.chroot_run(
        ["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev", ")", "-prune", "-o", "!", "-type", "l", "-writable", "-print"],
        user=ide, check=False, timeout=600,
    )
    home, volume = f"/home/{ide}", chain.settings.host.workspace_volume
    # World-writable sticky temp dirs exist on any Debian; in production code-server's unit has
    # PrivateTmp and ProtectSystem=strict with ReadWritePaths = home + workspace volume.
    sticky_temp = {"/tmp", "/var/tmp", "/run/lock"}
    outside = [p for p in find.stdout.splitlines() if not (p == home or p.startswith(home + "/") or p == volume or p.startswith(volume + "/"))]
    outside = [p for p in outside if p not in sticky_temp and not any(p.startswith(t + "/") and _owned_by(chain, p, ide) for t in sticky_temp)]
    assert outside == [], outside


def _owned_by(chain: LiveChain, path: str, user: str) -> bool:
    return (chain.root.path / path.lstrip("/")).stat().st_uid == _uid(chain, user)


def test_spoofed_x_forwarded_for_does_not_change_the_logged_client(live_chain: LiveChain) -> None:
    chain = live_chain
    spoofed = "203.0.113.66"
    # A browser-side client sending the header through the front proxy: the front replaces it.
    chain.probe("http", f"{chain.plan.public_url}/oauth2/ping?xff-test", "--header", f"X-Forwarded-For: {spoofed}")
    time.sleep(0.5)  # Caddy writes its access log asynchronously
    entries = chain.gateway_log_entries()
    # The log's query filter re-encodes the query (sorted keys, `key=`), so match on its start.
    fronted = [e for e in entries if e["request"]["uri"].startswith("/oauth2/ping?xff-test")][-1]
    assert fronted["request"]["remote_ip"] == chain.plan.front_ip
    assert fronted["request"]["client_ip"] != spoofed and fronted["request"]["client_ip"] in chain.root.config.network.peer_ips


def _expired_front_certificate(chain: LiveChain, directory: Path) -> tuple[Path, Path]:
    """A client certificate of the hop's own CA that expired yesterday."""
    ca_key = serialization.load_pem_private_key(chain.hop["ca.key"].read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(chain.hop["ca.crt"].read_bytes())
    key = ed25519.Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired front")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=3)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False).sign(ca_key, None))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "expired.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return directory / "expired.crt", directory / "expired.key"


def test_the_dmz_hop_is_mutual_tls(live_chain: LiveChain, tmp_path: Path) -> None:
    """From the front proxy's own address: only the hop's client certificate gets a connection;
    none, another CA's, an expired one and plain HTTP are refused at the handshake (or before any
    proxying), so no such peer can set the client IP the gateway logs."""
    chain, plan = live_chain, live_chain.plan
    spoofed = "203.0.113.77"
    url = f"https://{plan.hostname}:{plan.gateway_port}/oauth2/ping?hop-test"
    other = hop_pki(tmp_path / "other-ca", plan.hostname, plan.vm_ip)
    expired = _expired_front_certificate(chain, tmp_path / "expired")

    def curl(*args: str, source: str = plan.front_ip, target: str = url) -> tuple[int, str]:
        done = chain.root.peer_run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                    "--interface", source, "--resolve", f"{plan.hostname}:{plan.gateway_port}:{plan.vm_ip}",
                                    "--cacert", str(chain.hop["ca.crt"]), "-H", f"X-Forwarded-For: {spoofed}", *args, target])
        return done.returncode, done.stdout + done.stderr

    good = curl("--cert", str(chain.hop["front.crt"]), "--key", str(chain.hop["front.key"]))
    assert good == (0, "200"), good  # the positive control: the hop's own client certificate
    refused = {
        "no certificate": curl(),
        "another CA's certificate": curl("--cert", str(other["front.crt"]), "--key", str(other["front.key"])),
        "an expired certificate": curl("--cert", str(expired[0]), "--key", str(expired[1])),
        "a direct client with the certificate": curl("--cert", str(chain.hop["front.crt"]), "--key", str(chain.hop["front.key"]),
                                                     source=plan.outsider_ip),
    }
    for what, (code, said) in refused.items():
        if what.startswith("a direct"):
            assert said.startswith("403"), (what, said)  # TLS is not enough: only the front proxy's address is served
        else:
            # curl's handshake failures: 35 (SSL connect), 56 (the server's alert read back), 55 (the server hung up)
            assert code in (35, 55, 56) and said.startswith("000"), (what, code, said)
    plain = curl(target=f"http://{plan.hostname}:{plan.gateway_port}/oauth2/ping?hop-test")
    assert plain[1].startswith("400"), plain  # Caddy's "HTTP request to an HTTPS server": nothing is proxied
    time.sleep(0.5)
    entries = [e for e in chain.gateway_log_entries() if e["request"]["uri"].startswith("/oauth2/ping?hop-test")]
    assert [e["request"]["client_ip"] for e in entries if e["status"] == 200] == [spoofed]  # believed from the proved front proxy only
    assert all(e["request"]["remote_ip"] != plan.front_ip or e["status"] == 200 for e in entries), entries