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
import time
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Response

from scripts.lab.demo import demo
from scripts.lab.livepath.browser import Session, fill_login_form, new_session, type_in_terminal

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


#: Run in A's IDE terminal (a shell of code-server@ws-team-a, in its sandbox): each attempt on B's
#: things, and A's own as the control, one line each: name, exit status, first line of the output.
PROBE = r"""
try() { name=$1; shift; out=$("$@" 2>&1); printf '%s\t%s\t%s\n' "$name" "$?" "$(printf '%s' "$out" | head -n 1)"; }
connect_tcp() { timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1"; }
connect_unix() { python3 -c '
import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
except OSError as error:
    sys.exit(f"{type(error).__name__}: {error}")' "$1"; }
try b-home ls /home/ws-team-b
try b-notes cat /home/ws-team-b/workspace/notes
try b-volume ls /mnt/cs-workspace-volume/ws-team-b
try b-runtime-dir ls /run/hcs-ws/ws-team-b
try b-code-server-socket connect_unix /run/hcs-ws/ws-team-b/code-server.sock
try gateway-socket-dir ls /run/hcs-ws-gw
try b-gateway-socket connect_unix /run/hcs-ws-gw/ws-team-b.sock
try b-proxy-port connect_tcp 3129
try b-processes pgrep -u ws-team-b
try b-process-signal kill -0 "$B_PID"
try b-process-proc cat /proc/"$B_PID"/cmdline
try own-notes cat /home/ws-team-a/workspace/notes
try own-proxy-port connect_tcp 3128
try own-processes pgrep -u ws-team-a -x bash
"""
#: What each attempt must answer: (exit status, text its first line of output holds). hidepid hides
#: /proc, not the pid: a signal to B's process is refused (EPERM), its /proc entry does not exist.
REFUSED = {
    "b-home": (2, "ls: cannot open directory '/home/ws-team-b': Permission denied"),
    "b-notes": (1, "cat: /home/ws-team-b/workspace/notes: Permission denied"),
    "b-volume": (2, "ls: cannot open directory '/mnt/cs-workspace-volume/ws-team-b': Permission denied"),
    "b-runtime-dir": (2, "ls: cannot open directory '/run/hcs-ws/ws-team-b': Permission denied"),
    "b-code-server-socket": (1, "PermissionError: [Errno 13] Permission denied"),
    "gateway-socket-dir": (2, "ls: cannot open directory '/run/hcs-ws-gw': Permission denied"),
    "b-gateway-socket": (1, "PermissionError: [Errno 13] Permission denied"),
    "b-proxy-port": (1, "bash: connect: No route to host"),
    "b-processes": (1, ""),
    "b-process-signal": (1, "kill: ({pid}) - Operation not permitted"),
    "b-process-proc": (1, "cat: /proc/{pid}/cmdline: No such file or directory"),
}


def test_from_a_terminal_of_workspace_a_nothing_of_b_is_in_reach(team_demo: demo.Demo, team_browser: Browser) -> None:
    vm = team_demo.vm
    vm.chroot_run(["sh", "-c", "echo secret-of-b > ~/workspace/notes"], user=B)
    vm.chroot_run(["sh", "-c", "echo note-of-a > ~/workspace/notes && rm -f ~/workspace/probe.out"], user=A)
    vm.chroot_run(["sh", "-c", "cat > ~/workspace/probe.sh"], user=A, input=PROBE)
    # B is working (its code-server up, as after bob's sign-in): its processes exist to be looked for.
    vm.chroot_run(["systemctl", "start", f"code-server@{B}.service"])
    b_pid = vm.systemctl("show", "-p", "MainPID", "--value", f"code-server@{B}.service")
    assert b_pid not in ("", "0")
    alice = reach_workbench(team_demo, team_browser, "team-a", person(team_demo, "alice"))
    try:
        type_in_terminal(alice.page, f"B_PID={b_pid} bash ~/workspace/probe.sh > ~/workspace/probe.out.part 2>&1; "
                                     "mv ~/workspace/probe.out.part ~/workspace/probe.out")
        out = vm.path / f"home/{A}/workspace/probe.out"
        deadline = time.monotonic() + 60
        while not out.exists():
            assert time.monotonic() < deadline, "the probe typed in A's terminal did not finish"
            time.sleep(0.3)
        seen = {name: (int(rc), first) for name, rc, first in (line.split("\t", 2) for line in out.read_text().splitlines())}
        # The shell that ran it is A's IDE terminal: a child of code-server@ws-team-a, in its cgroup.
        shells = vm.chroot_run(["pgrep", "-u", A, "-x", "bash"]).stdout.split()
        assert shells and all(f"code-server@{A}.service" in vm.chroot_run(["cat", f"/proc/{pid}/cgroup"]).stdout for pid in shells)
    finally:
        alice.context.close()
    assert vm.systemctl("is-active", f"code-server@{B}.service") == "active", "B's code-server ended during the probe"
    for name, (status, text) in REFUSED.items():
        assert seen[name][0] == status and text.format(pid=b_pid) in seen[name][1], (name, seen[name])
    assert seen["b-processes"] == (1, ""), "pgrep found B's processes"
    # The controls: from the same terminal A reads its own notes, reaches its own proxy port, sees its own shell.
    assert seen["own-notes"] == (0, "note-of-a")
    assert seen["own-proxy-port"][0] == 0, seen["own-proxy-port"]
    assert seen["own-processes"][0] == 0, seen["own-processes"]


def test_an_idle_workspace_stops_and_the_next_request_starts_it_again(team_demo: demo.Demo, team_browser: Browser) -> None:
    """With no tab open, code-server@ws-team-a exits on its idle timeout (61 s, plus up to a minute until
    its heartbeat finds no connection left); its socket listens on, and alice's next visit through the
    gateway starts it again."""
    vm, unit = team_demo.vm, f"code-server@{A}.service"
    alice = reach_workbench(team_demo, team_browser, "team-a", person(team_demo, "alice"))
    alice.context.close()
    before = started_at(team_demo, unit)
    deadline = time.monotonic() + 300
    while vm.systemctl("is-active", unit) != "inactive":
        assert time.monotonic() < deadline, f"{unit} did not stop when idle:\n{vm.systemctl('status', '--no-pager', unit)}"
        time.sleep(2)
    assert vm.systemctl("show", "-p", "Result", "--value", unit) == "success"  # an idle exit, not a failure
    journal = vm.chroot_run(["journalctl", "-q", "-o", "cat", "-u", unit, "--no-pager"]).stdout
    assert "Idle timeout of 61 seconds exceeded" in journal
    assert vm.systemctl("is-active", f"hcs-ws-proxy@{A}.service") == "inactive"
    assert vm.systemctl("is-active", f"hcs-ws-proxy@{A}.socket") == "active"  # waiting for the next request
    again = reach_workbench(team_demo, team_browser, "team-a", person(team_demo, "alice"))
    try:
        assert vm.systemctl("is-active", unit) == "active"
        assert int(started_at(team_demo, unit)) > int(before), "the workbench was not served by a new start"
    finally:
        again.context.close()
