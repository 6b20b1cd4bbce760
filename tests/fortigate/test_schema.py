"""Normalisation shared by check() and read(): device forms compare equal, real changes do not."""

from __future__ import annotations

import pytest

from components.fortigate import schema

ADDRESS = schema.table("firewall/address")
SERVICE = schema.table("firewall.service/custom")
POLICY = schema.table("firewall/policy")
SENSOR = schema.table("ips/sensor")


@pytest.mark.parametrize("value", ["192.0.2.0/24", "192.0.2.0 255.255.255.0", " 192.0.2.0/255.255.255.0 "])
def test_subnets_take_the_device_form(value: str) -> None:
    assert schema.subnet(value) == "192.0.2.0 255.255.255.0"
    assert schema.subnet("192.0.2.7") == "192.0.2.7 255.255.255.255"


def test_device_rewrites_are_not_changes() -> None:
    desired = {"subnet": "192.0.2.0/24", "comment": "x"}
    live = {"name": "a", "subnet": "192.0.2.0 255.255.255.0", "comment": "x", "uuid": "u", "color": 0}
    view = schema.managed_view(ADDRESS, desired, live)
    assert view == {"subnet": "192.0.2.0 255.255.255.0", "comment": "x"}
    assert schema.changed_fields(ADDRESS, view, desired) == []
    members = {"srcaddr": [{"name": "b", "q_origin_key": "b"}, {"name": "a", "q_origin_key": "a"}]}
    assert schema.changed_fields(POLICY, members, {"srcaddr": ["a", {"name": "b"}]}) == []
    # numbers come back from gRPC as floats
    entries = {"entries": [{"id": 1.0, "severity": "high", "rule": [], "q_origin_key": 1}]}
    assert schema.changed_fields(SENSOR, entries, {"entries": [{"id": 1, "severity": "high"}]}) == []


def test_real_changes_and_unknowns_are_changes() -> None:
    olds = {"subnet": "192.0.2.0 255.255.255.0", "comment": "x"}
    assert schema.changed_fields(ADDRESS, olds, {"subnet": "192.0.2.0/25", "comment": "x"}) == ["subnet"]
    assert schema.changed_fields(ADDRESS, olds, {"comment": schema.UNKNOWN}) == ["comment"]
    assert schema.changed_fields(ADDRESS, olds, {"comment": "x"}) == []  # only managed fields count


def test_port_lists() -> None:
    assert schema.port_list("443-443  8000-8080:1024-65535") == "443 8000-8080:1024-65535"
    for bad in ("", "0", "65536", "10-5", "80,443", "1-2-3"):
        with pytest.raises(ValueError):
            schema.port_list(bad)


def test_check_payload_reports_every_problem() -> None:
    _, problems = schema.check_payload(SERVICE, {"comment": "no ports"})
    assert [p.field for p in problems] == ["tcp-portrange"]
    _, problems = schema.check_payload(POLICY, {"policyid": 3, "action": "allow", "srcintf": []})
    fields = sorted(p.field for p in problems)
    assert fields == sorted(["policyid", "dstintf", "srcaddr", "dstaddr", "service", "schedule", "action", "srcintf"])


def test_placement() -> None:
    assert str(schema.placement("top")) == "top"
    assert schema.placement("after:hcs-in-https") == schema.Placement("after", "hcs-in-https")
    for bad in ("bottom", "after:", "top:1", "before"):
        with pytest.raises(schema.CheckError):
            schema.placement(bad)


def test_an_address_needs_the_value_of_its_type() -> None:
    """A subnet object needs `subnet`, a name object `fqdn` (a wildcard too: FortiOS ≥ 6.2.2 has no wildcard-fqdn type)."""
    assert [p.field for p in schema.check_payload(ADDRESS, {"comment": "x"})[1]] == ["subnet"]
    assert [p.field for p in schema.check_payload(ADDRESS, {"type": "fqdn", "comment": "x"})[1]] == ["fqdn"]
    for name in ("git.example.com", "*.pypi.org"):
        assert schema.check_payload(ADDRESS, {"type": "fqdn", "fqdn": name}) == ({"type": "fqdn", "fqdn": name}, [])
    for bad in ("pypi", "exa mple.com", "*pypi.org", "https://pypi.org", "-a.example.com"):
        assert [p.field for p in schema.check_payload(ADDRESS, {"type": "fqdn", "fqdn": bad})[1]] == ["fqdn"], bad
    assert [p.field for p in schema.check_payload(ADDRESS, {"type": "wildcard-fqdn", "wildcard-fqdn": "*.pypi.org"})[1]] == ["type"]
