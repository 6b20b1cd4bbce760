#!/usr/bin/env python3
"""Build and cache the upstream Go programs the demo and the tests run, from their Go modules.

Only the Go module proxy is reachable here, so upstream binaries are built with `go install
module/cmd@version` (never from unpacked, patched or vendored sources) into
`${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/go-<name>-<version>/bin/<name>`. Static builds
(`CGO_ENABLED=0`) so the same file runs on the host, inside the test VM and as the only file of a
container image. The module and build caches are Go's own (`go env GOMODCACHE GOCACHE`), outside
the clone.

The pinned versions live in `TOOLS`, the one place they are set. A main package whose module has
replace directives (the Pulumi CLI: `pkg/go.mod` replaces `sdk/v3 => ../sdk`) refuses `go install`;
it is built with `go build` inside a small wrapper module generated in the temporary build directory,
which requires the upstream modules at the pinned versions and repeats the replaces that matter
with versions on the right. Plain files a binary needs beside it (the Pulumi CLI's dynamic-provider
shim, which the pip wheel does not ship) are copied from their module in Go's module cache.

Not buildable here (issue 16; the proxy lists no version of either and answers 403 "not available"
to those asked): `github.com/pulumi/pulumi-command/provider` at the commit of pulumi-command's tag
v1.2.1 (`v0.0.0-20260303235922-7f3eb6f3b77c`, also asked as the commit hash), and the Python language
host `github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3` (asked at the commit of
v3.259.0, the newest tag in the reachable mirror of pulumi/pulumi; the commit of v3.276.0 is not
known here); nor the Terraform-bridged providers. tests/engine runs the
Python program through the SDK's own language server instead (`pulumi up --client`).

Usage: `python -m scripts.tools.go_cache [NAME ...]` builds the named tools (default: all) if needed and
prints their paths; for `pulumi`, a compatible CLI on PATH is used instead (`pulumi_cli`).
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

from scripts import REPOSITORY
from scripts.tools.buildcache import CacheError, cache_dir, cached_build, progress


@dataclass(frozen=True)
class Wrapper:
    """A go.mod of our own for a main package whose module's replace directives make `go install` refuse."""

    requires: tuple[tuple[str, str], ...]  # (module, version)
    replaces: tuple[tuple[str, str], ...]  # (module, "module version")

    def go_mod(self) -> str:
        lines = ["module hardened-code-server/go-build", "", "go 1.24", "", "require ("]
        lines += [f"\t{module} {version}" for module, version in self.requires]
        lines += [")", ""]
        lines += [f"replace {module} => {target}" for module, target in self.replaces]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModuleFile:
    """A plain file of a Go module (not a Go program) that a built binary needs beside it."""

    module: str
    version: str
    path: str


@dataclass(frozen=True)
class GoTool:
    """One upstream Go program: its binary name, its `main` package and the module version pinned."""

    name: str
    package: str
    version: str
    wrapper: Wrapper | None = None
    ldflags: str = ""
    beside: tuple[ModuleFile, ...] = ()

    @property
    def entry(self) -> str:
        return f"go-{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        """Where the cached binary is (whether or not it has been built yet)."""
        return cache_dir() / self.entry / "bin" / self.name


PULUMI_VERSION = "v3.276.0"

TOOLS: dict[str, GoTool] = {
    tool.name: tool
    for tool in (
        # The real oauth2-proxy; v7.15.6 is the only v7.15 release the proxy serves (facts.md).
        GoTool("oauth2-proxy", "github.com/oauth2-proxy/oauth2-proxy/v7", "v7.15.6"),
        # The OCI distribution registry: the demo's stand-in for `registryEgress`, real digests.
        GoTool("registry", "github.com/distribution/distribution/v3/cmd/registry", "v3.1.2"),
        # Builds and pushes the demo's images from plain tarballs, without a Docker daemon.
        GoTool("crane", "github.com/google/go-containerregistry/cmd/crane", "v0.22.1"),
        # The Pulumi CLI (engine, file backend, policy analyzer host). v3.276.0 is the newest pkg/sdk
        # served; a CLI newer than the pip SDK (requirements.txt) is supported. The version string is
        # set only by ldflags. Dynamic providers run through the Python shim
        # `pulumi-resource-pulumi-python`, copied beside it (where the CLI looks first). The language
        # host's own shim `pulumi-language-python-exec` is left out: the host itself cannot be built.
        GoTool(
            "pulumi",
            "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi",
            PULUMI_VERSION,
            wrapper=Wrapper(
                requires=(("github.com/pulumi/pulumi/pkg/v3", PULUMI_VERSION),
                          ("github.com/pulumi/pulumi/sdk/v3", PULUMI_VERSION)),
                # pkg/go.mod's clipboard fork; its `sdk/v3 => ../sdk` is the require above.
                replaces=(("github.com/atotto/clipboard",
                           "github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"),),
            ),
            ldflags=f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI_VERSION}",
            beside=(
                ModuleFile("github.com/pulumi/pulumi/sdk/v3", PULUMI_VERSION, "python/dist/pulumi-resource-pulumi-python"),
            ),
        ),
    )
}


def _go(go: str, argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    progress("go", f"{what}: {' '.join(argv)}")
    result = subprocess.run([go, *argv], cwd=cwd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise CacheError(f"building {what} failed (exit {result.returncode}): go {' '.join(argv)}")


def _module_dir(go: str, module: str, version: str, env: dict[str, str]) -> Path:
    """The module's directory in Go's module cache (downloaded if needed)."""
    result = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], env=env,
                            capture_output=True, text=True, check=False)
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise CacheError(f"go mod download {module}@{version} failed: {info.get('Error', result.stderr.strip())}")
    return Path(info["Dir"])


def _build(tool: GoTool, tmp: Path) -> dict[str, str]:
    go = shutil.which("go")
    if go is None:
        raise CacheError("go is not on PATH: install Go >= 1.24 (these machines have it in /usr/local/go/bin)")
    bin_dir = tmp / "bin"
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(bin_dir), "GOFLAGS": "-trimpath"}
    flags = ["-ldflags", tool.ldflags] if tool.ldflags else []
    progress("go", f"{tool.name}: building {tool.package}@{tool.version} (a cold module cache takes minutes)")
    started = time.monotonic()
    if tool.wrapper is None:
        _go(go, ["install", *flags, f"{tool.package}@{tool.version}"], tmp, env, tool.name)
    else:
        work = tmp / "wrapper"  # removed below: only bin/ and the marker stay in the cache entry
        work.mkdir()
        (work / "go.mod").write_text(tool.wrapper.go_mod(), encoding="utf-8")
        # `go get` of the package fills go.sum and lifts requirements to what the package needs.
        _go(go, ["get", f"{tool.package}@{tool.version}"], work, env, tool.name)
        _go(go, ["build", *flags, "-o", str(bin_dir / tool.name), tool.package], work, env, tool.name)
        shutil.rmtree(work)
    for extra in tool.beside:
        source = _module_dir(go, extra.module, extra.version, env) / extra.path
        shutil.copyfile(source, bin_dir / source.name)
        (bin_dir / source.name).chmod(0o755)
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


def _sdk_version() -> tuple[int, ...]:
    """The pulumi pip SDK version pinned in requirements.txt: the oldest CLI the program supports."""
    for line in (REPOSITORY / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("pulumi=="):
            return _parse_version(line.removeprefix("pulumi=="))
    raise CacheError("requirements.txt pins no pulumi version")


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().lstrip("v").split("-")[0].split("."))


def pulumi_cli() -> Path:
    """The Pulumi CLI to run: a `pulumi` on PATH of v3 and at least the pip SDK's version (a user's install,
    with its own plugins beside it), else the cached build. `HCS_BUILT_PULUMI=1` forces the cached build."""
    found = None if os.environ.get("HCS_BUILT_PULUMI") == "1" else shutil.which("pulumi")
    if found is not None:
        result = subprocess.run([found, "version"], capture_output=True, text=True, check=False,
                                env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
        try:
            version = _parse_version(result.stdout)
        except ValueError:
            version = ()
        if result.returncode == 0 and version[:1] == (3,) and version >= _sdk_version():
            progress("go", f"using {found} ({result.stdout.strip()}) from PATH")
            return Path(found)
        progress("go", f"ignoring {found} on PATH ({result.stdout.strip() or 'no version'}): "
                       f"older than the SDK {'.'.join(map(str, _sdk_version()))}")
    return ensure("pulumi")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"tools to build (default: all of {', '.join(TOOLS)})")
    args = parser.parse_args()
    try:
        for name in args.names or TOOLS:
            print(pulumi_cli() if name == "pulumi" else ensure(name))  # a user's own CLI saves the build
    except CacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
