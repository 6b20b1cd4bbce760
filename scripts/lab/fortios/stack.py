"""The example stack's settings (Pulumi.yaml defaults + Pulumi.dev.yaml) for the FortiGate tests,
the Edge's resources as Pulumi's mock runtime registers them, and the engine's part in deploying,
refreshing and updating them through the real provider host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pulumi

from components.settings import Settings
from scripts.lab.example import (  # noqa: F401 (re-exported for the FortiGate tests)
    TEST_SECRETS,
    dev_settings,
    dev_values,
)
from scripts.lab.fortios.host import ProviderHost
from scripts.tools.offline import Registered, record

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


#: The dev stack's policy block in evaluation order, written out from the stack's intent (not
#: from the code that builds it): inbound HTTPS to the VIP, front proxy → VM, management SSH, one
#: accept per egress need of Pulumi.dev.yaml (DNS over UDP and TCP, NTP, the apt proxy, the
#: backup repository, Wazuh events and enrolment, Zabbix active checks, Entra sign-in, the image
#: registry), then the logged deny of everything else.
DEV_POLICY_ORDER = (
    "hcs-in-https", "hcs-proxy-to-vm", "hcs-mgmt-ssh",
    "hcs-out-dns-udp", "hcs-out-dns-tcp", "hcs-out-ntp", "hcs-out-apt-proxy", "hcs-out-backup",
    "hcs-out-wazuh-events", "hcs-out-wazuh-enroll", "hcs-out-zabbix-active", "hcs-out-entra-login",
    "hcs-out-registry", "hcs-out-deny",
)
#: The CMDB tables the dev stack writes.
DEV_TABLES = ("firewall/address", "firewall/addrgrp", "firewall.service/custom", "firewall/vip", "firewall/policy", "ips/sensor")
POLICY_TYPE = "pulumi-python:dynamic/fortios:FirewallPolicy"


@dataclass
class Deployed:
    """One object as the engine keeps it after create: its ID, outputs (state) and checked inputs."""

    name: str
    type: str
    id: str
    state: dict[str, Any]
    inputs: dict[str, Any]


def deploy_graph(host: ProviderHost, resources: list[Registered], url: str, ca_bundle: str) -> list[Deployed]:
    """Check and create every registered FortiGate resource, in registration order (references first)."""
    deployed = []
    for r in resources:
        if not r.type.startswith("pulumi-python:dynamic/fortios:"):
            continue
        inputs = {k: v for k, v in r.values.items() if k != "__provider"}
        inputs.update(url=url, ca_bundle=ca_bundle)
        checked = host.check(inputs)
        assert checked.failures == [], (r.name, checked.failures)
        id_, state = host.create(checked.inputs)
        deployed.append(Deployed(inputs["name"], r.type, id_, state, checked.inputs))
    return deployed


def refresh(host: ProviderHost, deployed: list[Deployed]) -> list[Deployed]:
    """A refresh as the engine runs it: every read at once, from a pool of threads."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda d: host.read(d.id, d.state), deployed))
    return [Deployed(d.name, d.type, id_, state, d.inputs) for d, (id_, state) in zip(deployed, results)]


def up(host: ProviderHost, deployed: list[Deployed]) -> list[Deployed]:
    """`pulumi up` after a refresh: diff every object, update the changed ones in dependency order."""
    out = []
    for d in deployed:
        state = host.update(d.id, d.state, d.inputs) if host.diff(d.id, d.state, d.inputs).some else d.state
        out.append(Deployed(d.name, d.type, d.id, state, d.inputs))
    return out
