"""What several test modules share: a fixed date, test-only secrets, and the example stack's
config as the engine would pass it (Pulumi.yaml defaults, then Pulumi.dev.yaml, then overrides)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from components.settings import MappingSource, Settings, load
from scripts.offline import load_stack_config

#: Fixed "today" for settings tests, so date checks don't depend on when the suite runs.
TODAY = dt.date(2026, 11, 23)
#: A private key of the right shape; never a real key.
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
#: Test-only values for every secret setting; each is unique, so a leak can be searched for.
TEST_SECRETS: dict[str, str] = {
    "vmSshPrivateKey": KEY,
    "fortigateApiToken": "tok-plan-Wm3Qz8Lr5Xv2Nc7Ks4Pd9Hf6",
    "zabbixPsk": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "backupPassword": "correct horse battery staple",
    "backupRestPassword": "rest-only-Zq7Wm2Kx9Pv4Ns6Td",
}


def dev_values(**overrides: Any) -> dict[str, str]:
    """The dev stack's raw config with test secrets; an override of None removes the key."""
    return load_stack_config("dev").with_values(**{**TEST_SECRETS, **overrides}).values


def dev_source(**overrides: Any) -> MappingSource:
    """`dev_values` as a settings source, secret keys marked as the stack would store them."""
    values = dev_values(**overrides)
    return MappingSource(values, frozenset(load_stack_config("dev").secret_keys & set(values)))


def dev_settings(**overrides: Any) -> Settings:
    """Validated settings of the dev stack (with `overrides`)."""
    return load(dev_source(**overrides), today=TODAY)
