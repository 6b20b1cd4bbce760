"""Fixtures for the FortiGate tests: a TLS certificate, the FortiOS emulator, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope, make_certificate
from scripts.lab.fortios.host import PROJECT, TOKEN_KEY, ProviderHost

#: Test tokens (not secrets of anything real); TOKEN is long and unique so a leak is findable.
TOKEN = "tok-Zq7hV2mN9xR4cW8pL3sK6dF1gJ5bT0yE"
READ_ONLY_TOKEN = "tok-readonly-Aa11Bb22Cc33Dd44Ee55Ff"
OTHER_VDOM_TOKEN = "tok-othervdom-Gg66Hh77Ii88Jj99Kk00"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def emulator(certificate: tuple[Path, Path]) -> Iterator[FortiOSEmulator]:
    cert, key = certificate
    device = FortiOSEmulator(cert, key, {
        TOKEN: TokenScope(vdoms=frozenset({"root", "dmz-lab"})),
        READ_ONLY_TOKEN: TokenScope(default="read"),
        OTHER_VDOM_TOKEN: TokenScope(vdoms=frozenset({"dmz-lab"})),
    }).start()
    yield device
    device.stop()


@pytest.fixture
def host() -> Iterator[ProviderHost]:
    """A dynamic-provider host configured, as the engine does, with the stack's secret token."""
    with ProviderHost() as running:
        running.configure({TOKEN_KEY: TOKEN, f"{PROJECT}:hostname": "code.example.com"}, secret_keys=(TOKEN_KEY,))
        yield running


def cmdb_props(device: FortiOSEmulator, ca_bundle: Path, path: str, name: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Resource inputs as the typed resources build them."""
    return {"url": device.url, "vdom": "root", "ca_bundle": str(ca_bundle), "insecure": False,
            "path": path, "name": name, "payload": payload, "adopt": False, **extra}
