"""The real-root image for host tests: the shared recipe plus the packages only the host steps use.

The test root has no route to a Debian mirror, so every package a step installs must already be
in the image; `docker.io` and `restic` are added here (a separate cached image, same recipe).
"""

from __future__ import annotations

from tests.realroot import rootfs

IMAGE_PACKAGES: tuple[str, ...] = tuple(sorted(set(rootfs.PACKAGES) | {"docker.io", "restic"}))
