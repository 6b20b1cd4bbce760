"""The FortiOS client against the emulator over real HTTPS: auth, TLS, typed errors, retries."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from components.fortigate.client import (
    AlreadyExists,
    Endpoint,
    Forbidden,
    FortiOSClient,
    InsecureTLSWarning,
    InUse,
    InvalidValue,
    LockedOut,
    NotFound,
    TLSVerificationError,
    TransportError,
    Unauthorized,
)
from scripts.lab.fortios.emulator import FortiOSEmulator
from tests.fortigate.conftest import READ_ONLY_TOKEN, TOKEN


@pytest.fixture
def client(emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> FortiOSClient:
    pauses: list[float] = []
    made = FortiOSClient(Endpoint(emulator.url, str(certificate[0]), timeout=0.5), TOKEN, sleep=pauses.append)
    made.pauses = pauses  # type: ignore[attr-defined]
    return made


def test_bearer_header_only_and_every_call_names_its_vdom(client: FortiOSClient, emulator: FortiOSEmulator) -> None:
    client.create("firewall/address", {"name": "a/b c", "subnet": "192.0.2.1/32"}, vdom="root")
    assert client.get("firewall/address", "a/b c", vdom="root")[0]["subnet"] == "192.0.2.1 255.255.255.255"
    for method, path, query in emulator.log:
        assert query.get("vdom") == "root" and "access_token" not in query
    assert emulator.log[-1][1] == "/api/v2/cmdb/firewall/address/a%2Fb%20c"  # one URL segment
    assert TOKEN not in repr(client)


def test_the_device_refuses_a_token_in_the_url(emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> None:
    response = httpx.get(f"{emulator.url}/api/v2/cmdb/firewall/address", params={"access_token": TOKEN, "vdom": "root"},
                         verify=ssl.create_default_context(cafile=certificate[0]))
    assert response.status_code == 401 and response.json()["http_status"] == 401


def test_envelope_is_parsed_into_typed_errors(client: FortiOSClient, emulator: FortiOSEmulator) -> None:
    client.create("firewall/address", {"name": "vm", "subnet": "192.0.2.10/32"}, vdom="root")
    with pytest.raises(AlreadyExists) as exists:
        client.create("firewall/address", {"name": "vm", "subnet": "192.0.2.10/32"}, vdom="root")
    assert exists.value.error_code == -5 and exists.value.http_status == 500
    with pytest.raises(NotFound):
        client.get("firewall/address", "nope", vdom="root")
    with pytest.raises(NotFound) as gone:
        client.delete("firewall/address", "nope", vdom="root")
    assert gone.value.error_code == -3
    with pytest.raises(InvalidValue, match="entry not found in datasource: member"):
        client.create("firewall/addrgrp", {"name": "g", "member": [{"name": "ghost"}]}, vdom="root")
    client.create("firewall/addrgrp", {"name": "g", "member": [{"name": "vm"}]}, vdom="root")
    client.create("firewall/addrgrp", {"name": "g2", "member": [{"name": "vm"}]}, vdom="root")
    with pytest.raises(InUse) as in_use:
        client.delete("firewall/address", "vm", vdom="root")
    assert in_use.value.references == 2 and in_use.value.error_code == -23
    assert "vm" not in [a["name"] for a in emulator.table("dmz-lab", "firewall/address")]  # vdom isolation


def test_auth_errors(emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> None:
    endpoint = Endpoint(emulator.url, str(certificate[0]))
    with pytest.raises(Forbidden, match=r"fwgrp-permission policy \(Firewall > Policy: read-write\)"):
        FortiOSClient(endpoint, READ_ONLY_TOKEN).delete("firewall/policy", 1, vdom="root")
    FortiOSClient(endpoint, READ_ONLY_TOKEN).get("firewall/policy", vdom="root")  # reading is allowed
    with pytest.raises(Unauthorized):
        FortiOSClient(endpoint, "tok-not-a-real-one-000000000000000").get("firewall/address", vdom="root")
    emulator.lock_out()
    locked = FortiOSClient(endpoint, TOKEN, sleep=lambda _: None)
    with pytest.raises(LockedOut):
        locked.get("firewall/address", vdom="root")
    assert locked.requests == 1  # a lockout is never retried


def test_tls_is_verified_by_default(emulator: FortiOSEmulator) -> None:
    with pytest.raises(TLSVerificationError, match="fortigateCaBundle"):
        FortiOSClient(Endpoint(emulator.url), TOKEN).get("firewall/address", vdom="root")
    with pytest.warns(InsecureTLSWarning, match="OFF"):
        insecure = FortiOSClient(Endpoint(emulator.url, insecure=True), TOKEN)
    assert insecure.get("firewall/address", "all", vdom="root")[0]["name"] == "all"
    with pytest.raises(ValueError, match="https://"):
        Endpoint("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="not both"):
        Endpoint("https://192.0.2.1", ca_bundle="/x.pem", insecure=True)


def test_a_collection_delete_cannot_be_sent(client: FortiOSClient, emulator: FortiOSEmulator) -> None:
    client.create("firewall/address", {"name": "keep", "subnet": "192.0.2.9/32"}, vdom="root")
    for key in (None, "", "  "):
        with pytest.raises(ValueError, match="without an object key"):
            client.delete("firewall/address", key, vdom="root")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client._request("DELETE", "firewall/address", key, vdom="root")
    with pytest.raises(ValueError, match="CMDB path"):
        client.get("firewall/../system", vdom="root")
    assert not [entry for entry in emulator.log if entry[0] == "DELETE"]
    assert emulator.find("root", "firewall/address", "keep") is not None


def test_only_idempotent_requests_are_retried_with_bounded_backoff(client: FortiOSClient, emulator: FortiOSEmulator) -> None:
    emulator.inject("drop", times=2, method="GET")
    emulator.inject("status", method="GET", status=502)
    assert client.get("firewall/address", "all", vdom="root")
    assert client.requests == 4 and client.pauses == [0.2, 0.4, 0.8]  # type: ignore[attr-defined]

    emulator.inject("drop", times=10, method="PUT")
    with pytest.raises(TransportError, match="after 4 attempt"):
        client.update("firewall/address", "all", {"comment": "x"}, vdom="root")

    emulator.inject("drop", method="POST")
    before = client.requests
    with pytest.raises(TransportError, match="after 1 attempt"):
        client.create("firewall/address", {"name": "n", "subnet": "192.0.2.3/32"}, vdom="root")
    assert client.requests == before + 1

    emulator.inject("status", method="POST", status=503)
    with pytest.raises(Exception, match="HTTP 503"):
        client.create("firewall/address", {"name": "n", "subnet": "192.0.2.3/32"}, vdom="root")


def test_timeouts_are_retried_for_reads(client: FortiOSClient, emulator: FortiOSEmulator) -> None:
    emulator.inject("latency", method="GET", delay=1.0)  # longer than the 0.5 s timeout
    assert client.get("firewall/address", "all", vdom="root")[0]["name"] == "all"
    assert client.requests == 2


def test_backoff_is_bounded(emulator: FortiOSEmulator, certificate: tuple[Path, Path]) -> None:
    pauses: list[float] = []
    patient = FortiOSClient(Endpoint(emulator.url, str(certificate[0])), TOKEN, retries=10, backoff=1, max_backoff=3,
                            sleep=pauses.append)
    emulator.inject("status", times=6, method="GET", status=504)
    patient.get("firewall/address", "all", vdom="root")
    assert pauses == [1, 2, 3, 3, 3, 3]
