"""The team firewall hook, run by real iptables and ip6tables in the netfilter lab (tests/host/netfilter_lab.py).

Two workspace accounts at the ends of the workspace uid range (so a range off by one at either end
fails), two accounts just outside it, the service account, root and Squid's account connect for real
(setpriv) to stand-in listeners: the router on 127.0.0.1:8080, the gateway's port, one proxy port per
workspace, a root service on loopback, and the outside world of the single-user lab. Expectations are
written from the design (docs/team.md), not read from the renderer: each workspace reaches its
own proxy port and nothing else, on the VM or off it; only the service account reaches the router
and the gateway; root's and the service account's own flows still pass; no workspace listener answers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from components.host import render_workspaces as rw
from components.settings import workspaces
from components.settings.ide import EgressDomain
from scripts.lab.converge import sample
from tests.host.test_firewall_hook import GATEWAY_PORT, REFUSED, ROOT, SVC, UIDS, VM, run_lab
from tests.host.test_render_workspaces import A, B

WS_A, WS_B, BELOW, ABOVE, SQUID = "ws-a", "ws-b", "below", "above", "proxy"
ACCOUNTS = {**UIDS, SQUID: 13, WS_A: 20000, WS_B: 29999, BELOW: 19999, ABOVE: 30000}
#: A workspace of the config whose account the VM does not have (yet): its port must stay closed.
GHOST = dataclasses.replace(A, name="ghost", egress=(EgressDomain("git.example.com"),), proxy_port=3130)
ROUTER, ROOT_LOCAL = ("127.0.0.1", 8080), ("127.0.0.1", 10050)
PORTS = {WS_A: ("127.0.0.1", A.proxy_port), WS_B: ("127.0.0.1", B.proxy_port), "ghost": ("127.0.0.1", GHOST.proxy_port)}
#: Off the VM (the single-user lab's listeners): a resolver, an address outside every allowlist, IPv6, root's backup, Entra.
OFF_VM = {"dns": ("udp", "192.0.2.53", 53), "https": ("tcp", "203.0.113.50", 443), "v6": ("tcp", "2001:db8:1::50", 443),
          "backup": ("tcp", "192.0.2.30", 8000), "entra": ("tcp", "20.190.128.10", 443)}


def test_each_workspace_reaches_its_own_proxy_port_and_nothing_else(tmp_path: Path) -> None:
    s = sample.settings()
    topology = dataclasses.replace(s.topology, ide_egress=workspaces.egress_union([A, B, GHOST]))
    hook = rw.ufw_after_init(topology, s.host, [A, B, GHOST])
    steps: list[tuple[str, list[object]]] = [
        ("router", ["listen", SVC, *ROUTER]), ("gw", ["listen", SVC, "127.0.0.1", GATEWAY_PORT]),
        ("local", ["listen", ROOT, *ROOT_LOCAL]), *((f"port {n}", ["listen", SQUID, *p]) for n, p in PORTS.items()),
        ("start", ["hook", "start"]),
    ]
    users = (WS_A, WS_B, SVC, ROOT, BELOW, ABOVE)
    local = {"router": ROUTER, "gw": ("127.0.0.1", GATEWAY_PORT), "local": ROOT_LOCAL, **{f"port {n}": p for n, p in PORTS.items()}}
    steps += [(f"{what}|{u}", ["probe", u, "tcp", *addr]) for what, addr in local.items() for u in users]
    steps += [(f"v6 local|{u}", ["probe", u, "tcp", "::1", 10050]) for u in (WS_A, WS_B)]
    steps += [(f"udp local|{u}", ["probe", u, "udp", "127.0.0.1", 53]) for u in (WS_A, WS_B)]
    steps += [(f"{what}|{u}", ["probe", u, *flow]) for what, flow in OFF_VM.items() for u in (WS_A, WS_B, SVC, ROOT, SQUID)]
    out = run_lab(tmp_path, hook, steps, ACCOUNTS)
    assert "ghost is no workspace account here" in out["start"]  # the hook still starts, its port stays closed

    def reached(what: str, user: str) -> bool:
        assert out[f"{what}|{user}"] == "connected" or out[f"{what}|{user}"] in REFUSED, (what, user, out[f"{what}|{user}"])
        return out[f"{what}|{user}"] == "connected"

    expected_local = {
        "router": {SVC}, "gw": {SVC}, f"port {WS_A}": {WS_A}, f"port {WS_B}": {WS_B}, "port ghost": set(),
        # a root service on loopback: every account but the workspaces (the range, and only the range)
        "local": {SVC, ROOT, BELOW, ABOVE},
    }
    table = {(what, u): out[f"{what}|{u}"] for what in local for u in users}
    for what, allowed in expected_local.items():
        assert {u for u in users if reached(what, u)} == allowed, (what, table)
    for u in (WS_A, WS_B):
        assert out[f"v6 local|{u}"] in REFUSED and out[f"udp local|{u}"] in REFUSED
    expected_off = {"dns": {SVC, ROOT, SQUID}, "https": {SQUID}, "v6": set(), "backup": {ROOT}, "entra": {SVC, SQUID}}
    for what, allowed in expected_off.items():
        assert {u for u in (WS_A, WS_B, SVC, ROOT, SQUID) if reached(what, u)} == allowed, (what, out)


def test_no_workspace_listener_answers(tmp_path: Path) -> None:
    """A workspace may bind (netfilter cannot stop a bind) but never completes a handshake: not as
    a server of its own, not as the router while the router is down, not to the network."""
    s = sample.settings()
    hook = rw.ufw_after_init(s.topology, s.host, [A, B])
    steps: list[tuple[str, list[object]]] = [
        ("start", ["hook", "start"]),
        ("own", ["listen", WS_A, "127.0.0.1", 9000]), ("own vm", ["listen", WS_A, VM[0], 9000]),
        ("router squat", ["listen", WS_B, *ROUTER]), ("gw squat", ["listen", WS_B, VM[0], GATEWAY_PORT]),
        ("svc to own", ["probe", SVC, "tcp", "127.0.0.1", 9000]), ("ws-b to own", ["probe", WS_B, "tcp", "127.0.0.1", 9000]),
        ("front to own", ["peer", "tcp", VM[0], 9000]), ("svc to router", ["probe", SVC, "tcp", *ROUTER]),
        ("front to gw", ["peer", "tcp", VM[0], GATEWAY_PORT]),
    ]
    out = run_lab(tmp_path, hook, steps, ACCOUNTS)
    assert out["own"] == out["own vm"] == out["router squat"] == out["gw squat"] == "ready"
    assert out["svc to own"] == out["front to own"] == out["svc to router"] == out["front to gw"] == "timeout"
    assert out["ws-b to own"] in REFUSED  # and one workspace never even reaches another's port
