"""The Debian releases the DMZ VM may run, and what differs between them for this product.

Every release-specific choice of the host setup reads one of these records; nothing guesses. A
release missing here is refused by the settings (`vmDebianRelease`) and by every host step, which
compares the VM's `/etc/os-release` with the configured release before it touches anything.

Facts, read off each release (Debian's packages, checked on booted roots of both):
- Debian 12 (bookworm): OpenSSH 9.2, systemd 252 built without its BPF framework, so
  `SocketBindDeny=` and `RestrictNetworkInterfaces=` are accepted and do nothing; Docker's CLI is
  part of `docker.io`. Regular security support ended 2026-06-10; Debian LTS until 2028-06-30.
- Debian 13 (trixie): OpenSSH 10.0 (ML-KEM hybrid key exchange), systemd 257 with the BPF framework
  (it loads `libbpf1` when it starts, so the package must be there: iproute2 depends on it), Docker's CLI is `docker-cli`.
  Debian LTS until 2030-06-30.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class DebianRelease:
    """One supported release: its `VERSION_ID`, codename and the host-setup facts that differ."""

    version: int
    codename: str
    #: Last day of Debian LTS: after it, no security update reaches the VM at all.
    lts_end: dt.date
    #: systemd acts on `SocketBindDeny=`/`SocketBindAllow=` and `RestrictNetworkInterfaces=`.
    bpf_framework: bool
    #: sshd offers ML-KEM hybrid key exchange (OpenSSH ≥ 9.9).
    mlkem_kex: bool
    #: Packages this release needs beyond the common list (its Docker CLI, systemd's libbpf).
    packages: tuple[str, ...]


RELEASES: dict[int, DebianRelease] = {
    12: DebianRelease(12, "bookworm", dt.date(2028, 6, 30), bpf_framework=False, mlkem_kex=False, packages=()),
    13: DebianRelease(13, "trixie", dt.date(2030, 6, 30), bpf_framework=True, mlkem_kex=True,
                      packages=("docker-cli", "libbpf1")),
}
#: What a new VM runs: the current stable release.
DEFAULT = 13


def release(version: int) -> DebianRelease:
    """The record of `version`; a clear error for a release this product does not know."""
    if version not in RELEASES:
        known = ", ".join(f"{v} ({r.codename})" for v, r in sorted(RELEASES.items()))
        raise ValueError(f"expected a supported Debian release: {known}; got {version}")
    return RELEASES[version]
