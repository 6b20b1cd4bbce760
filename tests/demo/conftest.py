"""One demo for the whole session: the booted VM with the program applied, torn down at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.demo import demo


@pytest.fixture(scope="session")
def running_demo() -> Iterator[demo.Demo]:
    """`make demo`'s own `up()`, under a tag of this test run (a person's `make demo` is left alone).

    Teardown is `make demo-down`'s `down()`, and then nothing of the demo may be left: a leftover
    fails the session (processes, namespaces, mounts, its directory). With HCS_DEMO_TAG set, the
    tests converge and use that running demo instead and leave it running (a developer's loop).
    """
    kept = os.environ.get("HCS_DEMO_TAG")
    tag = kept or f"hcst{os.getpid()}"
    try:
        yield demo.up(tag, progress=lambda line: print(f"[demo] {line}", flush=True))
    finally:
        if not kept:
            demo.down(tag, progress=lambda _line: None)
            left = demo.leftovers(tag)
            assert not left, f"demo-down left behind: {left}"
