"""A real code-server `.deb` of the pinned version, made from the cached npm build.

GitHub (where upstream publishes its `.deb`) is unreachable here, so the package the product's
code-server step downloads, checks (SHA-256, name, version) and installs is assembled from the same
release on npm, in the upstream package's layout (code-server's nfpm configuration):

- `/usr/lib/code-server/`: the release (`out/`, `lib/vscode/`, `package.json`, its
  `node_modules/`), with the Node it needs as `lib/node` and `bin/code-server` starting it;
- `/usr/bin/code-server`: a script that execs `/usr/lib/code-server/bin/code-server`;
- `/usr/lib/systemd/system/code-server@.service`: the upstream unit (`User=%i`), the one the
  product's sandbox drop-in extends.

The package is cached beside the npm build (`code-server-deb-<version>/`); its SHA-256 is what the
demo stack pins in `codeServerSha256`, exactly as an operator pins the digest of the `.deb` they
reviewed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.tools import code_server_cache
from scripts.tools.buildcache import CacheError, build_info, cached_build, progress

#: The unit upstream ships (code-server's ci/build/code-server@.service).
UNIT = (
    "[Unit]\nDescription=code-server\nAfter=network.target\n\n[Service]\nType=exec\n"
    "ExecStart=/usr/bin/code-server\nRestart=always\nUser=%i\n\n[Install]\nWantedBy=default.target\n"
)
LAUNCHER = '#!/bin/sh\nexec /usr/lib/code-server/bin/code-server "$@"\n'
RELEASE_LAUNCHER = '#!/bin/sh\nROOT=/usr/lib/code-server\nexec "$ROOT/lib/node" "$ROOT" "$@"\n'
DEB_NAME = "code-server_{version}_amd64.deb"


@dataclass(frozen=True)
class CodeServerDeb:
    """The cached package: its path, version and SHA-256."""

    path: Path
    version: str
    sha256: str


def _tree(install: code_server_cache.CodeServerInstall, tree: Path) -> None:
    lib = tree / "usr/lib/code-server"
    package = install.root / "app/node_modules/code-server"
    shutil.copytree(package, lib, symlinks=True)
    # npm hoisted code-server's dependencies beside it; the release keeps them in its own node_modules.
    hoisted = install.root / "app/node_modules"
    for dep in hoisted.iterdir():
        target = lib / "node_modules" / dep.name
        if dep.name not in ("code-server", ".bin", ".package-lock.json") and not target.exists():
            shutil.copytree(dep, target, symlinks=True)
    (lib / "lib").mkdir(exist_ok=True)
    shutil.copy2(install.node, lib / "lib/node")
    (lib / "bin").mkdir(exist_ok=True)
    (lib / "bin/code-server").write_text(RELEASE_LAUNCHER)
    (lib / "bin/code-server").chmod(0o755)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/code-server").write_text(LAUNCHER)
    (tree / "usr/bin/code-server").chmod(0o755)
    units = tree / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    (units / "code-server@.service").write_text(UNIT)
    size_kb = int(subprocess.run(["du", "-sk", str(tree / "usr")], capture_output=True, text=True, check=True).stdout.split()[0])
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN/control").write_text(
        f"Package: code-server\nVersion: {install.version}\nArchitecture: amd64\n"
        f"Maintainer: hardened-code-server tests <tests@example.com>\nInstalled-Size: {size_kb}\n"
        f"Homepage: https://github.com/coder/code-server\n"
        f"Description: code-server {install.version} (commit {install.commit[:12]})\n"
        " Assembled by the hardened-code-server demo from the npm release, in the upstream .deb layout.\n"
    )


def _build(install: code_server_cache.CodeServerInstall, tmp: Path) -> dict[str, str]:
    tree = tmp / "tree"
    started = time.monotonic()
    progress("code-server-deb", f"laying out code-server {install.version} in the upstream package layout")
    _tree(install, tree)
    deb = tmp / DEB_NAME.format(version=install.version)
    progress("code-server-deb", "dpkg-deb --build (zstd), about a minute")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zzstd", "-z3", "--build", str(tree), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(tree)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    progress("code-server-deb", f"{deb.name}: {deb.stat().st_size / 1e6:.0f} MB, sha256 {digest[:16]}…, "
                                f"{time.monotonic() - started:.0f} s")
    return {"version": install.version, "commit": install.commit, "sha256": digest, "file": deb.name}


def ensure(version: str | None = None) -> CodeServerDeb:
    """The cached `.deb` of the pinned (or given) version, built from the npm build if needed."""
    install = code_server_cache.ensure(version)
    entry = cached_build(f"code-server-deb-{install.version}", lambda tmp: _build(install, tmp), "code-server-deb")
    info = build_info(entry)
    if info is None:
        raise CacheError(f"{entry} is incomplete; delete it")
    return CodeServerDeb(entry / info["file"], info["version"], info["sha256"])
