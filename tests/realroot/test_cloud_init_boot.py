"""A created VM's first boot, for real: the program's user-data, read by cloud-init's NoCloud datasource
in a booted Debian VM (12 and 13), makes the admin and installs the generated host key.

The user-data is rendered by the product's `render_user_data` from a freshly generated Ed25519 host
key and the VM's admin key; the image holds no admin account and no host key before boot, so what
sshd presents and who may log in can only have come from cloud-init. The SSH client is pinned to
the generated key before the VM exists, as the program's connection is, and a client pinned to any
other key gets no command run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.vm.render_user_data import UserData, render_user_data
from scripts.lab.converge.realhost import reinstalled
from scripts.lab.vm import nocloud, rootfs
from scripts.lab.vm.booted import BootedVM
from scripts.lab.vm.machine import RootConfig
from scripts.lab.vm.prereq import RealRootError

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class FirstBoot:
    """A VM booted from `user_data`, made of `data`."""

    vm: BootedVM
    data: UserData
    user_data: str


def _new_host_key() -> tuple[str, str]:
    """A fresh Ed25519 host key: (OpenSSH private key, `ssh-ed25519 AAAA…`), as pulumi-tls would make it."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private.decode(), public.decode()


@pytest.fixture(scope="module", params=[12, 13], ids=lambda v: f"debian{v}")
def first_boot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstBoot]:
    """One VM per release, booted only from the rendered user-data (no admin, no host key made beforehand);
    without Docker (none installed), so it may run beside a demo's Debian 12 VM (`BootedVM(docker=False)`)."""
    release: int = request.param
    try:
        image = rootfs.ensure_image(release)
    except RealRootError as error:
        pytest.fail(f"no Debian {release} image: {error}", pytrace=False)
    config = RootConfig()
    assert config.admin_group, "the admin group is part of what cloud-init must make"
    # a fresh cloud VM: without the packages the product installs (its Docker, its firewall logger)
    vm = BootedVM(image, tmp_path_factory.mktemp(f"cloud-init-{release}"), config, purge=reinstalled(release), docker=False)
    private, public = _new_host_key()
    data = UserData(config.admin_user, config.admin_group, vm.admin_public_key(), private, public)
    user_data = render_user_data(data)
    try:
        vm.start(user_data=user_data)
    except RealRootError as error:
        vm.close()
        pytest.fail(f"the VM did not boot from the user-data: {error}", pytrace=False)
    yield FirstBoot(vm, data, user_data)
    vm.close()


def test_cloud_init_ran_from_the_seed(first_boot: FirstBoot) -> None:
    vm = first_boot.vm
    status = vm.chroot_run(["cloud-init", "status", "--long"])
    assert "status: done" in status.stdout, status.stdout
    assert "DataSourceNoCloud" in status.stdout, status.stdout
    # enabled for this boot by cloud-init's systemd generator, which ds-identify told it found NoCloud
    assert vm.systemctl("is-enabled", "cloud-init.target") == "enabled-runtime"
    identified = vm.chroot_run(["cat", "/run/cloud-init/ds-identify.log"]).stdout
    assert "Found single datasource: NoCloud" in identified, identified
    ran = vm.chroot_run(["cat", nocloud.INSTANCE_USER_DATA]).stdout
    assert nocloud.sha256(ran) == nocloud.sha256(first_boot.user_data)


def test_the_admin_was_made_by_cloud_init(first_boot: FirstBoot) -> None:
    vm, data = first_boot.vm, first_boot.data
    groups = vm.chroot_run(["id", "-Gn", data.admin_user]).stdout.split()
    primary = vm.chroot_run(["id", "-gn", data.admin_user]).stdout.strip()
    assert primary == data.admin_user and data.admin_group in groups
    shadow = vm.chroot_run(["getent", "shadow", data.admin_user]).stdout.split(":")
    assert shadow[1].startswith("!"), "the password must be locked"
    result = vm.runner().run("id -un && sudo -n true && echo sudo-ok")
    assert result.ok, result.stderr
    assert result.stdout.split() == [data.admin_user, "sudo-ok"]


def test_the_only_host_key_is_the_generated_one(first_boot: FirstBoot, tmp_path: Path) -> None:
    vm, data = first_boot.vm, first_boot.data
    keys = sorted(p.name for p in (vm.path / "etc/ssh").glob("ssh_host_*"))
    assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    expected = tmp_path / "pin.pub"
    expected.write_text(data.host_public_key + "\n")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(expected)], capture_output=True, text=True, check=True).stdout.split()[1]
    installed = vm.chroot_run(["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key"]).stdout.split()[1]
    assert installed == fingerprint
    assert vm.host_key == data.host_public_key
    assert vm.known_hosts.read_text() == f"{vm.address} {data.host_public_key}\n"


def test_a_client_pinned_to_another_key_gets_no_command(first_boot: FirstBoot, tmp_path: Path) -> None:
    vm = first_boot.vm
    marker = "/var/tmp/pinned-command-ran"
    _, other = _new_host_key()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{vm.address} {other}\n")
    refused = vm.runner(known_hosts_file=wrong).run(f"touch {marker}")
    assert refused.exit_code == 255 and "Host key verification failed" in refused.stderr, refused.stderr
    assert not (vm.path / marker.lstrip("/")).exists()
    pinned = vm.runner().run(f"touch {marker}")
    assert pinned.ok, pinned.stderr
    assert (vm.path / marker.lstrip("/")).exists()


def test_the_user_data_passes_the_vms_own_schema_check(first_boot: FirstBoot) -> None:
    """Debian's cloud-init of the release (besides the host's Debian 12 check in tests/host)."""
    vm = first_boot.vm
    path = "/root/user-data.yaml"
    vm.chroot_run(["sh", "-c", f"umask 077 && cat > {path}"], input=first_boot.user_data)
    result = vm.chroot_run(["cloud-init", "schema", "--config-file", path], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid" in result.stdout, result.stdout
