"""Real-root test library: a throwaway Debian root (13 by default, or 12), reached over real SSH, in its own namespaces.

Modules: `rootfs` (cached debootstrap image, fresh copies), `netns` (VM and peer network
namespaces), `machine` (the running root: mounts, admin user, sshd), `runner` (commands and
dependency-ordered steps over real SSH), `fileserver` (HTTP file server on the peer side),
`fixtures` (pytest fixtures; load with `pytest_plugins = ["tests.realroot.fixtures"]`).
"""
