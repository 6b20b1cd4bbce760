"""The central Caddy's side of the DMZ hop, live: the rendered site block in a real Caddy, dialing
a gateway stand-in over TLS on 127.0.0.1 (a Python TLS server that records what reaches it).

The genuine gateway (the hop CA's server certificate, requiring the hop's client certificate) gets
the request with the public Host; an impostor on the same address (another CA's certificate for
the same name, as a local account could serve while the gateway is down) gets no request at all:
the central Caddy refuses it at the handshake and the visitor sees 502.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from components.gateway import render_caddy as c
from scripts.lab.example import front_hop_dir, hop_pki
from tests.gateway.test_caddy_live import free_port

HOST = "code.example.com"
GATEWAY = "127.0.0.1"

pytestmark = pytest.mark.slow


class TlsStandIn:
    """A one-address TLS server in a thread: it answers 200 and keeps the request lines it read."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.listener = socket.create_server((GATEWAY, 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[str] = []
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self.handshakes += 1
                    head = conn.recv(65536).decode(errors="replace")
                    self.requests.append(head)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (ssl.SSLError, OSError):
                raw.close()

    def close(self) -> None:
        self.listener.close()


def _front(caddy_bin: str, env: dict[str, str], tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], int]:
    site = tmp_path / "site.caddy"
    site.write_text(c.front_site(HOST, ipaddress.ip_address(GATEWAY), port))
    https = free_port()
    main = tmp_path / "Caddyfile"
    main.write_text(f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {free_port()}\n\thttps_port {https}\n"
                    f"\tstorage file_system {tmp_path / 'storage'}\n}}\n\nimport {site}\n")
    proc = subprocess.Popen([caddy_bin, "run", "--adapter", "caddyfile", "--config", str(main)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, https


def status_over_https(https: int, host: str = HOST) -> str:
    """The HTTP status of https://`host`/ on 127.0.0.1:`https` (curl; "000" when nothing answered in 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--resolve",
                               f"{host}:{https}:127.0.0.1", f"https://{host}:{https}/"], capture_output=True, text=True)
        if done.stdout not in ("000", "") or time.monotonic() > deadline:
            return done.stdout
        time.sleep(0.2)


@pytest.mark.parametrize("impostor", [False, True], ids=["genuine gateway", "impostor of another CA"])
def test_the_central_caddy_believes_only_a_gateway_of_the_hop_ca(impostor: bool, caddy_bin: str, caddy_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    hop = hop_pki(tmp_path / "hop-pki", HOST, GATEWAY)
    other = hop_pki(tmp_path / "other-pki", HOST, GATEWAY)
    served = other if impostor else hop
    gateway = TlsStandIn(served["gateway.crt"], served["gateway.key"], None if impostor else hop["ca.crt"])
    env = {**caddy_env, "HCS_HOP_DIR": str(front_hop_dir(tmp_path / "hop", HOST, hop))}
    front, https = _front(caddy_bin, env, tmp_path, gateway.port)
    try:
        status = status_over_https(https)
    finally:
        front.terminate()
        front.wait(timeout=10)
        gateway.close()
    if impostor:
        assert status == "502" and gateway.requests == [], (status, gateway.requests)
    else:
        assert status == "200" and len(gateway.requests) == 1, status
        assert f"Host: {HOST}:{https}" in gateway.requests[0] or f"host: {HOST}" in gateway.requests[0].lower()
