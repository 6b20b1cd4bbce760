"""Pure renderer of the cloud-init user-data a created DMZ VM boots with (no Pulumi, no I/O).

Why it exists: a VM the program creates (`vmProvider` proxmox or digitalocean) must be trusted from
its first boot. The program generates the VM's SSH host key and hands the private half over here, so
the key sshd presents on first contact is the one the connection is already pinned to: no trust on
first use, no `ssh-keyscan`, nothing to paste. The same text serves both providers (a Proxmox
cloud-init drive and a droplet's `user_data` are both read as `#cloud-config`).

What it holds is only what must be true before the first SSH login: the admin account Pulumi logs
in as and the host key. Everything else (packages, sshd hardening, the firewall, other accounts) is
the host steps', run over that pinned connection, so it is done and checked one way for every VM,
created or existing. The text holds the host's private key: the caller passes it as a secret Output
and the rendered user-data stays secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PUBLIC = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/]+={0,3}$")
#: The admin's key may be of any type OpenSSH's server accepts from a client (the host key is Ed25519).
_CLIENT = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")


@dataclass(frozen=True)
class UserData:
    """What the user-data is made of (plain values: the caller resolves Outputs first)."""

    admin_user: str
    #: sshd admits only this group once the host steps harden it (`AllowGroups`); the admin is in it from boot.
    admin_group: str
    #: The admin's authorized key, `ssh-ed25519 AAAA…` or another type (the public half of `vmSshPrivateKey`).
    admin_public_key: str
    #: The VM's host key in OpenSSH form (`-----BEGIN OPENSSH PRIVATE KEY-----`), Ed25519. Secret.
    host_private_key: str
    #: Its public half, `ssh-ed25519 AAAA…`: the connection's pin.
    host_public_key: str


def _q(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one): no value can break the document's structure."""
    return json.dumps(text)


def _check(data: UserData) -> None:
    """Refuse inputs that would boot a VM Pulumi cannot log in to, or whose key disagrees with the pin."""
    for name, value in (("admin_user", data.admin_user), ("admin_group", data.admin_group)):
        if not _USER.match(value):
            raise ValueError(f"{name}: expected a Linux account name, got {value!r}")
    if not _CLIENT.match(data.admin_public_key.strip()):
        raise ValueError("admin_public_key: expected one line '<type> AAAA…' without a comment")
    if not _PUBLIC.match(data.host_public_key.strip()):
        raise ValueError("host_public_key: expected one line 'ssh-ed25519 AAAA…' without a comment")
    try:
        key = serialization.load_ssh_private_key(data.host_private_key.encode(), password=None)
    except ValueError:
        raise ValueError("host_private_key: expected an unencrypted OpenSSH private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("host_private_key: expected an Ed25519 key (the pin's type)")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    if public != data.host_public_key.strip():
        raise ValueError("host_public_key: is not the public half of host_private_key (the VM would fail its own pin)")


def render_user_data(data: UserData) -> str:
    """The `#cloud-config` document: the admin account and the pinned host key, each line's reason beside it."""
    _check(data)
    private = "".join(f"    {line}\n" for line in data.host_private_key.strip().splitlines())
    return (
        "#cloud-config\n"
        "# Managed by hardened-code-server (Pulumi): the VM's first boot; the host steps do the rest.\n"
        "# Only this account: the image's default user (debian) is not created.\n"
        "users:\n"
        f"  - name: {_q(data.admin_user)}\n"
        "    # its own group, and the one sshd will admit once hardened (AllowGroups)\n"
        "    primary_group: " + _q(data.admin_user) + "\n"
        f"    groups: [{_q(data.admin_group)}]\n"
        "    # every host step runs `sudo -n`: no TTY for a password prompt\n"
        "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
        "    # no password at all: the key below is the only way in\n"
        "    lock_passwd: true\n"
        "    shell: /bin/bash\n"
        "    ssh_authorized_keys:\n"
        f"      - {_q(data.admin_public_key.strip())}\n"
        "# no password logins, no root logins, before the host steps harden sshd further\n"
        "ssh_pwauth: false\n"
        "disable_root: true\n"
        "# the image's host keys go (a template's keys are shared by every clone) ...\n"
        "ssh_deletekeys: true\n"
        "# ... and only the generated key below is written; cloud-init generates none while ssh_keys is\n"
        "# set (Debian 12's 22.4 schema refuses an empty list, so the pin's own type is named)\n"
        "ssh_genkeytypes: [ed25519]\n"
        "# the host key the connection is pinned to, so the first contact is already verified\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{private}"
        f"  ed25519_public: {_q(data.host_public_key.strip())}\n"
    )
