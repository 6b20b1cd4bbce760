"""The identity of a VM this program creates: its generated SSH host key, the pin, and the user-data.

Used only with `vmProvider` other than existing. The provider's VM resource (still to come, issue 32)
boots with `user_data`; `connection_args` pins every SSH session to `host_key`, so the first contact
with the new VM is already verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tls as tls
from cryptography.hazmat.primitives import serialization

from components.vm.render_user_data import UserData, render_user_data


def public_half(private_key: str) -> str:
    """`ssh-ed25519 AAAA…` (or the key's own type) of an OpenSSH private key: the admin's authorized key
    is derived from `vmSshPrivateKey`, so the two cannot disagree."""
    text = private_key.encode()
    key = serialization.load_ssh_private_key(text, password=None) if b"OPENSSH PRIVATE KEY" in text \
        else serialization.load_pem_private_key(text, password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@dataclass(frozen=True)
class CreatedVmArgs:
    admin_user: str
    admin_group: str
    admin_private_key: Any  # pulumi.Output[str], secret (vmSshPrivateKey)


class CreatedVmIdentity(pulumi.ComponentResource):
    """The generated host key of a created VM (token `hcs:vm:CreatedVmIdentity`).

    Child: one `tls.PrivateKey` (Ed25519, the pin's type; kept in state as a secret, so every `up`
    keeps the same key). Outputs: `host_key` (the pin, `ssh-ed25519 AAAA…`), `user_data` (secret: it
    holds the host's private key).

    Why: the key is made before the VM exists and reaches it only through the user-data, so no
    `ssh-keyscan` (trust on first use) is ever needed and nobody pastes a pin.
    """

    host_key: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: CreatedVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:vm:CreatedVmIdentity", name, None, opts)
        key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519",
                             opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["private_key_openssh", "private_key_pem"]))
        self.host_key = key.public_key_openssh.apply(lambda text: " ".join(text.split()[:2]))
        admin_public = pulumi.Output.unsecret(pulumi.Output.from_input(args.admin_private_key).apply(public_half))
        self.user_data = pulumi.Output.secret(pulumi.Output.all(admin_public, key.private_key_openssh, self.host_key).apply(
            lambda v: render_user_data(UserData(args.admin_user, args.admin_group, v[0], v[1], v[2]))))
        self.register_outputs({"host_key": self.host_key, "user_data": self.user_data})
