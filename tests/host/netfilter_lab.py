"""A two-namespace lab for the firewall hook: real iptables/ip6tables, real uids, real packets.

    unshare --net --mount --propagation private python3 tests/host/netfilter_lab.py LAB.json

Run inside fresh network and mount namespaces (the "VM"). It bind-mounts the lab's passwd and
group files over /etc (so the hook's account names resolve to test uids without touching the
machine), makes a second network namespace as the VM's whole outside world (a veth, every
destination address, IPv4 and IPv6, test listeners from `scripts/lab/demo/listeners.py`), starts the
local listeners as their owners, then runs each step of LAB.json and prints one JSON object:
{step name: output}. Steps are `hook ARG`, `probe USER PROTO ADDR PORT` (the demo's
`egress_probe.py` as USER), `peer PROTO ADDR PORT` (the probe from outside), `listen USER ADDR
PORT`, `unlisten ADDR PORT` and `sh CMD`. Standard library only: it runs as root under Debian's
python3, and the probes run as other uids.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE.parents[1] / "scripts" / "lab" / "demo" / "egress_probe.py"
LISTENERS = HERE.parents[1] / "scripts" / "lab" / "demo" / "listeners.py"
PYTHON = "/usr/bin/python3"
LISTEN = ("import socket,sys,time\n"
          "a,p=sys.argv[1],int(sys.argv[2]); s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET)\n"
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((a,p)); s.listen(16); print('ready',flush=True)\n"
          "while True:\n c,_=s.accept(); c.close()\n")


def sh(command: str) -> str:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"lab: {command!r} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


def as_user(user: str, argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups", "--", *argv]


def main(lab: dict) -> dict[str, str]:
    for name in ("passwd", "group"):
        sh(f"mount --bind {lab[name]} /etc/{name}")
    peer = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    time.sleep(0.3)
    inside = ["nsenter", f"--target={peer.pid}", "--net", "--"]
    vm4, vm6 = lab["vm"]
    sh("ip link set lo up && ip link add hcs0 type veth peer name hcs1")
    sh(f"ip link set hcs1 netns {peer.pid}")
    sh(f"ip addr add {vm4}/24 dev hcs0 && ip -6 addr add {vm6}/64 dev hcs0 nodad && ip link set hcs0 up")
    sh(f"ip route add default via {lab['gateway'][0]} && ip -6 route add default via {lab['gateway'][1]}")
    peer_sh = "; ".join([
        "set -e", "ip link set lo up", f"ip addr add {lab['gateway'][0]}/24 dev hcs1",
        f"ip -6 addr add {lab['gateway'][1]}/64 dev hcs1 nodad", "ip link set hcs1 up",
        *(f"ip addr add {a}/32 dev hcs1" for a in lab["outside4"]),
        *(f"ip -6 addr add {a}/128 dev hcs1 nodad" for a in lab["outside6"]),
        f"ip route add {vm4}/32 dev hcs1",
    ])
    subprocess.run([*inside, "sh", "-c", peer_sh], check=True, timeout=30)
    processes = [peer]
    outside = subprocess.Popen([*inside, PYTHON, str(LISTENERS), *lab["listeners"]], stdout=subprocess.PIPE, text=True)
    processes.append(outside)
    assert outside.stdout is not None and outside.stdout.readline().strip() == "ready"
    local: dict[tuple[str, int], subprocess.Popen[str]] = {}
    results: dict[str, str] = {}
    try:
        for name, step in lab["steps"]:
            kind, *args = step
            if kind == "hook":
                results[name] = sh(f"{lab['hook']} {args[0]}")
            elif kind == "probe":
                user, proto, address, port = args
                results[name] = subprocess.run(as_user(user, [PYTHON, str(PROBE), proto, address, str(port)]),
                                               capture_output=True, text=True, timeout=30).stdout.strip()
            elif kind == "peer":
                proto, address, port = args
                results[name] = subprocess.run([*inside, PYTHON, str(PROBE), proto, address, str(port)],
                                               capture_output=True, text=True, timeout=30).stdout.strip()
            elif kind == "listen":
                user, address, port = args
                listener = subprocess.Popen(as_user(user, [PYTHON, "-c", LISTEN, address, str(port)]), stdout=subprocess.PIPE, text=True)
                assert listener.stdout is not None
                results[name] = listener.stdout.readline().strip()
                local[(address, int(port))] = listener
            elif kind == "unlisten":
                listener = local.pop((args[0], int(args[1])))
                listener.kill()
                listener.wait()
                results[name] = "stopped"
            elif kind == "sh":
                results[name] = sh(args[0])
            else:
                raise SystemExit(f"lab: unknown step {kind!r}")
    finally:
        for process in [*local.values(), *processes]:
            process.kill()
            process.wait()
    return results


if __name__ == "__main__":
    if os.getuid() != 0:
        raise SystemExit("lab: run as root, inside unshare --net --mount")
    print(json.dumps(main(json.loads(Path(sys.argv[1]).read_text()))))
