"""The edge's objects as data: the rule set is checked here without Pulumi or a device."""

from __future__ import annotations

import ipaddress
import json
import ssl
from pathlib import Path

import httpx
import pytest

from components.fortigate import payloads
from scripts.lab.fortios.emulator import FortiOSEmulator
from scripts.lab.fortios.stack import dev_settings
from tests.fortigate.conftest import TOKEN

#: The IDE's allowlist in the example's forms: a name, a wildcard (the name and all under it), plain HTTP.
IDE_DOMAINS = json.dumps(["git.example.com", "*.pypi.org", "http://deb.example.org"])

KIND_PATH = {"address": "firewall/address", "addrgrp": "firewall/addrgrp", "service": "firewall.service/custom",
             "vip": "firewall/vip", "ips-sensor": "ips/sensor", "policy": "firewall/policy"}


@pytest.fixture
def plan_and_settings() -> tuple[payloads.EdgePlan, object]:
    settings = dev_settings()
    return payloads.build(settings.fortigate, settings.topology), settings


def _resolve(plan: payloads.EdgePlan, names: list[dict[str, str]]) -> set[ipaddress.IPv4Network]:
    by_name = {o.name: o for o in plan.objects}
    out: set[ipaddress.IPv4Network] = set()
    for member in names:
        obj = by_name[member["name"]]
        if obj.kind == "addrgrp":
            out |= _resolve(plan, obj.payload["member"])
        else:
            out.add(ipaddress.IPv4Network(obj.payload["subnet"]))
    return out


def _ports(plan: payloads.EdgePlan, names: list[dict[str, str]]) -> set[tuple[str, int]]:
    by_name = {o.name: o for o in plan.objects}
    return {(key.split("-")[0], int(value)) for m in names for key, value in by_name[m["name"]].payload.items()
            if key.endswith("-portrange")}


def test_egress_is_exactly_the_shared_allowlist_then_a_logged_deny(plan_and_settings) -> None:
    plan, settings = plan_and_settings
    rules = settings.topology.egress_rules
    egress = [p for p in plan.of_kind("policy") if p.payload["srcaddr"] == [{"name": "hcs-vm"}]]
    assert len(egress) == len(rules) + 1
    for policy, rule in zip(egress, rules):
        assert policy.payload["action"] == "accept"
        assert _resolve(plan, policy.payload["dstaddr"]) == {ipaddress.IPv4Network(str(d)) for d in rule.destinations}
        assert _ports(plan, policy.payload["service"]) == {(rule.protocol, rule.port)}
    deny = egress[-1]
    assert plan.of_kind("policy")[-1] == deny
    assert deny.payload | {"comments": ""} == deny.payload | {
        "action": "deny", "srcintf": [{"name": "dmz"}], "dstaddr": [{"name": "all"}], "service": [{"name": "ALL"}],
        "logtraffic": "all", "comments": "",
    }


def test_inbound_is_https_to_the_vip_only_with_ips(plan_and_settings) -> None:
    plan, settings = plan_and_settings
    inbound = plan.of_kind("policy")[0]
    vip = plan.of_kind("vip")[0]
    assert inbound.placement == "top"
    assert inbound.payload["srcintf"] == [{"name": "wan1"}] and inbound.payload["dstintf"] == [{"name": "dmz"}]
    assert inbound.payload["dstaddr"] == [{"name": vip.name}] and _ports(plan, inbound.payload["service"]) == {("tcp", 443)}
    assert inbound.payload["utm-status"] == "enable" and inbound.payload["ips-sensor"] == plan.ips_sensor == "hcs-ips"
    assert vip.payload["extip"] == "203.0.113.10" and vip.payload["extintf"] == "wan1"
    assert vip.payload["mappedip"] == [{"range": str(settings.topology.front_proxy_addresses[0])}]
    assert (vip.payload["portforward"], vip.payload["extport"], vip.payload["mappedport"]) == ("enable", "443", "443")
    # Nothing else from the WAN: the inbound policy is the only one with the WAN as source.
    assert [p.name for p in plan.of_kind("policy") if {"name": "wan1"} in p.payload["srcintf"]] == [inbound.name]


def test_front_proxy_and_management_reach_only_their_port(plan_and_settings) -> None:
    plan, settings = plan_and_settings
    by_name = {p.name: p for p in plan.of_kind("policy")}
    proxy, ssh = by_name["hcs-proxy-to-vm"], by_name["hcs-mgmt-ssh"]
    assert _resolve(plan, proxy.payload["srcaddr"]) == {ipaddress.IPv4Network(f"{a}/32") for a in settings.topology.front_proxy_addresses}
    assert _ports(plan, proxy.payload["service"]) == {("tcp", settings.topology.gateway_port)}
    assert _resolve(plan, ssh.payload["srcaddr"]) == set(settings.topology.management_subnets)
    assert _ports(plan, ssh.payload["service"]) == {("tcp", settings.topology.vm.ssh_port)}


def test_every_policy_logs_and_the_block_is_chained_in_order(plan_and_settings) -> None:
    plan, _ = plan_and_settings
    policies = plan.of_kind("policy")
    assert all(p.payload["logtraffic"] == "all" for p in policies)
    for previous, policy in zip(policies, policies[1:]):
        assert policy.placement == f"after:{previous.name}" and previous.name in policy.depends_on


@pytest.mark.parametrize("changes", [{}, {"ideEgressDomains": IDE_DOMAINS}], ids=["dev", "ide-names"])
def test_the_device_accepts_every_object_in_plan_order(changes: dict[str, str], emulator: FortiOSEmulator,
                                                      certificate: tuple[Path, Path]) -> None:
    """The FortiOS stand-in (its own field, name and reference checks) is the oracle, not the provider's schema."""
    settings = dev_settings(**changes)
    plan = payloads.build(settings.fortigate, settings.topology)
    names = [o.name for o in plan.objects]
    assert len(names) == len(set(names))
    with httpx.Client(base_url=f"{emulator.url}/api/v2/cmdb/", headers={"Authorization": f"Bearer {TOKEN}"},
                      verify=ssl.create_default_context(cafile=certificate[0]), params={"vdom": "root"}) as api:
        for obj in plan.objects:
            # references come first: everything a policy or group names exists earlier in the plan
            assert set(obj.depends_on) <= set(names[: names.index(obj.name)])
            response = api.post(KIND_PATH[obj.kind], json={**obj.payload, "name": obj.name})
            assert response.status_code == 200, (obj.name, response.json().get("cli_error"))


def test_existing_sensor_placement_and_optional_egress() -> None:
    settings = dev_settings(fortigateIpsSensor="default", fortigatePolicyPlacement="before:3",
                            wazuhEnabled=False, zabbixEnabled=False, zabbixPsk=None, fortigateNamePrefix="cs1")
    plan = payloads.build(settings.fortigate, settings.topology)
    assert not plan.of_kind("ips-sensor") and plan.ips_sensor == "default"
    policies = plan.of_kind("policy")
    assert policies[0].placement == "before:3" and policies[0].payload["ips-sensor"] == "default"
    assert not [p for p in policies if "wazuh" in p.name or "zabbix" in p.name]
    assert all(o.name.startswith("cs1-") for o in plan.objects)


def test_ipv6_management_subnets_are_refused_by_name() -> None:
    settings = dev_settings(managementSubnets=["2001:db8::/64"])
    with pytest.raises(ValueError, match="managementSubnets: .*IPv4"):
        payloads.build(settings.fortigate, settings.topology)


def _fqdns(plan: payloads.EdgePlan, names: list[dict[str, str]]) -> list[str]:
    """The names behind a policy's destinations; each must be an FQDN object, never an address."""
    by_name = {o.name: o for o in plan.objects}
    out = []
    for member in names:
        obj = by_name[member["name"]]
        assert (obj.kind, obj.payload.get("type")) == ("address", "fqdn") and "subnet" not in obj.payload, obj
        out.append(obj.payload["fqdn"])
    return out


def test_the_ide_proxy_reaches_its_names_on_its_ports_before_the_deny() -> None:
    settings = dev_settings(ideEgressDomains=IDE_DOMAINS)
    plan = payloads.build(settings.fortigate, settings.topology)
    policies = plan.of_kind("policy")
    assert [p.name for p in policies[-3:]] == ["hcs-out-ide-proxy-https", "hcs-out-ide-proxy-http", "hcs-out-deny"]
    https, http = policies[-3], policies[-2]
    # `*.pypi.org` allows pypi.org itself too; FortiOS's wildcard only matches the names under it
    assert sorted(_fqdns(plan, https.payload["dstaddr"])) == ["*.pypi.org", "deb.example.org", "git.example.com", "pypi.org"]
    assert _fqdns(plan, http.payload["dstaddr"]) == ["deb.example.org"]
    assert _ports(plan, https.payload["service"]) == {("tcp", 443)} and _ports(plan, http.payload["service"]) == {("tcp", 80)}
    for policy in (https, http):
        assert policy.payload["srcaddr"] == [{"name": "hcs-vm"}] and policy.payload["srcintf"] == [{"name": "dmz"}]
        assert (policy.payload["action"], policy.payload["logtraffic"]) == ("accept", "all")
    names = [o for o in plan.objects if o.payload.get("type") == "fqdn"]
    assert sorted(o.payload["fqdn"] for o in names) == ["*.pypi.org", "deb.example.org", "git.example.com", "pypi.org"]  # each once
    for obj in names:  # names only: an IP literal would bypass what the proxy and the FortiGate judge by name
        with pytest.raises(ValueError):
            ipaddress.ip_address(obj.payload["fqdn"].removeprefix("*."))
        assert obj.name.startswith("hcs-") and len(obj.name) <= 79


def test_without_names_the_edge_has_no_name_objects_and_no_proxy_policy(plan_and_settings) -> None:
    plan, _ = plan_and_settings
    assert all("subnet" in o.payload and "type" not in o.payload for o in plan.of_kind("address"))
    assert not [p for p in plan.of_kind("policy") if "ide" in p.name]
    empty = dev_settings(ideEgressDomains="[]")
    assert payloads.build(empty.fortigate, empty.topology).objects == plan.objects


def test_long_names_get_distinct_bounded_object_names() -> None:
    label = "a" * 63
    # the two plain names share the first 79 characters of their object names
    domains = json.dumps([f"*.{label}.{label}.example.com", f"x.{label}.{label}.example.org", f"x.{label}.{label}.example.net"])
    settings = dev_settings(ideEgressDomains=domains, fortigateNamePrefix="c" * 12)
    plan = payloads.build(settings.fortigate, settings.topology)
    names = {o.payload["fqdn"]: o.name for o in plan.objects if o.payload.get("type") == "fqdn"}
    assert len(names) == 4 and len(set(names.values())) == 4
    assert all(len(n) <= 79 and n.startswith("c" * 12 + "-") for n in names.values())
    again = payloads.build(settings.fortigate, settings.topology)
    assert {o.name for o in again.objects} == {o.name for o in plan.objects}  # deterministic
