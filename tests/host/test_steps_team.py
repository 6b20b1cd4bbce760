"""A team's host steps, per VM, from the real settings parser (no Pulumi, no VM): each VM makes
accounts, homes, sockets, proxy ports, backups and firewall grants for its own workspaces only,
and nothing of the single IDE user."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from components.host import render, render_workspaces as rw
from components.host.steps import Step, host_steps
from components.settings import Machine, Settings
from components.settings.workspaces import UID_RANGE
from scripts.lab.example import dev_settings

ALICE, BOB, CAROL = (f"66666666-7777-8888-9999-00000000000{n}" for n in (1, 2, 3))
DEVS = "77777777-8888-9999-0000-000000000001"
SECOND_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcXOcqc7Ue0zSkgIV7WhVKp0fHHTmoVBaWjC4O1lTF3"
TEAM: list[dict[str, Any]] = [
    {"name": "alice", "users": [ALICE], "ideEgressDomains": ["git.example.com"]},
    {"name": "bob", "users": [BOB]},
    {"name": "carol", "users": [CAROL], "groups": [DEVS], "vm": "dmz2", "ideEgressDomains": ["*.pypi.org"],
     "limits": {"memoryMax": "4G", "cpuQuota": "200%", "tasksMax": 4096}},
]


@pytest.fixture(scope="module")
def team() -> Settings:
    return dev_settings(entraGroupName=None, entraGroupMembers=None, workspaces=TEAM, ideEgressDomains=[],
                        vms=[{"name": "dmz2", "address": "192.0.2.11", "hostKey": SECOND_KEY}])


def steps_of(machine: Machine, settings: Settings) -> dict[str, Step]:
    return {s.name: s for s in host_steps(machine.topology, settings.host, workspaces=machine.workspaces)}


def files_of(step: Step) -> dict[str, str]:
    return {f.path: f.content for f in step.files}


def test_each_vm_makes_its_own_workspace_accounts_in_the_range_and_no_ide_user(team: Settings) -> None:
    first, second = team.machines
    for machine, accounts in ((first, "ws-alice ws-bob"), (second, "ws-carol")):
        env = steps_of(machine, team)["accounts"].env
        assert env["HCS_IDE_USER"] == "" and env["HCS_WORKSPACES"] == accounts
        assert env["HCS_WORKSPACE_UIDS"] == f"{UID_RANGE[0]} {UID_RANGE[1]}"
        assert steps_of(machine, team)["code-server"].env["HCS_WORKSPACES"] == accounts
    assert str(second.topology.vm.address) == "192.0.2.11" and second.topology.vm.host_key == SECOND_KEY


def test_the_ownership_map_gives_each_workspace_its_own_home_folder_and_volume_directory(team: Settings) -> None:
    first = team.machines[0]
    rows = [line.split() for line in steps_of(first, team)["layout"].env["HCS_PATHS"].splitlines()]
    paths = {path: (mode, owner, group) for _kind, mode, owner, group, path in rows}
    ide, volume = team.topology.accounts.ide_user, team.host.workspace_volume
    assert not [row for row in rows if ide in row[2:]], "a team VM has no IDE user"
    assert paths[volume] == ("0755", "root", "root")
    for account in ("ws-alice", "ws-bob"):
        assert paths[f"/home/{account}"] == ("0750", account, account)
        assert paths[f"/home/{account}/workspace"] == ("0700", account, account)
        assert paths[f"{volume}/{account}"] == ("0700", account, account)
    # The volume exists before its directories are made in it (the step reads the rows in order).
    order = [row[-1] for row in rows]
    assert order.index(volume) < order.index(f"{volume}/ws-alice")
    assert "ws-carol" not in steps_of(first, team)["layout"].env["HCS_PATHS"]
    tmpfiles = files_of(steps_of(first, team)["layout"])[render.SOCKET_TMPFILES]
    assert f"d {rw.WORKSPACE_GATEWAY_SOCKET_DIR} 0750 root {team.topology.accounts.service_user} -" in tmpfiles


def test_code_server_files_are_the_teams_with_a_drop_in_per_workspace_of_the_vm(team: Settings) -> None:
    first, second = team.machines
    files = files_of(steps_of(first, team)["code-server"])
    assert render.CODE_SERVER_CONFIG not in files and rw.CODE_SERVER_CONFIG in files
    drop_ins = {path for path in files if path.endswith("20-hcs-workspace.conf")}
    assert drop_ins == {f"/etc/systemd/system/code-server@{a}.service.d/20-hcs-workspace.conf" for a in ("ws-alice", "ws-bob")}
    carol = files_of(steps_of(second, team)["code-server"])["/etc/systemd/system/code-server@ws-carol.service.d/20-hcs-workspace.conf"]
    assert "MemoryMax=4G" in carol and "CPUQuota=200%" in carol and "TasksMax=4096" in carol


def test_each_vms_proxy_listens_for_its_own_workspaces_and_allows_only_their_names(team: Settings) -> None:
    first, second = team.machines
    squid = {m.name: files_of(steps_of(m, team)["ide-proxy"])[render.SQUID_CONFIG] for m in team.machines}
    assert re.findall(r"^http_port (\S+) name=(\S+)$", squid["vm"], re.M) == [("127.0.0.1:3128", "ws-alice")]
    assert re.findall(r"^http_port (\S+) name=(\S+)$", squid["dmz2"], re.M) == [("127.0.0.1:3128", "ws-carol")]
    assert "pypi" not in squid["vm"] and "git.example.com" not in squid["dmz2"]
    # The VM's own flows off it open its workspaces' names, not the other VM's.
    assert [d.name for d in first.topology.ide_egress] == ["git.example.com"]
    assert [d.name for d in second.topology.ide_egress] == ["*.pypi.org"]
    hook = files_of(steps_of(first, team)["firewall"])[render.UFW_AFTER_INIT]
    assert "own ws-alice 3128" in hook and "ws-carol" not in hook and "ws-bob 3" not in hook


def test_the_squid_config_of_each_vm_parses(team: Settings, tmp_path: Any) -> None:
    """Debian's Squid reads each VM's team config (`squid -k parse`), as the ide-proxy step validates it."""
    for machine in team.machines:
        conf = tmp_path / f"{machine.name}.conf"
        conf.write_text(files_of(steps_of(machine, team)["ide-proxy"])[render.SQUID_CONFIG])
        done = subprocess.run(["squid", "-k", "parse", "-f", str(conf)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]


def test_a_backup_timer_per_workspace_and_the_restore_takes_a_workspace(team: Settings) -> None:
    first = team.machines[0]
    backup = steps_of(first, team)["backup"]
    assert backup.env["HCS_BACKUP_TIMERS"] == "hcs-backup@ws-alice.timer hcs-backup@ws-bob.timer"
    paths = files_of(backup)
    assert rw.BACKUP_SERVICE_UNIT in paths and rw.BACKUP_TIMER_UNIT in paths
    assert "/etc/systemd/system/hcs-backup.service" not in paths
    restore = paths[render.RESTORE_COMMAND]
    assert "usage: hcs-restore --workspace NAME [--force] [SNAPSHOT]" in restore and '--tag "ws:$account"' in restore
    # What the backup set names exists before a workspace's first start (else its first backup fails).
    rows = steps_of(first, team)["layout"].env["HCS_PATHS"]
    assert "dir 0700 ws-alice ws-alice /home/ws-alice/.local/share/code-server" in rows


def test_detection_matches_the_workspace_range(team: Settings) -> None:
    first = team.machines[0]
    steps = steps_of(first, team)
    recorder = next(iter(files_of(steps["terminal-record"]).values()))
    audit = "".join(files_of(steps["audit"]).values())
    first_uid, last_uid = UID_RANGE
    assert f"$(id -u) -ge {first_uid} && $(id -u) -le {last_uid}" in recorder
    assert f"-F uid>={first_uid} -F uid<={last_uid} -k hcs-ide-exec" in audit
    # every workspace's drop-in and the team's unit templates, under one watch that needs no new rule per workspace
    assert "-w /etc/systemd/system -p wa -k hcs-code-server" in audit.splitlines()
    assert team.topology.accounts.ide_user not in audit


def test_the_single_user_stack_is_one_machine_with_its_ide_user() -> None:
    settings = dev_settings()
    (machine,) = settings.machines
    assert machine.workspaces == () and machine.topology == settings.topology and machine.resource("vm") == "vm"
    steps = steps_of(machine, settings)
    assert steps["accounts"].env["HCS_IDE_USER"] == settings.topology.accounts.ide_user
    assert "HCS_WORKSPACES" not in steps["accounts"].env and "HCS_BACKUP_TIMERS" not in steps["backup"].env
