"""Serve tests/engine/program.py to the Pulumi CLI as its language runtime (`pulumi up --client ADDR`).

The Python language host (`pulumi-language-python`) cannot be built from the module proxy here, so
the program runs in the SDK's own language server, the one the Automation API uses for inline
programs: the CLI calls its `Run` exactly as it would call the language host's, with the stack's
config, secret keys, dry-run flag and the resource monitor's address. Prints the port, flushed.
"""

from __future__ import annotations

from concurrent import futures

import grpc

from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc

from tests.engine.program import main

_MESSAGE_LIMIT = 400 * 1024 * 1024  # as the Automation API: large programs' state passes through


def serve() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
        ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
        ("grpc.max_send_message_length", _MESSAGE_LIMIT),
    ])
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(main), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    serve()
