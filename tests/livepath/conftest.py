"""Fixtures of the live-path tests: the cached code-server build and one running chain per session.

Both fail the test loudly (never skip) when a prerequisite is missing: the code-server build
(npm, Node 24, build tools), root for the test root, Chromium, Caddy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from scripts.lab.livepath.chain import (
    ChainError,
    LiveChain,
    example_settings,
    plan_from,
    root_config,
)
from scripts.lab.vm.machine import RealRoot
from scripts.lab.vm.prereq import RealRootError
from scripts.tools.code_server_cache import CacheError, CodeServerInstall, ensure


@pytest.fixture(scope="session")
def code_server_install(pytestconfig: pytest.Config) -> CodeServerInstall:
    """The pinned code-server, from the machine's cache (built now, ~2 min, if missing)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled():
            return ensure()
    except CacheError as error:
        pytest.fail(f"code-server for the live path: {error}", pytrace=False)


@pytest.fixture(scope="session")
def live_chain(
    realroot_factory: Callable[..., RealRoot], code_server_install: CodeServerInstall, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveChain]:
    """The whole chain on a fresh test root, with the example stack's settings (one per session:
    it takes ~1 min to start, and the sign-in tests and the plumbing tests share it)."""
    settings = example_settings()
    plan = plan_from(settings)
    root = realroot_factory(root_config(plan))
    try:
        chain = LiveChain(root, plan, settings, code_server_install, tmp_path_factory.mktemp("livepath")).start()
    except (ChainError, RealRootError) as error:
        root.close()
        pytest.fail(f"live path did not come up: {error}", pytrace=False)
    yield chain
    root.close()
