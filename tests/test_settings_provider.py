"""`vmProvider` and each provider's keys: checked like every other key, all problems at once.

These tests switch the dev stack to each provider and feed every key a good value, then one bad
value at a time, and expect the error to name that key.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import pytest

from components.settings import ConfigError, MappingSource, debian, load, provider
from components.settings.reader import Reader
from scripts.lab.example import TEST_SECRETS, TODAY
from scripts.tools.offline import StackConfig

PVE_TOKEN = f"pulumi@pve!hcs={uuid.UUID(int=0x1234)}"
DO_TOKEN = "dop_v1_" + "ab" * 32
PROXMOX = {"vmProvider": "proxmox", "vmHostKey": None, "proxmoxEndpoint": "https://pve.example.com:8006/",
           "proxmoxNode": "pve1", "proxmoxTemplateVmId": 9000, "proxmoxBridge": "vmbr1", "proxmoxVlanTag": 30,
           "proxmoxApiToken": PVE_TOKEN, "proxmoxGateway": "192.0.2.1", "proxmoxSshUser": "root",
           "proxmoxSshPrivateKey": TEST_SECRETS["vmSshPrivateKey"]}
DIGITALOCEAN = {"vmProvider": "digitalocean", "vmHostKey": None, "digitaloceanRegion": "fra1",
                "digitaloceanSize": "s-2vcpu-4gb", "digitaloceanImage": "debian-13-x64",
                "digitaloceanVpcUuid": "0f0e0d0c-0b0a-0908-0706-050403020100", "digitaloceanToken": DO_TOKEN}


def _source(config: StackConfig, changes: dict[str, Any], secret_keys: frozenset[str] | None = None) -> MappingSource:
    # The dev stack with test secrets, and the provider tokens left out (the plan's placeholders are not real tokens).
    base = config.with_values(**{**TEST_SECRETS, "proxmoxApiToken": None, "proxmoxSshPrivateKey": None,
                                   "digitaloceanToken": None, **changes})
    return MappingSource(base.values, config.secret_keys if secret_keys is None else secret_keys)


def _problems(config: StackConfig, changes: dict[str, Any], secret_keys: frozenset[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load(_source(config, changes, secret_keys), today=TODAY)
    return [str(p) for p in error.value.problems]


def _parse(config: StackConfig, changes: dict[str, Any], release: int = 13) -> tuple[provider.VmProvider | None, list[str]]:
    """The provider parser alone, as load() calls it (so a valid provider's settings can be inspected)."""
    r = Reader(_source(config, changes))
    parsed = provider.parse(r, provider.kind(r), debian.RELEASES[release], ipaddress.IPv4Address(config.values["vmAddress"]))
    return parsed, [str(p) for p in r.problems]


def test_existing_is_the_default_and_needs_no_provider_key(dev_config: StackConfig) -> None:
    settings = load(_source(dev_config, {}), today=TODAY)
    assert settings.vm_provider == provider.VmProvider("existing")
    assert not settings.vm_provider.creates_vm
    assert settings.topology.vm.host_key == dev_config.values["vmHostKey"]


def test_proxmox_settings_are_read_with_their_defaults(dev_config: StackConfig) -> None:
    parsed, problems = _parse(dev_config, PROXMOX)
    assert problems == []
    assert parsed is not None and parsed.creates_vm and parsed.digitalocean is None
    vm = parsed.proxmox
    assert vm is not None
    assert (vm.endpoint, vm.node, vm.template_vm_id, vm.bridge, vm.vlan_tag) == ("https://pve.example.com:8006/", "pve1", 9000, "vmbr1", 30)
    # Pulumi.yaml's defaults: 2 cores, 4 GiB, 32 GiB on local-lvm
    assert (vm.cores, vm.memory_mib, vm.disk_gib, vm.datastore) == (2, 4096, 32, "local-lvm")
    # the DMZ around vmAddress 192.0.2.10 (default /24), snippets on `local`, the node's SSH account
    assert (str(vm.gateway), vm.prefix_length, vm.snippet_datastore, vm.ssh_user) == ("192.0.2.1", 24, "local", "root")
    untagged, _ = _parse(dev_config, {**PROXMOX, "proxmoxVlanTag": 0})
    assert untagged is not None and untagged.proxmox is not None and untagged.proxmox.vlan_tag is None


def test_digitalocean_settings_are_read(dev_config: StackConfig) -> None:
    parsed, problems = _parse(dev_config, DIGITALOCEAN)
    assert problems == []
    assert parsed is not None and parsed.proxmox is None and parsed.digitalocean is not None
    droplet = parsed.digitalocean
    assert (droplet.region, droplet.size, droplet.image, droplet.vpc_uuid) == (
        "fra1", "s-2vcpu-4gb", "debian-13-x64", "0f0e0d0c-0b0a-0908-0706-050403020100")


@pytest.mark.parametrize("changes", [PROXMOX, DIGITALOCEAN], ids=["proxmox", "digitalocean"])
def test_a_valid_provider_stack_loads_without_a_pin(dev_config: StackConfig, changes: dict[str, Any]) -> None:
    settings = load(_source(dev_config, changes), today=TODAY)
    assert settings.vm_provider.kind == changes["vmProvider"] and settings.vm_provider.creates_vm
    assert settings.topology.vm.host_key is None  # the pin is the generated key's, derived in the program


@pytest.mark.parametrize("changes", [PROXMOX, DIGITALOCEAN], ids=["proxmox", "digitalocean"])
def test_a_pasted_host_key_is_refused_when_the_program_creates_the_vm(dev_config: StackConfig, changes: dict[str, Any]) -> None:
    problems = _problems(dev_config, {**changes, "vmHostKey": dev_config.values["vmHostKey"]})
    assert any(p.startswith("config error: vmHostKey: must not be set") and "generates the VM's host key" in p for p in problems)


# (id, changes, key named in the error, fragment of what is expected)
MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("provider-unknown", {"vmProvider": "aws"}, "vmProvider", "expected one of existing, proxmox, digitalocean"),
    ("pve-endpoint-http", {**PROXMOX, "proxmoxEndpoint": "http://pve.example.com:8006/"}, "proxmoxEndpoint", "https"),
    ("pve-endpoint-path", {**PROXMOX, "proxmoxEndpoint": "https://pve.example.com:8006/api2/json"}, "proxmoxEndpoint", "https URL"),
    ("pve-endpoint-missing", {**PROXMOX, "proxmoxEndpoint": None}, "proxmoxEndpoint", "is required"),
    ("pve-node", {**PROXMOX, "proxmoxNode": "pve 1"}, "proxmoxNode", "node name"),
    ("pve-template-missing", {**PROXMOX, "proxmoxTemplateVmId": 0}, "proxmoxTemplateVmId", "is required with vmProvider proxmox"),
    ("pve-template-low", {**PROXMOX, "proxmoxTemplateVmId": 99}, "proxmoxTemplateVmId", "from 100 to 999999999"),
    ("pve-bridge-long", {**PROXMOX, "proxmoxBridge": "vmbr-dmz-0123456789"}, "proxmoxBridge", "Linux bridge"),
    ("pve-vlan-range", {**PROXMOX, "proxmoxVlanTag": 4095}, "proxmoxVlanTag", "from 0 to 4094"),
    ("pve-cores", {**PROXMOX, "proxmoxCores": 0}, "proxmoxCores", "from 1 to 128"),
    ("pve-memory-small", {**PROXMOX, "proxmoxMemoryMib": 1024}, "proxmoxMemoryMib", "from 2048"),
    ("pve-disk-small", {**PROXMOX, "proxmoxDiskGib": 4}, "proxmoxDiskGib", "from 10"),
    ("pve-datastore", {**PROXMOX, "proxmoxDatastore": "local lvm"}, "proxmoxDatastore", "storage ID"),
    ("pve-token-form", {**PROXMOX, "proxmoxApiToken": "pulumi@pve:hcs:secret"}, "proxmoxApiToken", "USER@REALM!TOKENID=UUID"),
    ("pve-token-not-uuid", {**PROXMOX, "proxmoxApiToken": "pulumi@pve!hcs=" + "z" * 36}, "proxmoxApiToken", "USER@REALM!TOKENID=UUID"),
    ("pve-token-hyphens", {**PROXMOX, "proxmoxApiToken": "pulumi@pve!hcs=" + "0" * 32 + "----"}, "proxmoxApiToken", "USER@REALM!TOKENID=UUID"),
    ("pve-gateway-outside", {**PROXMOX, "proxmoxGateway": "198.51.100.1"}, "proxmoxGateway", "inside 192.0.2.0/24"),
    ("pve-gateway-is-vm", {**PROXMOX, "proxmoxGateway": "192.0.2.10"}, "proxmoxGateway", "other than the VM's own"),
    ("pve-gateway-network", {**PROXMOX, "proxmoxGateway": "192.0.2.0"}, "proxmoxGateway", "inside 192.0.2.0/24"),
    ("pve-gateway-missing", {**PROXMOX, "proxmoxGateway": None}, "proxmoxGateway", "is required"),
    ("pve-prefix", {**PROXMOX, "proxmoxPrefixLength": 31}, "proxmoxPrefixLength", "from 8 to 30"),
    ("pve-snippets", {**PROXMOX, "proxmoxSnippetDatastore": "lo cal"}, "proxmoxSnippetDatastore", "storage ID"),
    ("pve-ssh-user", {**PROXMOX, "proxmoxSshUser": "Root User"}, "proxmoxSshUser", "SSH account"),
    ("pve-ssh-key-missing", {**PROXMOX, "proxmoxSshPrivateKey": None}, "proxmoxSshPrivateKey", "--secret"),
    ("pve-ssh-key-form", {**PROXMOX, "proxmoxSshPrivateKey": "not a key"}, "proxmoxSshPrivateKey", "private key"),
    ("pve-token-missing", {**PROXMOX, "proxmoxApiToken": None}, "proxmoxApiToken", "--secret"),
    ("do-region", {**DIGITALOCEAN, "digitaloceanRegion": "frankfurt"}, "digitaloceanRegion", "region slug"),
    ("do-size", {**DIGITALOCEAN, "digitaloceanSize": "S 2vCPU"}, "digitaloceanSize", "size slug"),
    ("do-image-other-os", {**DIGITALOCEAN, "digitaloceanImage": "ubuntu-24-04-x64"}, "digitaloceanImage", "debian-12-x64, debian-13-x64"),
    ("do-image-other-release", {**DIGITALOCEAN, "digitaloceanImage": "debian-12-x64"}, "digitaloceanImage", "expected debian-13-x64, the image of vmDebianRelease 13"),
    ("do-vpc", {**DIGITALOCEAN, "digitaloceanVpcUuid": "default"}, "digitaloceanVpcUuid", "VPC's UUID"),
    ("do-token-form", {**DIGITALOCEAN, "digitaloceanToken": "dop_v1_short"}, "digitaloceanToken", "dop_v1_ and 64 hex"),
    ("do-token-missing", {**DIGITALOCEAN, "digitaloceanToken": None}, "digitaloceanToken", "--secret"),
    ("pve-key-without-provider", {"proxmoxNode": "pve1"}, "proxmoxNode", "only applies with vmProvider proxmox"),
    ("pve-vlan-without-provider", {"proxmoxVlanTag": 30}, "proxmoxVlanTag", "only applies with vmProvider proxmox"),
    ("do-key-on-proxmox", {**PROXMOX, "digitaloceanRegion": "fra1"}, "digitaloceanRegion", "only applies with vmProvider digitalocean"),
]


@pytest.mark.parametrize(("changes", "key", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_each_bad_provider_value_names_its_key(dev_config: StackConfig, changes: dict[str, Any], key: str, expected: str) -> None:
    problems = _problems(dev_config, changes)
    assert any(p.startswith(f"config error: {key}: ") and expected in p for p in problems), problems


def test_release_12_takes_the_debian_12_image(dev_config: StackConfig) -> None:
    parsed, problems = _parse(dev_config, {**DIGITALOCEAN, "digitaloceanImage": "debian-12-x64"}, release=12)
    assert problems == [] and parsed is not None and parsed.digitalocean is not None
    _, problems = _parse(dev_config, DIGITALOCEAN, release=12)
    assert problems == ["config error: digitaloceanImage: expected debian-12-x64, the image of vmDebianRelease 12 "
                        "(every host step refuses a VM of another release), got 'debian-13-x64'"]


@pytest.mark.parametrize("key", ["proxmoxApiToken", "digitaloceanToken"])
def test_tokens_must_be_stored_encrypted_and_are_never_echoed(dev_config: StackConfig, key: str) -> None:
    changes = PROXMOX if key == "proxmoxApiToken" else DIGITALOCEAN
    problems = _problems(dev_config, changes, secret_keys=dev_config.secret_keys - {key})
    assert any(p.startswith(f"config error: {key}: must be stored encrypted") for p in problems)
    bad = {**changes, key: "pulumi@pve!x=leaked-value-0001"}
    assert not any("leaked-value-0001" in p for p in _problems(dev_config, bad))


def test_every_problem_of_a_provider_stack_at_once(dev_config: StackConfig) -> None:
    problems = _problems(dev_config, {**PROXMOX, "proxmoxNode": "pve 1", "proxmoxVlanTag": 5000,
                                      "vmHostKey": dev_config.values["vmHostKey"]})
    keys = {p.split(":")[1].strip() for p in problems}
    assert {"proxmoxNode", "proxmoxVlanTag", "vmHostKey"} <= keys
