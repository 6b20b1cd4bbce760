"""The Renovate configuration is accepted by Renovate's own validator, and covers every pin.

The validator is the npm package's `renovate-config-validator --strict` (installed once into the
machine cache by scripts/tools/renovate_cache.py; the test fails loudly if it cannot be installed): a key
Renovate does not know, or one it would migrate, fails here instead of being ignored by the app.
The fast tests check that the custom managers' regexes actually match the stack files, read the
way Renovate reads them (the matchStrings are JavaScript/RE2 regexes; these are plain enough that
Python's `re` reads them alike once `(?<name>` is written `(?P<name>`).
"""

from __future__ import annotations

import json
import re

import pytest

from scripts import REPOSITORY
from scripts.tools import renovate_cache

CONFIG = REPOSITORY / ".github" / "renovate.json"


def _config() -> dict:
    return json.loads(CONFIG.read_text())


def _matches(manager: dict, text: str) -> list[dict[str, str]]:
    out = []
    for pattern in manager["matchStrings"]:
        out += [m.groupdict() for m in re.finditer(pattern.replace("(?<", "(?P<"), text)]
    return out


@pytest.mark.slow
def test_renovates_own_validator_accepts_the_config() -> None:
    try:
        result = renovate_cache.validate(CONFIG)
    except renovate_cache.CacheError as error:
        pytest.fail(f"cannot install renovate {renovate_cache.RENOVATE_VERSION} from npm: {error}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Config validated successfully" in output and "as repo config" in output, output
    assert "RE2 not usable" not in output, output  # the regexes were judged by the engine Renovate runs


@pytest.mark.slow
def test_the_validator_rejects_a_broken_config(tmp_path) -> None:
    """Proof the validator judges: an unknown option fails under --strict."""
    broken = tmp_path / "renovate.json"
    broken.write_text(json.dumps({**_config(), "pinDigestz": True}))
    assert renovate_cache.validate(broken).returncode != 0


def test_the_image_manager_matches_every_pinned_image() -> None:
    images = next(m for m in _config()["customManagers"] if m.get("datasourceTemplate") == "docker")
    text = (REPOSITORY / "Pulumi.dev.yaml").read_text()
    found = {(m["depName"], m["currentValue"]) for m in _matches(images, text)}
    assert found == {
        ("docker.io/library/caddy", "2.11.7-alpine"),
        ("quay.io/oauth2-proxy/oauth2-proxy", "v7.15.3"),
        ("docker.io/cloudflare/cloudflared", "2025.11.1"),
    }
    assert all(m["currentDigest"].startswith("sha256:") for m in _matches(images, text))


def test_the_code_server_manager_matches_the_pinned_version_and_asks_a_human_for_the_sha() -> None:
    config = _config()
    manager = next(m for m in config["customManagers"] if m.get("depNameTemplate") == "coder/code-server")
    for stack in REPOSITORY.glob("Pulumi.*.yaml"):
        text = stack.read_text()
        if "codeServerVersion:" in text:
            assert [m["currentValue"] for m in _matches(manager, text)] == re.findall(r"codeServerVersion: (\S+)", text)
    assert "checksum" in manager["description"] and "sha256sum" in manager["description"]
    rule = next(r for r in config["packageRules"] if r.get("matchPackageNames") == ["coder/code-server"])
    assert "needs-manual-sha256" in rule["addLabels"] and rule["groupName"]
    assert rule.get("dependencyDashboardApproval") is True and "automerge" not in rule


def test_actions_and_python_pins_are_managed() -> None:
    config = _config()
    assert {"pip_requirements", "github-actions", "custom.regex"} <= set(config["enabledManagers"])
    assert any(r.get("matchManagers") == ["github-actions"] and r.get("pinDigests") for r in config["packageRules"])
    assert config["automerge"] is False
    # Every workflow action is already pinned by full SHA, so Renovate only moves SHAs.
    for workflow in (REPOSITORY / ".github" / "workflows").glob("*.yml"):
        for ref in re.findall(r"uses: \S+@(\S+)", workflow.read_text()):
            assert re.fullmatch(r"[0-9a-f]{40}", ref), (workflow.name, ref)
