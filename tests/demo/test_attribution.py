"""Attribution on the booted demo: who signed in, what they requested, what they typed, in the VM's journal.

A person (the demo's alice) signs in with Chromium and types a unique command into the IDE's terminal;
then the test reads, on the VM:

- oauth2-proxy's auth line (journal, syslog identifier `oauth2-proxy`: the container's journald tag)
  with alice's email and the session's `sub`;
- the gateway's JSON access log lines with `user_email`/`user_id` as oauth2-proxy asserted them, among
  them the IDE's WebSocket; the same request's line in oauth2-proxy's request log, by the request ID
  the gateway set (`uuid` there, `request_id=` here): the two logs agree exactly;
- the terminal's record (`hcs-terminal`) of the command, stamped by journald with the IDE user's uid
  and code-server's unit, and bound to alice by time: it lies inside her WebSocket's span, and no other
  person's connection overlaps it (correlation, which is all a shared account allows; see docs/operations.md, Day two).

The lines found are printed and written to build/demo/attribution.md.

Then code-server's place is taken by a forger that answers with identity headers of its own (what
any service served through code-server could do, its port proxy on): through the real oauth2-proxy
the gateway still logs only alice, and the browser gets none of those headers.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from typing import Any

import pytest
from playwright.sync_api import Browser

from components.host.render import GATEWAY_ACCESS_LOG
from components.host.render_terminal import TERMINAL_LOG_TAG
from scripts.lab.demo import demo
from scripts.lab.demo.attacker import IDE_USER, signed_in_workbench
from scripts.lab.livepath.browser import fill_login_form, new_session, type_in_terminal

pytestmark = pytest.mark.slow


def _journal(vm: Any, identifier: str, since: str) -> list[dict[str, Any]]:  # type: ignore[misc]
    out = vm.chroot_run(["journalctl", "-q", "-o", "json", "-t", identifier, "--since", since]).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _gateway_log(vm: Any, since: float) -> list[dict[str, Any]]:  # type: ignore[misc]
    text = vm.chroot_run(["cat", GATEWAY_ACCESS_LOG]).stdout
    return [e for e in (json.loads(line) for line in text.splitlines() if line.strip()) if e["ts"] >= since]


def _is_websocket(entry: dict[str, Any]) -> bool:  # type: ignore[misc]
    return entry["request"]["headers"].get("Upgrade", [""])[0].lower() == "websocket"


def test_a_sign_in_and_a_typed_command_are_in_the_journal_with_the_persons_identity(running_demo: demo.Demo, browser: Browser) -> None:
    vm = running_demo.vm
    alice = demo.user(running_demo, "alice")["username"]
    uid = vm.chroot_run(["id", "-u", IDE_USER]).stdout.strip()
    since = vm.chroot_run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    started = time.time() - 1
    marker = f"hcs-attribution-{secrets.token_hex(4)}"
    with signed_in_workbench(running_demo, browser) as page:
        type_in_terminal(page, f"echo {marker}")
        page.locator(".xterm-rows").get_by_text(marker).nth(1).wait_for(timeout=30_000)  # typed, then its output
        time.sleep(1)
    # The page is closed: its WebSockets are over, and both proxies write a request's line when it ends.
    deadline = time.monotonic() + 20
    while True:
        auth = [e for e in _journal(vm, "oauth2-proxy", since)
                if e["MESSAGE"].startswith("hcs-oauth2-proxy auth ") and "AuthSuccess" in e["MESSAGE"] and f"email:{alice}" in e["MESSAGE"]]
        requests = [e["MESSAGE"] for e in _journal(vm, "oauth2-proxy", since) if e["MESSAGE"].startswith("hcs-oauth2-proxy request ")]
        gateway = _gateway_log(vm, started)
        sockets = [e for e in gateway if _is_websocket(e) and e["status"] == 101]
        typed = [e for e in _journal(vm, TERMINAL_LOG_TAG, since) if e["MESSAGE"].endswith(f"command: echo {marker}")]
        if auth and sockets and typed and len(sockets) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert auth, "no oauth2-proxy auth line with alice's email in the journal"
    assert sockets, "no WebSocket in the gateway's log"
    assert typed, f"the command typed is not in the journal ({TERMINAL_LOG_TAG})"

    # The gateway names the person oauth2-proxy asserted, on every request it let through.
    mine = [e for e in gateway if e.get("user_email") == alice]
    assert mine and all(e.get("user_id") for e in mine), gateway
    assert {e.get("user_email") for e in sockets} == {alice}, "a WebSocket in the log without alice's identity"
    # The two logs agree exactly: the gateway's request ID is in oauth2-proxy's line for the same request.
    socket = max(sockets, key=lambda e: e["duration"])
    (proxied,) = [line for line in requests if f"request_id={socket['uuid']} " in line]
    assert f"user={alice} " in proxied, proxied
    # ...and the gateway's user_id is the session's `sub` oauth2-proxy logged at the sign-in.
    assert f"user:{socket['user_id']} " in auth[-1]["MESSAGE"], (socket["user_id"], auth[-1]["MESSAGE"])

    # The terminal's line: the account and the unit are journald's (from the kernel), not the line's.
    (line,) = typed
    assert line["_UID"] == uid and line["_SYSTEMD_UNIT"] == f"code-server@{IDE_USER}.service", line
    session = line["MESSAGE"].split()[0]
    opened = [e for e in _journal(vm, TERMINAL_LOG_TAG, since) if e["MESSAGE"].startswith(f"{session} opened ")]
    assert opened, f"no opening line of {session}"
    # Bound to alice by time: inside her WebSocket's span, and nobody else's connection overlaps it.
    at = int(line["__REALTIME_TIMESTAMP"]) / 1e6
    spans = [(e["ts"] - e["duration"], e["ts"], e.get("user_email")) for e in sockets]
    around = {who for start, end, who in spans if start <= at <= end}
    assert around == {alice}, (at, spans)

    when = lambda ts: dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S")  # noqa: E731
    text = "\n".join([
        f"Attribution on the demo: {alice} signed in and typed `echo {marker}` into the IDE's terminal.", "",
        "oauth2-proxy (journal, `journalctl -t oauth2-proxy`), the sign-in:", "", f"    {auth[-1]['MESSAGE']}", "",
        "oauth2-proxy's request line for the IDE's WebSocket (same request ID as the gateway's `uuid`):", "", f"    {proxied}", "",
        f"The gateway's access log ({GATEWAY_ACCESS_LOG}), that WebSocket:", "",
        "    " + json.dumps({k: socket[k] for k in ("ts", "uuid", "user_email", "user_id", "status", "duration")}
                            | {"uri": socket["request"]["uri"].split("?")[0], "client_ip": socket["request"]["client_ip"]}), "",
        f"The terminal (journal, `journalctl -t {TERMINAL_LOG_TAG}`), with journald's own fields:", "",
        *(f"    {when(int(e['__REALTIME_TIMESTAMP']) / 1e6)} _UID={e['_UID']} _SYSTEMD_UNIT={e['_SYSTEMD_UNIT']} {e['MESSAGE']}"
          for e in (opened[0], line)), "",
        f"Bound by time: the command at {when(at)} lies in {alice}'s WebSocket "
        f"({when(socket['ts'] - socket['duration'])}–{when(socket['ts'])}) and in no other person's.", ""])
    demo.BUILD.mkdir(parents=True, exist_ok=True)
    (demo.BUILD / "attribution.md").write_text(text)
    print(f"\nattribution.md:\n{text}")


#: A server in code-server's place that answers every request with an identity of its own.
FORGER = """\
import http.server
class Forger(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"the forger answered"
        self.send_response(200)
        self.send_header("X-Auth-Request-Email", "mallory@example.com")
        self.send_header("X-Auth-Request-User", "mallory")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", 8080), Forger).serve_forever()
"""


def test_an_identity_the_upstream_forges_is_neither_logged_nor_shown(running_demo: demo.Demo, browser: Browser) -> None:
    vm = running_demo.vm
    alice = demo.user(running_demo, "alice")
    host = running_demo.config.values["hostname"]
    unit = f"code-server@{IDE_USER}.service"
    path = f"/forged-{secrets.token_hex(4)}"
    vm.chroot_run(["systemctl", "stop", unit])
    try:
        # The IDE user, outside code-server's unit (the firewall hook lets that uid answer on 8080 only).
        vm.chroot_run(["systemd-run", "--quiet", f"--uid={IDE_USER}", "--unit=hcs-test-forger", "python3", "-c", FORGER])
        vm.wait_for_unit("hcs-test-forger.service")
        session = new_session(browser)
        try:
            session.page.goto(f"https://{host}/")
            fill_login_form(session, type("User", (), alice)())
            session.page.wait_for_url(f"https://{host}/", timeout=30_000)
            response = session.page.goto(f"https://{host}{path}")
            assert response is not None and response.status == 200 and "the forger answered" in response.text()
            shown = response.all_headers()
        finally:
            session.context.close()
    finally:
        vm.chroot_run(["systemctl", "stop", "hcs-test-forger.service"], check=False)
        vm.chroot_run(["systemctl", "start", unit])
    assert not [h for h in shown if h.startswith("x-auth-request-")], shown
    deadline = time.monotonic() + 10
    while not (lines := [line for line in vm.chroot_run(["cat", GATEWAY_ACCESS_LOG]).stdout.splitlines() if f'"uri":"{path}"' in line]):
        assert time.monotonic() < deadline, f"no gateway line for {path}"
        time.sleep(0.3)
    (entry,) = [json.loads(line) for line in lines]
    assert entry["user_email"] == alice["username"] and entry["user_id"] != "mallory", entry
    assert "mallory" not in lines[0], lines[0]
    print(f"\nforged upstream, the gateway's line: uri={entry['request']['uri']} user_email={entry['user_email']} "
          f"user_id={entry['user_id']} status={entry['status']}")
