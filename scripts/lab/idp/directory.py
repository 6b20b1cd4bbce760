"""The stand-in's directory: one tenant, its registered clients and its users (a JSON file).

Passwords and client secrets are stored as scrypt hashes, so the file the tests and the demo write
holds no usable secret; the plaintext exists only where a user types it.

    {"tenant_id": "<GUID>",
     "clients": [{"client_id": "<GUID>", "secret_scrypt": "<salt>$<hash>",
                  "redirect_uris": ["https://code.example.com/oauth2/callback"],
                  "group_membership_claims": ["ApplicationGroup"], "assigned_groups": ["<GUID>"],
                  "require_nonce": true}],
     "users": [{"username": "alice@example.com", "password_scrypt": "<salt>$<hash>",
                "oid": "<GUID>", "name": "Alice", "email": "alice@example.com", "groups": ["<GUID>"]}]}

A client is an app registration as the Pulumi program declares it: `group_membership_claims` is the
application's `groupMembershipClaims`, `assigned_groups` the groups assigned to its service
principal (app role assignments), and they decide the `groups` claim as Entra does
(`groups_claim`). Every user's groups are security groups here (no distribution lists, no
directory roles, no nesting).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_secret(plaintext: str) -> str:
    """`salt$hash` (URL-safe base64) of `plaintext` with scrypt: what the directory file stores."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(plaintext.encode(), salt=salt, **_SCRYPT)
    return f"{base64.urlsafe_b64encode(salt).decode()}${base64.urlsafe_b64encode(digest).decode()}"


def secret_matches(plaintext: str, stored: str) -> bool:
    salt, _, digest = stored.partition("$")
    computed = hashlib.scrypt(plaintext.encode(), salt=base64.urlsafe_b64decode(salt), **_SCRYPT)
    return hmac.compare_digest(computed, base64.urlsafe_b64decode(digest))


#: The values of an application's `groupMembershipClaims` (Microsoft Graph `application` resource).
GROUP_MEMBERSHIP_CLAIMS = frozenset({"None", "SecurityGroup", "DirectoryRole", "ApplicationGroup", "All"})


@dataclass(frozen=True)
class Client:
    """An app registration: its ID, its secret's hash, its exact redirect URIs (also the allowed
    post-logout redirect URIs, as Entra requires), its `groupMembershipClaims`, the groups
    assigned to its service principal, and whether an authorize request must carry a `nonce`
    (set for a relying party that sends one, so a request without it is refused, not served)."""

    client_id: str
    secret_scrypt: str
    redirect_uris: tuple[str, ...]
    group_membership_claims: tuple[str, ...]
    assigned_groups: tuple[str, ...]
    require_nonce: bool
    #: App role assignments as (role value, principal object ID): a user's own, or a group's for its
    #: members. They make the `roles` claim (`roles_claim`); team workspaces are app roles `ws.<name>`.
    role_assignments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class User:
    """An account of the tenant; `groups` are group object IDs, as Entra's groups claim carries them."""

    username: str
    password_scrypt: str
    oid: str
    name: str
    email: str
    groups: tuple[str, ...]


def groups_claim(client: Client, user: User) -> list[str] | None:
    """The `groups` claim Entra puts in `user`'s ID token for `client`, or None for no claim.

    `SecurityGroup` and `All`: every group the user is in; `ApplicationGroup`: only those of them
    assigned to the application; `None`, `DirectoryRole` (the users here hold no directory role)
    or nothing: no groups claim. An empty list is left out, as Entra leaves it out.
    """
    chosen = set(client.group_membership_claims)
    if chosen & {"SecurityGroup", "All"}:
        groups = list(user.groups)
    elif "ApplicationGroup" in chosen:
        groups = [g for g in user.groups if g in client.assigned_groups]
    else:
        return None
    return groups or None


def roles_claim(client: Client, user: User) -> list[str] | None:
    """The `roles` claim Entra puts in `user`'s ID token for `client`, or None for no claim: the values
    of the app roles assigned to the user or to a group the user is in (Entra needs P1 for groups),
    each once, in assignment order. No role, no claim, as Entra leaves it out."""
    principals = {user.oid, *user.groups}
    roles = [role for role, principal in client.role_assignments if principal in principals]
    return list(dict.fromkeys(roles)) or None


@dataclass(frozen=True)
class Directory:
    tenant_id: str
    clients: dict[str, Client]
    users: dict[str, User]

    def user(self, username: str) -> User | None:
        return self.users.get(username.strip().lower())


def _guid(value: Any, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what}: expected a GUID, got {value!r}") from None


def _client(entry: dict[str, Any], path: Path) -> Client:
    missing = {"group_membership_claims", "assigned_groups", "require_nonce"} - set(entry)
    if missing:
        raise ValueError(f"{path}: client {entry.get('client_id')} lacks {', '.join(sorted(missing))} "
                         "(written by an older stand-in; remove the file to make it again)")
    claims = tuple(entry["group_membership_claims"])
    unknown = set(claims) - GROUP_MEMBERSHIP_CLAIMS
    if unknown:
        raise ValueError(f"group_membership_claims: unknown value(s) {sorted(unknown)}, expected some of {sorted(GROUP_MEMBERSHIP_CLAIMS)}")
    if not isinstance(entry["require_nonce"], bool):
        raise ValueError("require_nonce: expected true or false")
    roles = tuple((str(a["role"]), _guid(a["principal"], "role_assignments")) for a in entry.get("role_assignments", []))
    return Client(_guid(entry["client_id"], "client_id"), entry["secret_scrypt"], tuple(entry["redirect_uris"]), claims,
                  tuple(_guid(g, "assigned_groups") for g in entry["assigned_groups"]), entry["require_nonce"], roles)


def load(path: Path) -> Directory:
    """Read and check the directory file (GUIDs where Entra has GUIDs, no plaintext secrets)."""
    data = json.loads(path.read_text())
    tenant = _guid(data["tenant_id"], "tenant_id")
    clients = {_guid(c["client_id"], "client_id"): _client(c, path) for c in data["clients"]}
    users = {
        u["username"].lower(): User(u["username"].lower(), u["password_scrypt"], _guid(u["oid"], "oid"), u["name"], u["email"],
                                    tuple(_guid(g, "groups") for g in u["groups"]))
        for u in data["users"]
    }
    for entry in (*data["clients"], *data["users"]):
        if "secret" in entry or "password" in entry:
            raise ValueError("the directory stores secret_scrypt/password_scrypt hashes, never plaintext")
    return Directory(tenant, clients, users)


def dump(directory: Directory, path: Path) -> None:
    """Write `directory` with mode 0600 (hashes only, but nobody else needs them)."""
    data = {
        "tenant_id": directory.tenant_id,
        "clients": [{"client_id": c.client_id, "secret_scrypt": c.secret_scrypt, "redirect_uris": list(c.redirect_uris),
                     "group_membership_claims": list(c.group_membership_claims), "assigned_groups": list(c.assigned_groups),
                     "require_nonce": c.require_nonce,
                     "role_assignments": [{"role": r, "principal": p} for r, p in c.role_assignments]}
                    for c in directory.clients.values()],
        "users": [{"username": u.username, "password_scrypt": u.password_scrypt, "oid": u.oid, "name": u.name,
                   "email": u.email, "groups": list(u.groups)} for u in directory.users.values()],
    }
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2) + "\n")
