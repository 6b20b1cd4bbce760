"""Issue 34's acceptance on the booted demo: a team of two workspaces, two people, a real browser.

`demo.up(..., team=...)` converges the demo stack as `demo.TEAM` (workspace team-a granted to the
stand-in user alice, team-b to bob, by fixed object IDs; carol granted nothing) with a 61 s idle
timeout: each workspace its own account, code-server behind its socket, proxy port and host; the
central Caddy serves the plan's site block for both hosts; the Entra stand-in knows the app's roles
and their assignments from the plan. Everything on the path is the booted VM's: central Caddy →
the gateway container → the real oauth2-proxy (roles claim) → the gateway's router → the
workspace's socket → systemd-socket-proxyd → code-server@ws-<name> started on demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Response

from scripts.lab.demo import demo
from scripts.lab.livepath.browser import Session, fill_login_form, new_session

pytestmark = pytest.mark.slow

A, B = "ws-team-a", "ws-team-b"


@dataclass(frozen=True)
class Person:
    username: str
    password: str


def person(running: demo.Demo, short: str) -> Person:
    u = demo.user(running, short)
    return Person(u["username"], u["password"])


def host(running: demo.Demo, workspace: str) -> str:
    return running.plan.outputs["workspaces"][workspace].removeprefix("https://")


def started_at(running: demo.Demo, unit: str) -> str:
    """When `unit` last became active (systemd's monotonic clock; "0" if never): a start changes it."""
    return running.vm.systemctl("show", "-p", "ActiveEnterTimestampMonotonic", "--value", unit)


def open_host(session: Session, url: str, who: Person) -> Response | None:
    """Open `url` and return the response the browser finally landed on; sign in on the stand-in's
    form if it asks (with a live stand-in session it sends the code back at once)."""
    page = session.page
    response = page.goto(url + "/")
    if page.url.startswith(url):
        return response
    with page.expect_navigation(url=lambda u: u.startswith(url + "/"), timeout=60_000) as landed:
        fill_login_form(session, who)  # type: ignore[arg-type]  # .username and .password
    return landed.value


def reach_workbench(running: demo.Demo, browser: Browser, workspace: str, who: Person) -> Session:
    session = new_session(browser)
    session.page.goto(f"https://{host(running, workspace)}/")
    fill_login_form(session, who)  # type: ignore[arg-type]
    session.page.wait_for_selector(".monaco-workbench", timeout=90_000)
    return session


def test_the_team_is_converged_and_served(team_demo: demo.Demo) -> None:
    vm = team_demo.vm
    assert team_demo.plan.outputs["workspaces"] == {"team-a": "https://team-a.example.com", "team-b": "https://team-b.example.com"}
    for account in (A, B):
        uid = int(vm.chroot_run(["id", "-u", account]).stdout)
        assert 20000 <= uid <= 29999
        assert vm.systemctl("is-active", f"hcs-ws-proxy@{account}.socket") == "active"
    assert vm.chroot_run(["getent", "passwd", "coder"], check=False).returncode == 2
    # The central Caddy serves the plan's site block, naming both hosts; the single-user hostname is not served.
    site = (team_demo.workdir / "front-caddy" / f"{team_demo.config.values['hostname']}.caddy").read_text()
    assert site == team_demo.plan.outputs["frontProxySite"] and "team-a.example.com, team-b.example.com {" in site
    # The stand-in's app is the plan's: one role per workspace, each assigned to its person only.
    users = json.loads((team_demo.workdir / "idp" / "users.json").read_text())
    (client,) = users["clients"]
    roles = {r["id"]: r["value"] for r in client["app_roles"]}
    oids = dict(demo.TEAM.oids)
    assert sorted((roles[a["app_role_id"]], a["principal_id"]) for a in client["role_assignments"]) == [
        ("ws.team-a", oids["alice"]), ("ws.team-b", oids["bob"])]
    assert sorted(client["redirect_uris"]) == ["https://team-a.example.com/oauth2/callback", "https://team-b.example.com/oauth2/callback"]


def test_each_person_reaches_their_own_ide_and_not_the_others(team_demo: demo.Demo, team_browser: Browser) -> None:
    vm = team_demo.vm
    b_started = started_at(team_demo, f"code-server@{B}.service")
    alice = reach_workbench(team_demo, team_browser, "team-a", person(team_demo, "alice"))
    try:
        assert vm.systemctl("is-active", f"code-server@{A}.service") == "active"
        # alice asks for team-b: her sign-in there succeeds at Entra (one app), the router refuses the host.
        url = f"https://{host(team_demo, 'team-b')}"
        mark = len(alice.journal.responses)
        refused = open_host(alice, url, person(team_demo, "alice"))
        assert refused is not None and refused.status == 403, [(r.url, r.status) for r in alice.journal.after(mark)]
        assert refused.text().strip() == "Forbidden"  # the router's answer, not oauth2-proxy's page
        callbacks = [r for r in alice.journal.after(mark) if "/oauth2/callback" in r.url]
        assert callbacks and callbacks[-1].status == 302, "oauth2-proxy admitted alice (she holds a role of this VM)"
        # Nothing of a code-server came back from team-b's host (team-a's page may still be loading its own).
        assert not any(r.url.startswith(url) and ("workbench" in r.url or "/static/" in r.url) for r in alice.journal.after(mark))
        assert started_at(team_demo, f"code-server@{B}.service") == b_started, "b's code-server was started for alice"
    finally:
        alice.context.close()
    bob = reach_workbench(team_demo, team_browser, "team-b", person(team_demo, "bob"))
    try:
        assert vm.systemctl("is-active", f"code-server@{B}.service") == "active"
        shot = demo.BUILD / "team-b.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        bob.page.screenshot(path=str(shot))
    finally:
        bob.context.close()


def test_a_person_granted_no_workspace_is_refused_by_oauth2_proxy(team_demo: demo.Demo, team_browser: Browser) -> None:
    session = new_session(team_browser)
    try:
        session.page.goto(f"https://{host(team_demo, 'team-a')}/")
        with session.page.expect_response(lambda r: "/oauth2/callback" in r.url, timeout=30_000) as callback:
            fill_login_form(session, person(team_demo, "carol"))  # type: ignore[arg-type]
        assert callback.value.status == 403
    finally:
        session.context.close()
