"""A complete, valid stack config for host tests (documentation addresses, throwaway secrets)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from components.settings import MappingSource, Settings, load
from scripts.lab.example import dev_values

# A syntactically valid key used only as a config value in tests (never to log in anywhere).
TEST_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-only\n-----END OPENSSH PRIVATE KEY-----\n"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcXOcqc7Ue0zSkgIV7WhVKp0fHHTmoVBaWjC4O1lTF3"

BASE: dict[str, Any] = {
    "hostname": "code.example.com",
    "edge": "fortigate",
    "entraTenantId": "11111111-2222-3333-4444-555555555555",
    "entraSecretEndDate": "2028-06-30",
    "entraSecretRotation": "1",
    "vmAddress": "192.0.2.10",
    "vmSshPort": "22",
    "vmAdminUser": "deploy",
    "vmHostKey": HOST_KEY,
    "vmSshPrivateKey": TEST_PRIVATE_KEY,
    "serviceUser": "codesvc",
    "ideUser": "coder",
    "adminGroup": "sshadmins",
    "frontProxyAddresses": '["192.0.2.5"]',
    "managementSubnets": '["198.51.100.0/24"]',
    "gatewayPort": "8880",
    "dnsServers": '["192.0.2.53"]',
    "ntpServers": '["192.0.2.123"]',
    "aptProxyPort": "3142",
    "wazuhEnabled": "true",
    "wazuhManagerAddress": "192.0.2.20",
    "zabbixEnabled": "true",
    "zabbixServerAddress": "192.0.2.21",
    "zabbixPsk": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "backupEnabled": "true",
    "backupRepository": "rest:https://backup.example.com:8000/code-server",
    "backupRepositoryAddress": "192.0.2.30",
    "backupRepositoryPort": "8000",
    "backupPassword": "correct horse battery staple",
    "backupRestPassword": "rest-only-Zq7Wm2Kx9Pv4 Ns/6%",
    "codeServerVersion": "4.139.1",
    "codeServerSha256": hashlib.sha256(b"example").hexdigest(),
    "caddyImage": "docker.io/library/caddy:2.11.7-alpine@sha256:" + "a" * 64,
    "oauth2ProxyImage": "quay.io/oauth2-proxy/oauth2-proxy:v7.15.3@sha256:" + "b" * 64,
    "cookieExpire": "12h",
    "cookieRefresh": "30m",
    "emailDomains": '["example.com"]',
    "cookieSecretRotation": "1",
    "backupSchedule": "daily",
}
SECRETS = frozenset({"vmSshPrivateKey", "zabbixPsk", "backupPassword", "backupRestPassword", "fortigateApiToken",
                     "proxmoxApiToken", "proxmoxSshPrivateKey", "digitaloceanToken"})


def settings(**overrides: Any) -> Settings:
    """Settings from the dev stack (project defaults under its values), then BASE, then `overrides`
    (None removes a key)."""
    values = {**dev_values(), **BASE, **overrides}
    values = {k: str(v) for k, v in values.items() if v is not None}
    return load(MappingSource(values, SECRETS & set(values)), today=dt.date(2026, 11, 23))
