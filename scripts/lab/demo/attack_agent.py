"""The attacker at the IDE's terminal: a small agent started *from* code-server's own terminal.

Typed into the workbench's terminal (see `scripts/lab/demo/attacker.py`), it runs as the IDE user
inside code-server's unit (its cgroup, seccomp filter, namespaces, no-new-privileges) exactly
like anything a person runs there, and carries out the attempts the test asks for:

    python3 attack_agent.py DIR      (DIR: a directory of the IDE user's, e.g. ~/.hcs-attack)

The test writes `DIR/N.json` ({"op": ..., ...}); the agent answers in `DIR/N.out.json`. Ops:
`run` (argv → exit code, stdout, stderr), `listen` (bind and listen on TCP or a Unix path,
counting accepted connections in the background), `unlisten` (close; the count), `stop`.
Standard library only: it runs under the VM's Debian python3.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


class Listener:
    """A socket the attacker holds: bound, listening, counting whoever connects."""

    def __init__(self, family: str, address: str, port: int) -> None:
        kind = {"unix": socket.AF_UNIX, "inet6": socket.AF_INET6}.get(family, socket.AF_INET)
        self.sock = socket.socket(kind, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address if kind == socket.AF_UNIX else (address, port))
        self.sock.listen(16)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(2)
            try:
                conn.recv(4096)  # what a squatter would read: the visitor's request and cookies
            except OSError:
                pass
            conn.close()


def handle(request: dict, listeners: dict[str, Listener]) -> dict:
    op = request["op"]
    if op == "run":
        try:
            done = subprocess.run(request["argv"], capture_output=True, text=True, timeout=request.get("timeout", 20),
                                  input=request.get("input"))
        except FileNotFoundError as error:
            return {"rc": 127, "stdout": "", "stderr": str(error)}
        except subprocess.TimeoutExpired:
            return {"rc": 124, "stdout": "", "stderr": "timed out"}
        return {"rc": done.returncode, "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:]}
    if op == "listen":
        key = f"{request['family']}:{request['address']}:{request.get('port', 0)}"
        try:
            listeners[key] = Listener(request["family"], request["address"], request.get("port", 0))
        except OSError as error:
            return {"bound": False, "error": f"{type(error).__name__}: {error.strerror}"}
        return {"bound": True, "key": key}
    if op == "unlisten":
        listener = listeners.pop(request["key"])
        # shutdown wakes the thread blocked in accept(); close alone would leave the port held
        listener.sock.shutdown(socket.SHUT_RDWR)
        listener.sock.close()
        return {"accepted": listener.accepted}
    raise ValueError(f"unknown op {op!r}")


def main(directory: Path) -> None:
    listeners: dict[str, Listener] = {}
    (directory / "ready").write_text(str(os.getpid()))
    served: set[str] = set()
    while True:
        for path in sorted(directory.glob("*.json")):
            if path.name.endswith(".out.json") or path.name in served:
                continue
            served.add(path.name)
            request = json.loads(path.read_text())
            if request["op"] == "stop":
                return
            try:
                answer = handle(request, listeners)
            except Exception as error:  # reported to the test, never silently dropped
                answer = {"error": f"{type(error).__name__}: {error}"}
            tmp = directory / (path.stem + ".tmp")
            tmp.write_text(json.dumps(answer))
            tmp.rename(directory / (path.stem + ".out.json"))
        time.sleep(0.05)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
