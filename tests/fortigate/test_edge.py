"""The Edge component: its resource graph under Pulumi's mocks, then that very graph deployed
through the real dynamic-provider host against the emulator, refreshed, and destroyed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope
from scripts.lab.fortios.host import ProviderHost
from scripts.lab.fortios.stack import (
    DEV_POLICY_ORDER,
    DEV_TABLES,
    SECRETS,
    Registered,
    deploy_graph,
    dev_settings,
    refresh,
    register_edge,
)

TOKEN = SECRETS["fortigateApiToken"]
PREFIX = "pulumi-python:dynamic/fortios:"


#: The IDE proxy's names: a plain one, a wildcard (also its apex), one with plain HTTP as well.
IDE_DOMAINS = json.dumps(["git.example.com", "*.pypi.org", "http://deb.example.org"])


@pytest.fixture(scope="module")
def registered() -> tuple[list[Registered], dict[str, Any]]:
    return register_edge(dev_settings())


@pytest.fixture(scope="module")
def registered_ide() -> tuple[list[Registered], dict[str, Any]]:
    return register_edge(dev_settings(ideEgressDomains=IDE_DOMAINS))


def _provider_blob(inputs: dict[str, Any]) -> str:
    provider = inputs["__provider"]
    return provider["value"] if isinstance(provider, dict) else provider


@pytest.mark.parametrize("graph, changes", [("registered", {}), ("registered_ide", {"ideEgressDomains": IDE_DOMAINS})],
                         ids=["dev", "ide-names"])
def test_resource_counts(graph: str, changes: dict[str, str], request: pytest.FixtureRequest) -> None:
    resources, _ = request.getfixturevalue(graph)
    assert resources[0].type == "hcs:fortigate:Edge"
    kinds: dict[str, int] = {}
    for r in resources[1:]:
        assert r.type.startswith(PREFIX), r.type
        kinds[r.type[len(PREFIX):]] = kinds.get(r.type[len(PREFIX):], 0) + 1
    topo = dev_settings(**changes).topology
    # one typed resource per planned object; one address per distinct destination of the allowlist,
    # one per distinct name (a wildcard `*.x` allows `x` too: two objects)
    destinations = {str(d) for rule in topo.egress_rules for d in rule.destinations}
    names = {n for rule in topo.egress_rules for d in rule.domains for n in (d.name, d.name.removeprefix("*."))}
    ports = {(rule.protocol, rule.port) for rule in topo.egress_rules} | {("tcp", 443), ("tcp", topo.gateway_port), ("tcp", 22)}
    assert kinds == {
        "FirewallAddress": 1 + len(topo.front_proxy_addresses) + len(topo.management_subnets) + len(destinations) + len(names),
        "FirewallAddressGroup": 2, "FirewallServiceCustom": len(ports), "IpsSensor": 1,
        "FirewallVip": 1, "FirewallPolicy": len(topo.egress_rules) + 4,
    }
    assert len(names) == (4 if changes else 0)


def test_graph_device_field_names(registered: tuple[list[Registered], dict[str, Any]]) -> None:
    resources, outputs = registered
    by_name = {r.inputs["name"]: r for r in resources[1:]}
    vip = by_name["hcs-vip-https"].inputs["payload"]
    assert {"extintf", "extip", "mappedip", "extport", "mappedport", "portforward"} <= vip.keys()
    inbound = by_name["hcs-in-https"].inputs
    assert {"srcintf", "dstintf", "ips-sensor", "utm-status", "logtraffic", "ssl-ssh-profile"} <= inbound["payload"].keys()
    assert inbound["placement"] == "top" and inbound["path"] == "firewall/policy"
    assert inbound["block"] == {"names": list(DEV_POLICY_ORDER), "placement": "top"}
    assert outputs["vip_name"] == "hcs-vip-https" and outputs["ips_sensor"] == "hcs-ips"
    assert tuple(outputs["policy_ids"]) == DEV_POLICY_ORDER


def test_the_token_is_not_an_input_anywhere(registered: tuple[list[Registered], dict[str, Any]]) -> None:
    resources, _ = registered
    for r in resources[1:]:
        plain = {k: v for k, v in r.inputs.items() if k != "__provider"}
        assert TOKEN not in json.dumps(plain)
        assert TOKEN.encode() not in base64.b64decode(_provider_blob(r.values))
        assert b"fortigateApiToken" in base64.b64decode(_provider_blob(r.values))  # the key's name only


@pytest.mark.slow
def test_the_registered_graph_deploys_refreshes_and_destroys(
    registered: tuple[list[Registered], dict[str, Any]], emulator: FortiOSEmulator, certificate: tuple[Path, Path]
) -> None:
    resources, _ = registered
    emulator.tokens[TOKEN] = TokenScope()
    foreign = emulator.seed_policy("root", "lan-out")
    before = {path: len(emulator.table("root", path)) for path in ("firewall/address", "firewall.service/custom", "ips/sensor")}
    with ProviderHost() as host:
        host.configure({"hardened-code-server:fortigateApiToken": TOKEN}, secret_keys=("hardened-code-server:fortigateApiToken",))
        deployed = deploy_graph(host, resources, emulator.url, str(certificate[0]))

        assert tuple(p["name"] for p in emulator.table("root", "firewall/policy")) == (*DEV_POLICY_ORDER, "lan-out")
        vip = emulator.find("root", "firewall/vip", "hcs-vip-https")
        assert vip["mappedport"] == "443" and vip["mappedip"] == [{"range": "192.0.2.5"}]
        assert emulator.find("root", "firewall/policy", next(d.id for d in deployed if d.name == "hcs-in-https"))["ssl-ssh-profile"] == "certificate-inspection"

    # A refresh is a new provider process; its reads run in parallel and share one GET per table.
    with ProviderHost() as host:
        host.configure({"hardened-code-server:fortigateApiToken": TOKEN}, secret_keys=("hardened-code-server:fortigateApiToken",))
        emulator.reset_counts()
        refreshed = refresh(host, deployed)
        gets = [path for method, path, _ in emulator.log if method == "GET"]
        assert sorted(gets) == sorted(f"/api/v2/cmdb/{t}" for t in DEV_TABLES)  # 6 GETs for 43 objects
        assert sum(emulator.requests.values()) == len(DEV_TABLES) < len(deployed)
        for old, new in zip(deployed, refreshed):
            assert (new.id, new.state) == (old.id, old.state)
            assert not host.diff(new.id, new.state, new.inputs).some

        for d in reversed(refreshed):
            host.delete(d.id, d.state)
    assert [p["policyid"] for p in emulator.table("root", "firewall/policy")] == [foreign]
    assert before == {path: len(emulator.table("root", path)) for path in before}


@pytest.mark.slow
def test_the_ide_proxy_names_deploy_before_the_deny_and_refresh_clean(
    registered_ide: tuple[list[Registered], dict[str, Any]], emulator: FortiOSEmulator, certificate: tuple[Path, Path]
) -> None:
    """Through the real provider host: the device ends with the proxy's two policies, then the deny,
    then what was there before; each goes to name objects only (a wildcard with its apex)."""
    resources, _ = registered_ide
    emulator.tokens[TOKEN] = TokenScope()
    emulator.seed_policy("root", "lan-out")
    with ProviderHost() as host:
        host.configure({"hardened-code-server:fortigateApiToken": TOKEN}, secret_keys=("hardened-code-server:fortigateApiToken",))
        deployed = deploy_graph(host, resources, emulator.url, str(certificate[0]))
        policies = emulator.table("root", "firewall/policy")
        assert tuple(p["name"] for p in policies) == (
            *DEV_POLICY_ORDER[:-1], "hcs-out-ide-proxy-https", "hcs-out-ide-proxy-http", "hcs-out-deny", "lan-out")
        addresses = {a["name"]: a for a in emulator.table("root", "firewall/address")}

        def names(policy: str) -> list[str]:
            row = next(p for p in policies if p["name"] == policy)
            assert {addresses[m["name"]]["type"] for m in row["dstaddr"]} == {"fqdn"}
            return sorted(addresses[m["name"]]["fqdn"] for m in row["dstaddr"])

        assert names("hcs-out-ide-proxy-https") == ["*.pypi.org", "deb.example.org", "git.example.com", "pypi.org"]
        assert names("hcs-out-ide-proxy-http") == ["deb.example.org"]

        refreshed = refresh(host, deployed)
        for old, new in zip(deployed, refreshed):
            assert (new.id, new.state) == (old.id, old.state)
            assert not host.diff(new.id, new.state, new.inputs).some
        for d in reversed(refreshed):
            host.delete(d.id, d.state)
    assert not [a for a in emulator.table("root", "firewall/address") if a["type"] == "fqdn"]


def test_the_offline_plan_of_the_dev_stack_shows_the_fortigate_edge(dev_plan: Any) -> None:
    """`__main__.py` under mocks (the lead's harness): own type tokens, device field names, no token."""
    from scripts.tools.offline import placeholder_secret

    fortigate = [r for r in dev_plan.resources if r.type.startswith(PREFIX)]
    assert {r.type[len(PREFIX):] for r in fortigate} == {
        "FirewallAddress", "FirewallAddressGroup", "FirewallServiceCustom", "FirewallVip", "IpsSensor", "FirewallPolicy"}
    vip = next(r for r in fortigate if r.type == PREFIX + "FirewallVip")
    assert {"extintf", "mappedip"} <= vip.inputs["payload"].keys()
    inbound = next(r for r in fortigate if r.inputs.get("name") == "hcs-in-https")
    assert {"srcintf", "ips-sensor", "logtraffic"} <= inbound.inputs["payload"].keys()
    token = placeholder_secret("fortigateApiToken")
    assert all(token not in json.dumps({k: v for k, v in r.inputs.items() if k != "__provider"}) for r in fortigate)
