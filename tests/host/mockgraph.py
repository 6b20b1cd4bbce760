"""Evaluate `DmzHost` under Pulumi mocks and return its `remote.Command`s as runnable steps.

This is what a real-root test and the benchmark execute: the very `create`/`stdin` inputs and
dependencies that the program registers, read back from a recording mock monitor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
PROJECT = "hardened-code-server"


@dataclass
class Registration:
    """One resource registration as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]
    secret_inputs: set[str]
    delete_before_replace: bool
    additional_secret_outputs: list[str]


@dataclass
class CommandStep:
    """A `remote.Command` as the shared runner takes it: {name, create, stdin, depends_on}."""

    name: str
    create: str
    stdin: str | None
    depends_on: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "create": self.create, "stdin": self.stdin, "depends_on": list(self.depends_on)}


def _unwrap(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            inner, _ = _unwrap(value["value"])
            return inner, True
        out, secret = {}, False
        for k, v in value.items():
            out[k], s = _unwrap(v)
            secret = secret or s
        return out, secret
    if isinstance(value, list):
        items = [_unwrap(v) for v in value]
        return [i for i, _ in items], any(s for _, s in items)
    return value, False


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == "command:remote:Command":
            outputs.update(stdout="", stderr="")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


class RecordingMonitor(pmocks.MockMonitor):
    """A mock monitor that keeps every registration with its dependencies and options."""

    def __init__(self) -> None:
        super().__init__(_Mocks())
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC name)
        response = super().RegisterResource(request)
        raw = rpc.deserialize_properties(request.object, keep_internal=True)
        inputs: dict[str, Any] = {}
        secret: set[str] = set()
        for key, value in raw.items():
            inputs[key], is_secret = _unwrap(value)
            if is_secret:
                secret.add(key)
        self.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                dependencies=list(request.dependencies),
                inputs=inputs,
                secret_inputs=secret,
                delete_before_replace=request.deleteBeforeReplace,
                additional_secret_outputs=list(request.additionalSecretOutputs),
            )
        )
        return response


def evaluate(build: Any) -> list[Registration]:
    """Run `build()` (which registers resources and returns an Output) under recording mocks."""
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack="test", preview=False, monitor=monitor)

    @pulumi.runtime.test
    def program() -> Any:
        return build()

    program()
    return monitor.registrations


def command_steps(registrations: list[Registration]) -> list[CommandStep]:
    """The `remote.Command`s in registration order, dependencies given by resource name."""
    names = {r.urn: r.name for r in registrations}
    return [
        CommandStep(
            name=r.name,
            create=r.inputs["create"],
            stdin=r.inputs.get("stdin"),
            depends_on=[names[d] for d in r.dependencies if d in names],
        )
        for r in registrations
        if r.type == "command:remote:Command"
    ]
