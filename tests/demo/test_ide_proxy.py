"""The IDE's one way out, on the booted demo: what the IDE user reaches from its terminal through
the allowlisting proxy (Squid on the VM), and what it does not.

Every attempt runs in the agent typed into the workbench's terminal (`attacker.py`), so it has the
environment code-server's unit gives it (HTTPS_PROXY and friends) and the unit's sandbox. The test
hosts live on the demo's network (`network.CODE_HOST` listed in ideEgressDomains,
`network.OTHER_CODE_HOST` not), with certificates of the demo CA, which the VM's trust store holds.
The table is printed and written to build/demo/ide-proxy.md, with the proxy's log lines.
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Browser

from scripts.lab.demo import codehost, demo, network, vsix
from scripts.lab.demo.attacker import (
    IDE_USER,
    Agent,
    Attempt,
    signed_in_workbench,
    start_agent,
)

pytestmark = pytest.mark.slow

CODE, CODE_ADDRESS = network.CODE_HOST
OTHER, OTHER_ADDRESS = network.OTHER_CODE_HOST


def _said(out: dict) -> str:  # type: ignore[type-arg]
    lines = (out["stderr"] or out["stdout"]).strip().splitlines()
    return f"exit {out['rc']}: {lines[-1][:110] if lines else ''}"


def _connect_status(agent: Agent, url: str, *extra: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    """curl through the proxy the environment names; the proxy's answer to CONNECT (or the HTTP status)."""
    out = agent.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect} %{http_code}", "--max-time", "10", *extra, url)
    return out["stdout"].strip(), out


def proxy_attempts(agent: Agent, workdir: str) -> list[Attempt]:
    rows = []
    scratch = agent.run("mktemp", "-d", "-p", workdir, "proxy-XXXXXX")
    assert scratch["rc"] == 0, scratch
    clone = f"{scratch['stdout'].strip()}/clone"
    out = agent.run("git", "clone", "--quiet", f"https://{CODE}/demo.git", clone)
    readme = agent.run("cat", f"{clone}/README.md")
    got = readme["stdout"] if out["rc"] == 0 else ""
    cloned = out["rc"] == 0 and got == codehost.README_TEXT
    rows.append(Attempt(f"git clone https://{CODE}/demo.git (listed)", "cloned, through the proxy", (_said(out) + f"; README {got!r}")[:160],
                        failed=not cloned, open_because="ideEgressDomains lists it" if cloned else ""))
    out = agent.run("git", "clone", "--quiet", f"https://{OTHER}/demo.git", f"{clone}-other")
    rows.append(Attempt(f"git clone https://{OTHER}/demo.git (not listed)", "refused by the proxy (403)", _said(out),
                        failed=out["rc"] != 0 and "403" in out["stderr"]))
    for label, url, extra in ((f"CONNECT to an IP literal ({CODE_ADDRESS}, the listed host's own address)", f"https://{CODE_ADDRESS}/", ()),
                              (f"CONNECT to port 22 of the listed {CODE}", f"https://{CODE}:22/", ()),
                              (f"CONNECT to the non-listed {OTHER}", f"https://{OTHER}/", ()),
                              (f"plain HTTP to the listed {CODE} (not listed http://)", f"http://{CODE}/", ())):
        status, out = _connect_status(agent, url, *extra)
        rows.append(Attempt(label, "refused by the proxy (403)", f"{status}; {_said(out)}", failed="403" in status.split()))
    # Around the proxy: straight to the listed host's address, with the proxy variables ignored.
    status, out = _connect_status(agent, f"https://{CODE}/", "--noproxy", "*")
    rows.append(Attempt(f"straight to {CODE} ({CODE_ADDRESS}:443), ignoring the proxy", "refused by the VM", _said(out),
                        failed=out["rc"] == 7))
    return rows


def _journal(running: demo.Demo, since: str) -> list[str]:
    out = running.vm.chroot_run(["journalctl", "-q", "-o", "cat", "-t", "squid", "--since", since]).stdout
    return [line for line in out.splitlines() if "account=" in line]


def test_the_ide_reaches_listed_names_only_through_its_proxy(running_demo: demo.Demo, browser: Browser) -> None:
    since = running_demo.vm.chroot_run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    agent = start_agent(running_demo, browser)
    rows = proxy_attempts(agent, f"/home/{IDE_USER}/workspace")
    allowed = refused = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = _journal(running_demo, since)
        allowed = [x for x in lines if f"account={IDE_USER} " in x and f"CONNECT {CODE}:443 " in x and "status=200" in x]
        refused = [x for x in lines if f"account={IDE_USER} " in x and f"CONNECT {OTHER}:443 " in x and "TCP_DENIED" in x and "status=403" in x]
        if allowed and refused:
            break
        time.sleep(0.5)
    table = "| attempt | expected | observed |\n|---|---|---|\n" + "".join(
        f"| {r.attempt} | {r.expected} | {r.observed.replace('|', '/')} |\n" for r in rows)
    text = table + "\nThe proxy's log (journal, syslog identifier squid), an allowed and a refused request:\n\n" + \
        "\n".join(f"    {line}" for line in allowed[:1] + refused[:1]) + "\n"
    demo.BUILD.mkdir(parents=True, exist_ok=True)
    (demo.BUILD / "ide-proxy.md").write_text(text)
    print(f"\nide-proxy.md:\n{text}")
    # The clone is the one row that must go through (open_because says so); every other must fail.
    assert all(r.failed != bool(r.open_because) for r in rows), text
    assert allowed and refused, f"the proxy's journal lacks the account's lines:\n{_journal(running_demo, since)}"


def _workbench_shows(running: demo.Demo, browser: Browser, text: str) -> None:
    """Sign in as a person would and wait for `text` in the workbench's status bar."""
    with signed_in_workbench(running, browser) as page:
        page.locator(".statusbar").get_by_text(text).wait_for(timeout=60_000)


def test_an_extension_from_the_gallery_through_the_proxy_activates_in_the_ide(running_demo: demo.Demo, browser: Browser) -> None:
    """From the terminal, `/usr/bin/code-server --install-extension` by name: the query and the download reach
    the gallery stand-in through the proxy (the IDE user's account in its log); the extension then
    activates in a signed-in browser's workbench (its status bar item, and the marker file it writes)."""
    vm, ide = running_demo.vm, IDE_USER
    gallery_name = network.GALLERY[0]
    since = vm.chroot_run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    served = (running_demo.workdir / "gallery.log")
    before = len(served.read_text().splitlines())
    marker = vm.path / "home" / ide / vsix.MARKER_NAME
    marker.unlink(missing_ok=True)
    agent = start_agent(running_demo, browser)
    # /usr/bin/code-server itself: the terminal's `code-server` is VS Code's remote CLI, which hands the
    # install to the running server over its IPC socket (it never returned in 4.139.1 here; docs/operations.md).
    out = agent.run("/usr/bin/code-server", "--install-extension", f"{vsix.PUBLISHER}.{vsix.NAME}", "--force")
    assert out["rc"] == 0, out
    requests = served.read_text().splitlines()[before:]
    assert any("POST /vscode/gallery/extensionquery 200" in line for line in requests), requests
    assert any(f"/{vsix.PUBLISHER}/{vsix.NAME}/" in line and " 200" in line for line in requests if "GET" in line), requests
    deadline = time.monotonic() + 10
    while not (through := [x for x in _journal(running_demo, since) if f"account={ide} " in x and f"CONNECT {gallery_name}:443 " in x]):
        assert time.monotonic() < deadline, _journal(running_demo, since)
        time.sleep(0.5)
    _workbench_shows(running_demo, browser, vsix.PROOF_TEXT)
    assert marker.read_text().strip(), "the extension did not write its marker"
    print(f"\ninstalled through the proxy: {through[0]}\ngallery: {requests}")


def test_a_vsix_is_installed_by_the_converge_only_with_its_digest(running_demo: demo.Demo) -> None:
    """ideExtensions: a file whose SHA-256 differs from the pinned one stops the converge, nothing
    installed; with the right digest the converge installs it, and the next converge changes nothing."""
    vm, ide = running_demo.vm, IDE_USER
    built = vsix.build(running_demo.workdir / "package-site", version="0.0.2")
    url = f"http://{network.PACKAGE_SITE}/{built.path.name}"
    listed = f"{vsix.PUBLISHER}.{vsix.NAME}@0.0.2"

    def installed() -> list[str]:
        """The IDE user's installed extensions as publisher.name@version, from code-server's own record."""
        record = vm.path / "home" / ide / ".local/share/code-server/extensions/extensions.json"
        entries = json.loads(record.read_text()) if record.exists() else []
        return [f"{e['identifier']['id']}@{e['version']}".lower() for e in entries]

    idp = demo.identity(running_demo.config, running_demo.workdir)
    wrong = running_demo.config.with_values(ideExtensions=[f"{url}@sha256:{'0' * 64}"])
    try:
        with pytest.raises(Exception, match="SHA-256 mismatch") as refused:
            demo.converge_demo(vm, wrong, idp, lambda _line: None)
        assert listed not in installed(), refused.value
        right = running_demo.config.with_values(ideExtensions=[f"{url}@sha256:{built.sha256}"])
        applied = demo.converge_demo(vm, right, idp, lambda _line: None)[1]
        assert applied.changes.get("vm-extensions"), applied.lines
        assert listed in installed()
        again = demo.converge_demo(vm, right, idp, lambda _line: None)[1]
        assert not again.changes.get("vm-extensions"), again.lines
    finally:
        demo.converge_demo(vm, running_demo.config, idp, lambda _line: None)
