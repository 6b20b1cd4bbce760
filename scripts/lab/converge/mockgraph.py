"""Evaluate `DmzHost` under Pulumi mocks and return its `remote.Command`s as runnable steps.

This is what a real-root test and the benchmark execute: the very `create`/`stdin` inputs and
dependencies that the program registers, read back from a recording mock monitor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from scripts.tools.offline import Registered, record

PROJECT = "hardened-code-server"
Registration = Registered


@dataclass
class CommandStep:
    """A `remote.Command` as the shared runner takes it: {name, create, stdin, depends_on}."""

    name: str
    create: str
    stdin: str | None
    depends_on: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "create": self.create, "stdin": self.stdin, "depends_on": list(self.depends_on)}


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == "command:remote:Command":
            outputs.update(stdout="", stderr="")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


def evaluate(build: Any) -> list[Registered]:
    """Run `build()` (which registers resources and returns an Output) under recording mocks."""
    return record(build, mocks=_Mocks(), project=PROJECT).resources


def command_steps(registrations: list[Registration]) -> list[CommandStep]:
    """The `remote.Command`s in registration order, dependencies given by resource name."""
    names = {r.urn: r.name for r in registrations}
    return [
        CommandStep(
            name=r.name,
            create=r.values["create"],
            stdin=r.values.get("stdin"),
            depends_on=[names[d] for d in r.dependencies if d in names],
        )
        for r in registrations
        if r.type == "command:remote:Command"
    ]
