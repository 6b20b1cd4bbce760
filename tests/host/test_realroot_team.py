"""A team VM's host steps, run twice over real SSH on a fresh Debian 13 root (no init: units are
enabled, not started), then attacked from one workspace account.

The commands come from the mocked graph of the stack's own VM with two workspaces, so what runs is
what `pulumi up` would send. What a booted VM adds (socket activation, the idle stop, hidepid's
process hiding, the browser) is the demo's to prove; here: the accounts, the ownership map, the
team's files validated by their own tools on the VM (systemd-analyze, squid -k parse), a second
converge that changes nothing, and, as workspace A, B's home, folder, volume, gateway socket
directory and proxy port out of reach (the firewall hook's chains are live in the root's network
namespace)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from components.settings.workspaces import UID_RANGE
from scripts.lab.converge.realhost import HostUnderTest, host_under_test
from scripts.lab.vm.runner import run_steps

pytestmark = pytest.mark.slow

TEAM = [{"name": "ana", "users": ["66666666-7777-8888-9999-000000000001"], "ideEgressDomains": ["git.example.com"]},
        {"name": "ben", "users": ["66666666-7777-8888-9999-000000000002"], "ideEgressDomains": ["deb.example.org"],
         "limits": {"memoryMax": "1G", "cpuQuota": "50%", "tasksMax": 256}}]
OVERRIDES: dict[str, Any] = {"entraGroupName": None, "entraGroupMembers": None, "workspaces": json.dumps(TEAM)}
VOLUME = "/mnt/cs-workspace-volume"


@pytest.fixture(scope="module")
def team_host() -> Iterator[HostUnderTest]:
    with host_under_test(**OVERRIDES) as h:
        yield h


@pytest.fixture(scope="module")
def converged(team_host: HostUnderTest) -> dict[str, Any]:
    first = run_steps(team_host.root.runner(), team_host.steps())
    files = team_host.managed_files()
    before = team_host.snapshot(files)
    second = run_steps(team_host.root.runner(), team_host.steps())
    return {"first": first, "second": second, "before": before, "after": team_host.snapshot(files)}


def sh(host: HostUnderTest, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return host.root.chroot_run(["/bin/bash", "-c", script], check=check)


def as_account(host: HostUnderTest, account: str, script: str) -> subprocess.CompletedProcess[str]:
    """`script` run by `account` (its uid, gid and groups only, as systemd's User= runs it)."""
    return host.root.chroot_run(["/bin/bash", "-c", script], user=account, check=False)


def test_the_team_converges_and_a_second_converge_changes_nothing(converged: dict[str, Any]) -> None:
    first = {r.name: r.result.stdout for r in converged["first"]}
    assert "changed: workspace account ws-ana created" in first["vm-accounts"]
    assert "changed: hcs-ws-proxy@ws-ben.socket enabled" in first["vm-code-server"]
    assert "changed: hcs-backup@ws-ana.timer enabled" in first["vm-backup"]
    for run in converged["second"]:
        assert "changed: " not in run.result.stdout, (run.name, run.result.stdout)
    assert converged["after"] == converged["before"]


def test_each_workspace_is_its_own_locked_account_in_the_range_and_there_is_no_ide_user(team_host: HostUnderTest, converged: dict[str, Any]) -> None:
    for account in ("ws-ana", "ws-ben"):
        entry = sh(team_host, f"getent passwd {account}").stdout.strip().split(":")
        assert UID_RANGE[0] <= int(entry[2]) <= UID_RANGE[1] and UID_RANGE[0] <= int(entry[3]) <= UID_RANGE[1]
        assert entry[5] == f"/home/{account}" and entry[6] == "/bin/bash"
        assert sh(team_host, f"id -nG {account}").stdout.split() == [account]
        assert sh(team_host, f"passwd -S {account}").stdout.split()[1] == "L"
        assert "not allowed" in sh(team_host, f"sudo -l -U {account}").stdout
    assert sh(team_host, "getent passwd coder", check=False).returncode == 2


def test_the_ownership_map_of_the_team(converged: dict[str, Any]) -> None:
    snap = converged["after"]
    expected = {VOLUME: "root:root:755", "/run/hcs-ws-gw": "root:codesvc:750"}
    for account in ("ws-ana", "ws-ben"):
        expected |= {f"/home/{account}": f"{account}:{account}:750", f"/home/{account}/workspace": f"{account}:{account}:700",
                     f"{VOLUME}/{account}": f"{account}:{account}:700",
                     f"/etc/systemd/system/code-server@{account}.service.d/20-hcs-workspace.conf": "root:root:644"}
    for path, meta in expected.items():
        assert snap[path].split()[-1] == meta, path


def test_from_workspace_a_nothing_of_b_is_reachable(team_host: HostUnderTest, converged: dict[str, Any]) -> None:
    sh(team_host, "echo secret-of-ben > /home/ws-ben/workspace/notes && chown ws-ben: /home/ws-ben/workspace/notes")
    attempts = {
        "ben's home": "ls /home/ws-ben",
        "b's notes": "cat /home/ws-ben/workspace/notes",
        "b's volume": f"ls {VOLUME}/ws-ben",
        "the gateway's sockets": "ls /run/hcs-ws-gw",
        "b's drop-in": "echo MemoryMax=infinity >> /etc/systemd/system/code-server@ws-ben.service.d/20-hcs-workspace.conf",
    }
    for what, script in attempts.items():
        done = as_account(team_host, "ws-ana", script)
        assert done.returncode != 0 and "Permission denied" in done.stderr, (what, done.stdout, done.stderr)
    # B itself reads its own notes: the refusals above are A's, not a broken home.
    assert as_account(team_host, "ws-ben", "cat /home/ws-ben/workspace/notes").stdout.strip() == "secret-of-ben"


def test_each_proxy_port_answers_its_own_workspace_only(team_host: HostUnderTest, converged: dict[str, Any]) -> None:
    """A listener on each workspace's proxy port (Squid is not started without an init): the live
    firewall hook lets its own account connect and refuses the other."""
    ports = {"ws-ana": 3128, "ws-ben": 3129}
    listener = textwrap.dedent("""
        import socket, sys, time
        servers = []
        for port in map(int, sys.argv[1:]):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", port)); s.listen(8)
            servers.append(s)
        time.sleep(30)
    """)
    server = team_host.root.chroot_spawn(["python3", "-c", listener, *map(str, ports.values())])
    try:
        probe = "python3 -c 'import socket,sys; socket.create_connection((\"127.0.0.1\", int(sys.argv[1])), timeout=3)' "
        for _ in range(50):
            if as_account(team_host, "ws-ana", probe + "3128").returncode == 0:
                break
        for account, own in ports.items():
            for port in ports.values():
                done = as_account(team_host, account, probe + str(port))
                assert (done.returncode == 0) == (port == own), (account, port, done.stderr[-300:])
    finally:
        server.stop()


def test_a_workspace_is_restored_from_its_own_snapshots_only(team_host: HostUnderTest, converged: dict[str, Any]) -> None:
    """The installed template's own backup command for ws-ana (its ExecStart with %i = ws-ana, into a
    repository in the root: the real one is a rest-server the root cannot reach), then
    `hcs-restore --workspace ana` as the operator runs it; ben has no snapshot of its own to take."""
    sh(team_host, "printf %s /var/tmp/hcs-restic > /etc/restic/hcs-backup.repository && set -a && . /etc/restic/hcs-backup.env"
                  " && restic init -q")
    for account in ("ana", "ben"):
        sh(team_host, f"echo notes-of-{account} > /home/ws-{account}/workspace/notes && chown ws-{account}: /home/ws-{account}/workspace/notes")
    unit = sh(team_host, "cat /etc/systemd/system/hcs-backup@.service").stdout
    command = unit.split("ExecStart=", 1)[1].split("\nCacheDirectory=", 1)[0].replace("%i", "ws-ana")
    sh(team_host, "set -a && . /etc/restic/hcs-backup.env && set +a && " + command)
    tags = json.loads(sh(team_host, "set -a && . /etc/restic/hcs-backup.env && restic snapshots --json").stdout)
    assert [sorted(t["tags"]) for t in tags] == [["hardened-code-server", "ws:ws-ana"]]
    refused = sh(team_host, "hcs-restore --workspace ana", check=False)
    assert refused.returncode == 1 and "files already in /home/ws-ana/workspace" in refused.stderr
    sh(team_host, "rm /home/ws-ana/workspace/notes")
    restored = sh(team_host, "hcs-restore --workspace ana", check=False)
    assert restored.returncode == 0, restored.stderr
    assert sh(team_host, "stat -c '%U %a' /home/ws-ana/workspace/notes; cat /home/ws-ana/workspace/notes").stdout.split() == [
        "ws-ana", "644", "notes-of-ana"]
    # ana's snapshot is no snapshot of ben's: nothing of ana's lands in ben's folder, ben's notes stay.
    other = sh(team_host, "hcs-restore --workspace ben --force", check=False)
    assert other.returncode == 1 and "not restored" in other.stderr
    assert sh(team_host, "ls -A /home/ws-ben/workspace").stdout.split() == ["notes"]
    for argument, error in (("nobody", "no workspace nobody on this VM"), ("../ws-ana", "usage: hcs-restore --workspace NAME")):
        done = sh(team_host, f"hcs-restore --workspace {argument}", check=False)
        assert done.returncode in (1, 2) and error in done.stderr, (argument, done.stderr)
