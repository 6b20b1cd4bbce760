"""The demo's FortiGate: the FortiOS stand-in as the firewall's API, and the program's FortiGate objects applied to it.

    python -m scripts.lab.demo.fortigate device --listen ADDR --cert F --key F          (the device, until SIGTERM)
    python -m scripts.lab.demo.fortigate apply STATE < registrations.json                (one converge)

Both run in the demo's peer namespace, where the stack's `fortigateUrl` (https://192.0.2.1) is.
`apply` plays the engine's part for the dynamic resources (`pulumi-python:dynamic/fortios:*`),
which the mock runtime never creates: in registration order, each resource's own pickled provider
(`__provider`, as the program serialized it) is asked to `check`, then `create`, or `diff` and
`update` against what the last converge stored in STATE; resources gone from the graph are
deleted, newest first. The token comes from FORTIOS_API_TOKEN, as the provider reads it.
What this does not prove: the Pulumi engine's own scheduling (issue: the real engine), a real FortiOS.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import dill

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope

DYNAMIC_PREFIX = "pulumi-python:dynamic/fortios:"


def _provider(serialized: str) -> Any:
    return dill.loads(base64.b64decode(serialized))


def apply(registrations: list[dict[str, Any]], state_path: Path) -> dict[str, Any]:
    """Converge the device on `registrations`; return counts of created/updated/deleted/unchanged."""
    state: dict[str, dict[str, Any]] = json.loads(state_path.read_text()) if state_path.exists() else {}
    counts = {"created": 0, "updated": 0, "replaced": 0, "deleted": 0, "unchanged": 0}
    seen: list[str] = []
    for reg in registrations:
        urn, values = reg["urn"], dict(reg["values"])
        provider = _provider(values.pop("__provider"))
        news = provider.check({}, values).inputs
        seen.append(urn)
        old = state.get(urn)
        if old is not None:
            diff = provider.diff(old["id"], old["outs"], news)
            if not diff.changes:
                counts["unchanged"] += 1
                continue
            if diff.replaces:
                provider.delete(old["id"], old["outs"])
                created = provider.create(news)
                state[urn] = {"id": created.id, "outs": created.outs, "provider": old["provider"]}
                counts["replaced"] += 1
            else:
                updated = provider.update(old["id"], old["outs"], news)
                state[urn] = {"id": old["id"], "outs": updated.outs, "provider": old["provider"]}
                counts["updated"] += 1
        else:
            created = provider.create(news)
            state[urn] = {"id": created.id, "outs": created.outs, "provider": reg["values"]["__provider"]}
            counts["created"] += 1
        state_path.write_text(json.dumps(state))  # after every step: a failure loses nothing done
    for urn in [u for u in reversed(list(state)) if u not in seen]:
        gone = state.pop(urn)
        _provider(gone["provider"]).delete(gone["id"], gone["outs"])
        counts["deleted"] += 1
        state_path.write_text(json.dumps(state))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    device = sub.add_parser("device")
    device.add_argument("--listen", required=True)
    device.add_argument("--cert", type=Path, required=True)
    device.add_argument("--key", type=Path, required=True)
    run = sub.add_parser("apply")
    run.add_argument("state", type=Path)
    args = parser.parse_args()
    token = os.environ.get("FORTIOS_API_TOKEN", "")
    if not token:
        print("FORTIOS_API_TOKEN is not set", file=sys.stderr)
        return 2
    if args.command == "device":
        stop = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        emulator = FortiOSEmulator(args.cert, args.key, {token: TokenScope(vdoms=frozenset({"root"}))}).start(args.listen, 443)
        print(f"FortiOS stand-in on {emulator.url}", flush=True)
        signal.sigwait(stop)
        emulator.stop()
        return 0
    print(json.dumps(apply(json.load(sys.stdin), args.state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
