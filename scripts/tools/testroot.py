"""Build or refresh the cached Debian test roots, one per supported release (run once before `make test`; needs root).

    python -m scripts.tools.testroot            # build what is missing, print the image paths
    python -m scripts.tools.testroot --refresh  # rebuild (e.g. to pick up Debian security updates)
    python -m scripts.tools.testroot --prune    # also delete images the current recipe no longer uses

The cache lives in ${HCS_CACHE_DIR:-/var/cache/hardened-code-server}; see scripts/lab/vm/rootfs.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from components.settings import debian
from scripts.lab.vm import rootfs
from scripts.lab.vm.prereq import RealRootError


def main() -> int:
    """Parse arguments, ensure the images, report where they are and how big."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="rebuild even if the image exists")
    parser.add_argument("--prune", action="store_true", help="delete images of older recipes")
    args = parser.parse_args()
    for release in sorted(debian.RELEASES, reverse=True):  # the default release first
        started = time.monotonic()
        try:
            image = rootfs.ensure_image(release, refresh=args.refresh, progress=lambda line: print(line, flush=True))
        except RealRootError as error:
            print(f"testroot: Debian {release}: {error}", file=sys.stderr)
            return 1
        size = image.stat().st_size / 1e6
        print(f"test root image (Debian {release}): {image} ({size:.0f} MB, ready in {time.monotonic() - started:.1f} s)")
    if args.prune:
        for old in rootfs.stale_images():
            print(f"removing stale image {old}")
            old.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
