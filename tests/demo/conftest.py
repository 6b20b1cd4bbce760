"""One demo for the whole session: the booted VM with the program applied, torn down at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from components.gateway import render_oauth2_proxy
from tests.demo import demo, network
from tests.livepath.chain import CHROMIUM, CHROMIUM_ARGS, spki_sha256


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


@pytest.fixture(scope="module")
def browser(running_demo: demo.Demo) -> Iterator[Browser]:
    """Chromium in the peer namespace (a person on the network), trusting exactly the demo's CAs."""
    work, vm = running_demo.workdir, running_demo.vm
    wrapper = work / "chromium-in-peer-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {vm.peer_namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    front = demo.front_ca(work)
    idp_ca = work / "idp/tls/idp-ca.crt"
    pins = ",".join(spki_sha256(c) for c in (front, front.with_name("intermediate.crt"), idp_ca))
    hostname = running_demo.config.values["hostname"]
    args = [*CHROMIUM_ARGS,
            f"--host-resolver-rules=MAP {hostname} {network.FRONT_PROXY}, MAP {render_oauth2_proxy.ENTRA_HOST} {network.IDENTITY}",
            f"--ignore-certificate-errors-spki-list={pins}"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(wrapper), args=args)
        yield launched
        launched.close()
