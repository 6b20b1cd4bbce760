"""One demo for the whole session: the booted VM with the program applied, torn down at the end."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser

from components.settings import debian
from scripts.lab.demo import demo
from scripts.lab.demo.attacker import launched_browser

#: The team demo's stack: `demo.TEAM` with code-server's shortest idle timeout the settings accept
#: (more than 1m), so the idle stop is seen within minutes.
TEAM_UNDER_TEST = dataclasses.replace(demo.TEAM, idle_timeout="61s")


@contextmanager
def demo_session(tag: str, label: str, kept: bool = False, **up: Any) -> Iterator[demo.Demo]:
    """`demo.up(tag, **up)`, then (unless `kept`: a developer's running demo) `demo.down` and nothing of
    it may be left: a leftover fails the session (processes, namespaces, mounts, its directory)."""
    try:
        yield demo.up(tag, progress=lambda line: print(f"[{label}] {line}", flush=True), **up)
    finally:
        if not kept:
            demo.down(tag, progress=lambda _line: None)
            left = demo.leftovers(tag)
            assert not left, f"demo-down left behind: {left}"


@pytest.fixture(scope="session")
def running_demo() -> Iterator[demo.Demo]:
    """`make demo`'s own `up()`, under a tag of this test run (a person's `make demo` is left alone).

    Teardown is `make demo-down`'s `down()`, and then nothing of the demo may be left: a leftover
    fails the session (processes, namespaces, mounts, its directory). With HCS_DEMO_TAG set, the
    tests converge and use that running demo instead and leave it running (a developer's loop).
    """
    kept = os.environ.get("HCS_DEMO_TAG")
    with demo_session(kept or f"hcst{os.getpid()}", "demo", kept=bool(kept)) as running:
        yield running


@pytest.fixture(scope="session")
def other_release_demo() -> Iterator[demo.Demo]:
    """The same demo on a Debian 12 VM (the release the product still accepts), under its own tag,
    for the host checks that must hold there too; always torn down at the end of the session."""
    (other,) = set(debian.RELEASES) - {debian.DEFAULT}
    with demo_session(f"hcso{os.getpid()}", f"demo {other}", release=other) as running:
        yield running


@pytest.fixture(scope="session", params=sorted(debian.RELEASES, reverse=True), ids=lambda v: f"debian{v}")
def booted_demo(request: pytest.FixtureRequest) -> demo.Demo:
    """The demo on each supported release: the default one (`running_demo`), then the other."""
    return request.getfixturevalue("running_demo" if request.param == debian.DEFAULT else "other_release_demo")


@pytest.fixture(scope="module")
def browser(running_demo: demo.Demo) -> Iterator[Browser]:
    """Chromium in the peer namespace (a person on the network), trusting exactly the demo's CAs."""
    with launched_browser(running_demo) as launched:
        yield launched


@pytest.fixture(scope="module")
def team_demo() -> Iterator[demo.Demo]:
    """The demo as a team (`demo.TEAM`: alice granted team-a, bob team-b) with a short idle timeout,
    under its own tag; torn down when its module ends, which runs first (tests/conftest.py), so its VM
    is gone before `running_demo` boots; nothing may be left. With
    HCS_TEAM_DEMO_TAG set, that running team demo is converged and used, and left running."""
    kept = os.environ.get("HCS_TEAM_DEMO_TAG")
    with demo_session(kept or f"hcsw{os.getpid()}", "team demo", kept=bool(kept), team=TEAM_UNDER_TEST) as running:
        yield running


@pytest.fixture(scope="module")
def team_browser(team_demo: demo.Demo) -> Iterator[Browser]:
    """Chromium in the peer namespace, resolving every workspace host to the central Caddy."""
    with launched_browser(team_demo) as launched:
        yield launched
