"""Running setup steps and installing files on the VM through pulumi-command `remote.Command`s.

One step is one `remote.Command` = one SSH session running one idempotent script of
`scripts/host/` under `sudo -n` (no PTY over pulumi-command, so sudo must not prompt):

* non-secret parameters are `HCS_*=value` words of `sudo -n /usr/bin/env …` on the command line
  (pulumi-command's `environment` needs `AcceptEnv` on the server, which we do not grant);
* file contents, secret or not, travel on stdin (one base64 line per file) and are installed with
  `install -o -g -m` only when their bytes differ, so a re-run changes nothing;
* the step is replaced (delete before replace, no delete command) when the hash of its command and
  stdin changes, and otherwise never re-run: a no-op `pulumi up` opens no SSH session.

Every file is also registered as a `FileRecord` (`hcs:files:File`), so `make plan` writes it under
`build/plan/files/<role>/<path>` and reviewers see each file the VM receives.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
from pulumi_command import remote

from components.files import FileRecord, HostFile

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts" / "host"
_ENV_NAME = re.compile(r"^HCS_[A-Z0-9_]+$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._@/+-]+$")


def script_text(name: str) -> str:
    """The program a step runs: the shared library followed by `scripts/host/<name>.sh`."""
    return (SCRIPTS_DIR / "lib.sh").read_text() + "\n" + (SCRIPTS_DIR / f"{name}.sh").read_text()


def command_line(step: str, program: str, env: Mapping[str, str], files: Sequence[HostFile] = ()) -> str:
    """The `create` command of a step: parameters on the command line, never secrets.

    `files` adds the manifest `HCS_FILES` ("MODE OWNER GROUP PATH" per line); their contents go
    on stdin (`stdin_for`).
    """
    params = dict(env)
    for key, value in params.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"step {step}: parameter name {key!r} must match HCS_[A-Z0-9_]+")
        if not isinstance(value, str):
            raise ValueError(f"step {step}: parameter {key} must be plain text (secrets go on stdin)")
    if files:
        for f in files:
            if not _SAFE_PATH.match(f.path) or any(not re.match(r"^[a-z_][a-z0-9_-]*$", n) for n in (f.owner, f.group)):
                raise ValueError(f"step {step}: file {f.path!r} ({f.owner}:{f.group}) has characters the installer does not accept")
        params["HCS_FILES"] = "".join(f"{f.mode} {f.owner} {f.group} {f.path}\n" for f in files)
    words = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(params.items()))
    return f"sudo -n /usr/bin/env {words} /bin/bash -c {shlex.quote(program)} hcs-{step}"


def encode_contents(contents: Sequence[str]) -> str:
    """stdin of the installer: one base64 line per file, in manifest order."""
    return "".join(base64.b64encode(c.encode()).decode() + "\n" for c in contents)


def stdin_for(files: Sequence[HostFile]) -> pulumi.Output[str] | None:
    """The step's stdin; a secret Output as soon as one file is secret."""
    if not files:
        return None
    return pulumi.Output.all(*[f.content for f in files]).apply(encode_contents)


def _digest(create: str, stdin: str | None) -> str:
    return hashlib.sha256((create + "\0" + (stdin or "")).encode()).hexdigest()


def record_files(parent: pulumi.Resource, files: Sequence[HostFile]) -> list[FileRecord]:
    """One `FileRecord` per file, named after its role and path (unique per machine)."""
    return [FileRecord(f"{f.role}:{f.path}", f, pulumi.ResourceOptions(parent=parent)) for f in files]


def run_step(
    parent: pulumi.Resource,
    resource_name: str,
    step: str,
    program: str,
    env: Mapping[str, str],
    files: Sequence[HostFile],
    connection: remote.ConnectionArgs,
    depends_on: Sequence[pulumi.Resource] = (),
    machine: pulumi.Input[str] | None = None,
) -> remote.Command:
    """Register one step: its files' records and the `remote.Command` that applies it.

    `machine` (a created VM's id) joins the triggers: a new machine replaces, so re-runs, the step.

    A step carrying a secret file logs nothing and marks stdout/stderr secret, because a failing
    checker (say `sshd -t`) may quote the file it rejects.
    """
    record_files(parent, files)
    create = command_line(step, program, env, files)
    stdin = stdin_for(files)
    secret = any(f.secret for f in files)
    trigger = (
        pulumi.Output.from_input(stdin).apply(lambda s: _digest(create, s)) if stdin is not None else _digest(create, None)
    )
    return remote.Command(
        resource_name,
        remote.CommandArgs(
            connection=connection,
            create=create,
            stdin=stdin,
            triggers=[trigger] if machine is None else [trigger, machine],
            add_previous_output_in_env=False,
            logging=remote.Logging.NONE if secret else remote.Logging.STDOUT_AND_STDERR,
        ),
        pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on),
            delete_before_replace=True,
            additional_secret_outputs=["stdout", "stderr"] if secret else None,
        ),
    )


@dataclass(frozen=True)
class HostFilesArgs:
    """Files for one machine and what to run around them (all shell, run as root with bash).

    `before` runs first (e.g. install a package that creates the files' group), `validate` checks
    the new files (non-zero exit restores the previous ones and fails the step), `on_change` runs
    only if a file was rewritten (e.g. restart a service). None of them may contain secrets.
    """

    connection: remote.ConnectionArgs
    files: Sequence[HostFile]
    before: str = ""
    validate: str = ""
    on_change: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


class HostFiles(pulumi.ComponentResource):
    """Installs `HostFile`s on the VM in one SSH session (token `hcs:host:Files`).

    Children: a `FileRecord` per file and one `remote.Command` named `<name>-install`. Output:
    `stdout` (secret when any file is), listing each change. Contents, secret files included,
    travel on stdin and are written through a private staging directory with `install`, so a
    secret is never on a command line, in a log, or briefly world-readable.
    """

    stdout: pulumi.Output[str]

    def __init__(self, name: str, args: HostFilesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:host:Files", name, None, opts)
        if not args.files:
            raise ValueError(f"HostFiles {name}: expected at least one file")
        if len({f.path for f in args.files}) != len(args.files):
            raise ValueError(f"HostFiles {name}: a path is listed twice")
        program = (SCRIPTS_DIR / "lib.sh").read_text() + "\n" + args.before + "\nhcs_install_files\n"
        if args.validate:
            program += f"hcs_validate bash -c {shlex.quote(args.validate)}\n"
        if args.on_change:
            program += f"if hcs_files_changed; then\n{args.on_change}\nfi\n"
        program += "hcs_done\n"
        command = run_step(self, f"{name}-install", name, program, args.env, args.files, args.connection)
        self.stdout = command.stdout
        self.register_outputs({"stdout": self.stdout})
