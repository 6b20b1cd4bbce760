"""The `first-boot` step's verdict on cloud-init's exit status (`cloud-init status --wait`).

cloud-init documents 0 (done), 1 (error) and, from 23.4, 2 (done with recoverable errors). A stand-in
`cloud-init` on PATH answers each in turn here, so the step's decision is checked without a VM; the
real cloud-init runs the step on the demo's VM (tests/demo), which boots from the program's user-data.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.host.install import script_text

STAND_IN = """#!/bin/sh
# stand-in for cloud-init: `status --wait` exits with $HCS_TEST_STATUS, `status --long` describes it
case "$*" in
  "status --wait") echo "status: whatever"; exit "$HCS_TEST_STATUS" ;;
  "status --long") echo "status: error"; echo "errors: - (scripts_user) ran but failed"; exit 1 ;;
esac
exit 64
"""


def _run(tmp_path: Path, status: int | None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if status is not None:
        (bin_dir / "cloud-init").write_text(STAND_IN)
        (bin_dir / "cloud-init").chmod(0o755)
    # PATH: the stand-in only (this machine's own cloud-init must not answer); the step needs bash's builtins alone.
    env = {"PATH": str(bin_dir), "HCS_TEST_STATUS": str(status or 0), "HOME": str(tmp_path)}
    return subprocess.run(["/bin/bash", "-c", script_text("first-boot"), "first-boot"], env=env, capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)


def test_done_lets_the_setup_go_on(tmp_path: Path) -> None:
    result = _run(tmp_path, 0)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["cloud-init: done", "first-boot: unchanged"]


@pytest.mark.parametrize("status", [1, 2], ids=["error", "recoverable-error"])
def test_any_error_stops_the_setup_with_cloud_inits_own_account(tmp_path: Path, status: int) -> None:
    result = _run(tmp_path, status)
    assert result.returncode != 0
    assert f"cloud-init finished with status {status}" in result.stderr
    assert "(scripts_user) ran but failed" in result.stderr


def test_a_vm_without_cloud_init_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode != 0 and "cloud-init is not installed" in result.stderr
