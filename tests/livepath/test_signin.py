"""Real sign-in through the whole chain: chromium → front Caddy → gateway Caddy → real oauth2-proxy
v7.15.6 → code-server, against the Entra stand-in (scripts/lab/idp). No cookie is injected to sign in.

What this proves and what it does not: oauth2-proxy's own behaviour with the product's config
(PKCE, state/CSRF cookie, group and e-mail checks, session cookie, refresh, sign-out, WebSockets);
Entra's own behaviour (MFA, Conditional Access, assignment, its token contents beyond the claims
modelled) is the stand-in's, not Entra's. The observed numbers go to build/livepath/signin.json.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from playwright.sync_api import Browser, sync_playwright

from components import layout
from scripts import REPOSITORY
from scripts.lab.livepath import signin
from scripts.lab.livepath.browser import (
    Session,
    cookie_header,
    is_authorize,
    new_session,
    session_cookies,
    sign_in,
)
from scripts.lab.livepath.chain import TEST_CLIENT_ID, LiveChain

pytestmark = pytest.mark.slow

REPORT = REPOSITORY / "build" / "livepath" / "signin.json"
OBSERVED: dict[str, object] = {}


@pytest.fixture(scope="module")
def browser(live_chain: LiveChain) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(live_chain.chromium_wrapper()), args=live_chain.chromium_args())
        yield browser
        browser.close()
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(OBSERVED, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
def alice(browser: Browser, live_chain: LiveChain) -> Iterator[Session]:
    """alice (in the allowed group) signed in by typing her password, the workbench open."""
    session = new_session(browser)
    sign_in(session, live_chain, live_chain.idp.users["alice"])
    OBSERVED["sign_in_timing_s"] = session.timings
    yield session
    session.context.close()


def _set_cookie_attributes(line: str) -> tuple[str, str, dict[str, str]]:
    first, *attrs = [part.strip() for part in line.split(";")]
    name, _, value = first.partition("=")
    return name, value, {a.partition("=")[0].lower(): a.partition("=")[2] for a in attrs}


def _assert_host_cookie(line: str) -> None:
    name, _, attrs = _set_cookie_attributes(line)
    assert name.startswith("__Host-"), line
    assert "secure" in attrs and "httponly" in attrs and attrs.get("samesite", "").lower() == "lax", line
    assert attrs.get("path") == "/" and "domain" not in attrs, line


def test_no_session_redirects_to_entra_with_pkce_state_and_a_host_csrf_cookie(browser: Browser, live_chain: LiveChain) -> None:
    session = new_session(browser)
    session.page.goto(live_chain.plan.public_url + "/")
    session.page.wait_for_selector("#password")
    first = session.journal.responses[0]
    assert first.status == 302 and first.url == live_chain.plan.public_url + "/"
    (location,) = first.header("location")
    assert is_authorize(live_chain, location), location
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["code_challenge_method"] == "S256" and re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert query["state"] and query["nonce"] and query["response_type"] == "code"
    # Entra's v2.0 OIDC: openid for the ID token, offline_access for a refresh token, email and profile for the claims
    assert query["client_id"] == TEST_CLIENT_ID and set(query["scope"].split()) == {"openid", "email", "profile", "offline_access"}
    csrf = [line for line in first.header("set-cookie") if "csrf" in line.partition("=")[0]]
    assert len(csrf) == 1, first.header("set-cookie")
    _assert_host_cookie(csrf[0])
    # The browser went to the stand-in (Entra's host, mapped locally) and nowhere else.
    hosts = {urlsplit(u).hostname for u in session.journal.requests}
    assert hosts == {live_chain.plan.hostname, "login.microsoftonline.com"}, hosts
    OBSERVED["no_session"] = {"status": first.status, "location": location, "csrf_cookie": csrf[0].split("=")[0], "csrf_set_cookie_bytes": len(csrf[0])}
    session.context.close()


def test_in_group_user_types_the_password_and_gets_the_workbench_whose_terminal_runs_as_the_ide_user(alice: Session, live_chain: LiveChain) -> None:
    chain = live_chain
    callback = [r for r in alice.journal.responses if r.url.startswith(chain.plan.public_url + "/oauth2/callback")]
    assert [r.status for r in callback] == [302] and callback[0].header("location") == ["/"]
    assert any(re.match(rf"wss://{re.escape(chain.plan.hostname)}/stable-{chain.code_server.commit}\?", u) for u in alice.websockets), alice.websockets
    events = [e for e in chain.idp_events() if e.get("user") == chain.idp.users["alice"].username]
    assert [e["event"] for e in events][:2] == ["sign-in", "token"] and events[1]["grant_type"] == "authorization_code" and events[1]["ok"]
    marker = Path(chain.root.path) / chain.plan.workspace.lstrip("/") / "whoami.txt"
    try:
        _run_in_terminal(alice, f"id -un > {marker.name}.tmp; id >> {marker.name}.tmp; mv {marker.name}.tmp {marker.name}")
        _wait_for(marker)
    finally:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        alice.page.screenshot(path=str(SCREENSHOT))
    name, ids = marker.read_text().splitlines()[:2]
    assert name == chain.plan.ide_user and name not in ("root", chain.plan.service_user)
    assert "uid=0(" not in ids and f"({chain.plan.service_user})" not in ids
    assert marker.stat().st_uid == int(chain.root.chroot_run(["id", "-u", chain.plan.ide_user]).stdout) != 0


def _run_in_terminal(session: Session, command: str) -> None:
    page = session.page
    page.keyboard.press("Control+Backquote")
    page.wait_for_selector(".xterm", timeout=30_000)
    # Type only once the shell has printed its prompt (keys typed earlier are echoed twice).
    page.wait_for_function("() => /[$#] *$/m.test(document.querySelector('.xterm-rows')?.innerText || '')", timeout=30_000)
    page.click(".xterm")
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"the terminal command did not write {path} within {timeout:.0f} s")


SCREENSHOT = REPOSITORY / "build" / "livepath" / "ide.png"


def test_session_cookie_is_host_only_secure_httponly_lax_and_its_size_is_measured(alice: Session, live_chain: LiveChain) -> None:
    (callback,) = [r for r in alice.journal.responses if r.url.startswith(live_chain.plan.public_url + "/oauth2/callback")]
    lines = [line for line in callback.header("set-cookie") if line.startswith(live_chain.cookie_name) and "csrf" not in line.partition("=")[0]]
    assert lines, callback.header("set-cookie")
    for line in lines:
        _assert_host_cookie(line)
    names = [line.partition("=")[0] for line in lines]
    values = [line.partition("=")[2].partition(";")[0] for line in lines]
    OBSERVED["session_cookie"] = {"names": names, "value_bytes": [len(v) for v in values], "set_cookie_bytes": [len(line) for line in lines],
                                  "total_value_bytes": sum(len(v) for v in values), "cookie_header_bytes": len(cookie_header(alice, live_chain))}
    # Entra-sized tokens (ID ~1.5 KB, access ~2.3 KB, refresh ~1.4 KB) do not fit one 4 KB cookie.
    assert len(lines) > 1 and names == [f"{live_chain.cookie_name}_{i}" for i in range(len(lines))], names
    assert all(len(line) <= 4096 for line in lines)


def _refused_after_sign_in(browser: Browser, chain: LiveChain, user: str) -> dict[str, object]:
    session = new_session(browser)
    sign_in(session, chain, chain.idp.users[user], workbench=False)
    (callback,) = [r for r in session.journal.responses if r.url.startswith(chain.plan.public_url + "/oauth2/callback")]
    text = session.page.inner_text("body")
    assert callback.status == 403, (callback.status, text)
    assert not session_cookies(session, chain)
    # Nothing of code-server: the public host answered only redirects, the 403 and the error
    # page's own styles (oauth2-proxy's /oauth2/static/).
    public = [r for r in session.journal.responses if urlsplit(r.url).hostname == chain.plan.hostname]
    assert all(r.status in (302, 403) or urlsplit(r.url).path.startswith("/oauth2/static/") for r in public), [(r.status, r.url) for r in public]
    assert "vscode" not in session.page.content().lower() and "monaco" not in session.page.content().lower()
    # Coming back: the stand-in's session signs the user in silently, and oauth2-proxy refuses again.
    # Judged by the navigation's own final answer (its redirects followed), not by whichever response
    # the journal holds last: a full-suite run once ended the list at the first 302.
    mark = len(session.journal.responses)
    answer = session.page.goto(chain.plan.public_url + "/")
    again = [(r.status, r.url) for r in session.journal.after(mark)]
    assert answer is not None and answer.status == 403 and urlsplit(answer.url).hostname == chain.plan.hostname \
        and urlsplit(answer.url).path == "/oauth2/callback", (answer and (answer.status, answer.url), session.page.url, again)
    session.context.close()
    return {"callback_status": callback.status, "page_text": " ".join(text.split())[:300]}


def test_user_outside_the_allowed_group_is_refused_after_sign_in(browser: Browser, live_chain: LiveChain) -> None:
    OBSERVED["not_in_group"] = _refused_after_sign_in(browser, live_chain, "bob")


def test_email_outside_email_domains_is_refused(browser: Browser, live_chain: LiveChain) -> None:
    assert not live_chain.idp.users["eve"].username.endswith(tuple("@" + d for d in live_chain.settings.gateway.email_domains))
    OBSERVED["email_outside_domains"] = _refused_after_sign_in(browser, live_chain, "eve")


def _first_answer_with(browser: Browser, chain: LiveChain, cookies: list[tuple[str, str]]) -> tuple[int, str]:
    """Status and Location of `GET /` in a fresh browser holding exactly `cookies`."""
    context = browser.new_context()
    context.add_cookies([{"name": n, "value": v, "url": chain.plan.public_url, "secure": True, "httpOnly": True, "sameSite": "Lax"} for n, v in cookies])
    answers: list[tuple[int, str]] = []
    context.on("response", lambda r: answers.append((r.status, r.headers.get("location", ""))))
    context.new_page().goto(chain.plan.public_url + "/")
    context.close()
    return answers[0]


def _resigned(chain: LiveChain, cookies: list[dict], timestamp: int) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """The browser's session cookie re-signed with another creation time, split as the browser got it.

    oauth2-proxy signs `value|timestamp` with HMAC-SHA256 keyed by the cookie secret (v7.15
    `pkg/encryption/utils.go`); the test knows the secret because it wrote the file.
    """
    value, _, _ = "".join(c["value"] for c in cookies).split("|")
    signature = hmac.new(chain.cookie_secret.encode(), (chain.cookie_name + value + str(timestamp)).encode(), hashlib.sha256).digest()
    joined = f"{value}|{timestamp}|{base64.urlsafe_b64encode(signature).decode()}"
    pieces, start = [], 0
    for index, cookie in enumerate(cookies):
        end = start + len(cookie["value"]) if index < len(cookies) - 1 else len(joined)
        pieces.append((cookie["name"], joined[start:end]))
        start = end
    return pieces


def test_tampered_or_expired_cookie_goes_back_to_sign_in(alice: Session, browser: Browser, live_chain: LiveChain) -> None:
    chain = live_chain
    alice.page.goto(chain.plan.public_url + "/oauth2/userinfo")  # a fresh (possibly just refreshed) session
    cookies = session_cookies(alice, chain)
    genuine = [(c["name"], c["value"]) for c in cookies]
    middle = len(genuine[0][1]) // 2
    flipped = genuine[0][1][:middle] + ("A" if genuine[0][1][middle] != "A" else "B") + genuine[0][1][middle + 1:]
    tampered = [(genuine[0][0], flipped), *genuine[1:]]
    expire = int(chain.settings.gateway.cookie_expire.total_seconds())
    now = int(time.time())
    results = {
        "genuine": _first_answer_with(browser, chain, genuine),
        "resigned_now": _first_answer_with(browser, chain, _resigned(chain, cookies, now)),
        "tampered": _first_answer_with(browser, chain, tampered),
        "expired": _first_answer_with(browser, chain, _resigned(chain, cookies, now - expire - 60)),
    }
    OBSERVED["cookie_checks"] = {k: {"status": s, "location": loc[:120]} for k, (s, loc) in results.items()}
    # The genuine cookie and the same one re-signed now reach code-server (its own redirect to the
    # folder): so the re-signing is right, and only the age makes the expired one fail.
    for key in ("genuine", "resigned_now"):
        assert results[key][0] == 302 and not is_authorize(chain, results[key][1]) and "folder=" in results[key][1], (key, results[key])
    for key in ("tampered", "expired"):
        assert results[key][0] == 302 and is_authorize(chain, results[key][1]), (key, results[key])


def _tokens_of(chain: LiveChain, user: str, since: float) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in chain.idp_events() if e["event"] == "token" and e.get("user") == chain.idp.users[user].username and e["time"] >= since]


def test_refresh_goes_through_the_token_endpoint_and_ends_once_the_idp_revokes(browser: Browser, live_chain: LiveChain) -> None:
    chain = live_chain
    session = new_session(browser)
    sign_in(session, chain, chain.idp.users["carol"])
    before = [c["value"] for c in session_cookies(session, chain)]
    session.page.goto("about:blank")  # idle: the next request is the first after cookie_refresh
    since = time.time()
    time.sleep(signin.TEST_COOKIE_REFRESH.total_seconds() + 2)
    mark = len(session.journal.requests)
    session.page.goto(chain.plan.public_url + "/")
    session.page.wait_for_selector(".monaco-workbench", timeout=60_000)
    refreshed = _tokens_of(chain, "carol", since)
    assert [(e["grant_type"], e["ok"]) for e in refreshed][:1] == [("refresh_token", True)], refreshed
    assert not any(is_authorize(chain, u) for u in session.journal.requests[mark:]), "a new sign-in happened"
    assert [c["value"] for c in session_cookies(session, chain)] != before
    # The IdP revokes carol's refresh tokens (and sessions): the next refresh fails and the session ends.
    session.page.goto("about:blank")
    chain.idp_revoke(chain.idp.users["carol"].username)
    since = time.time()
    time.sleep(signin.TEST_COOKIE_REFRESH.total_seconds() + 2)
    mark = len(session.journal.responses)
    session.page.goto(chain.plan.public_url + "/")
    session.page.wait_for_selector("#password", timeout=30_000)
    # The answer to this navigation, not a late response of the workbench page left a moment ago.
    first = next(r for r in session.journal.after(mark) if r.url == chain.plan.public_url + "/")
    assert first.status == 302 and is_authorize(chain, first.header("location")[0])
    assert [(e["grant_type"], e["ok"]) for e in _tokens_of(chain, "carol", since)][:1] == [("refresh_token", False)]
    OBSERVED["refresh"] = {"cookie_refresh_s": signin.TEST_COOKIE_REFRESH.total_seconds(), "refresh_grant": refreshed[0],
                           "after_revoke_first_answer": {"status": first.status, "location": first.header("location")[0][:120]}}
    session.context.close()


def test_sign_out_ends_the_oauth2_proxy_and_the_idp_session(browser: Browser, live_chain: LiveChain) -> None:
    chain = live_chain
    session = new_session(browser)
    sign_in(session, chain, chain.idp.users["alice"])
    session.page.goto("about:blank")
    mark = len(session.journal.responses)
    session.page.goto(layout.sign_out_url(chain.plan.hostname, chain.settings.entra.tenant_id))
    session.page.wait_for_selector("#signed-out", timeout=30_000)
    out = [r for r in session.journal.after(mark) if r.url.startswith("https://")]
    assert out[0].status == 302 and unquote(out[0].header("location")[0]) == layout.entra_logout_url(chain.settings.entra.tenant_id)
    cleared = [line for line in out[0].header("set-cookie") if line.startswith(chain.cookie_name)]
    assert cleared and all("max-age=0" in line.lower() or "expires=thu, 01 jan 1970" in line.lower() for line in cleared), cleared
    assert not session_cookies(session, chain)
    # Not silently signed back in: the next visit shows the stand-in's login form again.
    mark = len(session.journal.responses)
    session.page.goto(chain.plan.public_url + "/")
    session.page.wait_for_selector("#password", timeout=30_000)
    assert not any(r.url.startswith(chain.plan.public_url + "/oauth2/callback") for r in session.journal.after(mark))
    OBSERVED["sign_out"] = {"status": out[0].status, "location": out[0].header("location")[0], "idp_page_status": out[-1].status,
                            "cleared_cookies": [line.partition("=")[0] for line in cleared]}
    session.context.close()


def test_websocket_through_real_oauth2_proxy_upgrades_with_the_session_and_not_without(browser: Browser, live_chain: LiveChain) -> None:
    chain = live_chain
    session = new_session(browser)
    sign_in(session, chain, chain.idp.users["alice"])
    url = f"{chain.plan.public_url}/stable-{chain.code_server.commit}?reconnectionToken=00000000-0000-4000-8000-000000000001&reconnection=false&skipWebSocketFrames=false"
    with_session = chain.probe("ws", url, "--origin", chain.plan.public_url, "--cookie", cookie_header(session, chain))
    without = chain.probe("ws", url, "--origin", chain.plan.public_url)
    assert with_session["status"] == 101 and with_session["pong_ms"] > 0
    assert without["status"] == 302
    OBSERVED["websocket"] = {"with_session": with_session["status"], "without": without["status"]}
    session.context.close()
