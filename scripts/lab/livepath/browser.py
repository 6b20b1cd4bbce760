"""The real browser in the live path: Debian chromium under Playwright, signing in on the stand-in's form.

Every context is a fresh browser profile; nothing is injected into it to sign in: the user is
redirected to the Entra stand-in, types the password, and comes back through oauth2-proxy's
callback. `Journal` records what the browser saw, so tests assert on real statuses and headers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright

from components import layout
from scripts.lab.idp.setup import TestUser
from scripts.lab.livepath.chain import LiveChain


@dataclass
class Seen:
    status: int
    url: str
    headers: list[dict[str, str]]

    def header(self, name: str) -> list[str]:
        return [h["value"] for h in self.headers if h["name"].lower() == name.lower()]


@dataclass
class Journal:
    """Every response and request URL of one context, in order."""

    responses: list[Seen] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def record(self, response: Response) -> None:
        try:
            headers = response.headers_array()
        except Exception:  # noqa: BLE001 - a response of a closed page has no headers any more
            headers = []
        self.responses.append(Seen(response.status, response.url, headers))

    def after(self, mark: int) -> list[Seen]:
        return self.responses[mark:]


@dataclass
class Session:
    context: BrowserContext
    page: Page
    journal: Journal
    timings: dict[str, float] = field(default_factory=dict)
    websockets: list[str] = field(default_factory=list)


def new_session(browser: Browser) -> Session:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    journal = Journal()
    context.on("response", journal.record)
    context.on("request", lambda r: journal.requests.append(r.url))
    session = Session(context, context.new_page(), journal)
    session.page.on("websocket", lambda ws: session.websockets.append(ws.url))
    return session


def is_authorize(chain: LiveChain, url: str) -> bool:
    """Is `url` the sign-in start at Entra's authorize endpoint for this app?"""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return ((parts.scheme, parts.hostname, parts.path) ==
            ("https", layout.ENTRA_HOST, f"/{chain.settings.entra.tenant_id}/oauth2/v2.0/authorize")
            and query.get("redirect_uri") == [f"{chain.plan.public_url}/oauth2/callback"])


def fill_login_form(session: Session, user: TestUser) -> None:
    page = session.page
    page.wait_for_selector("#password", timeout=30_000)
    page.fill("#username", user.username)
    page.fill("#password", user.password)
    page.click("#signin")


def type_in_terminal(page: Page, command: str) -> None:
    """Open the workbench's integrated terminal (a shell code-server starts in its unit) and run `command`."""
    page.keyboard.press("Control+Backquote")
    page.wait_for_selector(".xterm", timeout=30_000)
    page.wait_for_function("() => /[$#] *$/m.test(document.querySelector('.xterm-rows')?.innerText || '')", timeout=30_000)
    page.click(".xterm")  # the chat panel takes the focus otherwise
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def sign_in(session: Session, chain: LiveChain, user: TestUser, *, workbench: bool = True) -> None:
    """Open the public URL, sign in on the stand-in's form; with `workbench`, wait for the IDE."""
    started = time.perf_counter()
    session.page.goto(chain.plan.public_url + "/")
    session.page.wait_for_selector("#password", timeout=30_000)
    session.timings["to_login_form_s"] = time.perf_counter() - started
    submitted = time.perf_counter()
    fill_login_form(session, user)
    if workbench:
        # Stand-in → callback (code redeemed at the token endpoint) → / → code-server's folder page.
        session.page.wait_for_url(re.compile(re.escape(chain.plan.public_url) + r"/\?folder="), wait_until="commit", timeout=30_000)
        session.timings["submit_to_ide_page_s"] = time.perf_counter() - submitted
        session.page.wait_for_selector(".monaco-workbench", timeout=60_000)
        session.timings["submit_to_workbench_s"] = time.perf_counter() - submitted
        session.timings["total_s"] = time.perf_counter() - started
    else:
        # The first document committed back on the public host: oauth2-proxy's refusal at the
        # callback, or (signed in) code-server's page; the session cookie is set by then.
        session.page.wait_for_url(lambda url: url.startswith(chain.plan.public_url + "/"), wait_until="commit", timeout=30_000)
        session.page.wait_for_load_state()


def session_cookies(session: Session, chain: LiveChain) -> list[dict]:  # type: ignore[type-arg]
    """The browser's oauth2-proxy session cookie(s) (split into `_0`, `_1`… when large), in order."""
    name = chain.cookie_name
    cookies = [c for c in session.context.cookies(chain.plan.public_url) if c["name"] == name or re.fullmatch(re.escape(name) + r"_\d+", c["name"])]
    return sorted(cookies, key=lambda c: int(c["name"].rpartition("_")[2]) if c["name"] != name else -1)


def cookie_header(session: Session, chain: LiveChain) -> str:
    """A `Cookie:` header with the session the browser holds (for probes run right after sign-in)."""
    return "; ".join(f"{c['name']}={c['value']}" for c in session_cookies(session, chain))


def signed_in_cookie(chain: LiveChain, user: str = "alice") -> str:
    """A `Cookie:` header from a real sign-in in a throwaway browser (for probes and the bench).

    Use it soon: it is a copy, so the refreshed cookies oauth2-proxy sends after `cookie_refresh`
    are not kept by a probe, and every later request refreshes again.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chain.chromium_wrapper()), args=chain.chromium_args())
        try:
            session = new_session(browser)
            sign_in(session, chain, chain.idp.users[user], workbench=False)
            return cookie_header(session, chain)
        finally:
            browser.close()
