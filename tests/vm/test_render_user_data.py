"""The created VM's user-data, checked by the tools that consume it: Debian's cloud-init (`cloud-init
schema`, 22.4 on Debian 12) and OpenSSH's `ssh-keygen` (the host key it carries is the pinned one).

One user-data serves both providers (a Proxmox cloud-init drive and a droplet's `user_data` are both
`#cloud-config` read by the image's cloud-init), so one document is validated. Keys are generated
afresh for every run. Tools missing on the machine fail the test (tests/apt-packages/host.txt).
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from components.vm.render_user_data import UserData, render_user_data
from tests.host.test_render import tool


def _private(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()


def _public(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def data() -> UserData:
    host, admin = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    return UserData("deploy", "sshadmins", _public(admin), _private(host), _public(host))


def _schema(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`cloud-init schema --config-file` (22.4 has it at the top level; `devel schema` is older)."""
    path = tmp_path / "user-data"
    path.write_text(text)
    return subprocess.run([tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)


def test_the_user_data_passes_cloud_init_schema(tmp_path: Path, data: UserData) -> None:
    result = _schema(tmp_path, render_user_data(data))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


# (id, a change to the rendered text, what cloud-init says): the same check fails a broken document.
BROKEN = [
    ("no-header", lambda t: t.replace("#cloud-config\n", "", 1), 'needs to begin with "#cloud-config"'),
    ("empty-genkeytypes", lambda t: t.replace("ssh_genkeytypes: [ed25519]", "ssh_genkeytypes: []"), "ssh_genkeytypes: [] is too short"),
    ("unknown-key-type", lambda t: t.replace("ed25519_public:", "ed25519_pub:"), "ssh_keys: 'ed25519_pub' does not match"),
    ("lock-passwd-word", lambda t: t.replace("lock_passwd: true", "lock_passwd: sure"), "users.0"),
    ("not-yaml", lambda t: t.replace("users:\n", "users: [\n", 1), "is not valid yaml"),
]


@pytest.mark.parametrize(("change", "says"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_user_data_fails_the_same_check(tmp_path: Path, data: UserData, change, says: str) -> None:
    text = render_user_data(data)
    broken = change(text)
    assert broken != text
    result = _schema(tmp_path, broken)
    assert result.returncode != 0 and says in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_host_key_handed_over_is_the_pinned_one(tmp_path: Path, data: UserData) -> None:
    """sshd will read the private key cloud-init writes; its public half (ssh-keygen's view) is the pin."""
    doc = yaml.safe_load(render_user_data(data))
    key = tmp_path / "ssh_host_ed25519_key"
    key.write_text(doc["ssh_keys"]["ed25519_private"])
    key.chmod(0o600)
    derived = subprocess.run([tool("ssh-keygen"), "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == data.host_public_key.split()[:2] == doc["ssh_keys"]["ed25519_public"].split()


def test_only_what_the_first_login_needs(data: UserData) -> None:
    """The admin account and the host key; packages, hardening and other accounts are the host steps'."""
    doc = yaml.safe_load(render_user_data(data))
    assert set(doc) == {"users", "ssh_pwauth", "disable_root", "ssh_deletekeys", "ssh_genkeytypes", "ssh_keys"}
    assert (doc["ssh_pwauth"], doc["disable_root"], doc["ssh_deletekeys"], doc["ssh_genkeytypes"]) == (False, True, True, ["ed25519"])
    assert set(doc["ssh_keys"]) == {"ed25519_private", "ed25519_public"}
    [admin] = doc["users"]  # no `default` entry: the image's own user is not created
    assert admin == {"name": "deploy", "primary_group": "deploy", "groups": ["sshadmins"], "sudo": "ALL=(ALL) NOPASSWD:ALL",
                     "lock_passwd": True, "shell": "/bin/bash", "ssh_authorized_keys": [data.admin_public_key]}


# (id, a change to the inputs, the field named in the error)
REFUSED = [
    ("pin-of-another-key", {"host_public_key": _public(ed25519.Ed25519PrivateKey.generate())}, "host_public_key: is not the public half"),
    ("rsa-host-key", {"host_private_key": _private(rsa.generate_private_key(public_exponent=65537, key_size=2048))}, "expected an Ed25519 key"),
    ("not-a-key", {"host_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n"}, "host_private_key"),
    ("admin-key-two-lines", {"admin_public_key": "ssh-ed25519 AAAA\nruncmd: [reboot]"}, "admin_public_key"),
    ("admin-key-comment", {"admin_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@laptop"}, "admin_public_key"),
    ("user-injection", {"admin_user": "deploy\nruncmd: [reboot]"}, "admin_user"),
    ("group-upper", {"admin_group": "Admins"}, "admin_group"),
]


@pytest.mark.parametrize(("changes", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_inputs_that_would_lock_pulumi_out_are_refused(data: UserData, changes: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        render_user_data(dataclasses.replace(data, **changes))
