"""Converging a real Debian root with the commands of the program's own resource graph.

Shared by the slow tests and `scripts/tools/bench_converge.py`: start a test root (scripts/lab/vm), build
a small code-server .deb and serve it from the peer namespace, evaluate `DmzHost` under mocks with
a config pointing at that root, and run its `remote.Command`s over real SSH in dependency order.

The test root has no route to a Debian mirror, so every package a step installs must already be
in the image: the shared recipe (scripts/lab/vm/rootfs.py) includes `docker.io` and `restic` for that.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.files import FILE_TYPE
from components.host.steps import ownership_map
from components.host.vm import DmzHost
from components.settings import Machine, Settings, debian
from scripts import REPOSITORY
from scripts.lab.converge import mockgraph, sample
from scripts.lab.vm import rootfs
from scripts.lab.vm.aptproxy import AptProxy, Stats
from scripts.lab.vm.machine import RealRoot, RootConfig
from scripts.lab.vm.runner import SshRunner, Step, StepRun, run_steps

#: Run inside the peer namespace to put the apt proxy on the test network.
BRIDGE = REPOSITORY / "scripts" / "lab" / "vm" / "bridge.py"
CS_VERSION = "4.139.1"
FILE_SERVER = ("192.0.2.1", 8000)
#: The VM's apt proxy (`aptProxyAddress`), the only way from the root to a Debian mirror.
APT_PROXY = ("192.0.2.1", 3142)
#: The packages step's packages that the image ships but a fresh VM would not have: removed from
#: each fresh root, so the first converge really installs them, through the apt proxy (with the
#: release's own packages: Debian 13's Docker CLI).
REINSTALLED_COMMON = ("docker.io", "fail2ban", "python3-systemd", "restic", "ufw", "ulogd2", "unattended-upgrades")
#: Kept: every Debian 13 VM has libbpf1, as iproute2 depends on it (purging it takes iproute2 along).
ON_EVERY_VM = ("libbpf1",)


def reinstalled(release: int) -> tuple[str, ...]:
    """What a fresh VM of `release` lacks of the image."""
    return REINSTALLED_COMMON + tuple(p for p in debian.release(release).packages if p not in ON_EVERY_VM)

# What the upstream package ships as its unit (its content written here by hand, not fetched).
CODE_SERVER_UNIT = (
    "[Unit]\nDescription=code-server\nAfter=network.target\n\n[Service]\nType=exec\n"
    "ExecStart=/usr/bin/code-server\nRestart=always\nUser=%i\n\n[Install]\nWantedBy=default.target\n"
)


def build_deb(directory: Path, version: str = CS_VERSION, marker: str = "test build") -> tuple[Path, str]:
    """A minimal `code-server` .deb (a stub binary and the upstream-shaped unit); returns (path, sha256)."""
    tree = directory / f"pkg-{hashlib.sha256(marker.encode()).hexdigest()[:8]}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "lib/systemd/system").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: code-server\nVersion: {version}\nArchitecture: amd64\nMaintainer: tests <tests@example.com>\n"
        f"Description: code-server stand-in for host tests ({marker})\n"
    )
    binary = tree / "usr/bin/code-server"
    binary.write_text(f"#!/bin/sh\necho 'code-server {version} ({marker})'\n")
    binary.chmod(0o755)
    (tree / "lib/systemd/system/code-server@.service").write_text(CODE_SERVER_UNIT)
    deb = directory / f"code-server_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb, hashlib.sha256(deb.read_bytes()).hexdigest()


@dataclass
class HostUnderTest:
    """A started root, its file server, and the config that points the program at it."""

    root: RealRoot
    workdir: Path
    deb_sha256: str
    overrides: dict[str, Any]
    apt_proxy: Stats

    def settings(self, **more: Any) -> Settings:
        return sample.settings(**{**self.overrides, **more})

    def graph(self, **more: Any) -> tuple[Settings, Machine, list[Any]]:
        """The settings, the stack's own VM (with its workspaces if the config has a team) and the
        mocked resource graph of its `DmzHost`."""
        s = self.settings(**more)
        vm = s.machines[0]
        return s, vm, mockgraph.evaluate(lambda: DmzHost("vm", vm.topology, s.host, workspaces=vm.workspaces).ready)

    def steps(self, **more: Any) -> list[Step]:
        """The program's remote commands for this root, read from the mocked resource graph."""
        _, _, regs = self.graph(**more)
        return [Step(c.name, c.create, c.stdin, tuple(c.depends_on)) for c in mockgraph.command_steps(regs)]

    def managed_files(self) -> list[str]:
        """Every path the program manages: recorded files and the ownership map."""
        s, vm, regs = self.graph()
        paths = [r.values["path"] for r in regs if r.type == FILE_TYPE]
        return sorted(set(paths) | {row[4] for row in ownership_map(vm.topology, s.host, vm.workspaces)})

    def converge(self, runner: SshRunner, **more: Any) -> tuple[list[StepRun], float]:
        started = time.monotonic()
        runs = run_steps(runner, self.steps(**more))
        return runs, time.monotonic() - started

    def snapshot(self, paths: list[str]) -> dict[str, str]:
        """sha256, owner, group and mode of each path (directories: metadata only), read as root."""
        script = 'for p in "$@"; do if [ -f "$p" ]; then s=$(sha256sum "$p" | cut -c1-64); else s=dir; fi; echo "$p $s $(stat -c "%U:%G:%a" "$p")"; done'
        out = self.root.chroot_run(["/bin/bash", "-c", script, "snap", *paths]).stdout
        return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}


@contextmanager
def host_under_test(**overrides: Any) -> Iterator[HostUnderTest]:
    """A fresh root whose only way out is its apt proxy (192.0.2.1:3142 on the peer side): Debian's
    mirror and the test's code-server .deb (http://192.0.2.1:8000/) are reached through it."""
    release = int(overrides.get("vmDebianRelease", rootfs.DEFAULT_RELEASE))
    image = rootfs.ensure_image(release)
    workdir = Path(tempfile.mkdtemp(prefix="hcs-host-"))
    served = workdir / "www"
    served.mkdir()
    _, sha = build_deb(served)
    # The package site is reached the way a locked-down VM reaches an internal mirror: only through
    # its apt proxy (the code-server step downloads via `aptProxyAddress` when one is set).
    local = {f"{FILE_SERVER[0]}:{FILE_SERVER[1]}": served}
    with RealRoot(image, workdir, RootConfig()) as root, AptProxy(workdir / "apt-proxy.sock", [rootfs.debian_mirror()], local) as proxy:
        bridge = root.peer_spawn([sys.executable, str(BRIDGE), APT_PROXY[0], str(APT_PROXY[1]), str(proxy.socket_path)])
        deadline = time.monotonic() + 10
        while root.peer_run(["curl", "-sS", "-o", "/dev/null", f"http://{APT_PROXY[0]}:{APT_PROXY[1]}/"]).returncode:
            assert bridge.poll() is None and time.monotonic() < deadline, "apt proxy bridge did not start"
            time.sleep(0.1)
        root.chroot_run(["apt-get", "purge", "-y", "-q", "--auto-remove", *reinstalled(release)], env={"DEBIAN_FRONTEND": "noninteractive"})
        config: dict[str, Any] = {
            "vmHostKey": root.host_key,
            "vmSshPrivateKey": root.admin_key.read_text(),
            "codeServerVersion": CS_VERSION,
            "codeServerSha256": sha,
            "codeServerPackageUrl": f"http://{FILE_SERVER[0]}:{FILE_SERVER[1]}/code-server_{{version}}_amd64.deb",
            # The vendor repositories are unreachable here: their steps are switched off and their
            # configs are checked as rendered (tests/host/test_render.py).
            "aptProxyAddress": APT_PROXY[0],
            "aptProxyPort": str(APT_PROXY[1]),
            "wazuhEnabled": "false",
            "zabbixEnabled": "false",
            "zabbixPsk": None,
            **overrides,
        }
        yield HostUnderTest(root, workdir, sha, config, proxy.stats)
