#!/usr/bin/env python3
"""Measure what the live path costs: WebSocket round trips and time to the first workbench byte.

Brings up the same chain as the live-path tests (test root, code-server as the IDE user, gateway
Caddy, the real oauth2-proxy, the Entra stand-in, front Caddy with TLS; the session comes from a
real sign-in in chromium), then measures, from the front proxy's side,
through the full chain, and from the VM itself, straight to code-server on loopback:

* WebSocket round-trip latency: `--count` small ping frames (4-byte payload) on one open IDE
  WebSocket (`/stable-<commit>`), answered by code-server's own WebSocket layer (it pongs every
  ping), after `--warmup` unmeasured ones; p50/p99/mean/max;
* time to first byte of the workbench page (`GET /?folder=…`), a fresh connection (TLS included
  through the chain) per request.

Prints a table (and `--json` writes the numbers). Target: the chain adds < 1 ms p50 per round
trip on loopback. A measurement, not a test: it never fails on the numbers. Needs root.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

from scripts.lab.livepath.browser import signed_in_cookie
from scripts.lab.livepath.chain import (
    CODE_SERVER_PORT,
    LiveChain,
    example_settings,
    plan_from,
    root_config,
)
from scripts.lab.vm import netns, rootfs
from scripts.lab.vm.machine import RealRoot
from scripts.tools.code_server_cache import ensure

TARGET_ADDED_P50_MS = 1.0


def _ws(base: str, commit: str) -> str:
    return f"{base}/stable-{commit}?reconnectionToken={uuid.uuid4()}&reconnection=false&skipWebSocketFrames=false"


def measure(chain: LiveChain, count: int, warmup: int, ttfb_count: int) -> dict[str, dict]:  # type: ignore[type-arg]
    plan, commit = chain.plan, chain.code_server.commit
    local = f"http://127.0.0.1:{CODE_SERVER_PORT}"
    folder = f"/?folder={plan.workspace}"
    common = ("--count", str(count), "--warmup", str(warmup))
    # A fresh sign-in per chain measurement: a cookie older than cookie_refresh would refresh first.
    return {
        "ws_chain": chain.probe("ws-latency", _ws(plan.public_url, commit), "--origin", plan.public_url, "--cookie", signed_in_cookie(chain), *common),
        "ws_direct": chain.probe("ws-latency", _ws(local, commit), "--origin", local, *common, side="vm"),
        "ttfb_chain": chain.probe("ttfb", plan.public_url + folder, "--cookie", signed_in_cookie(chain), "--count", str(ttfb_count)),
        "ttfb_direct": chain.probe("ttfb", local + folder, "--count", str(ttfb_count), side="vm"),
    }


def table(results: dict[str, dict]) -> str:  # type: ignore[type-arg]
    rows = [
        ("WebSocket round trip, full chain", results["ws_chain"]),
        ("WebSocket round trip, code-server on loopback", results["ws_direct"]),
        ("first workbench byte, full chain (new TLS conn.)", results["ttfb_chain"]),
        ("first workbench byte, code-server on loopback", results["ttfb_direct"]),
    ]
    lines = [f"{'measurement':<50} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}"]
    for name, r in rows:
        lines.append(f"{name:<50} {r['count']:>5} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['mean_ms']:>8.3f} {r['max_ms']:>8.3f}")
    added = results["ws_chain"]["p50_ms"] - results["ws_direct"]["p50_ms"]
    verdict = "within" if added < TARGET_ADDED_P50_MS else "OVER"
    lines.append(f"chain adds {added:.3f} ms p50 per WebSocket round trip ({verdict} the < {TARGET_ADDED_P50_MS:.0f} ms target)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="measured WebSocket round trips (default 1000)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured round trips first (default 50)")
    parser.add_argument("--ttfb-count", type=int, default=20, help="workbench requests (default 20)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if not 1 <= args.count <= 100_000:
        parser.error("--count: expected 1..100000 (a bounded number of messages)")
    settings = example_settings()
    plan = plan_from(settings)
    code_server = ensure()
    netns.remove_stale()
    image = rootfs.ensure_image(progress=lambda line: print(f"[realroot] {line}", file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="hcs-bench-") as work:
        workdir = Path(work)
        root = RealRoot(image, workdir / "root", root_config(plan)).start()
        try:
            print("bringing up the chain …", file=sys.stderr)
            chain = LiveChain(root, plan, settings, code_server, workdir).start()
            results = measure(chain, args.count, args.warmup, args.ttfb_count)
        finally:
            root.close()
    print(f"code-server {code_server.version} ({code_server.commit[:12]}), {plan.hostname}, gateway :{plan.gateway_port}")
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
