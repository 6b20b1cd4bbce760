#!/usr/bin/env python3
"""Build and cache the upstream Go programs the demo and the tests run, from their Go modules.

Only the Go module proxy is reachable here, so upstream binaries are built with `go install
module/cmd@version` (never from unpacked, patched or vendored sources) into
`${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/go-<name>-<version>/bin/<name>`. Static builds
(`CGO_ENABLED=0`) so the same file runs on the host, inside the test VM and as the only file of a
container image. The module and build caches are Go's own (`go env GOMODCACHE GOCACHE`), outside
the clone.

The pinned versions live in `TOOLS`, the one place they are set.

Usage: `python scripts/go_cache.py [NAME ...]` builds the named tools (default: all) if needed and
prints their paths.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `scripts.buildcache` importable
    sys.path.insert(0, str(REPO_ROOT))
from scripts.buildcache import CacheError, cache_dir, cached_build, progress  # noqa: E402


@dataclass(frozen=True)
class GoTool:
    """One upstream Go program: its binary name, its `main` package and the module version pinned."""

    name: str
    package: str
    version: str

    @property
    def entry(self) -> str:
        return f"go-{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        """Where the cached binary is (whether or not it has been built yet)."""
        return cache_dir() / self.entry / "bin" / self.name


TOOLS: dict[str, GoTool] = {
    tool.name: tool
    for tool in (
        # The real oauth2-proxy; v7.15.6 is the only v7.15 release the proxy serves (facts.md).
        GoTool("oauth2-proxy", "github.com/oauth2-proxy/oauth2-proxy/v7", "v7.15.6"),
        # The OCI distribution registry: the demo's stand-in for `registryEgress`, real digests.
        GoTool("registry", "github.com/distribution/distribution/v3/cmd/registry", "v3.1.2"),
        # Builds and pushes the demo's images from plain tarballs, without a Docker daemon.
        GoTool("crane", "github.com/google/go-containerregistry/cmd/crane", "v0.22.1"),
    )
}


def _build(tool: GoTool, tmp: Path) -> dict[str, str]:
    go = shutil.which("go")
    if go is None:
        raise CacheError("go is not on PATH: install Go >= 1.24 (these machines have it in /usr/local/go/bin)")
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(tmp / "bin"), "GOFLAGS": "-trimpath"}
    argv = [go, "install", f"{tool.package}@{tool.version}"]
    progress("go", f"{tool.name}: {' '.join(argv)} (a cold module cache takes minutes)")
    started = time.monotonic()
    result = subprocess.run(argv, cwd=tmp, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise CacheError(f"building {tool.name} failed (exit {result.returncode}): {' '.join(argv)}")
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()
    progress("go", f"{tool.name}: done in {time.monotonic() - started:.0f} s")
    return {"package": tool.package, "version": tool.version, "go": version,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def ensure(name: str) -> Path:
    """The cached binary of tool `name`, built first if needed."""
    try:
        tool = TOOLS[name]
    except KeyError:
        raise CacheError(f"unknown Go tool {name!r}; known: {', '.join(TOOLS)}") from None
    cached_build(tool.entry, lambda tmp: _build(tool, tmp), "go")
    if not tool.binary.is_file():
        raise CacheError(f"{tool.binary} is missing from a complete cache entry; delete {tool.binary.parents[1]}")
    return tool.binary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"tools to build (default: all of {', '.join(TOOLS)})")
    args = parser.parse_args()
    try:
        for name in args.names or TOOLS:
            print(ensure(name))
    except CacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
