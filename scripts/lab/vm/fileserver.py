"""A static HTTP file server in the peer namespace, so the VM can download test artifacts.

The host tests serve a locally built fake code-server .deb (and a tampered one, for the
wrong-checksum case) to the VM's install script. The server is the standard library's
`SimpleHTTPRequestHandler` run as a child process in the peer namespace, bound to one peer
address; it records every request (client address, method, path, status) as JSON lines, so a test
can prove what the VM fetched and from which address.

Run by `serve_directory()` as `python -m scripts.lab.vm.fileserver --bind ADDR --directory DIR
--requests LOG`, which prints `port N` once listening (the kernel picks the port).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scripts import REPOSITORY
from scripts.lab.vm.prereq import RealRootError


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    client: str
    method: str
    path: str
    status: int


class ServedDirectory:
    """A directory served over HTTP from the peer namespace; `url` ends with '/'."""

    def __init__(self, popen: subprocess.Popen[bytes], address: str, port: int, directory: Path,
                 requests_log: Path) -> None:
        self.popen = popen
        self.address = address
        self.port = port
        self.directory = directory
        self.url = f"http://{address}:{port}/"
        self._requests_log = requests_log

    def requests(self) -> list[Request]:
        """Every request answered so far, oldest first."""
        if not self._requests_log.exists():
            return []
        return [Request(**json.loads(line)) for line in self._requests_log.read_text().splitlines() if line]

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)


def serve_directory(peer_argv: list[str], address: str, directory: Path, requests_log: Path) -> ServedDirectory:
    """Start the server; `peer_argv` is the prefix that enters the peer namespace (`ip netns exec NS`)."""
    errors = requests_log.with_suffix(".stderr")
    with errors.open("ab") as sink:
        popen = subprocess.Popen(
            [*peer_argv, sys.executable, "-m", "scripts.lab.vm.fileserver", "--bind", address,
             "--directory", str(directory), "--requests", str(requests_log)],
            cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink,
        )
    assert popen.stdout is not None
    words = popen.stdout.readline().decode().split()
    if len(words) != 2 or words[0] != "port":
        popen.kill()
        popen.wait()
        raise RealRootError(f"the file server did not start on {address}:\n{errors.read_text()}")
    return ServedDirectory(popen, address, int(words[1]), directory, requests_log)


class _RecordingHandler(SimpleHTTPRequestHandler):
    """Serves files and appends each answered request to the requests log."""

    requests_log: Path

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        record = {"client": self.client_address[0], "method": self.command, "path": self.path,
                  "status": int(code) if str(code).isdigit() else 0}
        with self.requests_log.open("a") as sink:
            sink.write(json.dumps(record) + "\n")


def main() -> None:
    """Serve a directory on an address (port chosen by the kernel) until terminated."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--directory", required=True, type=Path)
    parser.add_argument("--requests", required=True, type=Path)
    args = parser.parse_args()
    handler = type("Handler", (_RecordingHandler,), {"requests_log": args.requests})
    server = ThreadingHTTPServer((args.bind, 0), functools.partial(handler, directory=str(args.directory)))
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
