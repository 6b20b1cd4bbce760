"""The advisory check (scripts/tools/advisories.py) against a recorded OSV feed, no network.

The dev stack's pins pass; the same stack with oauth2-proxy held back at v7.15.1 fails, naming the
advisories fixed in v7.15.2. The feed is a recorded shape, not live data (tests/data/osv/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import REPOSITORY
from scripts.tools import advisories

FEED = Path(__file__).parent / "data" / "osv" / "advisories.json"
FIXED_IN_7_15_2 = {"GHSA-5hvv-m4w4-gf6v", "GHSA-7x63-xv5r-3p2x", "GHSA-c5c4-8r6x-56w3"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.tools.advisories", *args], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=60)


def _project_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the project's config with one pin changed in Pulumi.dev.yaml."""
    shutil.copy(REPOSITORY / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    text = (REPOSITORY / "Pulumi.dev.yaml").read_text()
    assert text.count(old) == 1, old
    (tmp_path / "Pulumi.dev.yaml").write_text(text.replace(old, new))
    return tmp_path


def test_the_dev_stacks_pins_pass_the_recorded_feed() -> None:
    result = _run("--stack", "dev", "--feed", str(FEED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "code-server 4.139.1" in result.stdout and "oauth2-proxy 7.15.3" in result.stdout


def test_an_old_oauth2_proxy_pin_fails_naming_each_advisory(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "oauth2-proxy:v7.15.3@", "oauth2-proxy:v7.15.1@")
    result = _run("--stack", "dev", "--feed", str(FEED), "--project-dir", str(project))
    assert result.returncode == 1, result.stdout + result.stderr
    named = {line.split(":")[0].split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert named == FIXED_IN_7_15_2
    assert "fixed in 7.15.2" in result.stdout and "oauth2ProxyImage in Pulumi.dev.yaml" in result.stdout


def test_an_old_code_server_pin_fails(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "codeServerVersion: 4.139.1", "codeServerVersion: 4.99.3")
    result = _run("--stack", "dev", "--feed", str(FEED), "--project-dir", str(project))
    assert result.returncode == 1 and "GHSA-p483-wpfp-42cj" in result.stdout


def test_a_pin_without_a_tag_is_an_error_not_a_pass(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "caddy:2.11.7-alpine@", "caddy@")
    result = _run("--stack", "dev", "--feed", str(FEED), "--project-dir", str(project))
    assert result.returncode == 2 and "no release tag" in result.stderr


@pytest.mark.parametrize(("version", "events", "affected"), [
    ("7.15.1", [{"introduced": "0"}, {"fixed": "7.15.2"}], True),
    ("7.15.2", [{"introduced": "0"}, {"fixed": "7.15.2"}], False),
    ("7.4.0", [{"introduced": "7.5.0"}, {"fixed": "7.15.2"}], False),
    ("7.15.4", [{"introduced": "7.15.2"}, {"last_affected": "7.15.4"}], True),
    ("7.15.5", [{"introduced": "7.15.2"}, {"last_affected": "7.15.4"}], False),
    ("7.15.2-rc.1", [{"introduced": "0"}, {"fixed": "7.15.2"}], True),
    ("2.10.0", [{"introduced": "2.0.0"}, {"fixed": "2.9.1"}, {"introduced": "2.10.0"}, {"fixed": "2.10.3"}], True),
    ("2.9.5", [{"introduced": "2.0.0"}, {"fixed": "2.9.1"}, {"introduced": "2.10.0"}, {"fixed": "2.10.3"}], False),
])
def test_osv_range_semantics(version: str, events: list[dict[str, str]], affected: bool) -> None:
    assert advisories._in_range(version, events)[0] is affected


def test_image_tags_give_release_versions() -> None:
    assert advisories._image_version("quay.io/oauth2-proxy/oauth2-proxy:v7.15.3@sha256:" + "0" * 64) == "7.15.3"
    assert advisories._image_version("docker.io/library/caddy:2.11.7-alpine@sha256:" + "0" * 64) == "2.11.7"
    assert advisories._image_version("registry.example:5000/caddy@sha256:" + "0" * 64) is None


def test_the_scheduled_workflow_runs_the_check_online_with_pinned_actions() -> None:
    import yaml

    workflow = yaml.safe_load((REPOSITORY / ".github" / "workflows" / "advisories.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert all(len(s["uses"].split("@")[1]) == 40 for s in steps if "uses" in s)
    assert any("-m scripts.tools.advisories" in s.get("run", "") and "--feed" not in s.get("run", "") for s in steps)
    assert "schedule" in workflow[True]  # YAML 1.1 reads the key `on` as True
