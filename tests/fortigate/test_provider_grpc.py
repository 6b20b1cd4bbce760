"""The CMDB provider through Pulumi's real dynamic-provider host (gRPC) against the emulator.

Each test plays the engine's part: Check → Create, Read on refresh, Check → Diff → Update or a
replacement, Delete; request counts come from the emulator's own log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope
from scripts.lab.fortios.host import PROJECT, TOKEN_KEY, ProviderHost
from tests.fortigate.conftest import (
    OTHER_VDOM_TOKEN,
    READ_ONLY_TOKEN,
    TOKEN,
    cmdb_props,
)

pytestmark = pytest.mark.slow

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def requests(device: FortiOSEmulator) -> int:
    return sum(device.requests.values())


def measured(device: FortiOSEmulator, action: Any) -> tuple[Any, int]:
    device.reset_counts()
    result = action()
    return result, requests(device)


def deploy(host: ProviderHost, props: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The engine's create: Check, then Create with the checked inputs."""
    checked = host.check(props)
    assert checked.failures == []
    id_, outs = host.create(checked.inputs)
    return id_, outs, checked.inputs


def grpc_error(action: Any) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        action()
    return caught.value.details()


def configured_host() -> ProviderHost:
    """Another provider process, configured like the `host` fixture's (a later pulumi command)."""
    started = ProviderHost()
    started.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
    return started


@pytest.fixture
def ca(certificate: tuple[Path, Path]) -> Path:
    return certificate[0]


def address(device: FortiOSEmulator, ca: Path, name: str = "hcs-vm", subnet: str = "192.0.2.10/32", **payload: Any) -> dict[str, Any]:
    return cmdb_props(device, ca, "firewall/address", name, {"subnet": subnet, "comment": "code-server VM", **payload})


def policy(device: FortiOSEmulator, ca: Path, name: str, placement: str, **payload: Any) -> dict[str, Any]:
    fields = {
        "srcintf": [{"name": "dmz"}], "dstintf": [{"name": "any"}], "srcaddr": [{"name": "all"}],
        "dstaddr": [{"name": "all"}], "service": [{"name": "DNS"}], "action": "accept", "schedule": "always",
        "logtraffic": "all", **payload,
    }
    return cmdb_props(device, ca, "firewall/policy", name, fields, placement=placement)


def test_a_name_object_checks_updates_and_shows_drift(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    """An FQDN address through the host: no subnet needed, a new name is an update in place, drift shows."""
    props = cmdb_props(emulator, ca, "firewall/address", "hcs-wildcard-pypi.org", {"type": "fqdn", "fqdn": "*.pypi.org"})
    assert [f for f, _ in host.check({**props, "payload": {"type": "fqdn"}}).failures] == ["payload.fqdn"]
    id_, state, inputs = deploy(host, props)
    assert state["payload"] == {"type": "fqdn", "fqdn": "*.pypi.org"}
    assert not host.diff(id_, host.read(id_, state)[1], inputs).some

    changed = host.check({**props, "payload": {"type": "fqdn", "fqdn": "*.python.org"}}, olds=inputs).inputs
    diff = host.diff(id_, state, changed)
    assert diff.some and diff.replaces == []
    state = host.update(id_, state, changed)
    assert emulator.find("root", "firewall/address", id_)["fqdn"] == "*.python.org"

    emulator.poke("root", "firewall/address", id_, fqdn="*.example.net")
    _, state = host.read(id_, state)
    assert state["payload"]["fqdn"] == "*.example.net" and host.diff(id_, state, changed).some
    host.update(id_, state, changed)
    assert emulator.find("root", "firewall/address", id_)["fqdn"] == "*.python.org"


def test_address_full_lifecycle(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    props = address(emulator, ca)
    (id_, state, inputs), created = measured(emulator, lambda: deploy(host, props))
    assert id_ == "hcs-vm" and created == 2  # POST + one GET
    assert state["payload"] == {"subnet": "192.0.2.10 255.255.255.255", "comment": "code-server VM"}
    assert state["uuid"] == emulator.find("root", "firewall/address", "hcs-vm")["uuid"]

    (read_id, refreshed), reads = measured(emulator, lambda: host.read(id_, state))
    assert (read_id, refreshed, reads) == (id_, state, 1)

    # The program unchanged, written in another form: no diff, and diff costs no request.
    again = host.check(address(emulator, ca, subnet="192.0.2.10 255.255.255.255"), olds=inputs).inputs
    diff, diffs = measured(emulator, lambda: host.diff(id_, state, again))
    assert not diff.some and diff.replaces == [] and diffs == 0

    changed = host.check(address(emulator, ca, comment="renumbered"), olds=inputs).inputs
    assert host.diff(id_, state, changed).some and host.diff(id_, state, changed).replaces == []
    state, updates = measured(emulator, lambda: host.update(id_, state, changed))
    assert updates == 2 and state["payload"]["comment"] == "renumbered"
    assert emulator.find("root", "firewall/address", "hcs-vm")["comment"] == "renumbered"

    # Out-of-band drift of a managed field shows on refresh and is reverted by the next update.
    emulator.poke("root", "firewall/address", "hcs-vm", subnet="192.0.2.99 255.255.255.255", color=7)
    _, state = host.read(id_, state)
    assert state["payload"]["subnet"] == "192.0.2.99 255.255.255.255"
    assert host.diff(id_, state, changed).some
    state = host.update(id_, state, changed)
    assert emulator.find("root", "firewall/address", "hcs-vm")["subnet"] == "192.0.2.10 255.255.255.255"
    assert emulator.find("root", "firewall/address", "hcs-vm")["color"] == 7  # unmanaged: left alone
    assert not host.diff(id_, state, changed).some

    # A new name replaces: create the new object first, then delete the old one.
    renamed = host.check(address(emulator, ca, name="hcs-code-vm", comment="renumbered"), olds=changed).inputs
    diff = host.diff(id_, state, renamed)
    assert diff.some and diff.replaces == ["name"] and not diff.delete_before_replace
    new_id, new_state = host.create(renamed)
    _, deletes = measured(emulator, lambda: host.delete(id_, state))
    assert deletes == 1 and emulator.find("root", "firewall/address", "hcs-vm") is None
    host.delete(new_id, new_state)
    _, again_deletes = measured(emulator, lambda: host.delete(new_id, new_state))  # already gone: success
    assert again_deletes == 1


def test_refresh_drops_an_object_deleted_out_of_band(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    id_, state, _ = deploy(host, address(emulator, ca))
    emulator.remove("root", "firewall/address", id_)
    assert host.read(id_, state) == ("", {})


def test_device_defaults_and_reordering_cause_no_diff(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    vip = cmdb_props(emulator, ca, "firewall/vip", "hcs-vip-https", {
        "extip": "203.0.113.10", "extintf": "wan1", "mappedip": [{"range": "192.0.2.5"}],
        "portforward": "enable", "protocol": "tcp", "extport": "443-443",
    })
    id_, state, inputs = deploy(host, vip)
    live = emulator.find("root", "firewall/vip", id_)
    assert live["mappedport"] == "443" and live["arp-reply"] == "enable"  # device defaults
    emulator.poke("root", "firewall/vip", id_, extport="443-443", mappedport="443-443")  # same ports, other form
    _, state = host.read(id_, state)
    assert "mappedport" not in state["payload"] and state["payload"]["extport"] == "443"
    assert not host.diff(id_, state, inputs).some

    for name in ("hcs-b", "hcs-a"):
        deploy(host, address(emulator, ca, name=name, subnet=f"192.0.2.{20 + len(name)}/32" if name == "hcs-a" else "192.0.2.40"))
    group = cmdb_props(emulator, ca, "firewall/addrgrp", "hcs-group", {"member": [{"name": "hcs-b"}, "hcs-a"]})
    gid, gstate, ginputs = deploy(host, group)
    assert [m["name"] for m in emulator.find("root", "firewall/addrgrp", gid)["member"]] == ["hcs-a", "hcs-b"]
    _, gstate = host.read(gid, gstate)
    assert not host.diff(gid, gstate, ginputs).some
    reordered = host.check(cmdb_props(emulator, ca, "firewall/addrgrp", "hcs-group", {"member": ["hcs-a", "hcs-b"]})).inputs
    assert not host.diff(gid, gstate, reordered).some


def test_policy_gets_its_id_from_the_device_and_keeps_its_place(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    existing = emulator.seed_policy("root", "lan-out")
    (first_id, first, first_in), created = measured(emulator, lambda: deploy(host, policy(emulator, ca, "hcs-first", "top")))
    assert first_id == str(existing + 1) and first["policyid"] == existing + 1
    assert created == 3  # POST (appended at the bottom) + GET + the move to the top
    second_id, second, second_in = deploy(host, policy(emulator, ca, "hcs-second", "after:hcs-first"))
    order = [p["name"] for p in emulator.table("root", "firewall/policy")]
    assert order == ["hcs-first", "hcs-second", "lan-out"]

    (_, refreshed), reads = measured(emulator, lambda: host.read(second_id, second))
    assert reads == 1 and refreshed["placement"] == "after:hcs-first"
    assert not host.diff(second_id, refreshed, second_in).some

    # Someone drags our policy below theirs: the next refresh (a new provider process, as every
    # pulumi command is) sees it, the next update moves it back.
    emulator.move("root", int(second_id), "after", existing)
    with configured_host() as later:
        _, drifted = later.read(second_id, refreshed)
    assert drifted["placement"] == f"after:{existing}"
    assert host.diff(second_id, drifted, second_in).some
    restored, updates = measured(emulator, lambda: host.update(second_id, drifted, second_in))
    assert updates == 2 and restored["placement"] == "after:hcs-first"  # GET + move, no PUT
    assert [p["name"] for p in emulator.table("root", "firewall/policy")] == ["hcs-first", "hcs-second", "lan-out"]

    # before:<id> of a foreign policy
    third_id, _, _ = deploy(host, policy(emulator, ca, "hcs-third", f"before:{existing}"))
    assert [p["name"] for p in emulator.table("root", "firewall/policy")] == ["hcs-first", "hcs-second", "hcs-third", "lan-out"]

    # A changed field: PUT + GET; a policy name is a field, not its identity.
    renamed = host.check(policy(emulator, ca, "hcs-first-renamed", "top", logtraffic="utm"), olds=first_in).inputs
    diff = host.diff(first_id, first, renamed)
    assert diff.some and diff.replaces == []
    _, updates = measured(emulator, lambda: host.update(first_id, first, renamed))
    assert updates == 2
    assert emulator.find("root", "firewall/policy", first_id)["name"] == "hcs-first-renamed"


def test_existing_object_is_never_overwritten_unless_adopted(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    original = address(emulator, ca, name="legacy-vm", subnet="192.0.2.77/32", comment="hand-made")
    deploy(host, original)
    ours = address(emulator, ca, name="legacy-vm", subnet="192.0.2.10/32", comment="ours")
    details = grpc_error(lambda: host.create(host.check(ours).inputs))
    assert "firewall address 'legacy-vm' in vdom root" in details and "already exists" in details
    assert "fortigateAdopt" in details and "adopt=True" in details
    assert emulator.find("root", "firewall/address", "legacy-vm")["comment"] == "hand-made"

    id_, state, _ = deploy(host, {**ours, "adopt": True})
    assert id_ == "legacy-vm" and state["payload"]["comment"] == "ours"
    assert emulator.find("root", "firewall/address", "legacy-vm")["subnet"] == "192.0.2.10 255.255.255.255"


def test_adopting_an_existing_policy_by_name(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    existing = emulator.seed_policy("root", "hcs-out-dns")
    id_, state, _ = deploy(host, {**policy(emulator, ca, "hcs-out-dns", "top"), "adopt": True})
    assert id_ == str(existing) and state["payload"]["service"] == [{"name": "DNS"}]
    assert len(emulator.table("root", "firewall/policy")) == 1


def test_read_from_inputs_alone_supports_import(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    """The engine's import/Get passes only the program's inputs; read must work from them."""
    id_, state, inputs = deploy(host, address(emulator, ca))
    read_id, outs = host.read(id_, None, inputs=inputs)
    assert read_id == id_ and outs["payload"] == state["payload"] and outs["uuid"] == state["uuid"]


def test_delete_of_an_object_in_use_names_it(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    id_, state, _ = deploy(host, address(emulator, ca))
    deploy(host, cmdb_props(emulator, ca, "firewall/addrgrp", "hand-group", {"member": ["hcs-vm"]}))
    details = grpc_error(lambda: host.delete(id_, state))
    assert "cannot delete firewall address 'hcs-vm' in vdom root" in details
    assert "referenced by 1 other object(s)" in details
    assert emulator.find("root", "firewall/address", "hcs-vm") is not None


def test_unknown_reference_fails_create_and_leaves_nothing(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    bad = policy(emulator, ca, "hcs-in-https", "top", **{"utm-status": "enable", "ips-sensor": "no-such-sensor"})
    details = grpc_error(lambda: host.create(host.check(bad).inputs))
    assert "[error -651]" in details and "no-such-sensor" in details
    assert emulator.table("root", "firewall/policy") == []


def test_check_validates_and_normalises(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    ok = host.check(cmdb_props(emulator, ca, "firewall.service/custom", "hcs-tcp-range", {"tcp-portrange": "8000-8080 443-443:1024-65535"}))
    assert ok.failures == [] and ok.inputs["payload"]["tcp-portrange"] == "8000-8080 443:1024-65535"

    failures = dict(host.check(address(emulator, ca, name="x" * 80, subnet="192.0.2.10/24")).failures)
    assert "at most 79 characters, got 80" in failures["name"]
    assert "no host bits" in failures["payload.subnet"]
    failures = dict(host.check(policy(emulator, ca, "p" * 36, "middle", policyid=7)).failures)
    assert "at most 35 characters" in failures["name"] and "top, before:" in failures["placement"]
    assert "assigned by the device" in failures["payload.policyid"]
    for ports in ("0", "70000", "2000-1000", "https"):
        failures = dict(host.check(cmdb_props(emulator, ca, "firewall.service/custom", "s", {"udp-portrange": ports})).failures)
        assert "payload.udp-portrange" in failures, ports
    failures = dict(host.check({**address(emulator, ca), "url": "http://192.0.2.1", "vdom": "a b"}).failures)
    assert "https://" in failures["url"] and "VDOM name" in failures["vdom"]
    assert "path" in dict(host.check({**address(emulator, ca), "path": "system/admin"}).failures)


def test_check_and_diff_accept_unknown_values_in_preview(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    props = policy(emulator, ca, "hcs-second", UNKNOWN, dstaddr=[{"name": UNKNOWN}])
    checked = host.check(props)
    assert checked.failures == []
    id_, state, _ = deploy(host, policy(emulator, ca, "hcs-second", "top"))
    assert host.diff(id_, state, checked.inputs).some


def test_vdoms_are_isolated(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    id_, state, _ = deploy(host, {**address(emulator, ca), "vdom": "dmz-lab"})
    assert emulator.find("dmz-lab", "firewall/address", id_) and not emulator.find("root", "firewall/address", id_)
    moved = host.check(address(emulator, ca)).inputs
    assert host.diff(id_, state, moved).replaces == ["vdom"]


def test_token_is_a_secret_end_to_end(emulator: FortiOSEmulator, ca: Path) -> None:
    """Config in, never out: not in the pickle, outputs, URLs, or any error the host reports."""
    seen: list[str] = []
    with ProviderHost() as host:
        host.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
        assert TOKEN not in host.provider
        id_, state, _ = deploy(host, address(emulator, ca))
        seen.append(repr(state))
        emulator.inject("drop", times=4)
        seen.append(grpc_error(lambda: host.read(id_, state)))
        seen.append(repr(host.read(id_, state)))
        emulator.inject("status", status=500, method="POST")
        seen.append(grpc_error(lambda: host.create(host.check(address(emulator, ca, name="other")).inputs)))
        seen.append(grpc_error(lambda: host.create(host.check(address(emulator, ca)).inputs)))
        deploy(host, cmdb_props(emulator, ca, "firewall/addrgrp", "g", {"member": ["hcs-vm"]}))
        seen.append(grpc_error(lambda: host.delete(id_, state)))
        seen.append(host.stderr())
    assert all(TOKEN not in text for text in seen)
    assert all("access_token" not in q and TOKEN not in repr(q) for _, _, q in emulator.log)


def test_token_from_the_environment_when_not_in_config(emulator: FortiOSEmulator, ca: Path) -> None:
    with ProviderHost(env={"FORTIOS_API_TOKEN": TOKEN}) as host:
        host.configure({f"{PROJECT}:hostname": "code.example.com"})
        id_, _, _ = deploy(host, address(emulator, ca))
        assert id_ == "hcs-vm"


def test_missing_token_says_how_to_set_it(emulator: FortiOSEmulator, ca: Path) -> None:
    with ProviderHost() as host:
        host.configure({})
        details = grpc_error(lambda: host.create(host.check(address(emulator, ca)).inputs))
    assert "pulumi config set --secret fortigateApiToken" in details and "FORTIOS_API_TOKEN" in details
    assert sum(emulator.requests.values()) == 0


@pytest.mark.parametrize(
    ("token", "vdom", "expected"),
    [
        (READ_ONLY_TOKEN, "root", "lacks fwgrp-permission address (Firewall > Address: read-write) (403)"),
        (OTHER_VDOM_TOKEN, "root", "(403)"),
        ("tok-wrong-0000000000000000000000", "root", "API token was refused (401)"),
    ],
)
def test_permission_errors_are_typed(emulator: FortiOSEmulator, ca: Path, token: str, vdom: str, expected: str) -> None:
    with ProviderHost() as host:
        host.configure({TOKEN_KEY: token}, secret_keys=(TOKEN_KEY,))
        details = grpc_error(lambda: host.create(host.check({**address(emulator, ca), "vdom": vdom}).inputs))
    assert expected in details and token not in details


def test_lockout_is_reported_and_not_retried(emulator: FortiOSEmulator, ca: Path) -> None:
    emulator.lock_out()
    with ProviderHost() as host:
        host.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
        emulator.reset_counts()
        details = grpc_error(lambda: host.read("hcs-vm", address(emulator, ca)))
    assert "(429)" in details and sum(emulator.requests.values()) == 1


def test_faults_idempotent_calls_retry_creates_do_not(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    # A dropped GET during create is retried: the create still succeeds.
    emulator.inject("drop", method="GET")
    emulator.inject("status", method="GET", status=503)
    (id_, state, inputs), count = measured(emulator, lambda: deploy(host, address(emulator, ca)))
    assert id_ == "hcs-vm" and count == 4  # POST, dropped GET, 503 GET, GET

    # A dropped POST is not repeated: the error is clear and nothing was created.
    emulator.inject("drop", method="POST")
    other = host.check(address(emulator, ca, name="hcs-other")).inputs
    details, count = measured(emulator, lambda: grpc_error(lambda: host.create(other)))
    assert count == 1 and "POST firewall/address" in details and "after 1 attempt(s)" in details
    assert emulator.find("root", "firewall/address", "hcs-other") is None

    # A POST applied but whose answer is lost: the next attempt refuses to overwrite, and says how to adopt.
    emulator.inject("drop-after", method="POST")
    grpc_error(lambda: host.create(other))
    assert "already exists" in grpc_error(lambda: host.create(other))

    # A DELETE whose answer is lost is retried; the retry's "not found" is success.
    emulator.inject("drop-after", method="DELETE")
    _, count = measured(emulator, lambda: host.delete(id_, state))
    assert count == 2 and emulator.find("root", "firewall/address", id_) is None


def test_check_refuses_a_field_fortios_does_not_have_and_a_bad_value(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    emulator.reset_counts()
    failures = dict(host.check(policy(emulator, ca, "hcs-in-https", "top", **{"ssl-ssl-profile": "certificate-inspection",
                                                                               "action": "allow"})).failures)
    assert failures["payload.ssl-ssl-profile"] == (
        "firewall policy: FortiOS 7.4 has no field 'ssl-ssl-profile'; did you mean 'ssl-ssh-profile'?")
    assert failures["payload.action"] == "firewall policy field action: expected one of accept, deny, ipsec, got 'allow'"
    sensor = cmdb_props(emulator, ca, "ips/sensor", "hcs-ips", {"entries": [{"id": 1, "severity": "high urgent"}]})
    assert "entries[0].severity: expected space-separated words from info low medium high critical, got 'high urgent'" in (
        dict(host.check(sensor).failures)["payload.entries"])
    assert sum(emulator.requests.values()) == 0  # refused before any request


@pytest.mark.parametrize("unique_names", [False, True], ids=["device-accepts-duplicates", "device-refuses-duplicates"])
def test_a_duplicate_policy_name_is_refused_and_nothing_is_created(
    host: ProviderHost, certificate: tuple[Path, Path], ca: Path, unique_names: bool
) -> None:
    device = FortiOSEmulator(*certificate, {TOKEN: TokenScope()}, unique_policy_names=unique_names).start()
    try:
        theirs = device.seed_policy("root", "hcs-out-dns")
        before = device.table("root", "firewall/policy")
        details = grpc_error(lambda: host.create(host.check(policy(device, ca, "hcs-out-dns", "top")).inputs))
        assert "firewall policy 'hcs-out-dns' in vdom root" in details and "already exists" in details
        assert "fortigateAdopt" in details
        assert device.table("root", "firewall/policy") == before  # theirs untouched, no second one

        id_, _, _ = deploy(host, {**policy(device, ca, "hcs-out-dns", "top"), "adopt": True})
        assert id_ == str(theirs) and len(device.table("root", "firewall/policy")) == 1
    finally:
        device.stop()


def test_a_failed_create_names_the_object(host: ProviderHost, emulator: FortiOSEmulator, ca: Path) -> None:
    group = cmdb_props(emulator, ca, "firewall/addrgrp", "hcs-mgmt", {"member": ["no-such-address"]})
    assert "POST firewall/addrgrp hcs-mgmt (vdom root)" in grpc_error(lambda: host.create(host.check(group).inputs))
    emulator.inject("status", method="POST", status=503)
    details = grpc_error(lambda: host.create(host.check(address(emulator, ca)).inputs))
    assert "POST firewall/address hcs-vm (vdom root): HTTP 503" in details
