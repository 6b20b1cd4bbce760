"""The settings layer rejects every malformed stack config with the key named and no traceback."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from components.settings import ConfigError, MappingSource, load
from components.settings.entra import ExistingGroup
from scripts import REPOSITORY
from scripts.lab.example import KEY, TODAY
from scripts.tools.offline import StackConfig


def _source(config: StackConfig, changes: dict[str, Any], secret_keys: set[str] | None = None) -> MappingSource:
    changed = config.with_values(**{"vmSshPrivateKey": KEY, **changes})
    keys = config.secret_keys if secret_keys is None else frozenset(secret_keys)
    return MappingSource(changed.values, frozenset(keys))


def test_dev_stack_is_valid(dev_config: StackConfig) -> None:
    settings = load(_source(dev_config, {}), today=TODAY)
    assert settings.public_url == "https://code.example.com"
    assert settings.entra.group.member_object_ids  # the dev stack creates its group
    assert [r.name for r in settings.topology.egress_rules][:2] == ["dns-udp", "dns-tcp"]


def test_code_server_transfers_are_opt_in_and_the_idle_timeout_defaults_to_an_hour(dev_config: StackConfig) -> None:
    host = load(_source(dev_config, {}), today=TODAY).host
    assert (host.code_server_disable_downloads, host.code_server_disable_uploads) == (False, False)
    assert host.code_server_idle_timeout == dt.timedelta(hours=1)
    changes = {"codeServerDisableFileDownloads": True, "codeServerDisableFileUploads": True, "codeServerIdleTimeout": "1h30m"}
    host = load(_source(dev_config, changes), today=TODAY).host
    assert (host.code_server_disable_downloads, host.code_server_disable_uploads) == (True, True)
    assert host.code_server_idle_timeout == dt.timedelta(minutes=90)


# (id, changes, key named in the error, fragment of what is expected)
MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("hostname-missing", {"hostname": None}, "hostname", "is required"),
    ("hostname-single-label", {"hostname": "code"}, "hostname", "fully qualified host name"),
    ("hostname-url", {"hostname": "https://code.example.com"}, "hostname", "fully qualified host name"),
    ("hostname-ip", {"hostname": "192.0.2.1"}, "hostname", "not an IP address"),
    ("tenant-not-guid", {"entraTenantId": "contoso"}, "entraTenantId", "expected a GUID"),
    ("group-both", {"entraGroupObjectId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}, "entraGroupObjectId", "exactly one"),
    ("group-neither", {"entraGroupName": None, "entraGroupMembers": None}, "entraGroupObjectId", "exactly one"),
    ("members-empty", {"entraGroupMembers": []}, "entraGroupMembers", "non-empty list"),
    ("member-not-guid", {"entraGroupMembers": ["66666666-7777-8888-9999-000000000001", "alice@example.com"]}, "entraGroupMembers[1]", "expected a GUID"),
    ("member-duplicate", {"entraGroupMembers": ["66666666-7777-8888-9999-000000000001"] * 2}, "entraGroupMembers", "no duplicate"),
    ("members-with-existing-group", {"entraGroupName": None, "entraGroupObjectId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}, "entraGroupMembers", "only applies with entraGroupName"),
    ("secret-end-date-format", {"entraSecretEndDate": "next year"}, "entraSecretEndDate", "YYYY-MM-DD"),
    ("secret-end-date-past", {"entraSecretEndDate": "2020-01-01"}, "entraSecretEndDate", "after today"),
    ("rotation-empty", {"entraSecretRotation": " "}, "entraSecretRotation", "non-empty label"),
    ("vm-address-bad", {"vmAddress": "192.0.2.300"}, "vmAddress", "expected an IP address"),
    ("vm-address-v6", {"vmAddress": "2001:db8::10"}, "vmAddress", "IPv4"),
    ("ssh-port-text", {"vmSshPort": "ssh"}, "vmSshPort", "expected an integer"),
    ("ssh-port-range", {"vmSshPort": 70000}, "vmSshPort", "from 1 to 65535"),
    ("admin-user-spaces", {"vmAdminUser": "Deploy User"}, "vmAdminUser", "Linux account name"),
    ("admin-user-root", {"vmAdminUser": "root"}, "vmAdminUser", "not root"),
    ("host-key-bare", {"vmHostKey": "AAAAC3NzaC1lZDI1NTE5"}, "vmHostKey", "public host key"),
    ("private-key-shape", {"vmSshPrivateKey": "hunter2-not-a-key"}, "vmSshPrivateKey", "SSH private key"),
    ("private-key-missing", {"vmSshPrivateKey": None}, "vmSshPrivateKey", "--secret"),
    ("same-account-twice", {"ideUser": "codesvc"}, "ideUser", "three different accounts"),
    ("front-proxy-empty", {"frontProxyAddresses": []}, "frontProxyAddresses", "non-empty"),
    ("front-proxy-not-list", {"frontProxyAddresses": "192.0.2.5"}, "frontProxyAddresses", "list of strings"),
    ("front-proxy-is-vm", {"frontProxyAddresses": ["192.0.2.10"]}, "frontProxyAddresses", "not the VM's own"),
    ("mgmt-host-bits", {"managementSubnets": ["198.51.100.7/24"]}, "managementSubnets[0]", "no host bits"),
    ("gateway-port-code-server", {"gatewayPort": 8080}, "gatewayPort", "other than 8080"),
    ("gateway-port-privileged", {"gatewayPort": 443}, "gatewayPort", "from 1024"),
    ("dns-name-not-ip", {"dnsServers": ["dns.example.com"]}, "dnsServers[0]", "IP address"),
    ("bool-word", {"wazuhEnabled": "yes"}, "wazuhEnabled", "true or false"),
    ("downloads-word", {"codeServerDisableFileDownloads": "yes"}, "codeServerDisableFileDownloads", "true or false"),
    ("uploads-word", {"codeServerDisableFileUploads": "1"}, "codeServerDisableFileUploads", "true or false"),
    ("idle-timeout-zero", {"codeServerIdleTimeout": "0s"}, "codeServerIdleTimeout", "greater than zero"),
    ("idle-timeout-seconds", {"codeServerIdleTimeout": "3600"}, "codeServerIdleTimeout", "Go duration"),
    ("idle-timeout-week", {"codeServerIdleTimeout": "168h"}, "codeServerIdleTimeout", "more than 24h"),
    ("wazuh-manager-missing", {"wazuhManagerAddress": None}, "wazuhManagerAddress", "required when wazuhEnabled"),
    ("backup-repo-path", {"backupRepository": "/srv/backup"}, "backupRepository", "restic repository"),
    ("backup-port-missing", {"backupRepositoryPort": None}, "backupRepositoryPort", "required when backupEnabled"),
    ("backup-port-default", {"backupRepositoryPort": 0}, "backupRepositoryPort", "required when backupEnabled"),
    ("fortigate-url-empty", {"fortigateUrl": ""}, "fortigateUrl", "is required"),
    ("hostname-empty", {"hostname": ""}, "hostname", "is required"),
    ("apt-proxy-name", {"aptProxyAddress": "proxy"}, "aptProxyAddress", "IP address"),
    ("typo-key", {"vmAdress": "192.0.2.10"}, "vmAdress", "typo"),
]


@pytest.mark.parametrize(("changes", "key", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_config_is_rejected_with_its_key(dev_config: StackConfig, changes: dict[str, Any], key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, changes), today=TODAY)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"config error: {key}: ") and expected in line for line in lines), lines


def _declared() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())["config"]


def test_optional_keys_at_their_empty_pulumi_yaml_defaults_are_not_set(dev_config: StackConfig) -> None:
    """What the CLI passes for an optional key a stack leaves out is its default in Pulumi.yaml; an
    empty one ("", [], 0) must read as not set, a secret's too (the CLI applies it unencrypted)."""
    declared = _declared()
    left_out = ("entraGroupName", "entraGroupMembers", "entraAppDisplayName", "aptProxyAddress", "zabbixServerAddress",
                "zabbixPsk", "backupRepository", "backupRepositoryAddress", "backupRepositoryPort", "backupPassword",
                "backupRestPassword", "fortigateIpsSensor", "fortigateCaBundle", "vmHostKey", "proxmoxEndpoint",
                "proxmoxNode", "proxmoxTemplateVmId", "proxmoxBridge", "proxmoxVlanTag", "proxmoxApiToken",
                "proxmoxGateway", "proxmoxSshUser", "proxmoxSshPrivateKey",
                "digitaloceanRegion", "digitaloceanSize", "digitaloceanImage", "digitaloceanVpcUuid", "digitaloceanToken")
    changes = {key: declared[key]["default"] for key in left_out}
    existing = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    source = _source(dev_config, {**changes, "entraGroupObjectId": existing, "zabbixEnabled": False, "backupEnabled": False},
                     secret_keys={"vmSshPrivateKey", "fortigateApiToken"})
    with pytest.raises(ConfigError) as error:  # vmHostKey at "" is unset: still required for an existing VM
        load(source, today=TODAY)
    assert [str(p) for p in error.value.problems] == ["config error: vmHostKey: is required (a string)"]
    source = _source(dev_config, {**changes, "vmHostKey": dev_config.values["vmHostKey"], "entraGroupObjectId": existing,
                                  "zabbixEnabled": False, "backupEnabled": False},
                     secret_keys={"vmSshPrivateKey", "fortigateApiToken"})
    settings = load(source, today=TODAY)
    assert settings.vm_provider.kind == "existing" and settings.vm_provider.proxmox is None
    assert settings.entra.group == ExistingGroup(existing)
    assert settings.entra.app_display_name == "code-server (code.example.com)"
    assert settings.topology.apt_proxy is None
    assert not settings.topology.zabbix.enabled and not settings.topology.backup.enabled
    assert settings.host.zabbix_psk is None and settings.host.backup_password is None
    assert settings.fortigate is not None
    assert settings.fortigate.ips_sensor is None and settings.fortigate.ca_bundle is None


# A wrong value for each declared type, and what the error must say (oracle: Pulumi.yaml's types;
# an array's items are strings or objects).
WRONG_TYPE = {"integer": ("many", "expected an integer"), "boolean": ("yes", "expected true or false"),
              "array": ("not a list", "expected a list of {items}s")}


@pytest.mark.parametrize("key", [k for k, d in _declared().items() if d.get("type") in WRONG_TYPE])
def test_every_declared_typed_key_refuses_a_value_of_another_type(dev_config: StackConfig, key: str) -> None:
    declared = _declared()[key]
    value, expected = WRONG_TYPE[declared["type"]]
    expected = expected.format(items=declared.get("items", {}).get("type"))
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, {key: value}), today=TODAY)
    assert any(line.startswith(f"config error: {key}: {expected}") for line in str(caught.value).splitlines())


@pytest.mark.parametrize("key", [k for k, d in _declared().items() if d.get("secret")])
def test_every_declared_secret_refuses_plain_text(dev_config: StackConfig, key: str) -> None:
    source = _source(dev_config, {key: "plain-text-value-0123456789abcdef"})
    with pytest.raises(ConfigError) as caught:
        load(MappingSource(source.values, source.secret_keys - {key}), today=TODAY)
    assert f"config error: {key}: must be stored encrypted" in str(caught.value)
    assert "plain-text-value" not in str(caught.value)


def test_secret_value_is_never_echoed(dev_config: StackConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, {"vmSshPrivateKey": "hunter2-not-a-key"}), today=TODAY)
    assert "hunter2" not in str(caught.value)
    assert "value not shown" in str(caught.value)


def test_secret_stored_in_plain_text_is_refused(dev_config: StackConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, {}, secret_keys=set()), today=TODAY)
    assert "config error: vmSshPrivateKey: must be stored encrypted" in str(caught.value)
    assert "BEGIN OPENSSH" not in str(caught.value)


def test_plain_setting_stored_as_secret_is_refused(dev_config: StackConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, {}, secret_keys={"vmSshPrivateKey", "hostname"}), today=TODAY)
    assert "config error: hostname: is stored as a secret" in str(caught.value)


def test_every_problem_is_reported_at_once(dev_config: StackConfig) -> None:
    changes = {"hostname": "x", "entraTenantId": "y", "vmSshPort": 0, "dnsServers": [], "unknownKey": "z"}
    with pytest.raises(ConfigError) as caught:
        load(_source(dev_config, changes), today=TODAY)
    named = {p.key for p in caught.value.problems}
    assert {"hostname", "entraTenantId", "vmSshPort", "dnsServers", "unknownKey"} <= named
