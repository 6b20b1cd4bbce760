"""Restore, on the booted demo: what the IDE user had comes back on a new VM from the product's backups.

The user changes a setting (`window.title`, a value of this run) and installs the test extension
from the gallery, both from the IDE's own terminal, as a person there would. The product's backup
unit runs (`hcs-backup.service`, the unit the timer fires: started here, since waiting for its
schedule is no test) to the demo's backup server. Then `scripts/tools/demo.py down --keep-backups` and
`up` (what `make demo` runs) destroy and re-create the VM (a new root, new accounts, new CAs; the
backup server's data stays, as a backup host outlives a VM). The setting and the extension are
gone; the operator runs `sudo hcs-restore` over SSH (refused: the new VM already holds a setting of
the demo's own), then `sudo hcs-restore --force`; and a newly signed-in browser shows both: the
window title is the setting, the extension's status bar item is there.

The re-created demo replaces the session's (`running_demo` is updated in place), so the tests after
this one run on the new VM. Not shown here: a restore onto a VM of another release, or one where the
IDE user got another uid (the files are written by that user either way).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shlex
from typing import Any

import pytest
from playwright.sync_api import Page

from components.host import render
from scripts.lab.demo import demo, vsix
from scripts.lab.demo.attacker import (
    IDE_USER,
    launched_browser,
    signed_in_workbench,
    start_agent,
)
from scripts.lab.vm.runner import Result

pytestmark = pytest.mark.slow

EXTENSION = f"{vsix.PUBLISHER}.{vsix.NAME}"
SETTINGS = f"{render.code_server_data_dir(IDE_USER)}/User/settings.json"


#: On the VM, as root: the REST API's answers to listing the snapshots and deleting one, with the
#: account and URL of the repository file (read here, never on a command line).
_AS_THE_VM = """
import base64, sys, urllib.error, urllib.parse, urllib.request
url = urllib.parse.urlsplit(open(sys.argv[1]).read().strip().removeprefix("rest:"))
account = f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password)}"
headers = {"Accept": "application/vnd.x.restic.rest.v2",  # restic's own (the v2 listing)
           "Authorization": "Basic " + base64.b64encode(account.encode()).decode()}
base = f"https://{url.hostname}:{url.port}{url.path.rstrip('/')}/snapshots/"
for method, target in (("GET", base), ("DELETE", base + sys.argv[2])):
    try:
        print(urllib.request.urlopen(urllib.request.Request(target, method=method, headers=headers), timeout=10).status)
    except urllib.error.HTTPError as error:
        print(error.code)
"""


def _extensions(running: demo.Demo) -> str:
    """What code-server itself lists for the IDE user (its extensions directory and record); from the
    home directory, since Node needs a working directory it can name (nsenter's `/` is not one)."""
    return running.vm.chroot_run(["sh", "-c", "cd && code-server --list-extensions"], user=IDE_USER).stdout


def _stat(running: demo.Demo, path: str) -> str:
    return running.vm.chroot_run(["stat", "-c", "%U:%G %a", path]).stdout.strip()


def _restic(running: demo.Demo, command: str) -> Result:
    """restic as root on the VM with the backup unit's environment (the root-only repository and password files)."""
    return running.vm.runner().run(
        f"sudo -n sh -c {shlex.quote(f'set -a; . {render.RESTIC_ENV_FILE}; set +a; {command}')}", timeout=60)


def _snapshots(running: demo.Demo) -> list[dict[str, Any]]:
    return json.loads(_restic(running, "restic snapshots --json --tag hardened-code-server").stdout)


def _recreate(running: demo.Demo) -> None:
    """`scripts/tools/demo.py down --keep-backups`, then `up` (`make demo`): a new VM under the same tag."""
    tag, release = running.state.tag, running.state.release
    demo.down(tag, progress=lambda _line: None, keep_backups=True)
    fresh = demo.up(tag, progress=lambda line: print(f"[demo] {line}", flush=True), release=release)
    for f in dataclasses.fields(fresh):
        setattr(running, f.name, getattr(fresh, f.name))


def _shows(page: Page, title: str) -> None:
    page.wait_for_function("title => document.title.includes(title)", arg=title, timeout=60_000)
    page.locator(".statusbar").get_by_text(vsix.PROOF_TEXT).wait_for(timeout=60_000)


def test_the_users_setting_and_extension_come_back_on_a_new_vm(running_demo: demo.Demo) -> None:
    title = f"hcs-restore-{secrets.token_hex(4)}"
    with launched_browser(running_demo) as browser:
        agent = start_agent(running_demo, browser)
        out = agent.run("/usr/bin/code-server", "--install-extension", EXTENSION, "--force", timeout=60)
        assert out["rc"] == 0, out
        edit = ("import json, sys; p = sys.argv[1]; s = json.load(open(p)); s['window.title'] = sys.argv[2]; "
                "json.dump(s, open(p, 'w'), indent=2)")
        out = agent.run("python3", "-c", edit, SETTINGS, title)
        assert out["rc"] == 0, out
    assert EXTENSION in _extensions(running_demo)
    owner = _stat(running_demo, SETTINGS)

    vm = running_demo.vm
    assert vm.systemctl("show", "-p", "NextElapseUSecRealtime", "--value", "hcs-backup.timer"), "the backup timer is not running"
    vm.chroot_run(["systemctl", "start", "hcs-backup.service"], timeout=120)
    snapshots = _snapshots(running_demo)
    assert render.code_server_data_dir(IDE_USER) in snapshots[-1]["paths"], snapshots[-1]
    taken = snapshots[-1]["id"]

    _recreate(running_demo)
    assert title not in running_demo.vm.chroot_run(["cat", SETTINGS]).stdout
    assert EXTENSION not in _extensions(running_demo)

    refused = running_demo.vm.runner().run("sudo -n hcs-restore")
    assert refused.exit_code == 1 and "nothing restored" in refused.stderr, refused
    restored = running_demo.vm.runner().run("sudo -n hcs-restore --force", timeout=300)
    assert restored.exit_code == 0, restored
    print(restored.stdout)
    assert json.loads(running_demo.vm.chroot_run(["cat", SETTINGS]).stdout)["window.title"] == title
    assert _stat(running_demo, SETTINGS) == owner
    assert EXTENSION in _extensions(running_demo)
    assert running_demo.vm.systemctl("is-active", f"code-server@{IDE_USER}.service") == "active"
    with launched_browser(running_demo) as browser, signed_in_workbench(running_demo, browser) as page:
        _shows(page, title)

    # The new VM can add snapshots but not remove the one the old VM took (the server is append-only):
    # with the account of its root-only file, listing answers 200 and deleting that snapshot 403.
    # (A `restic forget` retries for about a minute, and one cut short leaves an exclusive lock behind.)
    answers = running_demo.vm.chroot_run(["python3", "-c", _AS_THE_VM, render.RESTIC_REPOSITORY_FILE, taken]).stdout.split()
    assert answers == ["200", "403"], answers
    assert taken in [x["id"] for x in _snapshots(running_demo)]
