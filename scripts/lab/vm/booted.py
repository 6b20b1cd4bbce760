"""A test VM booted with systemd: a cached Debian root (13 or 12) under `systemd-nspawn -b`.

Where `machine.RealRoot` runs the root without an init (units verified, never started), this boots
it the way a cloud VM boots: systemd is PID 1, reaches `multi-user.target`, and starts sshd,
Docker, fail2ban and the product's units for real. Its network is the test network of
`netns.NamespacePair` (nspawn joins the VM namespace made beforehand), so the VM's netfilter (UFW)
is its own and every neighbour lives in the peer namespace.

Before boot, on the unpacked copy: the image's `policy-rc.d` is removed (a real VM starts the
services its packages install), hostname and resolv.conf are set as for `RealRoot`, and then
either the admin user and host keys are made as for `RealRoot` (cloud-init switched off), or,
with `start(user_data=…)`, nothing but a NoCloud seed is written (`nocloud.py`): cloud-init in the
booted VM creates the admin and installs the host key, as on a created Proxmox VM, and the boot
fails with cloud-init's own report if it did not finish cleanly. The copy lives on disk under
`workdir/root` (Docker's images and the code-server package do not fit a small tmpfs).

Test-machine settings, not production ones: Docker inside nspawn needs `--capability=all` and
the `@keyring bpf` system calls (facts.md); Debian 12's systemd gets this machine's writable
`/sys/fs/cgroup` (a hybrid tree), Debian 13's systemd 257, which does not run on a hybrid tree, a
pure cgroup2 tree of its own (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`; it has no controllers here, so
memory and CPU limits are checked as unit properties, not observed). They widen what the VM's
root may do to this machine; the VM is still in its own pid, mount, network, uts and ipc
namespaces. A VM that runs no containers (`docker=False`) gets none of them.

A `BootedVM` can be detached (`make demo` leaves it running) and attached again from its state
(`BootedVM.attach`), so a later process can converge it again or tear it down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.lab.vm import nocloud, rootfs
from scripts.lab.vm.machine import (
    ROOT_PATH,
    Machine,
    RootConfig,
    identity_script,
    make_admin_key,
    provision_script,
    read_host_key,
)
from scripts.lab.vm.netns import NamespacePair, NetworkPlan
from scripts.lab.vm.prereq import RealRootError, require, run_checked

#: nspawn options that let the VM's own dockerd run containers (see the module docstring). Not the
#: right to load kernel modules: the VM shares this machine's kernel (and without it systemd skips
#: systemd-modules-load, which fails in a container on Debian 13).
DOCKER_IN_NSPAWN = ("--capability=all", "--drop-capability=CAP_SYS_MODULE", "--system-call-filter=@keyring bpf")
#: Per release: nspawn's extra options and environment for the VM's cgroup tree (module docstring).
CGROUPS_BY_RELEASE: dict[int, tuple[tuple[str, ...], dict[str, str]]] = {
    12: (("--bind=/sys/fs/cgroup",), {}),
    13: ((), {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}),
}
#: nspawn's options and environment of a VM without Docker, either release: a cgroup2 tree of its own.
OWN_CGROUPS: tuple[tuple[str, ...], dict[str, str]] = ((), {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"})
BOOT_TIMEOUT = 120.0


@dataclass(frozen=True)
class BootState:
    """What a later process needs to attach to a running VM."""

    tag: str
    workdir: str
    nspawn_pid: int
    init_pid: int
    host_key: str
    config: dict[str, object]


class BootedVM(Machine):
    """A Debian VM booted by systemd in the namespaces of `tag`; `start()`, then `close()`."""

    def __init__(self, image: Path, workdir: Path, config: RootConfig | None = None, *, tag: str | None = None,
                 purge: Sequence[str] = (), docker: bool = True) -> None:
        """`purge`: packages of the image that a fresh VM lacks, removed before boot (the product installs them).
        `docker=False`: a VM that runs no containers boots with nspawn's default capabilities and a cgroup2
        tree of its own on either release (`OWN_CGROUPS`), so it shares no cgroup with a Debian 12 VM
        that binds this machine's tree for Docker (two of those cannot run at once)."""
        self.image = image
        self.purge = tuple(purge)
        self.docker = docker
        self.workdir = workdir
        self.config = config or RootConfig()
        self.namespaces = NamespacePair(self.config.network, tag)
        self.admin_key = workdir / "admin_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self.host_key = ""
        self.user_data: str | None = None
        self.timings: dict[str, float] = {}
        self._nspawn_pid = 0
        self._init_pid = 0
        self._peer_processes: list[subprocess.Popen[bytes]] = []

    # --- identity ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The VM's root directory as the host sees it."""
        return self.workdir / "root"

    @property
    def live_root(self) -> Path:
        """The VM's root as its own processes see it (with /run, /tmp and the other mounts of its boot)."""
        return Path(f"/proc/{self._init_pid}/root")

    @property
    def docker_socket(self) -> Path:
        """The VM's Docker socket, reachable from the host without a network path."""
        return self.live_root / "run/docker.sock"

    @property
    def init_pid(self) -> int:
        return self._init_pid

    def state(self) -> BootState:
        config = asdict(self.config)
        return BootState(self.namespaces.vm[:-1], str(self.workdir), self._nspawn_pid, self._init_pid, self.host_key, config)

    # --- lifecycle ----------------------------------------------------------------------------

    def admin_public_key(self) -> str:
        """The admin's public key, `ssh-ed25519 AAAA…` (no comment), its pair made on first call: before
        `start(user_data=…)`, so that the user-data can carry it (the private half stays on this machine)."""
        public = Path(f"{self.admin_key}.pub")
        if not public.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            make_admin_key(self.admin_key, self.config.admin_user)
        return " ".join(public.read_text().split()[:2])

    def start(self, *, progress: Callable[[str], None] = lambda _m: None,
              before_boot: Callable[[Path], None] = lambda _root: None, user_data: str | None = None) -> BootedVM:
        """Unpack, provision, `before_boot(root dir)`, boot; return once systemd is up and sshd answers.

        `user_data`: boot from this `#cloud-config` (NoCloud seed) instead of provisioning the admin and
        host keys here; it must authorize `admin_public_key()` and install an Ed25519 host key, which
        becomes the pin (`host_key`) and is checked against what sshd has after boot."""
        require(("ip", "nsenter", "tar", "zstd", "ssh", "ssh-keygen", "systemd-nspawn"))
        self.user_data = user_data
        try:
            self._timed("namespaces", self.namespaces.create)
            progress("unpacking the VM's root")
            self._timed("unpack", lambda: rootfs.extract(self.image, self.path))
            self._timed("provision", self._provision)
            before_boot(self.path)
            progress("booting it with systemd (systemd-nspawn -b)")
            self._timed("boot", self._boot)
            progress(f"booted in {self.timings['boot']:.1f} s: systemd is PID 1 (host pid {self._init_pid})")
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def attach(cls, image: Path, state: BootState) -> BootedVM:
        """The running VM of `state` (made by another process); raises if it is gone."""
        cfg = dict(state.config)
        network = NetworkPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(cfg.pop("network")).items()})  # type: ignore[arg-type]
        vm = cls(image, Path(state.workdir), RootConfig(network=network, **cfg), tag=state.tag)  # type: ignore[arg-type]
        vm.namespaces.adopt()
        vm.host_key, vm._nspawn_pid, vm._init_pid = state.host_key, state.nspawn_pid, state.init_pid
        if not vm.running():
            raise RealRootError(f"the VM of {state.workdir} is not running (nspawn pid {state.nspawn_pid} gone)")
        return vm

    def running(self) -> bool:
        """True while the VM's systemd is alive."""
        try:
            return Path(f"/proc/{self._init_pid}/comm").read_text().strip() == "systemd"
        except OSError:
            return False

    def close(self) -> None:
        """Power the VM off (SIGKILL to nspawn's tree if it hangs), delete namespaces and the copy."""
        if self._nspawn_pid:
            try:
                os.kill(self._nspawn_pid, signal.SIGTERM)  # nspawn forwards it: systemd powers off
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while _alive(self._nspawn_pid) and time.monotonic() < deadline:
                _reap(self._nspawn_pid)
                time.sleep(0.2)
            if _alive(self._nspawn_pid):
                for pid in (self._init_pid, self._nspawn_pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                _reap(self._nspawn_pid)
            self._nspawn_pid = self._init_pid = 0
        for popen in self._peer_processes:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
        self._peer_processes.clear()
        self.namespaces.close()
        shutil.rmtree(self.path, ignore_errors=True)

    # --- inside the VM --------------------------------------------------------------------------

    def chroot_argv(self, argv: Sequence[str], *, user: str | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        """The host argv that runs `argv` inside the VM (all its namespaces, clean env), as root or `user`."""
        if not self._init_pid:
            raise RealRootError("the VM is not started")
        home = "/root" if user is None else f"/home/{user}"
        environment = {"PATH": ROOT_PATH, "HOME": home, "USER": user or "root", "LOGNAME": user or "root",
                       "LANG": "C.UTF-8", **(env or {})}
        inner = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()), *argv]
        if user is not None:
            inner = ["/usr/bin/setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *inner]
        return ["nsenter", f"--target={self._init_pid}", "--all", "--root", "--wd=/", "--", *inner]

    def systemctl(self, *args: str) -> str:
        """`systemctl ARGS` inside the VM; its stdout, whatever the exit code (is-active answers by text)."""
        return self.chroot_run(["systemctl", *args], check=False).stdout.strip()

    def peer_spawn(self, argv: Sequence[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        """A long-running host program in the peer namespace, killed by `close()`."""
        log = log or self.workdir / f"peer-{len(self._peer_processes)}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(self.peer_argv(argv), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        self._peer_processes.append(popen)
        return popen

    def wait_for_unit(self, unit: str, *, timeout: float = 60) -> None:
        """Wait until `unit` is active; raise with its status when it fails or times out."""
        deadline = time.monotonic() + timeout
        while (state := self.systemctl("is-active", unit)) != "active":
            if state == "failed" or time.monotonic() > deadline:
                raise RealRootError(f"{unit} is {state!r} in the VM:\n{self.systemctl('status', '--no-pager', unit)}")
            time.sleep(0.2)

    # --- internals ----------------------------------------------------------------------------

    def _timed(self, what: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.timings[what] = time.monotonic() - started

    def _provision(self) -> None:
        if self.purge:
            run_checked(["chroot", str(self.path), "apt-get", "purge", "-y", "-q", "--auto-remove", *self.purge],
                        "removing the packages a fresh VM lacks", timeout=300)
        (self.path / "usr/sbin/policy-rc.d").unlink(missing_ok=True)  # a real VM starts what it installs
        if self.user_data is None:
            make_admin_key(self.admin_key, self.config.admin_user)
            run_checked(["chroot", str(self.path), "/bin/sh", "-c", provision_script(self.config)],
                        "provisioning the VM", input=Path(f"{self.admin_key}.pub").read_bytes())
            nocloud.disable(self.path)
            self.host_key = read_host_key(self.path)
        else:
            self._seed(self.user_data)
        self.known_hosts.write_text(self.known_hosts_line() + "\n")

    def _seed(self, user_data: str) -> None:
        """Only what the test network gives a VM from outside (hostname, resolv.conf) and the NoCloud seed:
        no account, no host key, so whatever sshd presents and whoever logs in came from cloud-init."""
        if self.admin_public_key() not in user_data:
            raise RealRootError("the user-data does not authorize the admin's key (render it with vm.admin_public_key())")
        if any(line.split(":")[0] == self.config.admin_user for line in (self.path / "etc/passwd").read_text().splitlines()):
            raise RealRootError(f"the image already has {self.config.admin_user!r}: cloud-init must be the one to create it")
        run_checked(["chroot", str(self.path), "/bin/sh", "-c", identity_script(self.config)], "setting the VM's hostname")
        for key in (self.path / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        nocloud.write_seed(self.path, user_data, self.config.hostname)
        self.host_key = nocloud.pinned_host_key(user_data)

    @property
    def release(self) -> int:
        """The Debian release the VM runs (its own /etc/os-release)."""
        return rootfs.os_release(self.path)

    def _boot(self) -> None:
        release = self.release
        if release not in CGROUPS_BY_RELEASE:
            raise RealRootError(f"no nspawn settings for Debian {release} (known: {sorted(CGROUPS_BY_RELEASE)})")
        cgroup_options, cgroup_env = CGROUPS_BY_RELEASE[release] if self.docker else OWN_CGROUPS
        argv = ["systemd-nspawn", "--quiet", "--boot", f"--directory={self.path}", "--keep-unit", "--register=no",
                f"--network-namespace-path=/run/netns/{self.vm_namespace}", f"--hostname={self.config.hostname}",
                f"--machine={self.vm_namespace}", "--resolv-conf=off", "--timezone=off",
                *(DOCKER_IN_NSPAWN if self.docker else ()), *cgroup_options]
        with (self.workdir / "console.log").open("ab") as console:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **cgroup_env})
        self._nspawn_pid = popen.pid
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not (pid := _systemd_below(popen.pid)):
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RealRootError(f"nspawn exited {popen.returncode} before systemd started:\n{self._console_tail()}")
            time.sleep(0.1)
        self._init_pid = pid
        while (state := self.systemctl("is-system-running")) not in ("running", "degraded"):
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RealRootError(f"the VM did not finish booting ({state!r}) in {BOOT_TIMEOUT:.0f} s:\n{self._console_tail()}")
            time.sleep(0.2)
        if self.user_data is not None:
            self._cloud_init_done()
        if state == "degraded":
            failed = self.systemctl("list-units", "--state=failed", "--no-legend", "--plain")
            raise RealRootError(f"the VM booted degraded; failed units:\n{failed}")
        self.wait_for_unit("ssh.service")
        if self.user_data is not None:
            installed = read_host_key(self.path)
            if installed != self.host_key:
                raise RealRootError(f"sshd's host key after cloud-init is {installed!r}, not the user-data's pin {self.host_key!r}")

    def _cloud_init_done(self) -> None:
        """Wait for cloud-init's last stage; raise with its own report unless it finished without an error
        (`status --wait` exits 1 on an error, 2 on a recoverable one: both fail the boot)."""
        status = self.chroot_run(["cloud-init", "status", "--long", "--wait"], check=False, timeout=BOOT_TIMEOUT)
        if status.returncode != 0:
            log = self.chroot_run(["tail", "-n", "60", nocloud.LOG], check=False).stdout
            raise RealRootError(f"cloud-init did not finish cleanly (status exit {status.returncode}):\n"
                                f"{status.stdout.strip()}\n{status.stderr.strip()}\n--- tail of {nocloud.LOG} ---\n{log.strip()}")

    def _console_tail(self) -> str:
        return "\n".join((self.workdir / "console.log").read_text(errors="replace").splitlines()[-30:])


def _systemd_below(pid: int) -> int:
    """The host pid of the first `systemd` process among `pid`'s descendants (0 if none yet)."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        try:
            if current != pid and Path(f"/proc/{current}/comm").read_text().strip() == "systemd":
                return current
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        queue.extend(int(c) for c in children)
    return 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def save_state(vm: BootedVM, path: Path) -> None:
    """Write what `BootedVM.attach` needs."""
    path.write_text(json.dumps(asdict(vm.state()), indent=2) + "\n")


def load_state(path: Path) -> BootState:
    return BootState(**json.loads(path.read_text()))
