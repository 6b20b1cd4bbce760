"""The stand-in's files for one relying party: directory, passwords, client secret, admin token, TLS.

Used by the live-path tests and by `make demo` (`python -m scripts.lab.idp.setup --out DIR --tenant T
--client-id C --group G --hostname H --address A`). The test users:

| user | in the allowed group | e-mail domain |
|---|---|---|
| `alice@<domain>` | yes | allowed |
| `carol@<domain>` | yes | allowed (a second member, e.g. for revocation tests) |
| `bob@<domain>`   | no  | allowed |
| `eve@elsewhere.test` | yes | outside `emailDomains` |

Each is also in three other groups, as a real account is, so the `groups` claim shows whether the
app registration's `groupMembershipClaims` and group assignments are honoured. The one client is
the relying party's app registration as the Pulumi program declares it (`app_registration` reads
it from a plan of the program): its `groupMembershipClaims`, the groups assigned to it, and
`require_nonce` (oauth2-proxy sends a nonce: the product renders `insecure_oidc_skip_nonce = false`).

Every secret is random, made here, and written only to files with mode 0600 (`passwords.json` is
for the person running the demo; the directory keeps scrypt hashes).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import layout
from scripts.lab.idp import certs, directory

OUTSIDE_DOMAIN = "elsewhere.test"
_APPLICATION = "azuread:index/application:Application"
_SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"


@dataclass(frozen=True)
class AppRegistration:
    """What the stand-in must know of an app registration beyond its ID and redirect URIs."""

    group_membership_claims: tuple[str, ...]
    assigned_groups: tuple[str, ...]
    #: (role ID, value) of the application's app roles (a team's workspaces), and (role ID, principal)
    #: of their assignments; empty for the single-user app, whose group holds the default access.
    app_roles: tuple[tuple[str, str], ...] = ()
    role_assignments: tuple[tuple[str, str], ...] = ()


def app_registration(resources: Iterable[Any], client_id: str) -> AppRegistration:
    """The registration of `client_id` in a plan of the program (`scripts.tools.offline.PlanResult.resources`):
    its application's `groupMembershipClaims` and app roles, and the principals assigned to its
    service principal (with the app role of each, when it is one of the application's)."""
    resources = list(resources)
    (principal,) = [r for r in resources if r.type == _SERVICE_PRINCIPAL and r.values.get("clientId") == client_id]
    (application,) = [r for r in resources if r.type == _APPLICATION and r.urn in principal.dependencies]
    assignments = [r for r in resources if r.type == _ASSIGNMENT and r.values.get("resourceObjectId") == principal.id]
    roles = tuple((role["id"], role["value"]) for role in application.values.get("appRoles") or ())
    defined = {role for role, _ in roles}
    return AppRegistration(tuple(application.values.get("groupMembershipClaims") or ()),
                           tuple(r.values["principalObjectId"] for r in assignments), roles,
                           tuple((r.values["appRoleId"], r.values["principalObjectId"]) for r in assignments if r.values["appRoleId"] in defined))


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


def write(out: Path, *, tenant_id: str, client_id: str, group_id: str | None, redirect_uris: tuple[str, ...], registration: AppRegistration,
          email_domain: str, address: str, client_secret: str | None = None, oids: dict[str, str] | None = None) -> IdpFiles:
    """Make every file of the stand-in in `out` (created 0700).

    `registration`: the app's `groupMembershipClaims` and assigned groups, as the program declares
    them (`app_registration`); the stand-in's `groups` claim follows them.

    `client_secret`: the relying party's existing secret (the demo's program already made one, as
    Entra's `ApplicationPassword` does); by default a random one is made here.

    `group_id`: None for a team's app, which has no access group (no test user is "in the group";
    access is the app roles of `registration`). `oids`: fixed object IDs of test users by short name
    (a team's config names its people by object ID before the stand-in exists); others get random ones.
    """
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    people = (("alice", "Alice Example", email_domain, True), ("carol", "Carol Example", email_domain, True),
              ("bob", "Bob Example", email_domain, False), ("eve", "Eve Elsewhere", OUTSIDE_DOMAIN, True))
    users, accounts = {}, {}
    for short, name, domain, in_group in people:
        username = f"{short}@{domain}"
        password = secrets.token_urlsafe(18)
        users[short] = TestUser(username, password, in_group and group_id is not None)
        # Other groups too: a real account is in several; which reach the claim is the registration's choice.
        groups = ([group_id] if in_group and group_id else []) + [str(uuid.uuid4()) for _ in range(3)]
        oid = (oids or {}).get(short) or str(uuid.uuid4())
        accounts[username] = directory.User(username, directory.hash_secret(password), oid, name, username, tuple(groups))
    client_secret = client_secret or secrets.token_urlsafe(30)
    client = directory.Client(client_id, directory.hash_secret(client_secret), redirect_uris, registration.group_membership_claims,
                              registration.assigned_groups, require_nonce=True, app_roles=registration.app_roles,
                              role_assignments=registration.role_assignments)
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


def load(out: Path, group_id: str | None, client_id: str, registration: AppRegistration) -> IdpFiles:
    """The files `write` made in `out`, read back (a later `make demo` reuses its stand-in); refused
    if they register the client otherwise than `registration` (the program changed since)."""
    passwords: dict[str, str] = json.loads((out / "passwords.json").read_text())
    stored = directory.load(out / "users.json")
    client = stored.clients.get(client_id)
    if client is None or (client.group_membership_claims, client.assigned_groups, client.app_roles, client.role_assignments) != (
            registration.group_membership_claims, registration.assigned_groups, registration.app_roles, registration.role_assignments):
        raise ValueError(f"{out}: the stand-in's app registration differs from the program's; remove {out} to make it again")
    accounts = stored.users
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
    parser.add_argument("--group-membership-claims", default="ApplicationGroup",
                        help="the app's groupMembershipClaims, comma-separated (components.identity sets ApplicationGroup)")
    args = parser.parse_args(argv)
    # As components.identity registers it: the allowed group is the one group assigned to the app.
    registration = AppRegistration(tuple(v.strip() for v in args.group_membership_claims.split(",") if v.strip()), (args.group,))
    files = write(args.out, tenant_id=args.tenant, client_id=args.client_id, group_id=args.group, redirect_uris=redirect_uris(args.hostname),
                  registration=registration, email_domain=args.email_domain, address=args.address)
    print(f"wrote {files.users_file.parent}: users.json, passwords.json (0600), client-secret (0600), admin-token (0600), tls/")
    return 0


def redirect_uris(hostname: str) -> tuple[str, ...]:
    """The app registration's only redirect URI, as `components.identity` registers it."""
    return (f"https://{hostname}{layout.CALLBACK_PATH}",)


if __name__ == "__main__":
    sys.exit(main())
