"""The example stack's settings (Pulumi.yaml defaults + Pulumi.dev.yaml) for the FortiGate tests,
and the Edge's resources as Pulumi's mock runtime registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components.settings import Settings
from scripts.offline import Registered, record

from tests.support import TEST_SECRETS, dev_settings, dev_values  # noqa: F401 (re-exported for the FortiGate tests)

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROJECT = "hardened-code-server"
SECRETS = TEST_SECRETS


def register_edge(settings: Settings) -> tuple[list[Registered], dict[str, Any]]:
    """Build the Edge under Pulumi's mock runtime; every registration and the Edge's outputs."""
    from components.fortigate.edge import FortigateEdge, FortigateEdgeArgs

    outputs: dict[str, Any] = {}

    def build() -> pulumi.Output[Any]:
        edge = FortigateEdge("edge", FortigateEdgeArgs(fortigate=settings.fortigate, topology=settings.topology))
        return pulumi.Output.all(edge.vip_name, edge.ips_sensor, edge.policy_ids).apply(
            lambda values: outputs.update(vip_name=values[0], ips_sensor=values[1], policy_ids=values[2])
        )

    resources = record(build, project=PROJECT, stack="dev").resources
    return resources, outputs
