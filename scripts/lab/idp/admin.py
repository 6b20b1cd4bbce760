"""The stand-in's test controls from another network namespace, the admin token read from stdin.

    echo TOKEN | python -m scripts.lab.idp.admin https://ADDR/stand-in/events --cafile CA
    echo TOKEN | python -m scripts.lab.idp.admin https://ADDR/stand-in/revoke --cafile CA --revoke USER

Prints the JSON answer. The token never appears on a command line.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys

import httpx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--revoke", metavar="USERNAME")
    args = parser.parse_args(argv)
    headers = {"Authorization": f"Bearer {sys.stdin.read().strip()}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=args.cafile), timeout=10) as client:
        if args.revoke:
            answer = client.post(args.url, data={"username": args.revoke}, headers=headers)
        else:
            answer = client.get(args.url, headers=headers)
    answer.raise_for_status()
    print(json.dumps(answer.json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
