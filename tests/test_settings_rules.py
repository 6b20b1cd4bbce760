"""Every rule of components/settings/rules.py, tried with a value just inside and just outside it.

The dev stack is valid; each case changes one or two keys. "Inside" must load, "outside" must be
refused with a `config error: <key>: refused: …` line of that rule. The list of Debian's system
accounts is checked against the real files of the Debian 12 machine running the tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import ConfigError, rules
from scripts import REPOSITORY
from scripts.lab.example import dev_settings

ACK_MGMT = {rules.ACK_PUBLIC_MANAGEMENT: True}
ACK_EGRESS = {rules.ACK_WIDE_EGRESS: True}

# (rule, key named in the error, inside: accepted overrides, outside: refused overrides)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("special-address", "dnsServers[0]", {"dnsServers": ["126.255.255.254"]}, {"dnsServers": ["127.0.0.53"]}),
    ("special-address", "ntpServers[0]", {"ntpServers": ["223.255.255.254"]}, {"ntpServers": ["224.0.1.1"]}),
    ("special-address", "vmAddress", {"vmAddress": "192.0.2.10"}, {"vmAddress": "0.0.0.0"}),
    ("special-address", "aptProxyAddress", {"aptProxyAddress": "192.0.2.255"}, {"aptProxyAddress": "255.255.255.255"}),
    ("special-address", "wazuhManagerAddress", {"wazuhManagerAddress": "169.253.255.254"}, {"wazuhManagerAddress": "169.254.169.254"}),
    ("special-address", "entraEgress[0]", {"entraEgress": ["169.255.0.0/16"]}, {"entraEgress": ["169.254.0.0/16"]}),
    ("special-address", "managementSubnets[0]", {"managementSubnets": ["10.0.0.0/8"]}, {"managementSubnets": ["127.0.0.0/8"]}),
    ("special-address", "fortigatePublicIp", {"fortigatePublicIp": "223.255.255.254"}, {"fortigatePublicIp": "224.0.0.1"}),
    ("peer-is-vm", "frontProxyAddresses", {"frontProxyAddresses": ["192.0.2.11"]}, {"frontProxyAddresses": ["192.0.2.10"]}),
    ("peer-is-vm", "dnsServers", {"dnsServers": ["192.0.2.11"]}, {"dnsServers": ["192.0.2.53", "192.0.2.10"]}),
    ("peer-is-vm", "backupRepositoryAddress", {"backupRepositoryAddress": "192.0.2.11"}, {"backupRepositoryAddress": "192.0.2.10"}),
    ("front-proxy-public", "frontProxyAddresses[0]", {"frontProxyAddresses": ["100.127.255.254"]}, {"frontProxyAddresses": ["100.128.0.1"]}),
    ("vm-public", "vmAddress", {"vmAddress": "172.31.255.254"}, {"vmAddress": "172.32.0.1"}),
    ("management-public", "managementSubnets[0]", {"managementSubnets": ["192.168.0.0/16"]}, {"managementSubnets": ["192.169.0.0/24"]}),
    ("management-public", "managementSubnets[0]", {"managementSubnets": ["fd00::/8"]}, {"managementSubnets": ["fe00::/64"]}),
    ("management-wide", "managementSubnets[0]", {"managementSubnets": ["198.18.0.0/24"], **ACK_MGMT},
     {"managementSubnets": ["198.18.0.0/23"], **ACK_MGMT}),
    ("management-wide", "managementSubnets[0]", {"managementSubnets": ["2a01:4f8:1:2::/64"], **ACK_MGMT},
     {"managementSubnets": ["0.0.0.0/0"], **ACK_MGMT}),
    ("egress-domain-ip", "ideEgressDomains[0]", {"ideEgressDomains": ["192.0.2.70.example.com"]}, {"ideEgressDomains": ["192.0.2.70"]}),
    ("egress-domain-ip", "ideEgressDomains[0]", {"ideEgressDomains": ["fd00.example.com"]}, {"ideEgressDomains": ["[fd00::1]"]}),
    ("egress-domain-tld", "ideEgressDomains[0]", {"ideEgressDomains": ["*.example.com"]}, {"ideEgressDomains": ["*.com"]}),
    ("egress-domain-tld", "ideEgressDomains[0]", {"ideEgressDomains": ["example.com"]}, {"ideEgressDomains": ["com"]}),
    ("egress-wide", "registryEgress[0]", {"registryEgress": ["104.16.0.0/16"]}, {"registryEgress": ["104.16.0.0/15"]}),
    ("egress-unbounded", "registryEgress[0]", {"registryEgress": ["104.0.0.0/8"], **ACK_EGRESS},
     {"registryEgress": ["104.0.0.0/7"], **ACK_EGRESS}),
    ("egress-unbounded", "entraEgress[0]", {"entraEgress": ["20.0.0.0/8"], **ACK_EGRESS}, {"entraEgress": ["0.0.0.0/0"], **ACK_EGRESS}),
    ("ack-unused", rules.ACK_PUBLIC_MANAGEMENT, {"managementSubnets": ["192.169.0.0/24"], **ACK_MGMT}, ACK_MGMT),
    ("ack-unused", rules.ACK_WIDE_EGRESS, {"registryEgress": ["104.16.0.0/15"], **ACK_EGRESS}, ACK_EGRESS),
    ("workspace-system-path", "workspaceVolumePath", {"workspaceVolumePath": "/etcetera"}, {"workspaceVolumePath": "/etc"}),
    ("workspace-system-path", "workspaceVolumePath", {"workspaceVolumePath": "/opt/data"}, {"workspaceVolumePath": "/opt"}),
    ("workspace-system-path", "workspaceVolumePath", {"workspaceVolumePath": "/srv/var"}, {"workspaceVolumePath": "/var/lib/docker"}),
    ("workspace-system-path", "workspaceVolumePath", {"workspaceVolumePath": "/mnt/tmp"}, {"workspaceVolumePath": "/tmp"}),
    ("workspace-system-path", "workspaceVolumePath", {"workspaceVolumePath": "/opt/code-server-data"},
     {"workspaceVolumePath": "/opt/code-server/docker"}),
    ("system-account", "ideUser", {"ideUser": "nobody1"}, {"ideUser": "nobody"}),
    ("system-account", "serviceUser", {"serviceUser": "www-data1"}, {"serviceUser": "www-data"}),
    ("system-account", "vmAdminUser", {"vmAdminUser": "sshd-admin"}, {"vmAdminUser": "sshd"}),
    ("system-group", "adminGroup", {"adminGroup": "dockers"}, {"adminGroup": "docker"}),
    ("system-group", "adminGroup", {"adminGroup": "sudoers"}, {"adminGroup": "sudo"}),
    ("account-collision", "adminGroup", {"adminGroup": "deploy"}, {"adminGroup": "coder"}),
    ("account-collision", "ideUser", {"ideUser": "coder2"}, {"ideUser": "deploy"}),
    ("port-collision", "vmSshPort", {"vmSshPort": 8881}, {"vmSshPort": 8880}),
    ("port-collision", "vmSshPort", {"vmSshPort": 8081}, {"vmSshPort": 8080}),
    ("port-collision", "gatewayPort", {"gatewayPort": 4181}, {"gatewayPort": 4180}),
    ("go-duration", "cookieExpire", {"cookieExpire": "1.5h"}, {"cookieExpire": "1d"}),
    ("go-duration", "cookieExpire", {"cookieExpire": "12h0m1s"}, {"cookieExpire": "12h0m0.5s"}),
    ("go-duration", "cookieRefresh", {"cookieRefresh": "30m"}, {"cookieRefresh": "30 m"}),
    ("cookie-expire-long", "cookieExpire", {"cookieExpire": "24h"}, {"cookieExpire": "24h0m1s"}),
    ("cookie-refresh-short", "cookieRefresh", {"cookieRefresh": "1m"}, {"cookieRefresh": "59s"}),
    ("go-duration", "codeServerIdleTimeout", {"codeServerIdleTimeout": "90m"}, {"codeServerIdleTimeout": "0"}),
    ("go-duration", "codeServerIdleTimeout", {"codeServerIdleTimeout": "2h"}, {"codeServerIdleTimeout": "-1h"}),
    ("go-duration", "codeServerIdleTimeout", {"codeServerIdleTimeout": "3600s"}, {"codeServerIdleTimeout": "3600"}),
    ("idle-timeout-short", "codeServerIdleTimeout", {"codeServerIdleTimeout": "61s"}, {"codeServerIdleTimeout": "1m"}),
    ("idle-timeout-long", "codeServerIdleTimeout", {"codeServerIdleTimeout": "24h"}, {"codeServerIdleTimeout": "24h0m1s"}),
    ("session-whole-minutes", "cloudflareAccessSessionDuration", {"cloudflareAccessSessionDuration": "8h1m"},
     {"cloudflareAccessSessionDuration": "8h0m30s"}),
    ("secret-end-date-far", "entraSecretEndDate", {"entraSecretEndDate": "2028-11-23"}, {"entraSecretEndDate": "2028-11-24"}),
    ("backup-address-mismatch", "backupRepositoryAddress", {"backupRepository": "rest:https://192.0.2.30:8000/code"},
     {"backupRepository": "rest:https://192.0.2.31:8000/code"}),
    ("backup-address-mismatch", "backupRepositoryAddress", {"backupRepository": "rest:http://192.0.2.30/srv/restic"},
     {"backupRepository": "rest:http://192.0.2.31/srv/restic"}),
    ("calendar-systemd", "backupSchedule", {"backupSchedule": "Mon,Tue 02:30"}, {"backupSchedule": "Mon, Tue 02:30"}),
    ("calendar-systemd", "backupSchedule", {"backupSchedule": "*-*-* 02:30:00"}, {"backupSchedule": "*-*-* 02:30:00 UTC"}),
    ("calendar-never", "backupSchedule", {"backupSchedule": "Sun *-*-1..7 03:00"}, {"backupSchedule": "Sun *-*-1..6 03:00"}),
    ("calendar-never", "backupSchedule", {"backupSchedule": "monthly"}, {"backupSchedule": "quarterly"}),
    ("calendar-never", "backupSchedule", {"backupSchedule": "*-*-28"}, {"backupSchedule": "*-*-29"}),
    ("calendar-never", "backupSchedule", {"backupSchedule": "2026..2030-*-* 02:00"}, {"backupSchedule": "2026..2029-*-* 02:00"}),
]


def _problems(overrides: dict[str, Any]) -> list[str]:
    try:
        dev_settings(**overrides)
    except ConfigError as err:
        return [str(p) for p in err.problems]
    return []


@pytest.mark.parametrize(("rule", "key", "inside", "outside"), CASES, ids=[f"{c[0]}:{c[1]}:{i}" for i, c in enumerate(CASES)])
def test_rule_refuses_just_outside_and_accepts_just_inside(rule: str, key: str, inside: dict[str, Any], outside: dict[str, Any]) -> None:
    assert _problems(inside) == []
    refusal = "refused: " + rules.BY_NAME[rule].refuses
    found = _problems(outside)
    assert any(line.startswith(f"config error: {key}: ") and refusal in line for line in found), found


def test_every_rule_is_tried_and_names_declared_keys() -> None:
    declared = set(yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())["config"])
    assert {rule.name for rule in rules.RULES} == {case[0] for case in CASES}
    for rule in rules.RULES:
        assert set(rule.keys) <= declared, rule.name
        assert rule.acknowledge is None or rule.acknowledge in declared
        assert "\n" not in rule.reason


def test_acknowledged_wide_values_load() -> None:
    settings = dev_settings(managementSubnets=["198.51.100.0/24", "192.169.0.7/32"], registryEgress=["104.16.0.0/13"],
                            **ACK_MGMT, **ACK_EGRESS)
    assert [str(n) for n in settings.topology.management_subnets] == ["198.51.100.0/24", "192.169.0.7/32"]


def test_a_public_vm_is_fine_behind_the_cloudflare_edge() -> None:
    # cloudflared dials out; no VIP or DMZ routing to bypass
    assert dev_settings(edge="cloudflare", vmAddress="172.32.0.1").topology.vm.address.exploded == "172.32.0.1"


def _names_in(path: Path) -> set[str]:
    return {line.split(":")[0] for line in path.read_text().splitlines() if line and not line.startswith("#")}


def _sysusers_names() -> set[str]:
    names = set()
    for conf in Path("/usr/lib/sysusers.d").glob("*.conf"):
        for line in conf.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] in ("u", "g"):
                names.add(fields[1])
    return names


def test_every_debian_system_account_on_this_machine_is_refused() -> None:
    """The oracle is the machine's own base-passwd and sysusers.d files (Debian 12), not our list."""
    base = Path("/usr/share/base-passwd")
    names = _names_in(base / "passwd.master") | _names_in(base / "group.master") | _sysusers_names()
    assert {"nobody", "www-data", "sudo", "systemd-network"} <= names  # the files really were read
    valid = {n for n in names if re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", n) and n != "root"}
    accepted = [n for n in sorted(valid) if not any(p.startswith("config error: ideUser:") for p in _problems({"ideUser": n}))]
    assert accepted == []
    groups = [n for n in sorted(valid) if not any(p.startswith("config error: adminGroup:") for p in _problems({"adminGroup": n}))]
    assert groups == []
