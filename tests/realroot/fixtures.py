"""pytest fixtures for tests that need a real Debian root (13 by default) reached over real SSH.

Load them once, in tests/conftest.py: `pytest_plugins = ["tests.realroot.fixtures"]`.

- `realroot_image` (session): path of the cached image; builds it on first use (~70 s, with
  progress on the terminal). Fails the test, never skips, when root or a host tool is missing.
- `realroot_factory` (session): `make(config=None, **RootConfig fields) -> RealRoot`, a started,
  fresh root with its own namespaces; every root it made is closed at the end of the session.
- `realroot` (module): one fresh root with the default `RootConfig` for the tests of one module.
- `ssh_runner` (function): `realroot.runner()`, a new `SshRunner` whose session counter starts at 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.lab.vm import netns, prereq, rootfs
from scripts.lab.vm.machine import RealRoot, RootConfig
from scripts.lab.vm.prereq import RealRootError
from scripts.lab.vm.runner import SshRunner


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` marker, so modules using these fixtures work with --strict-markers."""
    config.addinivalue_line("markers", "slow: slow integration test (real tools, real root); runs in make test")


@pytest.fixture(scope="session")
def realroot_image(pytestconfig: pytest.Config) -> Path:
    """The cached Debian image of the default release, built now if missing; progress goes to the terminal uncaptured."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def progress(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[realroot] {line}", flush=True)

    try:
        prereq.require()
        netns.remove_stale()
        return rootfs.ensure_image(progress=progress)
    except RealRootError as error:
        problem = str(error)
    pytest.fail(problem, pytrace=False)  # outside `except`: the message alone, no chained traceback


@pytest.fixture(scope="session")
def realroot_factory(realroot_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RealRoot]]:
    """Make started, fresh roots on demand: `make(config=None, **changes)`; all are closed at session end."""
    made: list[RealRoot] = []

    def make(config: RootConfig | None = None, **changes: object) -> RealRoot:
        settings = dataclasses.replace(config or RootConfig(), **changes)  # type: ignore[arg-type]
        root = RealRoot(realroot_image, tmp_path_factory.mktemp("realroot"), settings)
        made.append(root)
        try:
            return root.start()
        except RealRootError as error:
            problem = str(error)
        pytest.fail(f"could not start the test root: {problem}", pytrace=False)

    yield make
    for root in made:
        root.close()


@pytest.fixture(scope="module")
def realroot(realroot_factory: Callable[..., RealRoot]) -> Iterator[RealRoot]:
    """A fresh root with the default configuration, shared by the tests of one module."""
    root = realroot_factory()
    yield root
    root.close()


@pytest.fixture
def ssh_runner(realroot: RealRoot) -> SshRunner:
    """A new runner to `realroot` as the admin user, from the default client address."""
    return realroot.runner()
