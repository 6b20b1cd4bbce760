"""Fixtures of the engine tests: the built CLI (a failed build fails the tests, never skips them),
the FortiOS emulator, and one stack of the engine test project made with real `pulumi` commands."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.buildcache import CacheError
from scripts.go_cache import pulumi_cli
from tests.engine.cli import REPO_ROOT, Engine
from tests.fortigate.emulator import FortiOSEmulator, TokenScope, make_certificate
from tests.support import TEST_SECRETS

PROJECT = "hardened-code-server"
#: The emulator's API token (test-only, long and unique so a leak is findable in any output).
TOKEN = "tok-engine-Rj4Wq9Ze2Lx7Vb5Nc8Hs3Pd6"
SECRETS: dict[str, str] = {**TEST_SECRETS, "fortigateApiToken": TOKEN}


@pytest.fixture(scope="session")
def cli() -> Path:
    try:
        return pulumi_cli()
    except CacheError as error:
        pytest.fail(f"the Pulumi CLI cannot be built, so the engine tests cannot run: {error}")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FortiOSEmulator]:
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    device = FortiOSEmulator(cert, key, {TOKEN: TokenScope(vdoms=frozenset({"root"}))}).start()
    device.ca_bundle = cert  # type: ignore[attr-defined]
    yield device
    device.stop()


def stack_values(emulator: FortiOSEmulator) -> dict[str, Any]:
    """The example stack's plain values (Pulumi.dev.yaml), pointed at the emulator."""
    stack_file = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8"))["config"]
    values = {key.partition(":")[2]: value for key, value in stack_file.items() if key.startswith(f"{PROJECT}:")}
    values.update(fortigateUrl=emulator.url, fortigateCaBundle=str(emulator.ca_bundle))  # type: ignore[attr-defined]
    return values


def project_file(values: dict[str, Any]) -> dict[str, Any]:
    """The product's Pulumi.yaml for the engine test project, less the declarations the CLI would
    enforce as required although the settings treat them as optional.

    The real CLI refuses a stack that leaves a declared key without `default` unset ("Stack ... is
    missing configuration values ..."); the mock runtime never checked. The product declares 44 such
    keys, many optional by design (the other group key, the IPS sensor, the CA bundle, ...).
    Until Pulumi.yaml and the settings agree on that (reported in issue 16), the engine project
    drops exactly those declarations; `test_the_cli_enforces_every_declared_key` keeps the finding.
    """
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    project["description"] = "hardened-code-server engine test project (tests/engine)"
    project["config"] = {key: decl for key, decl in project["config"].items()
                         if "default" in decl or key in values or key in SECRETS}
    return project


def unset_required(values: dict[str, Any]) -> list[str]:
    """Keys the product's Pulumi.yaml declares without a default that `values` and SECRETS leave unset."""
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    return sorted(key for key, decl in declared.items() if "default" not in decl and key not in values and key not in SECRETS)


def config_json(values: dict[str, Any]) -> str:
    """`values` in the format of `pulumi config --json` (what `pulumi config set-all --json` reads)."""
    entries = {}
    for key, value in values.items():
        typed = {"value": value} if isinstance(value, str) else {"value": json.dumps(value), "objectValue": value}
        entries[f"{PROJECT}:{key}"] = {**typed, "secret": False}
    return json.dumps(entries)


@pytest.fixture(scope="module")
def engine(cli: Path, emulator: FortiOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A new stack of the engine test project (the product's name and typed config schema, see
    `project_file`), logged in to a file backend, every value set through the real CLI."""
    project_dir = tmp_path_factory.mktemp("engine-project")
    values = stack_values(emulator)
    (project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project_file(values), sort_keys=False), encoding="utf-8")
    home = tmp_path_factory.mktemp("engine-home")
    (home / "state").mkdir()
    engine = Engine(cli, project_dir, home, passphrase=secrets.token_urlsafe(24))
    engine.run("login", engine.backend)
    engine.run("stack", "init", engine.stack, "--secrets-provider", "passphrase")
    engine.run("config", "set-all", "--json", config_json(values))
    for key, value in SECRETS.items():  # on stdin: a secret never appears in a command line
        engine.run("config", "set", "--secret", key, stdin=value)
    return engine
