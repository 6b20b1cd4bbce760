"""The IDE terminal's record, run by a real interactive bash: what it writes, and for whom.

`logger` is replaced by a stand-in on PATH that appends what it would send to the journal to a file
(its arguments, then each line it reads): the hook's own logic (which commands, which session, the
history's position at the first prompt) is what is tested here; the journal itself, with journald's
uid and unit, is the demo's (tests/demo/test_attribution.py).
"""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

import pytest

from components.host import render_terminal as t
from components.settings.workspaces import UID_RANGE

LOGGER_STAND_IN = '#!/bin/sh\nwhile IFS= read -r line; do printf \'%s %s\\n\' "$*" "$line" >> "$HCS_RECORD"; done\n'


def _shell(tmp_path: Path, user: str | tuple[int, int], typed: str, uid: int | None = None) -> list[str]:
    """Run an interactive bash with the hook as its rc file, `typed` on its input; the record's lines.
    With `uid`, a stand-in `id` on PATH says the shell runs as that uid (a workspace account's)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "logger").write_text(LOGGER_STAND_IN)
    (bin_dir / "logger").chmod(0o755)
    if uid is not None:
        (bin_dir / "id").write_text(f'#!/bin/sh\n[ "$1" = -u ] && echo {uid} && exit 0\nexec /usr/bin/id "$@"\n')
        (bin_dir / "id").chmod(0o755)
    hook = tmp_path / "hcs-terminal.bash"
    hook.write_text(t.terminal_recorder(user))
    record = tmp_path / "record"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "HISTFILE": str(tmp_path / "history"), "HCS_RECORD": str(record)}
    subprocess.run(["bash", "--rcfile", str(hook), "-i"], input=typed, env=env, capture_output=True, text=True, timeout=30, check=True)
    deadline = time.monotonic() + 5  # the logger stand-in finishes after the shell
    while not (record.exists() and record.read_text().rstrip().endswith(" closed")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return record.read_text().splitlines() if record.exists() else []


def test_the_hook_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", "-c", t.terminal_recorder("coder")], check=True)


def test_each_command_typed_is_recorded_once_in_one_session(tmp_path: Path) -> None:
    lines = _shell(tmp_path, getpass.getuser(), "echo one\necho two\nfor i in 1 2; do\necho $i\ndone\nexit\n")
    assert all(line.startswith(f"-t {t.TERMINAL_LOG_TAG} --id=") for line in lines), lines
    sessions = {line.split()[3] for line in lines}
    assert len(sessions) == 1, lines
    said = [line.split(" ", 4)[4] for line in lines]
    assert said[0].startswith("opened tty=") and said[-1] == "closed"
    assert said[1:-1] == ["command: echo one", "command: echo two", "command: for i in 1 2; do echo $i; done"]


def test_a_new_terminal_does_not_record_the_last_sessions_history(tmp_path: Path) -> None:
    _shell(tmp_path, getpass.getuser(), "echo earlier\nexit\n")
    (tmp_path / "record").unlink()
    said = [line.split(" ", 4)[4] for line in _shell(tmp_path, getpass.getuser(), "echo later\nexit\n")]
    assert said[1:] == ["command: echo later", "closed"], said


def test_other_accounts_are_not_recorded(tmp_path: Path) -> None:
    """An admin's shell (any account but the IDE user's) is not this record's: auditd's, on a real VM."""
    assert _shell(tmp_path, f"not-{getpass.getuser()}", "echo admin\nexit\n") == []


@pytest.mark.parametrize(("uid", "recorded"), [(20000, True), (29999, True), (19999, False), (30000, False), (0, False)])
def test_a_team_records_every_workspace_account_and_no_other(tmp_path: Path, uid: int, recorded: bool) -> None:
    """For a team the hook matches the workspaces' uid range (`UID_RANGE`), both ends included."""
    lines = _shell(tmp_path, UID_RANGE, "echo work\nexit\n", uid=uid)
    assert ([line.split(" ", 4)[4] for line in lines][1:] == ["command: echo work", "closed"]) if recorded else lines == []
