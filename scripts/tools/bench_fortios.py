"""Benchmark the FortiOS CMDB provider on the dev stack's own objects: requests per operation.

Registers the FortiGate edge of the dev stack under Pulumi's mocks (the very objects `make plan`
shows), then plays the engine's part through Pulumi's dynamic-provider host (gRPC) against the
FortiOS stand-in over HTTPS on 127.0.0.1, counting the requests the stand-in receives:
create, no-op diff, update (a comment changed) and delete per object, grouped by type; the GETs of
one full refresh (parallel reads in a new provider process, as `pulumi refresh` runs them); and
the `move` calls one `pulumi up` needs after order drift of the policy block (worst case: the
block reversed and a foreign policy on top; and a foreign policy slipped into the middle).
A measurement, not a test: `python -m scripts.tools.bench_fortios`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope, make_certificate
from scripts.lab.fortios.host import TOKEN_KEY, ProviderHost
from scripts.lab.fortios.stack import (
    DEV_POLICY_ORDER,
    POLICY_TYPE,
    SECRETS,
    Deployed,
    deploy_graph,
    dev_settings,
    refresh,
    register_edge,
    up,
)

TOKEN = SECRETS["fortigateApiToken"]
TARGETS = {"create": "<= 2 (+ moves)", "no-op diff": "0", "update": "<= 2", "delete": "1"}


def kind(type_token: str) -> str:
    return type_token.rsplit(":", 1)[-1]


def host() -> ProviderHost:
    started = ProviderHost()
    started.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
    return started


def moves(device: FortiOSEmulator) -> int:
    return sum(1 for method, _, query in device.log if method == "PUT" and query.get("action") == "move")


def main() -> None:
    print("registering the dev stack's FortiGate edge under mocks ...", flush=True)
    resources, _ = register_edge(dev_settings())
    per_type: dict[tuple[str, str], list[int]] = {}
    wall: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_certificate(Path(tmp))
        device = FortiOSEmulator(cert, key, {TOKEN: TokenScope()}).start()
        device.seed_policy("root", "existing-lan-out")  # the stack's block goes above it

        def each(op: str, items: list[Deployed], action: Callable[[Deployed], Any]) -> list[Any]:
            print(f"{op} x{len(items)} ...", flush=True)
            started, results = time.perf_counter(), []
            for item in items:
                device.reset_counts()
                results.append(action(item))
                per_type.setdefault((op, kind(item.type)), []).append(sum(device.requests.values()))
            wall[op] = time.perf_counter() - started
            return results

        with host() as running:
            print("create (check + create of every object, references first) ...", flush=True)
            started = time.perf_counter()
            deployed: list[Deployed] = []
            for resource in [r for r in resources if r.type.startswith("pulumi-python:dynamic/fortios:")]:
                device.reset_counts()
                deployed += deploy_graph(running, [resource], device.url, str(cert))
                per_type.setdefault(("create", kind(resource.type)), []).append(sum(device.requests.values()))
            wall["create"] = time.perf_counter() - started
            each("no-op diff", deployed, lambda d: running.diff(d.id, d.state, d.inputs))

        print("refresh (new provider process, parallel reads) ...", flush=True)
        with host() as running:
            device.reset_counts()
            started = time.perf_counter()
            refreshed = refresh(running, deployed)
            wall["refresh"] = time.perf_counter() - started
            refresh_gets = device.requests["GET"]
            tables = len({d.state["path"] for d in deployed})

        drift: dict[str, int] = {}
        ids = {d.name: int(d.id) for d in deployed if d.type == POLICY_TYPE}
        print("order drift: block reversed, a foreign policy on top; one up ...", flush=True)
        for previous, name in zip(DEV_POLICY_ORDER, DEV_POLICY_ORDER[1:]):
            device.move("root", ids[name], "before", ids[previous])
        intruder = device.seed_policy("root", "admin-quick-fix")
        device.move("root", intruder, "before", ids[DEV_POLICY_ORDER[-1]])
        device.reset_counts()
        with host() as running:
            refreshed = up(running, refresh(running, refreshed))
        drift["worst case (reversed + foreign on top)"] = moves(device)
        in_order = [p["name"] for p in device.table("root", "firewall/policy")][: len(DEV_POLICY_ORDER)] == list(DEV_POLICY_ORDER)

        print("order drift: a foreign policy slipped into the middle; one up ...", flush=True)
        device.move("root", intruder, "after", ids["hcs-out-backup"])
        device.reset_counts()
        with host() as running:
            refreshed = up(running, refresh(running, refreshed))
        drift["a foreign policy in the middle"] = moves(device)
        in_order = in_order and [p["name"] for p in device.table("root", "firewall/policy")][: len(DEV_POLICY_ORDER)] == list(DEV_POLICY_ORDER)

        with host() as running:
            def comment_changed(d: Deployed) -> Any:
                field = "comments" if "comments" in d.inputs["payload"] else "comment"
                news = {**d.inputs, "payload": {**d.inputs["payload"], field: "bench: changed"}}
                return running.update(d.id, d.state, news)
            updated = each("update", refreshed, comment_changed)
            final = [Deployed(d.name, d.type, d.id, state, d.inputs) for d, state in zip(refreshed, updated)]
            each("delete", list(reversed(final)), lambda d: running.delete(d.id, d.state))
        device.stop()

    print()
    print(f"FortiOS CMDB provider via `python -m pulumi.dynamic` (gRPC) against the FortiOS stand-in "
          f"(HTTPS, 127.0.0.1): the dev stack's {len(deployed)} objects in {tables} tables")
    print(f"{'operation':<11} {'type':<22} {'n':>3} {'requests/object (min-max, mean)':>33} {'target':>15}")
    for (op, what), counts in sorted(per_type.items(), key=lambda item: (list(TARGETS).index(item[0][0]), item[0][1])):
        spread = f"{min(counts)}-{max(counts)}, {sum(counts) / len(counts):.2f}"
        print(f"{op:<11} {what:<22} {len(counts):>3} {spread:>33} {TARGETS[op]:>15}")
    print()
    print(f"full refresh: {refresh_gets} GETs for {len(deployed)} objects in {tables} tables (target <= {tables}), "
          f"{wall['refresh']:.2f} s")
    for scenario, count in drift.items():
        print(f"order drift, {scenario}: {count} move calls in one up "
              f"(block of {len(DEV_POLICY_ORDER)}; block in declared order after it: {in_order})")
    print()
    print(f"{'operation':<11} {'objects':>7} {'wall time (s)':>14}")
    for op in ("create", "no-op diff", "update", "delete"):
        print(f"{op:<11} {len(deployed):>7} {wall[op]:>14.2f}")


if __name__ == "__main__":
    main()
