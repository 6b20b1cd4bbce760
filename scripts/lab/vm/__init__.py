"""The lab's VM: a throwaway Debian root (13 by default, or 12), reached over real SSH, in its own namespaces.

Modules: `rootfs` (cached debootstrap image, fresh copies), `netns` (VM and peer network
namespaces), `machine` (the running root: mounts, admin user, sshd), `booted` (the root booted with
systemd, from a NoCloud seed: `nocloud`), `runner` (commands and dependency-ordered steps over real
SSH), `fileserver` and `aptproxy` (what the peer side serves). The pytest fixtures built on them are
the tests' own (`tests/realroot/fixtures.py`).
"""
