"""HTTP and WebSocket probes the live-path tests run from a chosen network namespace.

The tests' own process stays in the host namespace; a probe that must come from "the front
proxy's side" or from "another address" is this module run as a subprocess under
`ip netns exec NS`, printing one JSON object. Probes never follow redirects and never relax TLS:
they trust exactly the CA file they are given, and resolve the public hostname to the address
they are told (like the browser's host-resolver rule), so the request carries the real Host/SNI.

    python -m scripts.lab.livepath.client http URL [--resolve HOST:PORT:ADDR] [--cafile F] [--cookie C]
                                         [--header K:V]... [--source ADDR]
    python -m scripts.lab.livepath.client ws URL --origin O [--resolve ...] [--cafile F] [--cookie C]
    python -m scripts.lab.livepath.client ws-latency URL --origin O --count N [...]
    python -m scripts.lab.livepath.client ttfb URL --count N [...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import websockets
from websockets.asyncio.client import connect


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (no interpolation: a real observed value)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _summary(samples_ms: list[float]) -> dict[str, float | int]:
    return {
        "count": len(samples_ms),
        "p50_ms": percentile(samples_ms, 0.50),
        "p99_ms": percentile(samples_ms, 0.99),
        "mean_ms": statistics.fmean(samples_ms),
        "max_ms": max(samples_ms),
    }


class _Target:
    """Where a URL's host really goes (an explicit address, as a resolver rule would say)."""

    def __init__(self, url: str, resolve: str | None, cafile: str | None, source: str | None) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        self.address = self.host
        if resolve:
            host, port, address = resolve.split(":", 2)
            if host == self.host and int(port) == self.port:
                self.address = address
        self.tls = parts.scheme in ("https", "wss")
        self.ssl = ssl.create_default_context(cafile=cafile) if self.tls and cafile else (ssl.create_default_context() if self.tls else None)
        self.source = source

    def socket(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.address, self.port), timeout=timeout, source_address=(self.source, 0) if self.source else None)


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers = {}
    for item in args.header or []:
        name, _, value = item.partition(":")
        headers[name.strip()] = value.strip()
    if args.cookie:
        headers["Cookie"] = args.cookie
    return headers


def _transport(target: _Target) -> httpx.HTTPTransport:
    # httpx has no resolver hook; pin the connection by overriding the address it dials while
    # keeping the URL (Host header and SNI) untouched.
    class Pinned(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.extensions["sni_hostname"] = target.host
            return super().handle_request(request)

    return Pinned(verify=target.ssl or False, local_address=target.source, retries=0)


def _pinned_url(target: _Target) -> tuple[str, str]:
    parts = urlsplit(target.url)
    netloc = f"{target.address}:{target.port}"
    return parts._replace(netloc=netloc).geturl(), f"{target.host}:{target.port}" if parts.port else target.host


def probe_http(args: argparse.Namespace) -> dict[str, Any]:
    target = _Target(args.url, args.resolve, args.cafile, args.source)
    url, host = _pinned_url(target)
    headers = {"Host": host, **_headers(args)}
    try:
        with httpx.Client(transport=_transport(target), timeout=args.timeout, follow_redirects=False) as client:
            response = client.request(args.method, url, headers=headers)
    except (httpx.TransportError, OSError) as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "status": response.status_code, "headers": dict(response.headers), "body": response.text[:4000]}


class _NoRedirects(connect):
    """A WebSocket client that reports a redirect as the answer it is, instead of following it."""

    def process_redirect(self, exc: Exception) -> Exception:
        return exc


async def _ws_open(target: _Target, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    sock = target.socket(args.timeout)
    return _NoRedirects(
        target.url.replace("https://", "wss://").replace("http://", "ws://"),
        sock=sock,
        ssl=target.ssl,
        server_hostname=target.host if target.tls else None,
        origin=args.origin,
        additional_headers=_headers(args),
        compression=None,
        open_timeout=args.timeout,
    )


def probe_ws(args: argparse.Namespace) -> dict[str, Any]:
    target = _Target(args.url, args.resolve, args.cafile, args.source)

    async def run() -> dict[str, Any]:
        try:
            async with await _ws_open(target, args) as ws:
                started = time.perf_counter()
                await asyncio.wait_for(await ws.ping(), timeout=args.timeout)
                return {"ok": True, "status": ws.response.status_code, "pong_ms": (time.perf_counter() - started) * 1000}
        except websockets.InvalidStatus as refused:
            return {"ok": True, "status": refused.response.status_code, "body": refused.response.body.decode(errors="replace")[:2000]}
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as error:
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}

    return asyncio.run(run())


def probe_ws_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Round trips of small WebSocket ping frames, answered by the server's own WebSocket layer."""
    target = _Target(args.url, args.resolve, args.cafile, args.source)

    async def run() -> dict[str, Any]:
        async with await _ws_open(target, args) as ws:
            for _ in range(args.warmup):
                await asyncio.wait_for(await ws.ping(), timeout=args.timeout)
            samples = []
            for index in range(args.count):
                payload = index.to_bytes(4, "big")
                started = time.perf_counter()
                await asyncio.wait_for(await ws.ping(payload), timeout=args.timeout)
                samples.append((time.perf_counter() - started) * 1000)
            return {"ok": True, "status": ws.response.status_code, **_summary(samples)}

    return asyncio.run(run())


def probe_ttfb(args: argparse.Namespace) -> dict[str, Any]:
    """Time from sending the workbench request to its first body byte, on a fresh connection each."""
    target = _Target(args.url, args.resolve, args.cafile, args.source)
    url, host = _pinned_url(target)
    headers = {"Host": host, "Accept": "text/html", **_headers(args)}
    samples = []
    status = 0
    for _ in range(args.count):
        with httpx.Client(transport=_transport(target), timeout=args.timeout, follow_redirects=False) as client:
            started = time.perf_counter()
            with client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                next(response.iter_raw(1))
                samples.append((time.perf_counter() - started) * 1000)
    return {"ok": True, "status": status, **_summary(samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    for name in ("http", "ws", "ws-latency", "ttfb"):
        p = sub.add_parser(name)
        p.add_argument("url")
        p.add_argument("--resolve", help="HOST:PORT:ADDRESS, like curl")
        p.add_argument("--cafile")
        p.add_argument("--cookie")
        p.add_argument("--header", action="append")
        p.add_argument("--source", help="local address to connect from")
        p.add_argument("--timeout", type=float, default=10.0)
        p.add_argument("--method", default="GET")
        p.add_argument("--origin")
        p.add_argument("--count", type=int, default=200)
        p.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    probes = {"http": probe_http, "ws": probe_ws, "ws-latency": probe_ws_latency, "ttfb": probe_ttfb}
    print(json.dumps(probes[args.probe](args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
