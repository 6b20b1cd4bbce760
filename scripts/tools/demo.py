#!/usr/bin/env python3
"""`make demo` / `make demo-down`: the whole hardened stack on this machine (see scripts/lab/demo/demo.py).

    python -m scripts.tools.demo up      # bring it up, or converge the running demo again; writes build/demo/demo.json
    python -m scripts.tools.demo up --release 12   # the same on a Debian 12 VM (the default is the product's, 13)
    python -m scripts.tools.demo down    # remove everything it made (processes, VM, namespaces, its directory)
    python -m scripts.tools.demo down --keep-backups   # the same, but the backup server's data stays for the next up

Needs root (network namespaces, systemd-nspawn) and the caches `make caches` builds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from components.settings import debian
from scripts.lab.demo import demo
from scripts.lab.vm.prereq import RealRootError


def _progress(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--tag", default=demo.DEFAULT_TAG, help="names the demo's namespaces and directory")
    parser.add_argument("--release", type=int, choices=sorted(debian.RELEASES), default=debian.DEFAULT,
                        help="the VM's Debian release (vmDebianRelease)")
    parser.add_argument("--keep-backups", action="store_true",
                        help="down: keep the backup server's repositories, so the next up's new VM can restore from them")
    args = parser.parse_args()
    try:
        if args.action == "down":
            removed = demo.down(args.tag, _progress, keep_backups=args.keep_backups)
            demo.BUILD.joinpath("demo.json").unlink(missing_ok=True)
            _progress(f"demo {args.tag} is gone ({len(removed)} things removed)" if removed else f"no demo {args.tag} was running")
            return 0
        running = demo.up(args.tag, _progress, release=args.release)
    except (RealRootError, RuntimeError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    info = demo.describe(running)
    demo.BUILD.mkdir(parents=True, exist_ok=True)
    target = demo.BUILD / "demo.json"
    target.write_text(json.dumps(info, indent=2) + "\n")
    print(demo.summary(info))
    print(f"(all of this is in {target.relative_to(demo.REPOSITORY)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
