"""Run commands on the test root over real SSH, the way pulumi-command's `remote.Command` does.

Each `SshRunner.run()` opens one new SSH connection with the system `ssh` client, sends the
command as the exec request (the server runs it with the login user's shell, `-c`), writes `stdin`
if given, and returns the exit code and output. Host-key checking is never relaxed:
`StrictHostKeyChecking=yes` against a known_hosts file holding only the pinned key, no global
known_hosts, no ~/.ssh/config, `BatchMode` (no prompts), only the given identity.

`run_steps()` runs `Step`s (`name`, `create`, `stdin`, `depends_on`) in dependency order: the shape
of pulumi-command `remote.Command` resources in the mocked resource graph (`inputs.create`,
`inputs.stdin`, `dependencies`). It stops at the first failing step with `StepFailed`, whose message
shows the step's name, exit code and stderr, never its stdin (which may hold secrets).
"""

from __future__ import annotations

import dataclasses
import graphlib
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.lab.vm.netns import ns_exec


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to connect; `netns`/`source_address` say where the client sits."""

    address: str
    port: int
    user: str
    identity_file: Path
    known_hosts_file: Path
    netns: str | None = None
    source_address: str | None = None
    connect_timeout: int = 10

    def argv(self, command: str) -> list[str]:
        """The full client command line for one session running `command`."""
        options = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": str(self.known_hosts_file),
            "GlobalKnownHostsFile": "/dev/null",
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "ConnectTimeout": str(self.connect_timeout),
            "ControlMaster": "no",
            "ControlPath": "none",
            "LogLevel": "ERROR",
        }
        argv = ["ssh", "-F", "none", "-T", "-i", str(self.identity_file), "-p", str(self.port),
                "-l", self.user]
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        if self.source_address:
            argv += ["-b", self.source_address]
        argv += [self.address, "--", command]
        return ns_exec(self.netns, argv) if self.netns else argv


@dataclass(frozen=True)
class Result:
    """Outcome of one SSH session. Exit code 255 usually means ssh itself failed (see stderr)."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0


#: pulumi-command's dial attempts for one command, and a short pause between them here.
DIAL_ATTEMPTS = 10
DIAL_PAUSE = 0.5


class SshRunner:
    """Runs commands over fresh SSH sessions and counts them (`sessions`, `seconds`)."""

    def __init__(self, target: SshTarget, timeout: float = 900) -> None:
        self.target = target
        self.timeout = timeout
        self.sessions = 0
        self.seconds = 0.0

    def with_target(self, **changes: object) -> SshRunner:
        """A new runner (own counters) for a changed target, e.g. `source_address=` or `known_hosts_file=`."""
        return SshRunner(dataclasses.replace(self.target, **changes), self.timeout)  # type: ignore[arg-type]

    def run_as_pulumi_command(self, command: str, stdin: str | None = None) -> Result:
        """`run`, retrying a refused connection as pulumi-command dials (`dial_error_limit` 10, no
        backoff): right after the sshd step reloads sshd, its listener is briefly gone."""
        for _ in range(DIAL_ATTEMPTS - 1):
            result = self.run(command, stdin)
            if not (result.exit_code == 255 and "Connection refused" in result.stderr):
                return result
            time.sleep(DIAL_PAUSE)
        return self.run(command, stdin)

    def run(self, command: str, stdin: str | None = None, *, timeout: float | None = None) -> Result:
        """Run `command` in one new SSH session, feeding `stdin` (none: empty stdin)."""
        started = time.monotonic()
        self.sessions += 1
        proc = subprocess.run(
            self.target.argv(command),
            input=(stdin or "").encode(),
            capture_output=True,
            timeout=timeout or self.timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        self.seconds += seconds
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"), seconds)


@dataclass(frozen=True)
class Step:
    """One remote command: pulumi-command `remote.Command` inputs `create`/`stdin` plus its dependencies.

    `name` may be anything unique (a resource name or URN); `depends_on` holds other steps' names.
    `repr` hides `stdin` because it may be secret.
    """

    name: str
    create: str
    stdin: str | None = field(default=None, repr=False)
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepRun:
    """A step that ran, with its result."""

    name: str
    result: Result


class StepFailed(AssertionError):
    """A step exited non-zero. Carries the runs so far; the message never contains stdin."""

    def __init__(self, step: Step, result: Result, done: list[StepRun]) -> None:
        self.step = step
        self.result = result
        self.done = done
        super().__init__(
            f"step {step.name!r} failed with exit code {result.exit_code} after {result.seconds:.1f} s"
            f" ({len(done)} earlier step(s) succeeded)\n--- stderr ---\n{result.stderr.rstrip()}"
        )


def order_steps(steps: Sequence[Step], *, ignore_unknown_dependencies: bool = False) -> list[Step]:
    """Steps in dependency order; ties keep the given order. Raises ValueError on cycles or unknown names."""
    by_name: dict[str, Step] = {}
    for step in steps:
        if step.name in by_name:
            raise ValueError(f"two steps are named {step.name!r}")
        by_name[step.name] = step
    unknown = sorted({d for s in steps for d in s.depends_on if d not in by_name})
    if unknown and not ignore_unknown_dependencies:
        raise ValueError(f"steps depend on names that are not steps: {', '.join(unknown)}")
    position = {name: i for i, name in enumerate(by_name)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step in steps:
        sorter.add(step.name, *(d for d in step.depends_on if d in by_name))
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise ValueError(f"steps depend on each other in a cycle: {' -> '.join(error.args[1])}") from None
    ordered: list[Step] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        ordered += [by_name[name] for name in ready]
        sorter.done(*ready)
    return ordered


def run_steps(runner: SshRunner, steps: Iterable[Step], *, ignore_unknown_dependencies: bool = False) -> list[StepRun]:
    """Run every step in dependency order, one SSH session each; raise `StepFailed` at the first failure."""
    done: list[StepRun] = []
    for step in order_steps(list(steps), ignore_unknown_dependencies=ignore_unknown_dependencies):
        result = runner.run_as_pulumi_command(step.create, step.stdin)
        if not result.ok:
            raise StepFailed(step, result, done)
        done.append(StepRun(step.name, result))
    return done
