"""The stand-in's files for one relying party: directory, passwords, client secret, admin token, TLS.

Used by the live-path tests and by `make demo` (`python -m tests.idp.setup --out DIR --tenant T
--client-id C --group G --hostname H --address A`). The test users:

| user | in the allowed group | e-mail domain |
|---|---|---|
| `alice@<domain>` | yes | allowed |
| `carol@<domain>` | yes | allowed (a second member, e.g. for revocation tests) |
| `bob@<domain>`   | no  | allowed |
| `eve@elsewhere.test` | yes | outside `emailDomains` |

Every secret is random, made here, and written only to files with mode 0600 (`passwords.json` is
for the person running the demo; the directory keeps scrypt hashes).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from components.gateway import render_oauth2_proxy as oauth2
from tests.idp import certs, directory

OUTSIDE_DOMAIN = "elsewhere.test"


@dataclass(frozen=True)
class TestUser:
    username: str
    password: str
    in_group: bool


@dataclass(frozen=True)
class IdpFiles:
    """What `write` made: paths, and the plaintext secrets for the test process (never logged)."""

    users_file: Path
    passwords_file: Path
    client_secret_file: Path
    admin_token_file: Path
    tls: certs.TlsFiles
    client_secret: str
    admin_token: str
    users: dict[str, TestUser]


def _secret_file(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def write(out: Path, *, tenant_id: str, client_id: str, group_id: str, redirect_uris: tuple[str, ...], email_domain: str,
          address: str, client_secret: str | None = None) -> IdpFiles:
    """Make every file of the stand-in in `out` (created 0700).

    `client_secret`: the relying party's existing secret (the demo's program already made one, as
    Entra's `ApplicationPassword` does); by default a random one is made here.
    """
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    people = (("alice", "Alice Example", email_domain, True), ("carol", "Carol Example", email_domain, True),
              ("bob", "Bob Example", email_domain, False), ("eve", "Eve Elsewhere", OUTSIDE_DOMAIN, True))
    users, accounts = {}, {}
    for short, name, domain, in_group in people:
        username = f"{short}@{domain}"
        password = secrets.token_urlsafe(18)
        users[short] = TestUser(username, password, in_group)
        # Other groups too: a real account is in several, and the claim carries them all.
        groups = ([group_id] if in_group else []) + [str(uuid.uuid4()) for _ in range(3)]
        accounts[username] = directory.User(username, directory.hash_secret(password), str(uuid.uuid4()), name, username, tuple(groups))
    client_secret = client_secret or secrets.token_urlsafe(30)
    client = directory.Client(client_id, directory.hash_secret(client_secret), redirect_uris)
    users_file = out / "users.json"
    directory.dump(directory.Directory(tenant_id, {client_id: client}, accounts), users_file)
    passwords_file = out / "passwords.json"
    _secret_file(passwords_file, json.dumps({u.username: u.password for u in users.values()}, indent=2) + "\n")
    client_secret_file = out / "client-secret"
    _secret_file(client_secret_file, client_secret)
    admin_token = secrets.token_urlsafe(24)
    admin_token_file = out / "admin-token"
    _secret_file(admin_token_file, admin_token)
    tls = certs.make(out / "tls", address)
    return IdpFiles(users_file, passwords_file, client_secret_file, admin_token_file, tls, client_secret, admin_token, users)


def load(out: Path, group_id: str) -> IdpFiles:
    """The files `write` made in `out`, read back (a later `make demo` reuses its stand-in)."""
    passwords: dict[str, str] = json.loads((out / "passwords.json").read_text())
    accounts = directory.load(out / "users.json").users
    users = {name.split("@")[0]: TestUser(name, password, group_id in accounts[name].groups) for name, password in passwords.items()}
    tls = certs.TlsFiles(out / "tls" / "idp-ca.crt", out / "tls" / "idp.crt", out / "tls" / "idp.key")
    return IdpFiles(out / "users.json", out / "passwords.json", out / "client-secret", out / "admin-token", tls,
                    (out / "client-secret").read_text(), (out / "admin-token").read_text(), users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the Entra stand-in's files (directory, secrets, TLS).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--group", required=True, help="object ID of the allowed group")
    parser.add_argument("--hostname", required=True, help="the relying party's public host name")
    parser.add_argument("--email-domain", default="example.com")
    parser.add_argument("--address", required=True, help="IP address the stand-in listens on")
    args = parser.parse_args(argv)
    files = write(args.out, tenant_id=args.tenant, client_id=args.client_id, group_id=args.group,
                  redirect_uris=redirect_uris(args.hostname), email_domain=args.email_domain, address=args.address)
    print(f"wrote {files.users_file.parent}: users.json, passwords.json (0600), client-secret (0600), admin-token (0600), tls/")
    return 0


def redirect_uris(hostname: str) -> tuple[str, ...]:
    """The app registration's only redirect URI, as `components.identity` registers it."""
    return (f"https://{hostname}{oauth2.CALLBACK_PATH}",)


if __name__ == "__main__":
    sys.exit(main())
