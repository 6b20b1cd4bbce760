"""The FortiOS stand-in is at least as strict as the device where the provider depends on it.

Driven with plain HTTP requests (not the provider's client), so what is checked here is the
stand-in itself: every check that makes another test able to fail.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope
from tests.fortigate.conftest import TOKEN


@pytest.fixture
def api(emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> httpx.Client:
    with httpx.Client(base_url=f"{emulator.url}/api/v2/cmdb/", headers={"Authorization": f"Bearer {TOKEN}"},
                      verify=ssl.create_default_context(cafile=certificate[0]), params={"vdom": "root"}) as client:
        yield client


def _error(response: httpx.Response) -> tuple[int, Any, str]:
    body = response.json()
    return response.status_code, body.get("error"), body.get("cli_error", "")


POLICY = {"name": "p1", "srcintf": [{"name": "dmz"}], "dstintf": [{"name": "any"}], "srcaddr": [{"name": "all"}],
          "dstaddr": [{"name": "all"}], "service": [{"name": "DNS"}], "action": "accept", "schedule": "always"}


def test_unknown_fields_and_bad_values_are_refused_on_post_and_put(api: httpx.Client, emulator: FortiOSEmulator) -> None:
    assert _error(api.post("firewall/policy", json={**POLICY, "ssl-ssl-profile": "no-inspection"})) == (
        500, -651, "ssl-ssl-profile: no such field")
    status, code, text = _error(api.post("firewall/policy", json={**POLICY, "action": "allow"}))
    assert (status, code) == (500, -651) and text.startswith("action: invalid option 'allow'")
    status, code, text = _error(api.post("ips/sensor", json={"name": "s", "entries": [{"id": 1, "severity": "urgent"}]}))
    assert (status, code) == (500, -651) and text.startswith("entries.severity: invalid options")
    assert _error(api.post("ips/sensor", json={"name": "s", "entries": [{"id": 1.0}]}))[2] == "entries.id: not an integer: 1.0"
    assert emulator.table("root", "firewall/policy") == [] and emulator.find("root", "ips/sensor", "s") is None

    assert api.post("firewall/policy", json=POLICY).status_code == 200
    assert _error(api.put("firewall/policy/1", json={"logtraffic": "everything"}))[:2] == (500, -651)
    assert _error(api.put("firewall/policy/1", json={"ssl-ssl-profile": "x"}))[2] == "ssl-ssl-profile: no such field"
    assert emulator.find("root", "firewall/policy", 1)["logtraffic"] == "utm"  # unchanged


def test_names_are_checked_on_put_too(api: httpx.Client, emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> None:
    api.post("firewall/address", json={"name": "a", "subnet": "192.0.2.1/32"})
    api.post("firewall/address", json={"name": "b", "subnet": "192.0.2.2/32"})
    assert _error(api.put("firewall/address/a", json={"name": "x" * 80}))[:2] == (500, -651)
    assert _error(api.put("firewall/address/a", json={"name": "b"}))[:2] == (500, -5)
    api.post("firewall/policy", json=POLICY)
    assert _error(api.put("firewall/policy/1", json={"name": "p" * 36}))[:2] == (500, -651)

    strict = FortiOSEmulator(*certificate, {TOKEN: TokenScope()}, unique_policy_names=True).start()
    try:
        with httpx.Client(base_url=f"{strict.url}/api/v2/cmdb/", headers={"Authorization": f"Bearer {TOKEN}"},
                          verify=ssl.create_default_context(cafile=certificate[0]), params={"vdom": "root"}) as other:
            other.post("firewall/policy", json=POLICY)
            other.post("firewall/policy", json={**POLICY, "name": "p2"})
            assert _error(other.post("firewall/policy", json=POLICY))[:2] == (500, -5)
            assert _error(other.put("firewall/policy/2", json={"name": "p1"}))[:2] == (500, -5)
    finally:
        strict.stop()


def test_mappedport_follows_extport_until_it_is_set(api: httpx.Client, emulator: FortiOSEmulator) -> None:
    vip = {"name": "v", "extip": "203.0.113.10", "extintf": "wan1", "mappedip": [{"range": "192.0.2.5"}],
           "portforward": "enable", "extport": "443"}
    api.post("firewall/vip", json=vip)
    api.put("firewall/vip/v", json={"extport": "8443"})
    assert emulator.find("root", "firewall/vip", "v")["mappedport"] == "8443"
    api.put("firewall/vip/v", json={"mappedport": "443"})
    api.put("firewall/vip/v", json={"extport": "9443"})
    assert emulator.find("root", "firewall/vip", "v")["mappedport"] == "443"


def test_a_move_relative_to_itself_is_refused_and_changes_nothing(api: httpx.Client, emulator: FortiOSEmulator) -> None:
    api.post("firewall/policy", json=POLICY)
    api.post("firewall/policy", json={**POLICY, "name": "p2"})
    assert _error(api.put("firewall/policy/2", params={"vdom": "root", "action": "move", "before": "2"}))[:2] == (500, -651)
    assert [p["name"] for p in emulator.table("root", "firewall/policy")] == ["p1", "p2"]


def test_the_lockout_expires(certificate: tuple[Path, Path]) -> None:
    now = [1000.0]
    device = FortiOSEmulator(*certificate, {TOKEN: TokenScope()}, lockout_after=3, lockout_seconds=60, clock=lambda: now[0]).start()
    try:
        verify = ssl.create_default_context(cafile=certificate[0])
        url = f"{device.url}/api/v2/cmdb/firewall/address"
        bad = [httpx.get(url, headers={"Authorization": "Bearer wrong"}, verify=verify).status_code for _ in range(3)]
        assert bad == [401, 401, 401]
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, verify=verify).status_code == 429
        now[0] += 59
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, verify=verify).status_code == 429
        now[0] += 1
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, verify=verify).status_code == 200
    finally:
        device.stop()


def test_filters_use_the_device_operators_and_refuse_anything_else(api: httpx.Client) -> None:
    for i, name in enumerate(("web-1", "web-2", "db-1")):
        api.post("firewall/address", json={"name": name, "subnet": f"192.0.2.{i + 1}/32", "comment": f"c{i}"})

    def names(*filters: str) -> list[str]:
        response = api.get("firewall/address", params=[("vdom", "root"), *(("filter", f) for f in filters)])
        assert response.status_code == 200, response.text
        return sorted(r["name"] for r in response.json()["results"] if r["name"] in ("web-1", "web-2", "db-1"))

    assert names("name==web-1") == ["web-1"]
    assert names("name!=web-1") == ["db-1", "web-2"]
    assert names("name=@web") == ["web-1", "web-2"] and names("name!@web") == ["db-1"]
    assert names("name=@web", "comment==c1") == ["web-2"]  # two filter parameters: AND
    assert names("name==db-1,comment==c0") == ["db-1", "web-1"]  # comma: OR
    assert names("comment>=c1") == ["db-1", "web-2"] and names("comment<c1") == ["web-1"]
    assert api.get("firewall/address", params={"vdom": "root", "filter": "name~web"}).status_code == 400


def test_a_get_returns_every_field_of_the_object(api: httpx.Client) -> None:
    api.post("firewall/address", json={"name": "a", "subnet": "192.0.2.1/32"})
    got = api.get("firewall/address/a").json()["results"][0]
    # fields a FortiOS 7.4 address always carries, none of which the request set
    assert {"allow-routing", "associated-interface", "fabric-object", "color", "type", "comment", "uuid"} <= got.keys()


def test_an_address_must_carry_the_value_of_its_type(api: httpx.Client, emulator: FortiOSEmulator) -> None:
    """A name object needs its name; 7.4 writes a wildcard as type fqdn (no wildcard-fqdn type or value)."""
    assert _error(api.post("firewall/address", json={"name": "f", "type": "fqdn"}))[:2] == (500, -651)
    assert _error(api.post("firewall/address", json={"name": "f", "type": "fqdn", "fqdn": "exa mple.com"}))[:2] == (500, -651)
    status, code, text = _error(api.post("firewall/address", json={"name": "w", "type": "wildcard-fqdn", "wildcard-fqdn": "*.pypi.org"}))
    assert (status, code) == (500, -651) and text.startswith("type: invalid option 'wildcard-fqdn'")
    assert _error(api.post("firewall/address", json={"name": "w", "type": "fqdn", "fqdn": "*.pypi.org",
                                                     "wildcard-fqdn": "*.pypi.org"}))[:2] == (500, -651)
    assert emulator.find("root", "firewall/address", "f") is None and emulator.find("root", "firewall/address", "w") is None

    for name, value in (("f", "git.example.com"), ("w", "*.pypi.org")):
        assert api.post("firewall/address", json={"name": name, "type": "fqdn", "fqdn": value}).status_code == 200
        assert emulator.find("root", "firewall/address", name)["fqdn"] == value
    assert _error(api.put("firewall/address/f", json={"fqdn": ""}))[:2] == (500, -651)  # checked on PUT too
    assert _error(api.put("firewall/address/f", json={"type": "ipmask", "subnet": "192.0.2.300/32"}))[:2] == (500, -651)
    assert emulator.find("root", "firewall/address", "f")["fqdn"] == "git.example.com"
