"""Shared fixtures: the example stack's config, one offline run of the whole program, and the
real-root fixtures (see tests/realroot/fixtures.py)."""

from __future__ import annotations

import pytest

from scripts.tools.offline import (
    PlanResult,
    StackConfig,
    load_stack_config,
    run_program,
)

pytest_plugins = ["tests.realroot.fixtures"]


@pytest.fixture(scope="session")
def dev_config() -> StackConfig:
    """Pulumi.dev.yaml merged with the project defaults, placeholders for unset secrets."""
    return load_stack_config("dev")


@pytest.fixture(scope="session")
def dev_plan(dev_config: StackConfig) -> PlanResult:
    """The real `__main__.py` evaluated once for the dev stack under Pulumi's mock runtime."""
    return run_program(dev_config)
