"""Run the Entra stand-in: `python -m scripts.lab.idp --listen ADDR:PORT --cert F --key F --users F [--admin-token-file F]`.

`--users` is the directory file (`scripts/lab/idp/directory.py`: tenant, clients, users, hashed secrets).
`--admin-token-file` enables the test controls under `/stand-in/` (revoke, events) for the holder of
that token; without it they answer 401. Make the files with `python -m scripts.lab.idp.setup` (the demo)
or `scripts.lab.idp.setup.write_demo` (the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.lab.idp import directory, server
from scripts.lab.tls_server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A stand-in for Microsoft Entra ID (tests and demo only).")
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT, e.g. 192.0.2.20:443")
    parser.add_argument("--cert", required=True, help="PEM certificate chain")
    parser.add_argument("--key", required=True, help="PEM private key")
    parser.add_argument("--users", required=True, type=Path, help="directory JSON (tenant, clients, users)")
    parser.add_argument("--admin-token-file", type=Path, help="file holding the bearer token of /stand-in/ controls")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    state = server.State(directory.load(args.users))
    if args.admin_token_file:
        state.admin_token = args.admin_token_file.read_text().strip()
    httpd = server.make_server(state, host.strip("[]"), int(port), args.cert, args.key)
    print(f"Entra stand-in for tenant {state.directory.tenant_id} on https://{args.listen}", flush=True)
    return serve(httpd)


if __name__ == "__main__":
    sys.exit(main())
