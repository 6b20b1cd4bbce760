"""A person at the demo: Chromium opens the public URL, signs in on the Entra stand-in's form, and works in the IDE.

Everything on the path is the booted VM's: the central Caddy → UFW → the gateway container → the
oauth2-proxy container (real v7.15.6) over its Unix socket → code-server started by its systemd
unit from the installed package. No cookie is injected; the password is typed.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser

from scripts.lab.demo import demo
from scripts.lab.livepath.browser import fill_login_form, new_session, type_in_terminal

pytestmark = pytest.mark.slow
IDE_USER = "coder"


def test_signed_in_user_works_in_the_ide_the_unit_started(running_demo: demo.Demo, browser: Browser) -> None:
    vm, url = running_demo.vm, f"https://{running_demo.config.values['hostname']}/"
    session = new_session(browser)
    page = session.page
    started = time.perf_counter()
    page.goto(url)
    alice = demo.user(running_demo, "alice")
    fill_login_form(session, type("User", (), alice)())  # the form needs .username and .password
    page.wait_for_selector(".monaco-workbench", timeout=90_000)
    signed_in = time.perf_counter() - started
    type_in_terminal(page, "id -un > ~/workspace/demo-whoami.txt")
    marker = vm.path / f"home/{IDE_USER}/workspace/demo-whoami.txt"
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline, "the terminal command did not run"
        time.sleep(0.2)
    assert marker.read_text().strip() == IDE_USER
    # The terminal's shell lives in the unit's cgroup: it is the sandboxed unit's child, not a test's process.
    shells = vm.chroot_run(["pgrep", "-u", IDE_USER, "-x", "bash"]).stdout.split()
    assert shells, "no shell of the IDE user"
    for pid in shells:
        assert f"code-server@{IDE_USER}.service" in vm.chroot_run(["cat", f"/proc/{pid}/cgroup"]).stdout
    time.sleep(1)
    shot = demo.BUILD / "ide.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    print(f"\nsigned in to the workbench in {signed_in:.1f} s; screenshot {shot}")
    session.context.close()


def test_user_outside_the_group_is_refused_by_the_real_oauth2_proxy(running_demo: demo.Demo, browser: Browser) -> None:
    session = new_session(browser)
    session.page.goto(f"https://{running_demo.config.values['hostname']}/")
    bob = demo.user(running_demo, "bob")
    # Wait for the callback's response itself: a wait for its URL (or a load state) can return
    # before the response event has been recorded (seen under load: the check then found none).
    with session.page.expect_response(lambda r: "/oauth2/callback" in r.url, timeout=30_000) as callback:
        fill_login_form(session, type("User", (), bob)())
    session.page.wait_for_load_state()
    assert callback.value.status == 403, [(r.url, r.status) for r in session.journal.responses][-5:]
    assert not any("workbench" in r.url for r in session.journal.responses)
    session.context.close()
