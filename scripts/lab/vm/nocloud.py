"""A booted test VM's cloud-init: the NoCloud seed it boots from, and its verdict after boot.

Why a seed directory: Proxmox hands a VM its cloud-init snippet as a NoCloud seed (the `cidata`
drive); an nspawn VM has no drives, so the same two files go where NoCloud also looks,
`/var/lib/cloud/seed/nocloud/`. cloud-init's datasource code is the same either way; only the
place it reads them from differs.

Test-image settings (never the product's user-data; each says why):
- `network: {config: disabled}`: the test network is set up from outside the VM (its network
  namespace, `netns.NamespacePair`), so cloud-init must not write an interface config of its own
  (on Proxmox the network-config comes from the VM's `ip_config` instead).
- `locale: C.UTF-8`: the image is a debootstrap minbase without `locales`; Debian 12's cloud-init
  22.4 sets en_US.UTF-8 by default and its `locale` module fails there (`update-locale` exit 255:
  the boot's cloud-init status is then `error`). Debian 13's 25.1 passes either way.

A VM booted without user-data gets `/etc/cloud/cloud-init.disabled` (cloud-init's own off switch,
read by its systemd generator): its host keys and admin were made before boot, and cloud-init's
`ssh` module would otherwise replace them if any datasource matched.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from scripts.lab.vm.prereq import RealRootError

SEED = Path("var/lib/cloud/seed/nocloud")
DISABLED = Path("etc/cloud/cloud-init.disabled")
TEST_SETTINGS = Path("etc/cloud/cloud.cfg.d/99-hcs-test-vm.cfg")
_TEST_SETTINGS_TEXT = (
    "# hardened-code-server test VM (scripts/lab/vm/nocloud.py): its network is configured from outside,\n"
    "# by the test's network namespace; cloud-init writes no interface config.\n"
    "network:\n"
    "  config: disabled\n"
    "# The image is a debootstrap minbase without the locales package: Debian 12's cloud-init (22.4)\n"
    "# defaults to en_US.UTF-8, which update-locale refuses there; C.UTF-8 is built into libc.\n"
    "locale: C.UTF-8\n"
)
#: Where cloud-init keeps the user-data it ran (the instance's copy of the seed).
INSTANCE_USER_DATA = "/var/lib/cloud/instance/user-data.txt"
LOG = "/var/log/cloud-init.log"


def pinned_host_key(user_data: str) -> str:
    """The Ed25519 host key `ssh-ed25519 AAAA…` the user-data installs (what the SSH client pins)."""
    document = yaml.safe_load(user_data)
    try:
        return " ".join(str(document["ssh_keys"]["ed25519_public"]).split()[:2])
    except (KeyError, TypeError):
        raise RealRootError("the user-data installs no ssh_keys.ed25519_public: no host key to pin") from None


def sha256(text: str | bytes) -> str:
    """The user-data's fingerprint, to compare a seed with what a program rendered."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def instance_id(user_data: str) -> str:
    """An instance-id per user-data: cloud-init runs its per-instance modules once per id, so new
    user-data is a new instance (as a new Proxmox VM or droplet is)."""
    return f"hcs-test-{sha256(user_data)[:16]}"


def write_seed(root: Path, user_data: str, hostname: str) -> None:
    """The NoCloud seed and the test image's settings in the unpacked root; cloud-init switched on."""
    seed = root / SEED
    seed.mkdir(parents=True, exist_ok=True, mode=0o700)
    (seed / "user-data").touch(mode=0o600)  # it holds the host's private key
    (seed / "user-data").write_text(user_data)
    (seed / "meta-data").write_text(f"instance-id: {instance_id(user_data)}\nlocal-hostname: {hostname}\n")
    (root / TEST_SETTINGS).write_text(_TEST_SETTINGS_TEXT)
    (root / DISABLED).unlink(missing_ok=True)


def disable(root: Path) -> None:
    """cloud-init off for a VM provisioned before boot (module docstring)."""
    (root / DISABLED).touch()


def seed_user_data(root: Path) -> bytes:
    """The user-data in the VM's seed, as it is on disk."""
    return (root / SEED / "user-data").read_bytes()
