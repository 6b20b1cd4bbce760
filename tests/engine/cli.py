"""The real Pulumi CLI, run as a user runs it, against a throw-away file backend.

Every command gets an isolated `PULUMI_HOME`, the passphrase through the environment (never argv),
no update check and no plugin downloads (a missing plugin fails fast). Commands that run the
program get `--client ADDR` of a fresh tests/engine/server.py, the Python program's language
runtime here (see that module for why). Every run is kept, with its wall time, so the tests can
search all output for leaked secrets and report timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts import REPOSITORY


@dataclass(frozen=True)
class Run:
    """One finished CLI command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        """The first JSON document printed (`refresh --json` follows its plan with an event stream)."""
        return json.JSONDecoder().raw_decode(self.stdout.lstrip())[0]

    def events(self) -> list[dict[str, Any]]:
        """The engine events that follow the first JSON document (one per line)."""
        text = self.stdout.lstrip()
        end = json.JSONDecoder().raw_decode(text)[1]
        return [json.loads(line) for line in text[end:].splitlines() if line.strip()]


class EngineError(AssertionError):
    """A CLI command failed where the test needed it to succeed."""


@dataclass
class Engine:
    """The CLI bound to one project directory, one file backend and one stack."""

    cli: Path
    project_dir: Path
    home: Path
    passphrase: str
    stack: str = "engine"
    runs: list[Run] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return f"file://{self.home / 'state'}"

    def env(self) -> dict[str, str]:
        venv = Path(sys.executable).parent
        return {
            **os.environ,
            # the built CLI's directory first: the dynamic-provider shim beside it is found there
            "PATH": f"{self.cli.parent}{os.pathsep}{venv}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(self.home / "pulumi-home"),
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # the shim `pulumi-resource-pulumi-python` runs `python -m pulumi.dynamic` from this venv,
            # and the pickled provider's module (components.fortigate.provider) must import there
            "PULUMI_RUNTIME_VIRTUALENV": str(venv.parent),
            "PYTHONPATH": str(REPOSITORY),
            "PYTHONUNBUFFERED": "1",
        }

    def run(self, *args: str, stdin: str | None = None, program: bool = False, check: bool = True,
            timeout: float = 600) -> Run:
        """`pulumi ARGS` in the project directory; `program=True` serves the program to it."""
        server = self._serve() if program else None
        argv = (str(self.cli), *args, "--non-interactive", "--color", "never")
        if server is not None:
            argv += ("--client", f"127.0.0.1:{server[1]}")
        print(f"[engine] pulumi {' '.join(args[:4])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            result = subprocess.run(argv, cwd=self.project_dir, env=self.env(), input=stdin,
                                    capture_output=True, text=True, timeout=timeout, check=False)
        finally:
            if server is not None:
                server[0].terminate()
                server[0].wait(timeout=10)
        run = Run(argv, result.returncode, result.stdout, result.stderr, time.monotonic() - started)
        self.runs.append(run)
        print(f"[engine]   exit {run.returncode} in {run.seconds:.1f} s", file=sys.stderr, flush=True)
        if check and run.returncode != 0:
            raise EngineError(f"pulumi {' '.join(args[:3])} failed (exit {run.returncode}):\n{run.output[-6000:]}")
        return run

    def _serve(self) -> tuple[subprocess.Popen[str], int]:
        env = {**self.env(), "PYTHONPATH": str(REPOSITORY)}
        process = subprocess.Popen([sys.executable, "-u", "-m", "tests.engine.server"], cwd=self.project_dir, env=env,
                                   stdout=subprocess.PIPE, text=True)
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            process.kill()
            raise EngineError(f"the language server did not start (printed {line!r})")
        return process, int(line)
