"""Host settings: every bad value is reported by key, secrets only when their agent is on."""

from __future__ import annotations

import pytest
import yaml

from components.settings import ConfigError, MappingSource, load
from scripts import REPOSITORY
from scripts.lab.converge import sample
from scripts.lab.example import TEST_SECRETS, dev_source


def problems(**overrides: str | None) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        sample.settings(**overrides)
    return {p.key: p.message for p in err.value.problems}


def test_defaults_and_url_template() -> None:
    s = sample.settings()
    assert s.host.ufw_deny_outgoing is True
    assert s.host.workspace_volume == "/mnt/cs-workspace-volume"
    default_url = yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())["config"]["codeServerPackageUrl"]["default"]
    assert s.host.code_server.url == default_url.replace("{version}", "4.139.1")
    assert s.host.code_server.url.endswith("/v4.139.1/code-server_4.139.1_amd64.deb")


def test_all_problems_at_once() -> None:
    found = problems(codeServerSha256="abc", codeServerPackageUrl="ftp://x/{ver}", zabbixPsk="short",
                     backupSchedule="daily; rm -rf /", workspaceVolumePath="/home/coder/data")
    assert set(found) >= {"codeServerSha256", "codeServerPackageUrl", "zabbixPsk", "backupSchedule", "workspaceVolumePath"}
    assert "short" not in found["zabbixPsk"]


def test_agent_secrets_required_only_when_enabled() -> None:
    assert "zabbixPsk" in problems(zabbixPsk=None)
    assert "backupPassword" in problems(backupPassword=None)
    s = sample.settings(zabbixEnabled="false", zabbixPsk=None, backupEnabled="false", backupPassword=None, backupRestPassword=None)
    assert s.host.zabbix_psk is None and s.host.backup_password is None
    assert "zabbixPsk" in problems(zabbixEnabled="false")


def test_secrets_must_be_stored_encrypted() -> None:
    source = dev_source()
    with pytest.raises(ConfigError) as err:
        load(MappingSource(source.values, source.secret_keys - {"backupPassword"}))
    assert [p.key for p in err.value.problems] == ["backupPassword"]
    assert TEST_SECRETS["backupPassword"] not in str(err.value)


def test_the_debian_release_is_13_by_default_and_12_or_13_only() -> None:
    assert sample.settings().host.debian.codename == "trixie"
    assert sample.settings(vmDebianRelease="12").host.debian.codename == "bookworm"
    for bad in ("11", "14", "0"):
        assert problems(vmDebianRelease=bad) == {
            "vmDebianRelease": f"expected a supported Debian release: 12 (bookworm), 13 (trixie); got {bad}"}
    assert "vmDebianRelease" in problems(vmDebianRelease="trixie")


def test_every_host_step_checks_the_release_before_anything_else() -> None:
    """Each step's command sets the release it was rendered for (lib.sh's check runs first, a
    real refusal is tests/host/test_realroot_host.py)."""
    from components.host.steps import host_steps

    s = sample.settings(vmDebianRelease="12")
    steps = host_steps(s.topology, s.host)
    assert steps and all(step.env["HCS_DEBIAN_RELEASE"] == "12" and step.env["HCS_DEBIAN_RELEASES"] == "12 13" for step in steps)
