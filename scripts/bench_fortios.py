"""Benchmark the FortiOS CMDB provider: requests per operation and wall time for 50 objects.

Runs the provider the way a deployment does (Pulumi's dynamic-provider host over gRPC) against
the FortiOS emulator over HTTPS on 127.0.0.1, counts the requests the emulator receives, and
prints a table. A measurement, not a test: `python scripts/bench_fortios.py [--objects 50]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from tests.fortigate.emulator import FortiOSEmulator, TokenScope, make_certificate  # noqa: E402
from tests.fortigate.host import TOKEN_KEY, ProviderHost  # noqa: E402

TOKEN = "tok-bench-0123456789abcdefghijkl"
TARGETS = {"create": "<= 2", "update": "<= 2", "no-op diff": "0", "refresh": "1", "delete": "1"}


def objects(count: int, url: str, ca: str) -> list[dict[str, Any]]:
    """A stack of `count` objects: 60% addresses, 20% services, 20% chained policies."""
    base = {"url": url, "vdom": "root", "ca_bundle": ca, "insecure": False, "adopt": False}
    n_policies, n_services = count // 5, count // 5
    n_addresses = count - n_policies - n_services
    out = [{**base, "path": "firewall/address", "name": f"bench-a{i}", "payload": {"subnet": f"198.51.100.{i}/32", "comment": "bench"}}
           for i in range(n_addresses)]
    out += [{**base, "path": "firewall.service/custom", "name": f"bench-s{i}", "payload": {"tcp-portrange": str(10000 + i), "comment": "bench"}}
            for i in range(n_services)]
    for i in range(n_policies):
        out.append({**base, "path": "firewall/policy", "name": f"bench-p{i}",
                    "placement": "top" if i == 0 else f"after:bench-p{i - 1}",
                    "payload": {"srcintf": [{"name": "dmz"}], "dstintf": [{"name": "any"}],
                                "srcaddr": [{"name": "bench-a0"}], "dstaddr": [{"name": f"bench-a{i % n_addresses}"}],
                                "service": [{"name": f"bench-s{i % n_services}"}], "action": "accept",
                                "schedule": "always", "logtraffic": "all", "comments": "bench"}})
    return out


def kind(props: dict[str, Any]) -> str:
    return {"firewall/address": "address", "firewall.service/custom": "service", "firewall/policy": "policy"}[props["path"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=50)
    count = parser.parse_args().objects
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_certificate(Path(tmp))
        device = FortiOSEmulator(cert, key, {TOKEN: TokenScope()}).start()
        device.seed_policy("root", "existing-lan-out")  # the program's block goes above it
        per_op: dict[tuple[str, str], list[int]] = {}
        wall: dict[str, float] = {}

        def run(op: str, items: list[Any], action: Callable[[Any], Any]) -> list[Any]:
            results = []
            started = time.perf_counter()
            for item in items:
                device.reset_counts()
                results.append(action(item))
                per_op.setdefault((op, kind(item[-1] if isinstance(item, tuple) else item)), []).append(sum(device.requests.values()))
            wall[op] = time.perf_counter() - started
            return results

        with ProviderHost() as host:
            host.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
            stack = [host.check(p).inputs for p in objects(count, device.url, str(cert))]
            created = run("create", stack, host.create)
            states = [(id_, outs, inputs) for (id_, outs), inputs in zip(created, stack)]
            run("no-op diff", states, lambda s: host.diff(s[0], s[1], s[2]))
            refreshed = run("refresh", states, lambda s: host.read(s[0], s[1]))
            states = [(id_, outs, inputs) for (id_, outs), (_, _, inputs) in zip(refreshed, states)]
            changed = [(id_, outs, {**inputs, "payload": {**inputs["payload"], **({"comments": "bench2"} if "comments" in inputs["payload"] else {"comment": "bench2"})}})
                       for id_, outs, inputs in states]
            updated = run("update", changed, lambda s: host.update(s[0], s[1], s[2]))
            final = [(s[0], outs, s[2]) for s, outs in zip(changed, updated)]
            run("delete", list(reversed(final)), lambda s: host.delete(s[0], s[1]))
        device.stop()

    print(f"FortiOS CMDB provider via `python -m pulumi.dynamic` (gRPC) against the emulator (HTTPS, 127.0.0.1), {count} objects")
    print(f"{'operation':<11} {'kind':<8} {'n':>3} {'requests/object (min-max, mean)':>33} {'target':>7}")
    for (op, what), counts in per_op.items():
        print(f"{op:<11} {what:<8} {len(counts):>3} {f'{min(counts)}-{max(counts)}, {sum(counts) / len(counts):.2f}':>33} {TARGETS[op]:>7}")
    print()
    print(f"{'operation':<11} {'objects':>7} {'total requests':>15} {'wall time (s)':>14}")
    for op in ("create", "no-op diff", "refresh", "update", "delete"):
        total = sum(sum(c) for (o, _), c in per_op.items() if o == op)
        print(f"{op:<11} {count:>7} {total:>15} {wall[op]:>14.2f}")


if __name__ == "__main__":
    main()
