"""An apt proxy for the test root, standing in for the one a locked-down DMZ VM reaches.

The test root's namespaces have no route out, like the VM behind its egress allowlist. The
host's `aptProxyAddress` is the only way to a Debian mirror; here that proxy is a small HTTP
forward proxy serving apt's absolute-URI GETs from this machine's own Debian mirror(s), and
nothing else, plus the test's own package site (`local_sites`, served from a directory), the way an
apt-cacher-ng passes an internal mirror through. It listens on a Unix socket in the host's network
namespace; `bridge.py` exposes that socket on the peer side of the test network (e.g.
192.0.2.1:3142), where the VM can reach it.

As strict as the proxy the product expects (an apt-cacher-ng or squid that lets through only a
Debian mirror): plain-http absolute-URI GET and HEAD only, to the mirror's host *and port* or a
local site's `host:port`; everything else is refused before any connection is made: another host
or another port of the mirror's host (403), `CONNECT` tunnels (403), an https or origin-form URI
(403), a path leaving a local site's directory (404), other methods (501). Redirects of the mirror
are passed back, never followed. Tested in `test_aptproxy.py`.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Stats:
    """What the proxy served: requests by status, and bytes sent to the VM."""

    requests: dict[int, int] = field(default_factory=dict)
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int, size: int) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.bytes += size


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allowed: frozenset[tuple[str, int]]  # (host, port) of the mirrors
    local_sites: dict[str, Path]
    client: httpx.Client
    stats: Stats


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        pass  # counted in Stats; apt's own output shows what was fetched

    def _refuse(self, status: int, reason: str) -> None:
        body = reason.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.stats.add(status, len(body))

    def _local(self, root: Path, path: str, head: bool) -> None:
        target = (root / path.lstrip("/")).resolve()
        if not target.is_file() or root.resolve() not in target.parents:
            return self._refuse(404, "not found")
        body = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server.stats.add(200, 0 if head else len(body))

    def _forward(self, head: bool) -> None:
        url = urlsplit(self.path)
        if url.scheme == "http" and url.netloc in self.server.local_sites:
            return self._local(self.server.local_sites[url.netloc], url.path, head)
        try:
            origin = (url.hostname, url.port or 80)
        except ValueError:
            return self._refuse(400, "bad port")
        if url.scheme != "http" or origin not in self.server.allowed:
            # The host alone is not enough: another port of the mirror's host is another service.
            allowed = sorted(f"{host}:{port}" for host, port in self.server.allowed)
            return self._refuse(403, f"only {allowed} and the local sites over http are proxied")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
        with self.server.client.stream("HEAD" if head else "GET", self.path, headers=headers) as upstream:
            self.send_response(upstream.status_code)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            self.end_headers()
            sent = 0
            if not head:
                for chunk in upstream.iter_raw():
                    self.wfile.write(chunk)
                    sent += len(chunk)
            self.server.stats.add(upstream.status_code, sent)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._forward(head=False)

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib name)
        self._forward(head=True)

    def do_CONNECT(self) -> None:  # noqa: N802 (stdlib name)
        # No tunnels: through one the VM could reach any port of any host, in TLS the proxy cannot read.
        self.close_connection = True
        self._refuse(403, "CONNECT is not proxied")


def _origin(mirror_url: str) -> tuple[str, int]:
    url = urlsplit(mirror_url)
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"expected an http:// mirror URL, got {mirror_url!r}")
    return url.hostname, url.port or 80


class AptProxy:
    """The proxy on `socket_path`, forwarding only to `mirror_urls`' hosts and ports and serving `local_sites`
    (`"host:port"` → directory); use as a context manager."""

    def __init__(self, socket_path: Path, mirror_urls: list[str], local_sites: dict[str, Path] | None = None) -> None:
        self.socket_path = socket_path
        self.stats = Stats()
        self._server = _Server(str(socket_path), _Handler)
        self._server.allowed = frozenset(_origin(u) for u in mirror_urls)
        self._server.local_sites = dict(local_sites or {})
        self._server.client = httpx.Client(timeout=httpx.Timeout(60.0), follow_redirects=False)
        self._server.stats = self.stats
        self._thread = threading.Thread(target=self._server.serve_forever, name="apt-proxy", daemon=True)

    def __enter__(self) -> AptProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.client.close()
        self.socket_path.unlink(missing_ok=True)


def main() -> None:
    """Run the proxy as its own process until SIGTERM (the demo keeps it beyond the process that made it).

    python -m scripts.lab.vm.aptproxy SOCKET --mirror URL [--mirror URL] [--site HOST:PORT=DIR ...]
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0] if main.__doc__ else None)
    parser.add_argument("socket", type=Path)
    parser.add_argument("--mirror", action="append", default=[], required=True)
    parser.add_argument("--site", action="append", default=[], help="HOST:PORT=DIR served as a local package site")
    args = parser.parse_args()
    sites = {site.split("=", 1)[0]: Path(site.split("=", 1)[1]) for site in args.site}
    args.socket.unlink(missing_ok=True)
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server thread starts, so it inherits the mask
    with AptProxy(args.socket, args.mirror, sites):
        signal.sigwait(stop)


if __name__ == "__main__":
    main()
