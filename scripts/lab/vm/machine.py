"""A running test root: a fresh Debian copy (13 by default) in its own namespaces, with an admin user and sshd.

`RealRoot.start()`:
1. creates the VM and peer network namespaces (`netns`);
2. starts the root's init (`nsinit`) in the VM namespace plus new pid/mount/uts/ipc namespaces,
   which unpacks a fresh copy of the cached image (`rootfs`) into a tmpfs private to the root
   (the host sees it at `RealRoot.path`, i.e. `/proc/<init>/root/<workdir>/root`);
3. sets the hostname files and resolv.conf (the peer gateway, where no DNS server answers: lookups
   fail at once instead of timing out against the build host's resolver), generates the root's own SSH host keys, creates the admin user
   (per-run ed25519 key, passwordless sudo in /etc/sudoers.d, member of the admin group);
4. starts `/usr/sbin/sshd -D -e` with the root's own /etc/ssh/sshd_config, and pins its ed25519
   host key in a known_hosts file for the SSH client that runs in the peer namespace.

systemd is not running in the root: `systemctl start/restart/reload` print "Running in chroot,
ignoring command" and exit 0 without doing anything (`enable` works). Scripts should guard them
with `[ -d /run/systemd/system ]`, and tests call `restart_sshd()` after changing the SSH
configuration. `close()` kills everything and deletes the namespaces and the copy.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from scripts import REPOSITORY
from scripts.lab.vm.fileserver import ServedDirectory, serve_directory
from scripts.lab.vm.netns import NamespacePair, NetworkPlan, ns_exec
from scripts.lab.vm.prereq import RealRootError, run_checked
from scripts.lab.vm.runner import SshRunner, SshTarget

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD_READY = "Server listening on"


@dataclass(frozen=True)
class RootConfig:
    """Everything a test may want to vary about a test root."""

    network: NetworkPlan = field(default_factory=NetworkPlan)
    ssh_port: int = 22
    admin_user: str = "deploy"
    admin_group: str | None = "sshadmins"
    hostname: str = "hcs-vm"
    # Where SSH clients connect from by default: an address in a management subnet.
    client_address: str = "198.51.100.7"

    def __post_init__(self) -> None:
        if self.client_address not in self.network.peer_ips:
            raise ValueError(f"client_address {self.client_address} is not one of the peer addresses "
                             f"{', '.join(self.network.peer_ips)}")


class RootProcess:
    """A long-running process inside the root; `stop()` signals it inside the pid namespace."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path | None) -> None:
        self.popen = popen
        self.log = log

    @property
    def host_pid(self) -> int | None:
        """Host pid of the process nsenter forked into the root (None once it has gone)."""
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal the process (nsenter does not forward signals), wait, SIGKILL if needed; return its exit code."""
        pid = self.host_pid
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pid = self.host_pid
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            return self.popen.wait(timeout)

    def output(self) -> str:
        """What the process wrote to its log so far."""
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


class Machine(ABC):
    """What every test machine offers, however it runs (`RealRoot` without an init, `BootedVM` with systemd):
    its identity on the test network, SSH runners from the peer namespace, commands inside it and beside it."""

    config: RootConfig
    namespaces: NamespacePair
    host_key: str
    admin_key: Path
    known_hosts: Path

    @abstractmethod
    def chroot_argv(self, argv: Sequence[str], *, user: str | None = None,
                    env: Mapping[str, str] | None = None) -> list[str]:
        """The host argv that runs `argv` inside the machine, as root or `user`."""


    @property
    def address(self) -> str:
        """The VM's address (what clients in the peer namespace connect to)."""
        return self.config.network.vm_ip

    @property
    def port(self) -> int:
        """The SSH port."""
        return self.config.ssh_port

    @property
    def admin_user(self) -> str:
        """The admin account the runner logs in as."""
        return self.config.admin_user

    @property
    def vm_namespace(self) -> str:
        """Name of the VM's network namespace (for `ip netns exec`)."""
        return self.namespaces.vm

    @property
    def peer_namespace(self) -> str:
        """Name of the peer (client/front proxy) network namespace."""
        return self.namespaces.peer

    def known_hosts_line(self) -> str:
        """The known_hosts line pinning this root's ed25519 host key at its address and port."""
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.host_key}"

    def chroot_run(self, argv: Sequence[str], *, user: str | None = None, input: str | None = None,
                   env: Mapping[str, str] | None = None, check: bool = True,
                   timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command inside the root without SSH (for setup and assertions); text output."""
        proc = subprocess.run(self.chroot_argv(argv, user=user, env=env), input=input, text=True,
                              capture_output=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise RealRootError(f"in the machine, {shlex.join(argv)!r} exited {proc.returncode}:\n"
                                f"{proc.stderr.strip()}")
        return proc

    def peer_argv(self, argv: Sequence[str]) -> list[str]:
        """The host argv that runs `argv` (a host program) in the peer namespace."""
        return ns_exec(self.peer_namespace, argv)

    def peer_run(self, argv: Sequence[str], *, input: str | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a host program in the peer namespace (e.g. curl from the front proxy's address)."""
        return subprocess.run(self.peer_argv(argv), input=input, text=True, capture_output=True,
                              timeout=timeout, check=False)

    def runner(self, *, source_address: str | None = None, user: str | None = None,
               identity_file: Path | None = None, known_hosts_file: Path | None = None) -> SshRunner:
        """A new SSH runner (own session counter) from the peer namespace to this root."""
        return SshRunner(SshTarget(
            address=self.address,
            port=self.port,
            user=user or self.admin_user,
            identity_file=identity_file or self.admin_key,
            known_hosts_file=known_hosts_file or self.known_hosts,
            netns=self.peer_namespace,
            source_address=source_address or self.config.client_address,
        ))


class RealRoot(Machine):
    """A fresh Debian root reachable over real SSH; use as a context manager or call start/close."""

    def __init__(self, image: Path, workdir: Path, config: RootConfig | None = None) -> None:
        self.image = image
        self.workdir = workdir
        self.config = config or RootConfig()
        self._mountpoint = workdir / "root"  # the root's path inside its own mount namespace
        self.namespaces = NamespacePair(self.config.network)
        self.admin_key = workdir / "admin_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self.host_key = ""
        self.timings: dict[str, float] = {}
        self._init: subprocess.Popen[bytes] | None = None
        self._init_pid = 0
        self._processes: list[RootProcess] = []
        self._sshd: RootProcess | None = None
        self._sshd_starts = 0
        self._servers: list[ServedDirectory] = []

    # --- identity of the machine ------------------------------------------------------------

    @property
    def init_pid(self) -> int:
        """Host pid of the root's init (pid 1 inside); 0 before `start()`."""
        return self._init_pid

    @property
    def path(self) -> Path:
        """The root's directory as the host sees it (valid while the root runs)."""
        return Path(f"/proc/{self._init_pid}/root") / str(self._mountpoint).lstrip("/")

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> RealRoot:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> RealRoot:
        """Unpack, network, boot the init, create the admin user, start sshd (see module doc)."""
        try:
            self._timed("namespaces", self.namespaces.create)
            self._timed("init+extract", self._start_init)
            self._timed("provision", self._provision)
            self._timed("sshd", self.restart_sshd)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every process of the root, delete its namespaces and the copy (idempotent, never raises)."""
        if self._init is not None:
            try:
                os.kill(self._init_pid, signal.SIGKILL)  # pid-namespace init: takes every root process with it
            except ProcessLookupError:
                pass
            try:  # unshare reaps its child (the init) and exits, so no zombie is left behind
                self._init.wait(10)
            except subprocess.TimeoutExpired:
                self._init.kill()
                self._init.wait()
            self._init = None
        for process in self._processes:
            if process.running():
                process.popen.kill()
                process.popen.wait()
        self._processes.clear()
        for served in self._servers:
            served.stop()
        self._servers.clear()
        self.namespaces.close()
        try:
            self._mountpoint.rmdir()  # only a mount point on the host: the files lived in the root's tmpfs
        except OSError:
            pass

    # --- running things inside the root -----------------------------------------------------

    def chroot_argv(self, argv: Sequence[str], *, user: str | None = None,
                    env: Mapping[str, str] | None = None) -> list[str]:
        """The host argv that runs `argv` inside the root (its namespaces, chroot, clean env), as root or `user`."""
        if not self._init_pid:
            raise RealRootError("the root is not started")
        uid, gid, home = self._account(user or "root")
        environment = {"PATH": ROOT_PATH, "HOME": home, "USER": user or "root", "LOGNAME": user or "root",
                       "LANG": "C.UTF-8", **(env or {})}
        inner = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()), *argv]
        if user is not None:
            # setpriv execs in place (no PAM session, no extra process), like systemd's User=.
            inner = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *inner]
        return ["nsenter", f"--target={self._init_pid}", "--mount", "--net", "--pid", "--uts", "--ipc",
                "--", "chroot", str(self._mountpoint), *inner]

    def chroot_spawn(self, argv: Sequence[str], *, user: str | None = None,
                     env: Mapping[str, str] | None = None, log: Path | None = None) -> RootProcess:
        """Start a long-running process inside the root; stdout+stderr go to `log`. Killed by `close()`."""
        log = log or self.workdir / f"process-{len(self._processes)}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(self.chroot_argv(argv, user=user, env=env), stdin=subprocess.DEVNULL,
                                     stdout=sink, stderr=subprocess.STDOUT)
        process = RootProcess(popen, log)
        self._processes.append(process)
        return process

    def peer_spawn(self, argv: Sequence[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running host program in the peer namespace. Killed by `close()`."""
        log = log or self.workdir / f"peer-process-{len(self._processes)}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(self.peer_argv(argv), stdin=subprocess.DEVNULL, stdout=sink,
                                     stderr=subprocess.STDOUT)
        self._processes.append(RootProcess(popen, log))
        return popen

    def wait_for_listener(self, port: int, *, address: str = "127.0.0.1", timeout: float = 30) -> None:
        """Wait until something accepts TCP connections on `address:port` inside the VM namespace."""
        probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()"
        deadline = time.monotonic() + timeout
        while subprocess.run(ns_exec(self.vm_namespace, [sys.executable, "-c", probe, address, str(port)]),
                             capture_output=True, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RealRootError(f"nothing listens on {address}:{port} in the VM namespace after {timeout} s")
            time.sleep(0.1)

    def bind_mount(self, host_path: Path, inside: str, *, readonly: bool = True) -> None:
        """Make a host file or directory visible at `inside` in the root (e.g. a code-server build)."""
        target = self._mountpoint / inside.lstrip("/")
        visible = self.path / inside.lstrip("/")
        if host_path.is_dir():
            visible.mkdir(parents=True, exist_ok=True)
        else:
            visible.parent.mkdir(parents=True, exist_ok=True)
            visible.touch()
        enter = ["nsenter", f"--target={self._init_pid}", "--mount", "--"]
        run_checked([*enter, "mount", "--bind", str(host_path), str(target)], f"bind-mounting {host_path}")
        if readonly:
            run_checked([*enter, "mount", "-o", "remount,bind,ro", str(target)], f"read-only {target}")

    def serve_directory(self, directory: Path, *, address: str | None = None) -> ServedDirectory:
        """Serve `directory` over HTTP from the peer namespace (default: the first peer address).

        The VM reaches it at `.url`; `.requests()` lists what was fetched. Stopped by `close()`.
        """
        peer_ips = self.config.network.peer_ips
        address = address or (peer_ips[1:] or peer_ips)[0]
        served = serve_directory(self.peer_argv([]), address, directory,
                                 self.workdir / f"http-{len(self._servers)}.requests")
        self._servers.append(served)
        return served

    # --- SSH --------------------------------------------------------------------------------

    def restart_sshd(self, timeout: float = 20) -> None:
        """(Re)start sshd with the root's current /etc/ssh/sshd_config, as `systemctl restart ssh` would.

        Validates the configuration first (`sshd -t`), then waits until sshd listens; raises
        `RealRootError` with sshd's own messages when either fails.
        """
        if self._sshd is not None and self._sshd.running():
            self._sshd.stop()
        check = self.chroot_run(["/usr/sbin/sshd", "-t"], check=False)
        if check.returncode != 0:
            raise RealRootError(f"sshd -t rejects the root's configuration:\n{check.stderr.strip()}")
        self._sshd_starts += 1
        log = self.workdir / f"sshd-{self._sshd_starts}.log"
        argv = ["/usr/sbin/sshd", "-D", "-e"]
        if self.port != 22:
            argv += ["-p", str(self.port)]
        self._sshd = self.chroot_spawn(argv, log=log)
        deadline = time.monotonic() + timeout
        while SSHD_READY not in self._sshd.output():
            if not self._sshd.running() or time.monotonic() > deadline:
                raise RealRootError(f"sshd did not start listening (log {log}):\n{self._sshd.output()}")
            time.sleep(0.05)

    def sshd_log(self) -> str:
        """What the current sshd wrote (-e: to stderr) since its last (re)start."""
        return self._sshd.output() if self._sshd else ""

    # --- internals ----------------------------------------------------------------------------

    def _timed(self, what: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.timings[what] = time.monotonic() - started

    def _start_init(self) -> None:
        self._mountpoint.mkdir(parents=True)
        log = (self.workdir / "init.log").open("ab")
        self._init = subprocess.Popen(
            ns_exec(self.vm_namespace, ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts",
                                        "--ipc", "--propagation", "private", "--",
                                        sys.executable, "-m", "scripts.lab.vm.nsinit",
                                        str(self._mountpoint), self.config.hostname, str(self.image)]),
            cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            preexec_fn=_die_with_parent,
        )
        log.close()
        assert self._init.stdout is not None
        line = self._init.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "ready":
            raise RealRootError("the root's init did not start:\n" + (self.workdir / "init.log").read_text())
        self._init_pid = int(line[1])

    def _account(self, user: str) -> tuple[int, int, str]:
        """uid, primary gid and home of `user` from the root's /etc/passwd."""
        for line in (self.path / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3]), fields[5]
        raise RealRootError(f"no user {user!r} in the root's /etc/passwd")

    def _provision(self) -> None:
        make_admin_key(self.admin_key, self.config.admin_user)
        self.chroot_run(["/bin/sh", "-c", provision_script(self.config)], input=Path(f"{self.admin_key}.pub").read_text())
        self.host_key = read_host_key(self.path)
        self.known_hosts.write_text(self.known_hosts_line() + "\n")


def make_admin_key(path: Path, admin_user: str) -> None:
    """A fresh per-run ed25519 key pair for the admin (`path`, `path.pub`)."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"realroot-{admin_user}", "-f", str(path)],
                "generating the admin key")


def identity_script(cfg: RootConfig) -> str:
    """Shell run as root inside a fresh root: its hostname, hosts and resolv.conf (what the test
    network gives a VM from outside; no account, no key)."""
    return f"""set -eu
echo {shlex.quote(cfg.hostname)} > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' \
  {shlex.quote(cfg.hostname)} > /etc/hosts
printf '# test root: the peer gateway; nothing answers DNS there, so lookups fail fast\nnameserver %s\n' \
  {cfg.network.peer_ips[0]} > /etc/resolv.conf
"""


def provision_script(cfg: RootConfig) -> str:
    """Shell run as root inside a fresh root (the admin's public key on stdin): `identity_script`,
    host keys, the admin user with that key and passwordless sudo."""
    user, group = shlex.quote(cfg.admin_user), shlex.quote(cfg.admin_group or "")
    sudoers = f"/etc/sudoers.d/90-realroot-{cfg.admin_user}"
    return identity_script(cfg) + f"""ssh-keygen -A
{f"groupadd {group}" if cfg.admin_group else ":"}
useradd --create-home --home-dir /home/{user} --shell /bin/bash {f"--groups {group}" if cfg.admin_group else ""} {user}
usermod --password '*' {user}
install -d -m 700 -o {user} -g {user} /home/{user}/.ssh
cat > /home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys
chmod 600 /home/{user}/.ssh/authorized_keys
echo '{cfg.admin_user} ALL=(ALL:ALL) NOPASSWD: ALL' > {sudoers}
chmod 440 {sudoers}
visudo -cq -f {sudoers}
"""


def read_host_key(root: Path) -> str:
    """The root's ed25519 host key as `ssh-ed25519 AAAA…` (what known_hosts and `vmHostKey` pin)."""
    key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{key[0]} {key[1]}"


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the test process dies, so a killed run leaves no root running."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
