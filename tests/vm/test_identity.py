"""A created VM's identity under Pulumi's mock runtime: the generated key becomes the connection's pin
and reaches the VM only in the (secret) user-data, which Debian's cloud-init accepts.

pulumi-tls is answered by `scripts/mock_tls` with a real Ed25519 key, so what the component derives
(the pin, the user-data) is checked against that key, not against a value this test made up.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi_command import remote

from components.host.vm import connection_args
from components.settings.topology import VmSettings
from components.vm.identity import CreatedVmArgs, CreatedVmIdentity
from scripts.tools.offline import SECRET, record
from tests.host.test_render import tool


def _admin_key() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    return private, key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_the_generated_key_is_the_pin_and_only_the_user_data_carries_it(tmp_path: Path) -> None:
    admin_private, admin_public = _admin_key()
    seen: dict[str, Any] = {}
    vm = VmSettings(ipaddress.IPv4Address("192.0.2.10"), 22, "deploy", None, pulumi.Output.secret(admin_private))

    def build() -> Any:
        identity = CreatedVmIdentity("vm", CreatedVmArgs("deploy", "sshadmins", pulumi.Output.secret(admin_private)))
        remote.Command("probe", create="true", connection=connection_args(vm, identity.host_key))
        pulumi.export("userData", identity.user_data)

        async def capture(pin: str, text: str) -> None:
            seen.update(pin=pin, user_data=text, secret=await identity.user_data.is_secret())

        return pulumi.Output.all(identity.host_key, identity.user_data).apply(lambda v: capture(*v))

    plan = record(build)
    key = plan.one("tls:index/privateKey:PrivateKey")
    assert key.inputs["algorithm"] == "ED25519" and key.parent == plan.one("hcs:vm:CreatedVmIdentity").urn
    assert "privateKeyOpenssh" in key.additional_secret_outputs
    # the probe is pinned to the generated key's public half ...
    assert plan.one("command:remote:Command").values["connection"]["hostKey"] == seen["pin"]
    assert seen["pin"].startswith("ssh-ed25519 ")
    # ... which is what sshd will read from the key the user-data writes (ssh-keygen's view)
    doc = yaml.safe_load(seen["user_data"])
    private = tmp_path / "ssh_host_ed25519_key"
    private.write_text(doc["ssh_keys"]["ed25519_private"])
    private.chmod(0o600)
    derived = subprocess.run([tool("ssh-keygen"), "-y", "-f", str(private)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == seen["pin"].split()
    # the admin's authorized key is the public half of vmSshPrivateKey
    assert doc["users"][0]["ssh_authorized_keys"] == [admin_public]
    # the user-data is secret: it holds the host's private key
    assert seen["secret"] and plan.outputs["userData"] == SECRET
    path = tmp_path / "user-data"
    path.write_text(seen["user_data"])
    result = subprocess.run([tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_existing_vm_keeps_its_configured_pin_and_none_is_refused() -> None:
    vm = VmSettings(ipaddress.IPv4Address("192.0.2.10"), 22, "deploy", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcXOcqc7Ue0zSkgIV7WhVKp0fHHTmoVBaWjC4O1lTF3", "key")
    assert connection_args(vm).host_key == vm.host_key
    try:
        connection_args(dataclasses.replace(vm, host_key=None))
    except ValueError as error:
        assert "no host key to pin" in str(error)
    else:
        raise AssertionError("a connection without a pin was built")
