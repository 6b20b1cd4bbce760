"""FortiGate edge settings: which device and VDOM, its interfaces, the public IP, and how to trust it.

Like the Cloudflare keys, they are validated whenever they are set, so one stack file can carry
both edges and switch with `edge` alone; they are required only when `edge` is `fortigate`.
The API token is a secret that only the dynamic provider ever reads (the engine passes the
stack's config to it); here it is checked for presence and shape only, never echoed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from components.settings import checks, rules
from components.settings.reader import Reader

#: The secret config key the FortiOS provider reads the API token from.
API_TOKEN_KEY = "fortigateApiToken"

_VDOM = r"^[A-Za-z0-9_-]{1,31}$"
_INTERFACE = r"^[A-Za-z0-9_.:-]{1,35}$"
_PROFILE = r"^[A-Za-z0-9_. -]{1,35}$"
_PREFIX = r"^[a-z][a-z0-9-]{0,11}$"
#: RFC 5737 documentation ranges: "private" to ipaddress, but what example stacks use.
_DOCUMENTATION = tuple(
    ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)
_PLACEMENT = r"^(top|(before|after):[1-9][0-9]{0,9})$"


@dataclass(frozen=True)
class FortigateSettings:
    """What the FortiGate edge needs; `ips_sensor` None means the stack manages its own sensor.

    `inbound` is True with the FortiGate edge (VIP, inbound HTTPS, front proxy → VM); with the
    Cloudflare edge a FortiGate in front of the DMZ still gets the VM's egress allowlist and SSH
    policy, but no inbound web path, so `wan_interface` and `public_ip` are then None.
    """

    inbound: bool
    url: str
    vdom: str
    wan_interface: str | None
    dmz_interface: str
    public_ip: ipaddress.IPv4Address | None
    ips_sensor: str | None
    ssl_profile: str
    ca_bundle: str | None
    insecure: bool
    placement: str
    name_prefix: str
    adopt: tuple[str, ...]
    egress_nat: bool


def _url(value: str) -> str:
    parts = urlsplit(value.strip())
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username or not port_ok:
        raise ValueError("expected the FortiGate management URL as https://<host>[:<port>] (no path, no credentials)")
    return value.strip().rstrip("/")


def _ca_bundle(value: str) -> str:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError("expected the path of a PEM CA bundle file that exists on the machine running pulumi")
    return str(path)


def parse(r: Reader, edge: str | None) -> FortigateSettings | None:
    """Read the `fortigate*` keys; validated whenever set.

    The FortiGate is managed with the FortiGate edge (everything required), and with the
    Cloudflare edge when `fortigateUrl` is set (egress and SSH only: no WAN side needed).
    """
    start = len(r.problems)
    inbound = edge == "fortigate"
    required = inbound or (edge == "cloudflare" and r.is_set("fortigateUrl"))
    unless_required: dict[str, None] = {} if required else {"default": None}
    unless_inbound: dict[str, None] = {} if inbound else {"default": None}
    url = r.string("fortigateUrl", _url, **unless_required)
    vdom = r.string("fortigateVdom", checks.matching(_VDOM, "a VDOM name (letters, digits, _ or -, at most 31)"))
    interface = checks.matching(_INTERFACE, "a FortiGate interface or zone name such as wan1 or port2")
    wan = r.string("fortigateWanInterface", interface, **unless_inbound)
    dmz = r.string("fortigateDmzInterface", interface, **unless_required)
    if wan is not None and wan == dmz:
        r.problem("fortigateDmzInterface", "expected an interface other than fortigateWanInterface")
    public_ip = r.string("fortigatePublicIp", rules.guard(checks.ipv4_address, rules.SPECIAL), **unless_inbound)
    if public_ip is not None and public_ip.is_private and not any(public_ip in n for n in _DOCUMENTATION):
        r.problem("fortigatePublicIp", f"expected the public IPv4 address the VIP answers on, got private {public_ip}")
    profile = checks.matching(_PROFILE, "the name of an existing profile (at most 35 characters)")
    ips_sensor = r.string("fortigateIpsSensor", profile, default=None)
    ssl_profile = r.string("fortigateSslProfile", profile)
    ca_bundle = r.string("fortigateCaBundle", _ca_bundle, default=None)
    insecure = r.boolean("fortigateInsecure")
    if insecure and ca_bundle:
        r.problem("fortigateInsecure", "set either fortigateCaBundle (verify with a private CA) or fortigateInsecure, not both")
    placement = r.string(
        "fortigatePolicyPlacement",
        checks.matching(_PLACEMENT, "top, before:<policy id> or after:<policy id>"),
    )
    prefix = r.string(
        "fortigateNamePrefix",
        checks.matching(_PREFIX, "a lower-case prefix of at most 12 letters, digits or - (names must fit 35 characters)"),
    )
    adopt = r.strings("fortigateAdopt")
    egress_nat = r.boolean("fortigateEgressNat")
    r.secret(API_TOKEN_KEY, checks.min_length(16), required=required)
    if not required or len(r.problems) > start:
        return None
    return FortigateSettings(
        inbound=inbound,
        url=url,
        vdom=vdom,
        wan_interface=wan if inbound else None,
        dmz_interface=dmz,
        public_ip=public_ip if inbound else None,
        ips_sensor=ips_sensor,
        ssl_profile=ssl_profile,
        ca_bundle=ca_bundle,
        insecure=insecure,
        placement=placement,
        name_prefix=prefix,
        adopt=tuple(adopt or ()),
        egress_nat=egress_nat,
    )
