"""The stand-in's `roles` claim: the app roles assigned to the user, directly or through a group, as Entra puts them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from joserfc import jwt

from scripts.lab.idp import directory, tokens

ALICE, CAROL, TEAM = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
ROLE = {value: str(uuid.uuid4()) for value in ("ws.a", "ws.b", "ws.c")}
CLIENT = directory.Client(str(uuid.uuid4()), "scrypt$x", ("https://a.example.com/oauth2/callback",), ("None",), (), True,
                          app_roles=tuple((role, value) for value, role in ROLE.items()),
                          role_assignments=((ROLE["ws.a"], ALICE), (ROLE["ws.b"], TEAM), (ROLE["ws.c"], CAROL), (ROLE["ws.a"], TEAM)))


def user(oid: str, *groups: str) -> directory.User:
    return directory.User(f"{oid}@example.com", "scrypt$y", oid, "Someone", f"{oid}@example.com", groups)


def test_roles_come_from_the_users_and_its_groups_assignments() -> None:
    assert directory.roles_claim(CLIENT, user(ALICE, TEAM)) == ["ws.a", "ws.b"]  # ws.a once, though assigned twice
    assert directory.roles_claim(CLIENT, user(CAROL)) == ["ws.c"]
    assert directory.roles_claim(CLIENT, user(str(uuid.uuid4()), str(uuid.uuid4()))) is None  # no role: no claim


def test_the_id_token_carries_the_roles_claim_only_when_there_are_roles() -> None:
    signer = tokens.Signer()
    alice = user(ALICE, TEAM)
    args = (signer, str(uuid.uuid4()), CLIENT.client_id, alice, "sid", "nonce", None)
    with_roles = jwt.decode(tokens.id_token(*args, roles=["ws.a", "ws.b"]), signer.key).claims
    assert with_roles["roles"] == ["ws.a", "ws.b"] and "groups" not in with_roles
    assert "roles" not in jwt.decode(tokens.id_token(*args), signer.key).claims


def test_role_assignments_survive_the_directory_file(tmp_path: Path) -> None:
    tenant = directory.Directory(str(uuid.uuid4()), {CLIENT.client_id: replace(CLIENT, secret_scrypt=directory.hash_secret("s"))}, {})
    directory.dump(tenant, tmp_path / "users.json")
    read = directory.load(tmp_path / "users.json").clients[CLIENT.client_id]
    assert (read.app_roles, read.role_assignments) == (CLIENT.app_roles, CLIENT.role_assignments)


def test_an_assignment_to_a_role_the_app_lacks_is_refused(tmp_path: Path) -> None:
    """Entra refuses to assign a role the app does not define; so does the stand-in's directory file."""
    stray = replace(CLIENT, secret_scrypt=directory.hash_secret("s"), role_assignments=((str(uuid.uuid4()), ALICE),))
    directory.dump(directory.Directory(str(uuid.uuid4()), {CLIENT.client_id: stray}, {}), tmp_path / "users.json")
    with pytest.raises(ValueError, match="not among app_roles"):
        directory.load(tmp_path / "users.json")
