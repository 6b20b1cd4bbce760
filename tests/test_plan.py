"""`scripts/tools/plan.py` end to end, as a new user runs it: a real subprocess, real files."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from scripts import REPOSITORY
from scripts.tools import plan
from scripts.tools.offline import PlanResult, StackConfig, placeholder_secret


def _plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.tools.plan", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=120)


def test_plan_prints_the_tree_and_writes_the_three_outputs(tmp_path: Path, dev_config: StackConfig) -> None:
    out = tmp_path / "plan"
    done = _plan("--stack", "dev", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "hcs:identity:EntraAccess  entra" in done.stdout
    assert "    azuread:index/servicePrincipal:ServicePrincipal  entra-oauth2-proxy-sp" in done.stdout
    assert "placeholders" in done.stdout and "vmSshPrivateKey" in done.stdout
    resources = json.loads((out / "resources.json").read_text())
    assert {"urn", "type", "name", "parent", "inputs", "dependencies"} <= set(resources[0])
    types = {r["type"] for r in resources}
    assert {
        "azuread:index/application:Application",
        "azuread:index/servicePrincipal:ServicePrincipal",
        "azuread:index/group:Group",
        "azuread:index/appRoleAssignment:AppRoleAssignment",
        "azuread:index/applicationPassword:ApplicationPassword",
    } <= types
    assert json.loads((out / "outputs.json").read_text())["url"] == "https://code.example.com"
    assert (out / "files").is_dir()


def test_no_secret_or_placeholder_appears_unmasked_under_the_plan(tmp_path: Path, dev_config: StackConfig) -> None:
    out = tmp_path / "plan"
    assert _plan("--stack", "dev", "--out", str(out)).returncode == 0
    needles = [placeholder_secret(k) for k in dev_config.placeholders]
    needles += [n.strip().splitlines()[1] for n in needles if "PRIVATE KEY" in n]  # the key body alone
    needles.append("mock-secret-")  # what the mocks return for generated secrets
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for needle in needles:
                assert needle not in text, f"{needle[:20]}… leaked into {path}"


def test_bad_config_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).symlink_to(REPOSITORY / name)
    stack = (REPOSITORY / "Pulumi.dev.yaml").read_text()
    stack = stack.replace("code.example.com", "code")
    stack += "  hardened-code-server:vmSshPort: twenty-two\n  hardened-code-server:gatewayPort: 8080\n"
    (tmp_path / "Pulumi.broken.yaml").write_text(stack)
    done = _plan("--stack", "broken", "--project-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("config error: ") for line in lines), lines
    assert {line.split(":")[1].strip() for line in lines} == {"hostname", "vmSshPort", "gatewayPort"}
    assert not (tmp_path / "out").exists()  # nothing written for a bad config


def test_unknown_stack_is_a_clear_error() -> None:
    done = _plan("--stack", "nosuchstack", "--out", "/nonexistent/never-written")
    assert done.returncode == 2
    assert "no stack file Pulumi.nosuchstack.yaml" in done.stderr


def test_two_plans_of_one_config_are_byte_identical_whatever_the_registration_order(tmp_path: Path, monkeypatch) -> None:
    """Outputs resolve concurrently, so the order of registrations (and of each one's dependencies) varies
    from run to run; a review diffs two plans, so here the second run sees every order reversed."""
    assert plan.main(["--stack", "digitalocean", "--out", str(tmp_path / "a")]) == 0
    real = plan.run_program

    def reversed_run(*args: object) -> PlanResult:
        result = real(*args)
        return PlanResult([dataclasses.replace(r, dependencies=r.dependencies[::-1]) for r in reversed(result.resources)], result.outputs)

    monkeypatch.setattr(plan, "run_program", reversed_run)
    assert plan.main(["--stack", "digitalocean", "--out", str(tmp_path / "b")]) == 0
    written = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert [f for f in written if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()] == []
