"""The example stack's settings (Pulumi.yaml defaults + Pulumi.dev.yaml) for the FortiGate tests,
and the Edge's resources as Pulumi's mock runtime registers them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import TEST_SECRETS, dev_settings, dev_values  # noqa: F401 (re-exported for the FortiGate tests)

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROJECT = "hardened-code-server"
SECRETS = TEST_SECRETS


@dataclass(frozen=True)
class Registered:
    """One resource as registered with the (mock) engine."""

    type: str
    name: str
    inputs: dict[str, Any]


class _Capture:
    """Mocks that record every registration (dynamic `create` never runs under mocks)."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []


def register_edge(settings: Settings) -> tuple[list[Registered], dict[str, Any]]:
    """Build the Edge under Pulumi's mock runtime; every registration and the Edge's outputs."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings

    from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs

    capture = _Capture()
    runtime_settings.ROOT.set(None)  # a fresh root stack, as the offline plan harness does
    pulumi.runtime.set_mocks(capture, project=PROJECT, stack="dev", preview=False)  # type: ignore[arg-type]
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def build() -> pulumi.Output[Any]:
        edge = FortigateEdge("edge", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology))
        return pulumi.Output.all(edge.vip_name, edge.ips_sensor, edge.policy_ids).apply(
            lambda values: outputs.update(vip_name=values[0], ips_sensor=values[1], policy_ids=values[2])
        )

    build()
    return capture.resources, outputs
