"""The HTTPS listener every test stand-in runs (the Entra stand-in, the code host, the gallery), and
the command line the demo's stand-ins share: one way to serve TLS 1.2+, one way to say `ready`."""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def https_server(handler: type[BaseHTTPRequestHandler], host: str, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    """`handler` on `host:port` over TLS 1.2+ with `cert`/`key`; `serve_forever()` runs it."""
    server = ThreadingHTTPServer((host, port), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def serve(server: ThreadingHTTPServer) -> int:
    """Run `server` until interrupted."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def stand_in_parser(description: str) -> argparse.ArgumentParser:
    """--listen, --port, --cert, --key: where a demo stand-in listens and with which certificate."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--listen", required=True, help="address to bind, e.g. 127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    return parser


def run_stand_in(name: str, build: Callable[[], ThreadingHTTPServer], errors: tuple[type[Exception], ...]) -> int:
    """Build the server (a failure is one `NAME: error: …` line and exit 1), print `ready`, serve."""
    try:
        server = build()
    except errors as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    return serve(server)
