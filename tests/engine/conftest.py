"""Fixtures of the engine tests: the built CLI (a failed build fails the tests, never skips them),
the FortiOS emulator, and one stack of the product's project (its Pulumi.yaml unchanged) made with
real `pulumi` commands."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import REPOSITORY
from scripts.lab.example import TEST_SECRETS
from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope, make_certificate
from scripts.tools.buildcache import CacheError
from scripts.tools.go_cache import pulumi_cli
from tests.engine.cli import Engine

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


def stack_values(emulator: FortiOSEmulator, example: str = "dev") -> dict[str, Any]:
    """An example stack's plain values (Pulumi.<example>.yaml), pointed at the emulator."""
    stack_file = yaml.safe_load((REPOSITORY / f"Pulumi.{example}.yaml").read_text(encoding="utf-8"))["config"]
    values = {key.partition(":")[2]: value for key, value in stack_file.items() if key.startswith(f"{PROJECT}:")}
    values.update(fortigateUrl=emulator.url, fortigateCaBundle=str(emulator.ca_bundle))  # type: ignore[attr-defined]
    return values


def project_dir(parent: Path) -> Path:
    """A project directory holding the product's Pulumi.yaml, unchanged (its name and its whole
    config schema, which the real CLI enforces: every declared key without a default is required)."""
    parent.mkdir(exist_ok=True)
    (parent / "Pulumi.yaml").write_text((REPOSITORY / "Pulumi.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return parent


def config_json(values: dict[str, Any]) -> str:
    """`values` in the format of `pulumi config --json` (what `pulumi config set-all --json` reads)."""
    entries = {}
    for key, value in values.items():
        typed = {"value": value} if isinstance(value, str) else {"value": json.dumps(value), "objectValue": value}
        entries[f"{PROJECT}:{key}"] = {**typed, "secret": False}
    return json.dumps(entries)


@pytest.fixture(scope="module")
def engine(cli: Path, emulator: FortiOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A new stack of the product's project (`project_dir`) with the dev example's values, logged
    in to a file backend, every value set through the real CLI."""
    home = tmp_path_factory.mktemp("engine-home")
    (home / "state").mkdir()
    engine = Engine(cli, project_dir(tmp_path_factory.mktemp("engine-project")), home, passphrase=secrets.token_urlsafe(24))
    engine.run("login", engine.backend)
    engine.run("stack", "init", engine.stack, "--secrets-provider", "passphrase")
    set_values(engine, stack_values(emulator))
    return engine


def set_values(engine: Engine, values: dict[str, Any], secret_keys: Iterable[str] = tuple(SECRETS)) -> None:
    """Set `values` (plain) and the test secrets named in `secret_keys` on the engine's stack."""
    engine.run("config", "set-all", "--json", config_json(values))
    for key in secret_keys:  # on stdin: a secret never appears in a command line
        engine.run("config", "set", "--secret", key, stdin=SECRETS[key])
