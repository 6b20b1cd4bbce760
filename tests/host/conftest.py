"""Host tests: register the `slow` marker (real-root tests still run in `make test`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: integration test on a real Debian root (still part of make test)")
