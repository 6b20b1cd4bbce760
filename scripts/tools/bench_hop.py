#!/usr/bin/env python3
"""What mutual TLS on the DMZ hop adds to a WebSocket round trip, side by side in one run.

Two chains on loopback, both real Caddy on both sides with the program's own renderers: the
central Caddy's site block → the gateway's Caddyfile → a WebSocket echo (standing in for
oauth2-proxy and code-server, identical for both). One chain's hop is plain HTTP (the gateway as
it was before the hop was authenticated: `tls=None`), the other mutual TLS with a hop PKI made as
the program's stand-in makes it. For each, `--count` small messages on one open WebSocket after
`--warmup` unmeasured ones, alternating between the chains message by message, so the machine's
drift hits both alike. Prints p50/p99 per chain and the difference. Goal: < 0.5 ms added at p50.
A measurement, not a test: it never fails on the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from components.gateway import render_caddy as c
from scripts.lab.example import front_hop_dir, hop_pki

HOST = "code.example.com"
GOAL_MS = 0.5


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _caddy(work: Path, name: str, config: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    path = work / f"{name}.caddy"
    path.write_text(config)
    caddy = Path(sys.executable).parent / "caddy"
    return subprocess.Popen([str(caddy), "run", "--adapter", "caddyfile", "--config", str(path)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _chain(work: Path, name: str, echo: int, mtls: bool) -> tuple[list[subprocess.Popen[bytes]], int]:
    """A central Caddy and a gateway for one chain; returns the processes and the central Caddy's HTTPS port."""
    vm = "127.0.0.2" if mtls else "127.0.0.3"
    gateway_port, https = _port(), _port()
    tls = None
    env: dict[str, str] = {"XDG_DATA_HOME": str(work / name / "data"), "XDG_CONFIG_HOME": str(work / name / "config")}
    if mtls:
        pki = hop_pki(work / name / "pki", HOST, vm)
        tls = c.HopTls(str(pki["gateway.crt"]), str(pki["gateway.key"]), str(pki["ca.crt"]))
        env["HCS_HOP_DIR"] = str(front_hop_dir(work / name / "hop", HOST, pki))
    params = c.GatewayParams(HOST, gateway_port, (ipaddress.ip_address(vm), ipaddress.ip_address("127.0.0.1")),
                             (ipaddress.ip_address("127.0.0.1"),), upstream=f"127.0.0.1:{echo}",
                             access_log=str(work / name / "access.log"), tls=tls)
    site = c.front_site(HOST, ipaddress.ip_address(vm), gateway_port)
    if not mtls:  # the hop before it was authenticated: plain HTTP, Host kept
        site = f"{HOST} {{\n\treverse_proxy http://{vm}:{gateway_port}\n}}\n"
    front = (f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {_port()}\n\thttps_port {https}\n"
             f"\tdefault_bind 127.0.0.1\n}}\n\n{site}")
    (work / name).mkdir(parents=True, exist_ok=True)
    return [_caddy(work, f"{name}-gateway", c.gateway(params), env), _caddy(work, f"{name}-front", front, env)], https


async def _echo(ws: websockets.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _measure(https: dict[str, int], count: int, warmup: int) -> dict[str, list[float]]:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the central Caddy's local CA: not what is measured
    times: dict[str, list[float]] = {name: [] for name in https}
    sockets = {}
    for name, port in https.items():
        deadline = time.monotonic() + 30
        while True:
            try:
                sockets[name] = await websockets.connect(f"wss://{HOST}:{port}/ws", ssl=context, host="127.0.0.1", port=port,
                                                         server_hostname=HOST, origin=f"https://{HOST}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    for i in range(warmup + count):
        for name, ws in sockets.items():
            started = time.perf_counter()
            await ws.send(b"ping")
            await ws.recv()
            if i >= warmup:
                times[name].append((time.perf_counter() - started) * 1000)
    for ws in sockets.values():
        await ws.close()
    return times


async def _main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="hcs-bench-hop-"))
    echo_port = _port()
    server = await websockets.serve(_echo, "127.0.0.1", echo_port)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        https = {}
        for name, mtls in (("plain hop", False), ("mutual TLS hop", True)):
            started, port = _chain(work, name.replace(" ", "-"), echo_port, mtls)
            processes += started
            https[name] = port
        times = await _measure(https, args.count, args.warmup)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        server.close()
    p50 = {name: statistics.median(t) for name, t in times.items()}
    print(f"WebSocket round trip through central Caddy → gateway Caddy → echo, {args.count} messages each, interleaved")
    print(f"{'chain':<16} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, t in times.items():
        print(f"{name:<16} {p50[name]:8.3f} {statistics.quantiles(t, n=100)[98]:8.3f} {statistics.fmean(t):8.3f}")
    added = p50["mutual TLS hop"] - p50["plain hop"]
    print(f"added by mutual TLS at p50: {added:+.3f} ms (goal < {GOAL_MS} ms)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
