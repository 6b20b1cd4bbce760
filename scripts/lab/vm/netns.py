"""Two network namespaces joined by a veth pair: the "VM" and its "peer" (the network around it).

    VM namespace                          peer namespace
    lo 127.0.0.1                          lo 127.0.0.1
    eth0 192.0.2.10/24  <--- veth --->    eth0 192.0.2.1/24 (gateway)
    default via 192.0.2.1                      192.0.2.5/24 (e.g. the front proxy)
                                               198.51.100.7/24 (e.g. an admin in a management subnet)

The peer namespace plays every neighbour of the VM: the front proxy, an SSH client in a
management subnet, a client that must be refused. A client picks its source address by binding to
one of the peer addresses (`ssh -b`, `curl --interface`). Off-subnet peer addresses are reachable
because the VM's default route points at the peer, which owns them. The peer does not forward, and
neither namespace has a route to the host: traffic stays inside these namespaces.

Names embed our pid (`hcs<pid>n<k>v`/`...p`), so `remove_stale()` can delete namespaces left by a
killed test run without touching another live run's.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from scripts.lab.vm.prereq import run_checked

_counter = itertools.count(1)
_NAME = re.compile(r"^hcs(\d+)n\d+[vp]$")


@dataclass(frozen=True)
class NetworkPlan:
    """Addresses (with prefix length) of the VM, the peer's gateway and the peer's other addresses."""

    vm_address: str = "192.0.2.10/24"
    gateway_address: str = "192.0.2.1/24"
    peer_addresses: tuple[str, ...] = ("192.0.2.5/24", "198.51.100.7/24")

    def __post_init__(self) -> None:
        for value in (self.vm_address, self.gateway_address, *self.peer_addresses):
            ipaddress.ip_interface(value)  # raises ValueError naming the bad value

    @property
    def vm_ip(self) -> str:
        """The VM address without prefix length."""
        return str(ipaddress.ip_interface(self.vm_address).ip)

    @property
    def peer_ips(self) -> tuple[str, ...]:
        """Every address the peer namespace owns, gateway first, without prefix lengths."""
        return tuple(str(ipaddress.ip_interface(a).ip) for a in (self.gateway_address, *self.peer_addresses))


def ns_exec(namespace: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` inside `namespace`."""
    return ["ip", "netns", "exec", namespace, *argv]


class NamespacePair:
    """The VM and peer namespaces of one test root; `close()` kills their processes and deletes them."""

    def __init__(self, plan: NetworkPlan, tag: str | None = None) -> None:
        """`tag` names a pair that outlives this process (the demo's); by default the name embeds our pid."""
        self.plan = plan
        tag = tag or f"hcs{os.getpid()}n{next(_counter)}"
        self.vm = f"{tag}v"
        self.peer = f"{tag}p"
        # Created directly inside the namespaces, so the names need not be unique on the host.
        self.interface = "eth0"
        self._created: list[str] = []

    def create(self) -> NamespacePair:
        """Create both namespaces, the veth pair, addresses and routes."""
        ip = ["ip"]
        for ns in (self.vm, self.peer):
            run_checked([*ip, "netns", "add", ns], f"creating namespace {ns}")
            self._created.append(ns)
            run_checked(ns_exec(ns, ["ip", "link", "set", "lo", "up"]), f"loopback up in {ns}")
        run_checked([*ip, "link", "add", self.interface, "netns", self.vm, "type", "veth", "peer",
                     "name", self.interface, "netns", self.peer], "creating the veth pair")
        plan = self.plan
        steps = [
            (self.vm, ["ip", "addr", "add", plan.vm_address, "dev", self.interface]),
            (self.vm, ["ip", "link", "set", self.interface, "up"]),
            (self.peer, ["ip", "addr", "add", plan.gateway_address, "dev", self.interface]),
            *((self.peer, ["ip", "addr", "add", a, "dev", self.interface]) for a in plan.peer_addresses),
            (self.peer, ["ip", "link", "set", self.interface, "up"]),
            (self.vm, ["ip", "route", "add", "default", "via",
                       str(ipaddress.ip_interface(plan.gateway_address).ip)]),
        ]
        for ns, argv in steps:
            run_checked(ns_exec(ns, argv), f"{' '.join(argv)} in {ns}")
        return self

    def adopt(self) -> NamespacePair:
        """Take over an existing pair of this tag (made by an earlier process), so `close()` deletes it."""
        self._created = [ns for ns in (self.vm, self.peer) if ns in existing_namespaces()]
        return self

    def close(self) -> None:
        """Kill every process in both namespaces, then delete them (idempotent)."""
        for ns in reversed(self._created):
            delete_namespace(ns)
        self._created.clear()


def namespace_pids(namespace: str) -> list[int]:
    """Pids of the processes whose network namespace is `namespace`."""
    proc = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def delete_namespace(namespace: str, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, every process in `namespace`; then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = namespace_pids(namespace)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = namespace_pids(namespace)
            time.sleep(0.05)
        if not pids:
            break
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def existing_namespaces() -> list[str]:
    """Names of all named network namespaces on this machine."""
    proc = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def remove_stale() -> list[str]:
    """Delete our namespaces whose creating process is gone (a killed run); return their names."""
    removed = []
    for ns in existing_namespaces():
        match = _NAME.match(ns)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            delete_namespace(ns)
            removed.append(ns)
    return removed
