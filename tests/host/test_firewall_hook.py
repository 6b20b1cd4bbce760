"""The rendered ufw hook, run by real iptables and ip6tables in a private two-namespace lab.

Connections are made as real uids (setpriv) of the example stack's accounts, resolved from a
passwd file the lab mounts over /etc/passwd, to listeners outside the "VM" (every destination of
the allowlist, IPv4 and IPv6) and on its loopback. Expectations are written from the design, not
read back from the renderer: each service account reaches its own destinations and nothing
else; the IDE user reaches nothing off the VM (not even a resolver) and only its own code-server
on it; a port the IDE user binds (the gateway's, while the gateway is down) never answers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from components import layout
from components.host import render
from scripts.lab.converge import sample
from tests.host.test_render import tool

LAB = Path(__file__).resolve().parent / "netfilter_lab.py"
ROOT, APT, SVC, IDE, TIMESYNC, ZABBIX, WAZUH, OTHER = "root", "_apt", "codesvc", "coder", "systemd-timesync", "zabbix", "wazuh", "nobody"
UIDS = {ROOT: 0, APT: 42, SVC: 64001, IDE: 64002, TIMESYNC: 64010, ZABBIX: 64011, WAZUH: 64012, OTHER: 65534}
VM, GATEWAY_PORT = ("192.0.2.10", "2001:db8::10"), 8880
#: The example stack's destinations (Pulumi.dev.yaml and scripts/lab/converge/sample.py), each with who opens it.
DESTINATIONS = {
    "dns udp": (("udp", "192.0.2.53", 53), {ROOT, APT, SVC, TIMESYNC}),
    "dns tcp": (("tcp", "192.0.2.53", 53), {ROOT, APT, SVC, TIMESYNC}),
    "ntp": (("udp", "192.0.2.123", 123), {ROOT, TIMESYNC}),
    "apt proxy": (("tcp", "192.0.2.40", 3142), {ROOT, APT}),
    "backup": (("tcp", "192.0.2.30", 8000), {ROOT}),
    "wazuh": (("tcp", "192.0.2.20", 1514), {ROOT, WAZUH}),
    "zabbix": (("tcp", "192.0.2.21", 10051), {ZABBIX}),
    "entra": (("tcp", "20.190.128.10", 443), {SVC}),
    "registry": (("tcp", "192.0.2.41", 443), {ROOT}),
    "outside every allowlist": (("tcp", "203.0.113.50", 443), set()),
    "resolver, another port": (("tcp", "192.0.2.53", 443), set()),
    "ipv6 https": (("tcp", "2001:db8:1::50", 443), set()),
    "ipv6 dns": (("udp", "2001:db8:1::53", 53), set()),
}
#: The VM refused it itself: EPERM, or an immediate ICMP "administratively prohibited".
REFUSED = ("blocked", "unreachable")


def _accounts(tmp_path: Path, accounts: dict[str, int]) -> tuple[Path, Path]:
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("".join(f"{name}:x:{uid}:{uid if uid != 42 else 65534}::/nonexistent:/usr/sbin/nologin\n"
                              for name, uid in accounts.items()))
    group.write_text("".join(f"{name}:x:{uid}:\n" for name, uid in accounts.items() if uid != 42) + "nogroup:x:65534:\n")
    return passwd, group


def run_lab(tmp_path: Path, hook_text: str, steps: list[tuple[str, list[object]]],
            accounts: dict[str, int] = UIDS) -> dict[str, str]:
    """Each step's output, run in the lab with `accounts` (name: uid) as the VM's passwd and group."""
    hook = tmp_path / "after.init"
    hook.write_text(hook_text)
    hook.chmod(0o755)
    passwd, group = _accounts(tmp_path, accounts)
    listeners = [f"{proto}:{addr}:{port}" for (proto, addr, port), _ in DESTINATIONS.values()]
    lab = {
        "hook": str(hook), "passwd": str(passwd), "group": str(group), "vm": list(VM),
        "gateway": ["192.0.2.1", "2001:db8::1"],
        "outside4": sorted({addr for (_, addr, _), _ in DESTINATIONS.values() if ":" not in addr} - {"192.0.2.1"}),
        "outside6": sorted({addr for (_, addr, _), _ in DESTINATIONS.values() if ":" in addr}),
        "listeners": listeners, "steps": steps,
    }
    spec = tmp_path / "lab.json"
    spec.write_text(json.dumps(lab))
    done = subprocess.run([tool("unshare"), "--net", "--mount", "--propagation", "private", "/usr/bin/python3", str(LAB), str(spec)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_account_reaches_exactly_its_own_destinations(tmp_path: Path) -> None:
    s = sample.settings()
    steps: list[tuple[str, list[object]]] = [("before", ["probe", IDE, "udp", "192.0.2.53", 53]),
                                               ("start", ["hook", "start"]), ("start again", ["hook", "start"])]
    steps += [(f"{what}|{user}", ["probe", user, *flow]) for what, (flow, _) in DESTINATIONS.items() for user in UIDS]
    steps += [("jumps", ["sh", "iptables -S OUTPUT | grep -c -e hcs-egress -e hcs-loopback; ip6tables -S OUTPUT | grep -c -e hcs-egress -e hcs-loopback"]),
              ("stop", ["hook", "stop"]),
              ("after stop", ["probe", IDE, "udp", "192.0.2.53", 53]),
              ("left", ["sh", "(iptables-save; ip6tables-save) | grep -c hcs- || true"])]
    out = run_lab(tmp_path, render.ufw_after_init(s.topology, s.host), steps)
    assert out["before"] == "connected"  # the lab works: without the hook the IDE user reaches the resolver
    table: dict[tuple[str, str], str] = {}
    for what, (_, allowed) in DESTINATIONS.items():
        for user in UIDS:
            table[(what, user)] = out[f"{what}|{user}"]
            expected = "connected"
            assert (out[f"{what}|{user}"] == expected) if user in allowed else (out[f"{what}|{user}"] in REFUSED), (what, user, table)
    assert out["jumps"].split() == ["2", "2"]  # a second start leaves one jump per chain and family, not two
    assert out["after stop"] == "connected" and out["left"] == "0"  # stop leaves no trace, as ufw expects of its hook


def test_loopback_by_identity_and_nothing_for_the_ide_user_to_squat(tmp_path: Path) -> None:
    s = sample.settings()
    code_server = ("127.0.0.1", layout.CODE_SERVER_PORT)
    other_local = ("127.0.0.1", 10050)  # e.g. the Zabbix agent's passive port, root's here
    steps: list[tuple[str, list[object]]] = [
        ("cs", ["listen", IDE, *code_server]), ("gw", ["listen", SVC, "127.0.0.1", GATEWAY_PORT]),
        ("gw-vm", ["listen", SVC, VM[0], GATEWAY_PORT]), ("local", ["listen", ROOT, *other_local]),
        ("start", ["hook", "start"]),
    ]
    steps += [(f"cs|{u}", ["probe", u, "tcp", *code_server]) for u in (SVC, IDE, ROOT, ZABBIX)]
    steps += [(f"gw|{u}", ["probe", u, "tcp", "127.0.0.1", GATEWAY_PORT]) for u in (SVC, IDE, ROOT)]
    steps += [(f"local|{u}", ["probe", u, "tcp", *other_local]) for u in (ROOT, IDE)]
    steps += [("local udp|ide", ["probe", IDE, "udp", "127.0.0.1", 53]), ("v6 local|ide", ["probe", IDE, "tcp", "::1", 10050])]
    steps += [("front before", ["peer", "tcp", VM[0], GATEWAY_PORT])]
    # the gateway goes down; the IDE user binds its port on the VM's address and on loopback
    steps += [("down", ["unlisten", VM[0], GATEWAY_PORT]), ("down lo", ["unlisten", "127.0.0.1", GATEWAY_PORT]),
              ("squat", ["listen", IDE, VM[0], GATEWAY_PORT]), ("squat lo", ["listen", IDE, "127.0.0.1", GATEWAY_PORT]),
              ("squat v6", ["listen", IDE, VM[1], GATEWAY_PORT]),
              ("front to squat", ["peer", "tcp", VM[0], GATEWAY_PORT]), ("front to squat v6", ["peer", "tcp", VM[1], GATEWAY_PORT]),
              ("svc to squat", ["probe", SVC, "tcp", "127.0.0.1", GATEWAY_PORT])]
    out = run_lab(tmp_path, render.ufw_after_init(s.topology, s.host), steps)
    assert (out[f"cs|{SVC}"], out[f"cs|{IDE}"]) == ("connected", "connected")  # oauth2-proxy, and the IDE user itself
    assert out[f"cs|{ROOT}"] in REFUSED and out[f"cs|{ZABBIX}"] in REFUSED
    assert out[f"gw|{SVC}"] == "connected" and out[f"gw|{IDE}"] in REFUSED and out[f"gw|{ROOT}"] in REFUSED
    assert out[f"local|{ROOT}"] == "connected" and out[f"local|{IDE}"] in REFUSED
    assert out["local udp|ide"] in REFUSED and out["v6 local|ide"] in REFUSED
    assert out["front before"] == "connected"
    assert out["squat"] == out["squat lo"] == out["squat v6"] == "ready"  # binding works (no netfilter can stop a bind) ...
    # ... but the squatter never completes a handshake: no visitor's request reaches it
    assert out["front to squat"] == out["front to squat v6"] == out["svc to squat"] == "timeout"


def test_with_outgoing_left_open_the_ide_user_still_reaches_nothing(tmp_path: Path) -> None:
    """`ufwDenyOutgoing: false` opens the VM to its services (the stack's choice, posture OFF), never to the IDE user."""
    s = sample.settings(ufwDenyOutgoing="false")
    flow = ["tcp", "203.0.113.50", 443]  # outside every allowlist
    out = run_lab(tmp_path, render.ufw_after_init(s.topology, s.host),
                  [("start", ["hook", "start"]), ("root", ["probe", ROOT, *flow]), ("other", ["probe", OTHER, *flow]),
                   ("ide", ["probe", IDE, *flow]), ("ide dns", ["probe", IDE, "udp", "192.0.2.53", 53]),
                   ("ide v6", ["probe", IDE, "tcp", "2001:db8:1::50", 443])])
    assert (out["root"], out["other"]) == ("connected", "connected")
    assert out["ide"] in REFUSED and out["ide dns"] in REFUSED and out["ide v6"] in REFUSED
