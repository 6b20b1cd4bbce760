"""Test servers standing in for the VM's egress destinations: TCP accept, UDP echo (run in the peer namespace).

    python -m scripts.lab.demo.listeners tcp:ADDR:PORT udp:ADDR:PORT ...   (ADDR may be IPv6: tcp:2001:db8::1:443)

Prints `ready` once every socket is bound. A TCP connection that completes, or a UDP datagram that
comes back, proves the VM's netfilter let the packet out; nothing here answers anything else.
"""

from __future__ import annotations

import asyncio
import sys


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(specs: list[str]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for spec in specs:
        proto, rest = spec.split(":", 1)
        address, port = rest.rsplit(":", 1)
        if proto == "tcp":
            servers.append(await asyncio.start_server(_accept, address, int(port)))
        else:
            await loop.create_datagram_endpoint(_Echo, local_addr=(address, int(port)))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
