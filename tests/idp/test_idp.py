"""The Entra stand-in on 127.0.0.1: the code flow with PKCE, its refusals, refresh rotation, logout,
and the claims as Entra would make them (groups per `groupMembershipClaims`, `amr`, `nonce`).

Driven over real HTTPS with httpx (the browser and oauth2-proxy drive it in tests/livepath); the
ID tokens are checked with joserfc against the published JWKS, as a relying party would. Expected
values come from Entra's documented behaviour and the directory's data, not the stand-in's code.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from scripts.lab.idp import directory, server, setup
from scripts.lab.livepath import signin
from scripts.tools.offline import PlanResult

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"
GROUP = "5f5f5f5f-6a6a-7b7b-8c8c-9d9d9d9d9d9d"
CALLBACK = "https://code.example.com/oauth2/callback"
#: As components.identity registers oauth2-proxy's app: groups claim limited to assigned groups,
#: the allowed group assigned.
PRODUCT_REGISTRATION = setup.AppRegistration(("ApplicationGroup",), (GROUP,))
#: More registrations of the same app in the tenant, one per groupMembershipClaims setting, and
#: one that does not require a nonce (client IDs made from the setting, same secret and URIs).
OTHER_CLAIMS = (("SecurityGroup",), ("All",), ("None",), ())
NO_NONCE_CLIENT = str(uuid.uuid5(uuid.NAMESPACE_URL, "no-nonce"))
#: The same app registered for a team: no groups claim, two app roles (workspaces); `ws.alice`
#: assigned to alice herself, `ws.devs` to the group alice and carol are in (bob is in neither).
TEAM_CLIENT = str(uuid.uuid5(uuid.NAMESPACE_URL, "team"))
ROLE_ALICE, ROLE_DEVS, ROLE_UNASSIGNED = (str(uuid.uuid5(uuid.NAMESPACE_URL, f"role-{n}")) for n in ("alice", "devs", "none"))


def _client_for(claims: tuple[str, ...]) -> str:
    return CLIENT if claims == PRODUCT_REGISTRATION.group_membership_claims else str(uuid.uuid5(uuid.NAMESPACE_URL, ",".join(claims) or "unset"))


@dataclass
class Idp:
    base: str
    files: setup.IdpFiles
    http: httpx.Client

    def url(self, path: str) -> str:
        return f"{self.base}/{TENANT}{path}"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    files = setup.write(tmp_path_factory.mktemp("idp"), tenant_id=TENANT, client_id=CLIENT, group_id=GROUP,
                        redirect_uris=(CALLBACK,), registration=PRODUCT_REGISTRATION, email_domain="example.com", address="127.0.0.1")
    tenant = directory.load(files.users_file)
    product = tenant.clients[CLIENT]
    others = {_client_for(c): replace(product, client_id=_client_for(c), group_membership_claims=c) for c in OTHER_CLAIMS}
    others[NO_NONCE_CLIENT] = replace(product, client_id=NO_NONCE_CLIENT, require_nonce=False)
    alice = tenant.users[files.users["alice"].username]
    others[TEAM_CLIENT] = replace(product, client_id=TEAM_CLIENT, group_membership_claims=("None",),
                                  app_roles=((ROLE_ALICE, "ws.alice"), (ROLE_DEVS, "ws.devs"), (ROLE_UNASSIGNED, "ws.nobody")),
                                  role_assignments=((ROLE_ALICE, alice.oid), (ROLE_DEVS, GROUP)))
    state = server.State(replace(tenant, clients={**tenant.clients, **others}), admin_token=files.admin_token)
    httpd = server.make_server(state, "127.0.0.1", 0, str(files.tls.cert), str(files.tls.key))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(files.tls.ca_cert)), follow_redirects=False) as http:
        yield Idp(f"https://127.0.0.1:{httpd.server_address[1]}", files, http)
    httpd.shutdown()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _authorize_params(challenge: str, **changes: str) -> dict[str, str]:
    return {"client_id": CLIENT, "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid email profile offline_access",
            "state": "st-" + secrets.token_hex(4), "nonce": "n-" + secrets.token_hex(4), "code_challenge": challenge,
            "code_challenge_method": "S256", **changes}


def _sign_in(idp: Idp, user: str = "alice", **changes: str) -> tuple[dict[str, str], str, dict[str, str]]:
    """Authorize, fill the form; returns (authorize params, verifier, callback query); the client keeps the IdP cookie."""
    idp.http.cookies.clear()  # a new browser: no IdP session yet
    verifier, challenge = _pkce()
    params = _authorize_params(challenge, **changes)
    form = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=params)
    assert form.status_code == 200 and 'type="password"' in form.text
    flow = re.search(r'name="flow" value="([^"]+)"', form.text)[1]
    account = idp.files.users[user]
    done = idp.http.post(idp.url("/login"), data={"flow": flow, "username": account.username, "password": account.password})
    assert done.status_code == 302, done.text
    location = urlsplit(done.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return params, verifier, {k: v[0] for k, v in parse_qs(location.query).items()}


def _redeem(idp: Idp, code: str, verifier: str, secret: str | None = None, client: str = CLIENT, **changes: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier, **changes}
    return idp.http.post(idp.url("/oauth2/v2.0/token"), data=data, auth=(client, secret or idp.files.client_secret))


def _claims(idp: Idp, token: str) -> dict:
    keys = KeySet.import_key_set(idp.http.get(idp.url("/discovery/v2.0/keys")).json())
    return jwt.decode(token, keys, algorithms=["RS256"]).claims


def test_code_flow_with_pkce_gives_entra_shaped_tokens(idp: Idp) -> None:
    params, verifier, callback = _sign_in(idp)
    assert callback["state"] == params["state"]
    answer = _redeem(idp, callback["code"], verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    claims = _claims(idp, body["id_token"])
    assert claims["iss"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert (claims["aud"], claims["tid"], claims["nonce"]) == (CLIENT, TENANT, params["nonce"])
    assert claims["email"] == claims["preferred_username"] == idp.files.users["alice"].username
    assert GROUP in claims["groups"] and claims["exp"] - claims["iat"] == 3600 and claims["nbf"] <= claims["iat"]
    assert "_claim_names" not in claims and re.fullmatch(r"[0-9a-f-]{36}", claims["oid"])
    # Entra-sized: ID token ~1.5 KB, Graph access token ~2.3 KB, opaque refresh token ~1.4 KB.
    assert len(body["id_token"]) > 1200 and len(body["access_token"]) > 2000 and len(body["refresh_token"]) > 1300


def test_sub_is_the_same_for_one_person_and_one_app_only(idp: Idp) -> None:
    """Entra's `sub` is pairwise: stable across sign-ins of a person to an app (the gateway logs it as the
    person's ID), different for another person or another app."""
    first, again = (_claims(idp, _tokens_for(idp, CLIENT)["id_token"])["sub"] for _ in range(2))
    other_person = _claims(idp, _tokens_for(idp, CLIENT, "carol")["id_token"])["sub"]
    other_app = _claims(idp, _tokens_for(idp, _client_for(("SecurityGroup",)))["id_token"])["sub"]
    assert first == again and len({first, other_person, other_app}) == 3 and re.fullmatch(r"[A-Za-z0-9_-]{43}", first)


def test_user_outside_the_group_gets_tokens_without_the_group(idp: Idp) -> None:
    _, verifier, callback = _sign_in(idp, "bob")
    claims = _claims(idp, _redeem(idp, callback["code"], verifier).json()["id_token"])
    # Bob is in three groups, none assigned to the app: with ApplicationGroup none of them is named.
    assert len(_groups_of(idp, "bob")) == 3 and not claims.get("groups")


def _groups_of(idp: Idp, user: str) -> set[str]:
    """The user's group memberships as the directory file records them."""
    return set(directory.load(idp.files.users_file).users[idp.files.users[user].username].groups)


def _tokens_for(idp: Idp, client: str, user: str = "alice") -> dict:
    _, verifier, callback = _sign_in(idp, user, client_id=client)
    answer = _redeem(idp, callback["code"], verifier, client=client)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("claims", [("ApplicationGroup",), ("SecurityGroup",), ("All",), ("None",), ()],
                         ids=["ApplicationGroup", "SecurityGroup", "All", "None", "unset"])
def test_groups_claim_follows_group_membership_claims(idp: Idp, claims: tuple[str, ...]) -> None:
    """Entra (groupMembershipClaims): ApplicationGroup emits only the user's groups assigned to the
    app; SecurityGroup the security groups the user is a member of; All every group (security
    groups here); None, or the property unset, no groups claim at all."""
    token = _claims(idp, _tokens_for(idp, _client_for(claims))["id_token"])
    alice = _groups_of(idp, "alice")
    assert GROUP in alice and len(alice) == 4  # the allowed group and three others
    if claims == ("ApplicationGroup",):
        assert token["groups"] == [GROUP]  # the other three are not assigned: they must not appear
    elif claims in (("SecurityGroup",), ("All",)):
        assert sorted(token["groups"]) == sorted(alice)
    else:
        assert "groups" not in token


@pytest.mark.parametrize(("user", "roles"), [("alice", ["ws.alice", "ws.devs"]), ("carol", ["ws.devs"]), ("bob", None)])
def test_roles_claim_lists_the_app_roles_assigned_to_the_user_or_their_groups(idp: Idp, user: str, roles: list[str] | None) -> None:
    """Entra (app roles): the ID token's `roles` holds the value of each role assigned to the user
    directly or to a group they are a direct member of, once; nobody's token names an unassigned
    role, and a user holding none gets no `roles` claim (never an empty one)."""
    tokens = _tokens_for(idp, TEAM_CLIENT, user)
    token = _claims(idp, tokens["id_token"])
    assert token.get("roles") == roles and "groups" not in token
    refreshed = idp.http.post(idp.url("/oauth2/v2.0/token"), data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                              auth=(TEAM_CLIENT, idp.files.client_secret))
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(idp, refreshed.json()["id_token"]).get("roles") == roles  # a refresh carries the same grants


def test_program_registers_what_the_stand_in_is_given(dev_plan: PlanResult) -> None:
    """The stand-in's registration (the live path's and the demo's) is the program's own: the
    product sets ApplicationGroup and assigns exactly the allowed group to oauth2-proxy's app."""
    registration = setup.app_registration(dev_plan.resources, dev_plan.outputs["entraClientId"])
    assert registration == setup.AppRegistration(signin.GROUP_MEMBERSHIP_CLAIMS, (dev_plan.outputs["entraGroupObjectId"],))


def test_amr_says_password_only(idp: Idp) -> None:
    """`amr` lists the methods the user authenticated with (RFC 8176): the form asks for a password
    and nothing else, so `pwd` and no `mfa` (Entra adds `mfa` only after a second factor)."""
    body = _tokens_for(idp, CLIENT)
    access = jwt.decode(body["access_token"], KeySet.import_key_set(idp.http.get(idp.url("/discovery/v2.0/keys")).json()),
                        algorithms=["RS256"]).claims
    assert access["amr"] == ["pwd"]
    assert "mfa" not in _claims(idp, body["id_token"]).get("amr", [])


def test_authorize_without_nonce_is_refused_at_the_redirect_uri(idp: Idp) -> None:
    """OIDC/Entra: a required parameter missing → `invalid_request` (AADSTS900144) sent back to the
    verified redirect URI with the state; no login form, no code. Also with a live IdP session."""
    for signed_in in (False, True):
        if signed_in:
            _sign_in(idp)
        else:
            idp.http.cookies.clear()
        _, challenge = _pkce()
        params = _authorize_params(challenge)
        del params["nonce"]
        answer = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=params)
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
        assert query["error"] == "invalid_request" and "AADSTS900144" in query["error_description"] and "nonce" in query["error_description"]
        assert query["state"] == params["state"] and "code" not in query


def test_nonce_is_required_only_of_a_client_registered_so(idp: Idp) -> None:
    _, verifier, callback = _sign_in(idp, client_id=NO_NONCE_CLIENT, nonce="")
    assert "error" not in callback
    assert "nonce" not in _claims(idp, _redeem(idp, callback["code"], verifier, client=NO_NONCE_CLIENT).json()["id_token"])


def test_nonce_is_echoed_in_the_id_token_at_sign_in_and_silent_sign_in(idp: Idp) -> None:
    """OIDC Core 3.1.2.1/3.1.3.7: the ID token carries the authorize request's nonce unchanged."""
    nonce = "n-" + secrets.token_urlsafe(16)
    _, verifier, callback = _sign_in(idp, nonce=nonce)
    assert _claims(idp, _redeem(idp, callback["code"], verifier).json()["id_token"])["nonce"] == nonce
    verifier, challenge = _pkce()
    other = "n-" + secrets.token_urlsafe(16)
    silent = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=_authorize_params(challenge, nonce=other))
    code = parse_qs(urlsplit(silent.headers["location"]).query)["code"][0]
    assert _claims(idp, _redeem(idp, code, verifier).json()["id_token"])["nonce"] == other


def test_code_is_single_use_and_a_replay_revokes_its_refresh_token(idp: Idp) -> None:
    _, verifier, callback = _sign_in(idp)
    first = _redeem(idp, callback["code"], verifier)
    assert first.status_code == 200
    replay = _redeem(idp, callback["code"], verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refresh = idp.http.post(idp.url("/oauth2/v2.0/token"), data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
                            auth=(CLIENT, idp.files.client_secret))
    assert refresh.status_code == 400


@pytest.mark.parametrize(
    ("change", "why"),
    [({"code_verifier": secrets.token_urlsafe(48)}, "code_verifier"), ({"redirect_uri": CALLBACK + "x"}, "redirect_uri"),
     ({"code_verifier": ""}, "code_verifier")],
)
def test_token_endpoint_refuses_a_wrong_verifier_or_redirect(idp: Idp, change: dict[str, str], why: str) -> None:
    _, verifier, callback = _sign_in(idp)
    answer = _redeem(idp, callback["code"], verifier, **change)
    assert answer.status_code == 400 and why in answer.json()["error_description"]


def test_token_endpoint_refuses_a_wrong_client_secret(idp: Idp) -> None:
    _, verifier, callback = _sign_in(idp)
    assert _redeem(idp, callback["code"], verifier, secret="wrong").status_code == 401
    # The client is authenticated before the code is looked at (a stranger cannot burn it), and
    # the secret in the form (client_secret_post) works as well as Basic.
    data = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": CALLBACK, "code_verifier": verifier,
            "client_id": CLIENT, "client_secret": idp.files.client_secret}
    assert idp.http.post(idp.url("/oauth2/v2.0/token"), data=data).status_code == 200


@pytest.mark.parametrize(
    ("change", "status"),
    [({"redirect_uri": "https://evil.example/oauth2/callback"}, 400), ({"redirect_uri": CALLBACK + "/"}, 400),
     ({"code_challenge_method": "plain"}, 400), ({"code_challenge": ""}, 400), ({"client_id": GROUP}, 400),
     ({"state": ""}, 400), ({"response_type": "token"}, 400)],
)
def test_authorize_refuses_without_redirecting(idp: Idp, change: dict[str, str], status: int) -> None:
    _, challenge = _pkce()
    answer = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=_authorize_params(challenge, **change))
    assert answer.status_code == status and "location" not in answer.headers and 'type="password"' not in answer.text


def test_wrong_password_shows_the_form_again(idp: Idp) -> None:
    idp.http.cookies.clear()
    _, challenge = _pkce()
    form = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=_authorize_params(challenge))
    flow = re.search(r'name="flow" value="([^"]+)"', form.text)[1]
    again = idp.http.post(idp.url("/login"), data={"flow": flow, "username": idp.files.users["alice"].username, "password": "nope"})
    assert again.status_code == 200 and "AADSTS50126" in again.text and "location" not in again.headers


def test_refresh_rotates_and_revocation_ends_it(idp: Idp) -> None:
    _, verifier, callback = _sign_in(idp)
    refresh = _redeem(idp, callback["code"], verifier).json()["refresh_token"]

    def use(token: str) -> httpx.Response:
        return idp.http.post(idp.url("/oauth2/v2.0/token"), data={"grant_type": "refresh_token", "refresh_token": token},
                             auth=(CLIENT, idp.files.client_secret))

    rotated = use(refresh)
    assert rotated.status_code == 200 and "nonce" not in _claims(idp, rotated.json()["id_token"])
    newer = rotated.json()["refresh_token"]
    assert newer != refresh
    # As with Entra the used token stays valid (parallel refreshes of one session must not fail).
    assert use(refresh).status_code == 200
    admin = {"Authorization": f"Bearer {idp.files.admin_token}"}
    assert idp.http.post(f"{idp.base}/stand-in/revoke", data={"username": "alice@example.com"}).status_code == 401
    assert idp.http.post(f"{idp.base}/stand-in/revoke", data={"username": "alice@example.com"}, headers=admin).json()["revoked"] >= 1
    assert use(newer).status_code == 400 and use(refresh).status_code == 400


def test_idp_session_signs_in_silently_until_logout(idp: Idp) -> None:
    _sign_in(idp)
    _, challenge = _pkce()
    silent = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=_authorize_params(challenge))
    assert silent.status_code == 302 and "code=" in silent.headers["location"]
    logout = idp.http.get(idp.url("/oauth2/v2.0/logout"),
                          params={"client_id": CLIENT, "post_logout_redirect_uri": CALLBACK})
    assert logout.status_code == 302 and logout.headers["location"] == CALLBACK
    again = idp.http.get(idp.url("/oauth2/v2.0/authorize"), params=_authorize_params(challenge))
    assert again.status_code == 200 and 'type="password"' in again.text


def test_logout_redirects_only_to_a_registered_uri_of_the_named_client(idp: Idp) -> None:
    for params in ({"client_id": CLIENT, "post_logout_redirect_uri": "https://evil.example/"}, {"post_logout_redirect_uri": CALLBACK}):
        answer = idp.http.get(idp.url("/oauth2/v2.0/logout") + "?" + urlencode(params))
        assert answer.status_code == 200 and "location" not in answer.headers and "signed out" in answer.text


def test_files_hold_no_plaintext_secret_except_the_0600_ones(idp: Idp) -> None:
    text = idp.files.users_file.read_text()
    assert all(u.password not in text for u in idp.files.users.values()) and idp.files.client_secret not in text
    for path in (idp.files.users_file, idp.files.passwords_file, idp.files.client_secret_file, idp.files.admin_token_file, idp.files.tls.key):
        assert Path(path).stat().st_mode & 0o077 == 0, path


def test_a_team_app_has_no_group_and_its_people_the_object_ids_the_stack_grants(tmp_path: Path) -> None:
    """The demo's team (`demo.TEAM`): no access group, the app's roles assigned to fixed object IDs,
    so the stand-in's alice and bob hold exactly the roles the stack grants them."""
    role_a, role_b = str(uuid.uuid4()), str(uuid.uuid4())
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    registration = setup.AppRegistration(("None",), (alice, bob), ((role_a, "ws.a1"), (role_b, "ws.b1")), ((role_a, alice), (role_b, bob)))
    client = str(uuid.uuid4())
    files = setup.write(tmp_path / "idp", tenant_id=str(uuid.uuid4()), client_id=client, group_id=None,
                        redirect_uris=("https://a1.example.com/oauth2/callback",), registration=registration,
                        email_domain="example.com", address="127.0.0.1", oids={"alice": alice, "bob": bob})
    stored = directory.load(files.users_file)
    assert stored.users["alice@example.com"].oid == alice and stored.users["bob@example.com"].oid == bob
    assert not any(u.in_group for u in files.users.values())
    held = {name: directory.roles_claim(stored.clients[client], u) for name, u in stored.users.items()}
    assert held == {"alice@example.com": ["ws.a1"], "bob@example.com": ["ws.b1"], "carol@example.com": None, "eve@elsewhere.test": None}
    again = setup.load(tmp_path / "idp", None, client, registration)
    assert not any(u.in_group for u in again.users.values())
