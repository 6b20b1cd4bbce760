"""The test root's apt proxy (`aptproxy.AptProxy`): what it forwards and what it refuses.

HTTP is spoken over its Unix socket with a plain socket, as apt's requests arrive through the
bridge (absolute URIs, proxy style). The "mirror" is a small `http.server` on 127.0.0.1 serving a
directory under `/debian`; a second one on another port of the same host records whether the
proxy ever reached it. The expected answers are those of a proxy configured for one Debian mirror
only (apt-cacher-ng, squid): no other host, no other port, no tunnel, nothing outside the site.
"""

from __future__ import annotations

import functools
import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.lab.vm.aptproxy import AptProxy

RELEASE = b"Origin: Debian\nSuite: stable\n"
PACKAGE = b"!<arch>\ndebian-binary\n"
SECRET = b"not for the VM"
SITE = "packages.test:8000"


class _Recording(http.server.SimpleHTTPRequestHandler):
    seen: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        self.seen.append(self.path)


@dataclass
class Upstream:
    port: int
    seen: list[str]


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, Upstream]:
    seen: list[str] = []
    handler = functools.partial(type("Handler", (_Recording,), {"seen": seen}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Upstream(server.server_address[1], seen)


@dataclass
class Setup:
    socket: Path
    mirror: Upstream
    other: Upstream  # another port of the mirror's host, not a mirror


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("apt")
    (root / "mirror/debian/dists/stable").mkdir(parents=True)
    (root / "mirror/debian/dists/stable/Release").write_bytes(RELEASE)
    (root / "site/pool").mkdir(parents=True)
    (root / "site/pool/hcs.deb").write_bytes(PACKAGE)
    (root / "secret").write_bytes(SECRET)  # beside the site, not in it
    (root / "site/pool/escape").symlink_to(root / "secret")
    mirror_server, mirror = _serve(root / "mirror")
    other_server, other = _serve(root / "mirror")
    with AptProxy(root / "p.sock", [f"http://127.0.0.1:{mirror.port}/debian"], {SITE: root / "site"}):
        yield Setup(root / "p.sock", mirror, other)
    mirror_server.shutdown()
    other_server.shutdown()


def _ask(setup: Setup, method: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """One request over the proxy's socket; (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(setup.socket))
        if host is None:
            host = target.split("/")[2] if "://" in target else target
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = http.client.HTTPResponse(sock, method=method)
        answer.begin()
        return answer.status, answer.read()


def test_mirror_get_and_head_are_forwarded(proxy: Setup) -> None:
    url = f"http://127.0.0.1:{proxy.mirror.port}/debian/dists/stable/Release"
    assert _ask(proxy, "GET", url) == (200, RELEASE)
    assert _ask(proxy, "HEAD", url) == (200, b"")
    assert "/debian/dists/stable/Release" in proxy.mirror.seen


def test_local_site_get_is_served(proxy: Setup) -> None:
    assert _ask(proxy, "GET", f"http://{SITE}/pool/hcs.deb") == (200, PACKAGE)


@pytest.mark.parametrize("target", [
    "http://example.org/debian/dists/stable/Release",                # a foreign host
    "http://localhost:{mirror}/debian/dists/stable/Release",          # the mirror's server by another name
    "http://127.0.0.1:{mirror}@example.org/debian/dists/stable/Release",  # userinfo: the host is example.org
    "http://127.0.0.1:{other}/debian/dists/stable/Release",           # another port of the mirror's host
    "http://127.0.0.1/debian/dists/stable/Release",                   # port 80 of the mirror's host
    "http://packages.test:8001/pool/hcs.deb",                         # another port of a local site
    "https://127.0.0.1:{mirror}/debian/dists/stable/Release",         # not plain http
    "/debian/dists/stable/Release",                                   # origin-form: no proxy request at all
])
def test_anything_but_the_mirror_and_the_sites_is_refused_unreached(proxy: Setup, target: str) -> None:
    target = target.format(mirror=proxy.mirror.port, other=proxy.other.port)
    before = (len(proxy.mirror.seen), len(proxy.other.seen))
    status, body = _ask(proxy, "GET", target, host=f"127.0.0.1:{proxy.mirror.port}")
    assert status == 403 and RELEASE not in body
    assert (len(proxy.mirror.seen), len(proxy.other.seen)) == before  # refused before any connection


@pytest.mark.parametrize("target", ["127.0.0.1:{mirror}", "127.0.0.1:{other}", "example.org:443", "packages.test:8000"])
def test_connect_tunnels_are_refused(proxy: Setup, target: str) -> None:
    target = target.format(mirror=proxy.mirror.port, other=proxy.other.port)
    before = (len(proxy.mirror.seen), len(proxy.other.seen))
    assert _ask(proxy, "CONNECT", target)[0] == 403
    assert (len(proxy.mirror.seen), len(proxy.other.seen)) == before


@pytest.mark.parametrize("path", ["/../secret", "/pool/../../secret", "/pool/escape", "/pool/%2e%2e/%2e%2e/secret", "/"])
def test_nothing_outside_the_site_directory_is_served(proxy: Setup, path: str) -> None:
    status, body = _ask(proxy, "GET", f"http://{SITE}{path}")
    assert status == 404 and SECRET not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_refused(proxy: Setup, method: str) -> None:
    before = len(proxy.mirror.seen)
    status, _ = _ask(proxy, method, f"http://127.0.0.1:{proxy.mirror.port}/debian/dists/stable/Release")
    assert status >= 400 and len(proxy.mirror.seen) == before
