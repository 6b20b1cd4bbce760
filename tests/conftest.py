"""Shared fixtures: the example stack's config, one offline run of the whole program, and the
real-root fixtures (see tests/realroot/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.tools.offline import (
    PlanResult,
    StackConfig,
    load_stack_config,
    run_program,
)

pytest_plugins = ["tests.realroot.fixtures"]

#: The team demo's module: its VM is torn down when the module ends (`team_demo` is module-scoped).
TEAM_DEMO_MODULE = Path(__file__).parent / "demo" / "test_team.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The team demo's tests run first: its Debian 13 VM is down before the single-user demo's boots
    (the session-long `running_demo`), since two VMs of one release on this machine share cgroup
    paths and `demo.up` refuses the second (`demo._running_with`)."""
    team = [item for item in items if item.path == TEAM_DEMO_MODULE]
    items[:] = team + [item for item in items if item not in team]


@pytest.fixture(scope="session")
def dev_config() -> StackConfig:
    """Pulumi.dev.yaml merged with the project defaults, placeholders for unset secrets."""
    return load_stack_config("dev")


@pytest.fixture(scope="session")
def dev_plan(dev_config: StackConfig) -> PlanResult:
    """The real `__main__.py` evaluated once for the dev stack under Pulumi's mock runtime."""
    return run_program(dev_config)
