"""The fortigate* settings: defaults, the optional FortiGate path, and every bad key at once."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from components.settings import ConfigError, MappingSource, load
from scripts.lab.fortios.stack import SECRETS, dev_settings, dev_values


def problems(**overrides: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        dev_settings(**overrides)
    return {p.key: p.message for p in caught.value.problems}


def test_dev_stack() -> None:
    fg = dev_settings().fortigate
    assert fg is not None
    assert (fg.url, fg.vdom, fg.wan_interface, fg.dmz_interface) == ("https://192.0.2.1", "root", "wan1", "dmz")
    assert fg.public_ip == ipaddress.IPv4Address("203.0.113.10")
    assert (fg.ips_sensor, fg.ssl_profile, fg.placement, fg.name_prefix) == (None, "certificate-inspection", "top", "hcs")
    assert (fg.ca_bundle, fg.insecure, fg.adopt, fg.egress_nat) == (None, False, (), False)


def test_required_only_with_edge_fortigate_but_validated_whenever_set() -> None:
    unset = {k: None for k in ("fortigateUrl", "fortigateWanInterface", "fortigateDmzInterface",
                               "fortigatePublicIp", "fortigateApiToken")}
    assert dev_settings(edge="cloudflare", **unset).fortigate is None
    assert "https://<host>" in problems(edge="cloudflare", fortigateUrl="http://192.0.2.1")["fortigateUrl"]
    found = problems(**unset)
    assert set(found) == set(unset) and "is required" in found["fortigateUrl"]
    assert "pulumi config set --secret fortigateApiToken" in found["fortigateApiToken"]


def test_with_the_cloudflare_edge_a_configured_fortigate_gets_no_inbound_path() -> None:
    fg = dev_settings(edge="cloudflare").fortigate
    assert fg is not None and not fg.inbound
    assert fg.wan_interface is None and fg.public_ip is None
    # the WAN side is not needed without a VIP; the device and its token still are
    assert dev_settings(edge="cloudflare", fortigateWanInterface=None, fortigatePublicIp=None).fortigate is not None
    assert set(problems(edge="cloudflare", fortigateApiToken=None)) == {"fortigateApiToken"}


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        fortigateUrl="https://192.0.2.1/api/v2", fortigateVdom="no such vdom", fortigateDmzInterface="wan1",
        fortigatePublicIp="10.0.0.1", fortigatePolicyPlacement="middle", fortigateNamePrefix="Way-Too-Long-Prefix",
        fortigateCaBundle=str(tmp_path / "missing.pem"), fortigateInsecure=True, fortigateIpsSensor="x" * 36,
    )
    assert "https://<host>[:<port>]" in found["fortigateUrl"]
    assert "VDOM name" in found["fortigateVdom"]
    assert "other than fortigateWanInterface" in found["fortigateDmzInterface"]
    assert "private 10.0.0.1" in found["fortigatePublicIp"]
    assert "before:<policy id>" in found["fortigatePolicyPlacement"]
    assert "at most 12" in found["fortigateNamePrefix"]
    assert "CA bundle file that exists" in found["fortigateCaBundle"]
    assert "at most 35" in found["fortigateIpsSensor"]


def test_ca_bundle_and_insecure_exclude_each_other(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert dev_settings(fortigateCaBundle=str(bundle)).fortigate.ca_bundle == str(bundle)
    assert "not both" in problems(fortigateCaBundle=str(bundle), fortigateInsecure=True)["fortigateInsecure"]


def test_the_token_must_be_a_secret_and_is_never_echoed() -> None:
    values = dev_values()
    with pytest.raises(ConfigError) as caught:
        load(MappingSource(values, frozenset({"vmSshPrivateKey"})))
    message = str(caught.value)
    assert "pulumi config set --secret fortigateApiToken" in message
    assert SECRETS["fortigateApiToken"] not in message
    assert "is required" in problems(fortigateApiToken=None)["fortigateApiToken"]
    assert "at least 16" in problems(fortigateApiToken="short")["fortigateApiToken"]


def test_placement_and_adoption() -> None:
    fg = dev_settings(fortigatePolicyPlacement="after:12", fortigateAdopt=["hcs-vm"], fortigateEgressNat=True).fortigate
    assert (fg.placement, fg.adopt, fg.egress_nat) == ("after:12", ("hcs-vm",), True)
