"""Prerequisites of the real-root tests, checked up front so a missing one fails loudly.

The real-root tests need root, a few host tools and kernel namespaces. When one is missing we
raise `RealRootError` naming the tool and the Debian package that provides it
(`tests/apt-packages/realroot.txt` lists them all): a test that cannot run must fail, never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

# tool -> Debian package that provides it (kept in step with tests/apt-packages/realroot.txt).
TOOLS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "chroot": "coreutils",
    "tar": "tar",
    "zstd": "zstd",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


class RealRootError(RuntimeError):
    """Something the real-root environment needs is missing or broke; the message says what."""


def run_checked(argv: Sequence[str], what: str, *, input: bytes | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run a host command and raise `RealRootError` with its stderr when it fails."""
    proc = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise RealRootError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:6])}…\n{detail}")
    return proc


def require(tools: Sequence[str] = tuple(TOOLS)) -> None:
    """Raise `RealRootError` unless we are root and every tool is on PATH.

    Root is needed for debootstrap, chroot, mounts and `ip netns`; the tests do not try to work
    around a missing privilege because a half-working root would prove nothing.
    """
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("the real-root tests must run as root (debootstrap, chroot, mount, ip netns)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        packages = sorted({TOOLS.get(t, t) for t in missing})
        problems.append(
            f"missing host tools {', '.join(missing)}: apt-get install {' '.join(packages)}"
            " (see tests/apt-packages/realroot.txt)"
        )
    if problems:
        raise RealRootError("real-root prerequisites not met:\n- " + "\n- ".join(problems))
