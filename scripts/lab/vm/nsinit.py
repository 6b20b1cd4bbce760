"""Init process of a test root: unpacks the root into a tmpfs, mounts its API file systems, reaps.

Started by `machine.RealRoot` as `ip netns exec VM unshare --pid --fork --mount --uts --ipc
--propagation private -- python -m scripts.lab.vm.nsinit ROOT HOSTNAME IMAGE`, so it is pid 1 of
a fresh pid namespace with a private mount namespace. Everything else in the root (sshd, SSH
sessions, code-server, Caddy) is started with `nsenter` into these namespaces, which gives:
- `ps`/`pkill` inside the root see only the root's processes, never the host's or another run's;
- the root's tmpfs and mounts exist only in this mount namespace: nothing can leak on the host,
  and the host reaches the files through `/proc/<this pid>/root/ROOT`;
- killing this process (SIGKILL from the host) kills every process of the root and frees it all.

The fresh copy goes to a tmpfs because unpacking ~13,000 files on a busy disk takes 10-15 s,
against ~1 s in memory (~330 MB per root).

It prints `ready <pid as the host sees it>` once the root is unpacked and mounted.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from scripts.lab.vm.rootfs import extract

# An upper bound, not a reservation: tmpfs only uses what is written.
ROOT_TMPFS_SIZE = "8g"

# (name, major, minor): the character devices a Debian userland expects in /dev.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True)


def mount_api_filesystems(root: Path) -> None:
    """Mount /proc, /sys, a minimal /dev (with its own devpts) and a tmpfs /run inside `root`."""
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))
    _mount("-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", str(root / "sys"))
    # A minimal /dev rather than a bind of the host's: the root gets no access to host devices.
    dev = root / "dev"
    _mount("-t", "tmpfs", "-o", "nosuid,mode=0755,size=1m", "dev", str(dev))
    for name, major, minor in DEVICES:
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for sub in ("pts", "shm"):
        (dev / sub).mkdir()
    _mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5", "devpts", str(dev / "pts"))
    _mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "shm", str(dev / "shm"))
    for link, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / link)
    run = root / "run"
    _mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=0755", "run", str(run))
    (run / "sshd").mkdir(mode=0o755)  # sshd's privilege-separation directory
    (run / "lock").mkdir(mode=0o1777)
    os.chmod(run / "lock", 0o1777)


def main() -> None:
    """Unpack, mount, announce readiness, then reap orphans (we are pid 1 of the root's pid namespace)."""
    root, hostname, image = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    _mount("-t", "tmpfs", "-o", f"mode=0755,size={ROOT_TMPFS_SIZE}", "realroot", str(root))
    extract(image, root)
    mount_api_filesystems(root)
    socket.sethostname(hostname)
    # The host's /proc is still mounted at /proc here, so /proc/self names our host-side pid.
    print(f"ready {os.readlink('/proc/self')}", flush=True)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
