"""A small team for the gateway tests: workspaces a, ab and c-d on the primary VM, z on another.

`ab` is there because its role `ws.ab` begins with `ws.a`; `c-d` because a hyphen must survive the
matcher names and the role's regular expression.
"""

from __future__ import annotations

import ipaddress

from components.settings.workspaces import Limits, Team, TeamVm, Workspace

DOMAIN = "example.com"
OTHER_VM = "two"


def workspace(name: str, vm: str = "vm") -> Workspace:
    return Workspace(name=name, users=("0a0a0a0a-1111-2222-3333-444444444444",), groups=(), vm=vm, limits=Limits(), egress=(), proxy_port=3128)


def team(*names: str) -> Team:
    """The team of `names` on the primary VM (default a, ab, c-d) plus z on `OTHER_VM`."""
    on_primary = tuple(workspace(n) for n in (names or ("a", "ab", "c-d")))
    vms = (TeamVm("vm", ipaddress.IPv4Address("192.0.2.10"), None), TeamVm(OTHER_VM, ipaddress.IPv4Address("192.0.2.11"), None))
    return Team(DOMAIN, vms, (*on_primary, workspace("z", OTHER_VM)))
