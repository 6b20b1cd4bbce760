"""Typed FortiGate resources: one class (and one type token) per CMDB table, one shared provider.

Each class is a `pulumi.dynamic.Resource` with its own token, e.g.
`pulumi-python:dynamic/fortios:FirewallVip`, so plans, state and policies can tell a VIP from an
address. Inputs carry the device's own (hyphenated) field names in `payload`, so what the plan
shows is what the FortiGate receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
import pulumi.dynamic

from components.fortigate.provider import CmdbProvider


@dataclass(frozen=True)
class Connection:
    """Which FortiGate and VDOM, how to trust its certificate, and where its token is configured.

    `token_key` is the fully qualified config key ("<project>:fortigateApiToken"): the provider
    reads the value itself, so the token is never a resource input.
    """

    url: str
    vdom: str
    token_key: str
    ca_bundle: str | None = None
    insecure: bool = False


class CmdbObject(pulumi.dynamic.Resource):
    """One FortiOS CMDB object; subclasses fix the table (`path`) and the type token."""

    path: ClassVar[str]
    name: pulumi.Output[str]
    mkey: pulumi.Output[str]
    uuid: pulumi.Output[str]
    payload: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        resource_name: str,
        connection: Connection,
        object_name: pulumi.Input[str],
        payload: pulumi.Input[dict[str, Any]],
        *,
        adopt: bool = False,
        opts: pulumi.ResourceOptions | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "url": connection.url,
            "vdom": connection.vdom,
            "ca_bundle": connection.ca_bundle,
            "insecure": connection.insecure,
            "path": self.path,
            "name": object_name,
            "payload": payload,
            "adopt": adopt,
            **(extra or {}),
            "mkey": None,
            "uuid": None,
        }
        super().__init__(CmdbProvider(connection.token_key), resource_name, props, opts)


class FirewallAddress(CmdbObject, module="fortios", name="FirewallAddress"):
    """`firewall/address`: an IPv4 subnet (`subnet` accepts CIDR; the device stores "ip mask")."""

    path = "firewall/address"


class FirewallAddressGroup(CmdbObject, module="fortios", name="FirewallAddressGroup"):
    """`firewall/addrgrp`: a set of addresses (`member`)."""

    path = "firewall/addrgrp"


class FirewallServiceCustom(CmdbObject, module="fortios", name="FirewallServiceCustom"):
    """`firewall.service/custom`: TCP/UDP port ranges."""

    path = "firewall.service/custom"


class FirewallVip(CmdbObject, module="fortios", name="FirewallVip"):
    """`firewall/vip`: destination NAT of a public IP (and port) to an internal address."""

    path = "firewall/vip"


class IpsSensor(CmdbObject, module="fortios", name="IpsSensor"):
    """`ips/sensor`: an IPS profile managed by this stack."""

    path = "ips/sensor"


class FirewallPolicy(CmdbObject, module="fortios", name="FirewallPolicy"):
    """`firewall/policy`: the device assigns `policyid` (the resource ID); `placement` keeps it
    at the top, or directly before/after another policy (by ID, or by name for the stack's own).
    `block` (the names of the ordered block it belongs to, and the block's placement) lets any
    one policy's create or update put the whole block back in order in one pass."""

    path = "firewall/policy"
    policyid: pulumi.Output[int]
    placement: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        connection: Connection,
        object_name: str,
        payload: pulumi.Input[dict[str, Any]],
        *,
        placement: pulumi.Input[str] = "top",
        block: tuple[tuple[str, ...], str] | None = None,
        adopt: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        extra: dict[str, Any] = {"placement": placement, "policyid": None}
        if block is not None:
            extra["block"] = {"names": list(block[0]), "placement": block[1]}
        super().__init__(resource_name, connection, object_name, payload, adopt=adopt, opts=opts, extra=extra)
