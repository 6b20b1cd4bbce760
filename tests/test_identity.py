"""The Entra access graph, as the real program registers it for the dev stack (mock runtime)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components import layout
from components.identity import (
    DEFAULT_ACCESS_ROLE,
    GRAPH_APP_ID,
    GRAPH_SCOPES,
    EntraAccess,
    EntraAccessArgs,
    EntraApp,
    EntraAppArgs,
    WorkspaceGrant,
    workspace_grants,
)
from components.layout import CALLBACK_PATH
from components.settings import Settings
from scripts.lab.example import TEST_SECRETS, TODAY, dev_settings
from scripts.tools.offline import PlanMocks, PlanResult, StackConfig, record, run_program

APP = "azuread:index/application:Application"
SP = "azuread:index/servicePrincipal:ServicePrincipal"
GROUP = "azuread:index/group:Group"
ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"


def test_service_principal_requires_assignment(dev_plan: PlanResult) -> None:
    assert dev_plan.one(SP).inputs["appRoleAssignmentRequired"] is True


def test_single_tenant_app_with_exactly_one_https_redirect_and_no_implicit_grant(dev_plan: PlanResult) -> None:
    app = dev_plan.one(APP).inputs
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["web"]["redirectUris"] == ["https://code.example.com/oauth2/callback"]
    # Entra's front-channel sign-out lands on oauth2-proxy's sign-out, which clears the session.
    assert app["web"]["logoutUrl"] == "https://code.example.com/oauth2/sign_out"
    assert app["web"]["implicitGrant"] == {"accessTokenIssuanceEnabled": False, "idTokenIssuanceEnabled": False}
    assert "publicClient" not in app and "spa" not in app


def test_app_asks_for_the_claims_and_scopes_oauth2_proxy_needs(dev_plan: PlanResult) -> None:
    app = dev_plan.one(APP).inputs
    assert app["groupMembershipClaims"] == ["ApplicationGroup"]
    assert {c["name"] for c in app["optionalClaims"]["idTokens"]} == {"email"}
    (graph,) = app["requiredResourceAccesses"]
    assert graph["resourceAppId"] == GRAPH_APP_ID
    assert {a["id"] for a in graph["resourceAccesses"]} == set(GRAPH_SCOPES.values())
    assert {a["type"] for a in graph["resourceAccesses"]} == {"Scope"}  # delegated only, no app roles


def test_created_group_is_a_security_group_assigned_to_the_service_principal(dev_plan: PlanResult) -> None:
    group = dev_plan.one(GROUP)
    assert group.read_id is None
    assert group.inputs["securityEnabled"] is True and group.inputs["mailEnabled"] is False
    assert group.inputs["members"] == ["66666666-7777-8888-9999-000000000001", "66666666-7777-8888-9999-000000000002"]
    assignment = dev_plan.one(ASSIGNMENT)
    assert assignment.inputs["appRoleId"] == DEFAULT_ACCESS_ROLE
    assert set(assignment.dependencies) == {group.urn, dev_plan.one(SP).urn}


def test_existing_group_is_read_not_managed(dev_config: StackConfig) -> None:
    existing = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    plan = run_program(dev_config.with_values(entraGroupName=None, entraGroupMembers=None, entraGroupObjectId=existing))
    group = plan.one(GROUP)
    assert group.read_id == f"/groups/{existing}"
    assert plan.one(ASSIGNMENT).inputs["principalObjectId"] == existing
    assert plan.outputs["entraGroupObjectId"] == existing


def test_client_secret_has_a_fixed_end_date_and_a_rotation_knob(dev_config: StackConfig, dev_plan: PlanResult) -> None:
    password = dev_plan.one(PASSWORD)
    assert password.inputs["endDate"] == "2028-06-30T00:00:00Z"
    assert password.inputs["rotateWhenChanged"] == {"rotation": "1"}
    assert password.dependencies == (dev_plan.one(APP).urn,)
    rotated = run_program(dev_config.with_values(entraSecretRotation="2027-q1"))
    assert rotated.one(PASSWORD).inputs["rotateWhenChanged"] == {"rotation": "2027-q1"}


def test_stack_outputs_name_the_url_and_identity_but_no_secret(dev_plan: PlanResult) -> None:
    outputs = dev_plan.outputs
    assert outputs["url"] == "https://code.example.com"
    assert outputs["entraIssuerUrl"] == "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
    assert outputs["entraTenantId"] == "11111111-2222-3333-4444-555555555555"
    assert set(outputs) == {"url", "edge", "vmProvider", "entraClientId", "entraTenantId", "entraIssuerUrl", "entraGroupObjectId", "signOutUrl",
                            "frontProxySite", "cookieSecretUrn",
                            "frontProxyHopCa", "frontProxyHopCert", "frontProxyHopKey", "hopCertNotAfter"}
    # Sign-out ends oauth2-proxy's session, then Entra's (the live path follows this link in a browser).
    assert outputs["signOutUrl"] == ("https://code.example.com/oauth2/sign_out?rd="
                                     "https%3A%2F%2Flogin.microsoftonline.com%2F11111111-2222-3333-4444-555555555555%2Foauth2%2Fv2.0%2Flogout")
    # the one secret exported is the central Caddy's hop key (for its host; `--show-secrets` to fetch it)
    assert [key for key, value in outputs.items() if value == "[secret]"] == ["frontProxyHopKey"]


CA = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"


def test_conditional_access_requires_mfa_and_signs_in_again_at_the_session_maximum(dev_plan: PlanResult, dev_config: StackConfig) -> None:
    policy = dev_plan.one(CA)
    conditions = policy.inputs["conditions"]
    assert policy.inputs["state"] == "enabled"
    # Exactly oauth2-proxy's app and the access group: the relying party's sign-in, for its users.
    (app_id,) = conditions["applications"]["includedApplications"]
    (group_id,) = conditions["users"]["includedGroups"]
    assert dev_plan.one(GROUP).id == f"/groups/{group_id}"
    assert {dev_plan.one(APP).urn, dev_plan.one(GROUP).urn} <= set(policy.dependencies) and app_id != group_id
    assert conditions["clientAppTypes"] == ["all"]
    assert policy.inputs["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    session = policy.inputs["sessionControls"]
    # cookieExpire 12h (the default): oauth2-proxy's session slides on refresh, Entra's frequency does not
    assert (session["signInFrequency"], session["signInFrequencyPeriod"], session["signInFrequencyInterval"]) == (12, "hours", "timeBased")
    day = run_program(dev_config.with_values(cookieExpire="24h")).one(CA).inputs["sessionControls"]
    assert (day["signInFrequency"], day["signInFrequencyPeriod"]) == (1, "days")
    assert not run_program(dev_config.with_values(entraConditionalAccess=False)).of_type(CA)


TENANT = "11111111-2222-3333-4444-555555555555"
ALICE, BOB, DEVS = ("aaaaaaaa-0000-0000-0000-00000000000a", "bbbbbbbb-0000-0000-0000-00000000000b",
                    "dddddddd-0000-0000-0000-00000000000d")
TEAM_CONFIG = {"workspaces": [{"name": "alice", "users": [ALICE]}, {"name": "devs", "users": [BOB], "groups": [DEVS]}]}


def _team_app(dev_config: StackConfig) -> tuple[tuple[WorkspaceGrant, ...], PlanResult]:
    """The team's `EntraApp` as the identity layer registers it (mock runtime), with its grants."""
    import json

    from components.settings import MappingSource, load

    values = dev_config.with_values(**TEST_SECRETS, entraGroupName=None, entraGroupMembers=None,
                                    workspaces=json.dumps(TEAM_CONFIG["workspaces"])).values
    settings = load(MappingSource(values, frozenset(dev_config.secret_keys & set(values))), today=TODAY)
    assert settings.team is not None
    grants = workspace_grants(settings.entra.tenant_id, settings.hostname, settings.team)
    hosts = tuple(f"https://{settings.team.hostname(w)}{CALLBACK_PATH}" for w in settings.team.workspaces)

    def build() -> None:
        EntraApp("entra-oauth2-proxy", EntraAppArgs(display_name="team", redirect_uris=hosts, group_object_id=None,
                                                    secret_end_date=settings.entra.secret_end_date,
                                                    secret_rotation=settings.entra.secret_rotation, grants=grants))

    return grants, record(build)


def test_a_team_app_has_one_role_per_workspace_assigned_to_exactly_its_people(dev_config: StackConfig) -> None:
    grants, plan = _team_app(dev_config)
    app = plan.one(APP)
    assert app.inputs["web"]["redirectUris"] == ["https://alice.example.com/oauth2/callback", "https://devs.example.com/oauth2/callback"]
    # no groups claim: the roles claim carries the workspaces, whether assigned to a person or a group
    assert app.inputs["groupMembershipClaims"] == ["None"]
    roles = {r["value"]: r for r in app.inputs["appRoles"]}
    assert set(roles) == {"ws.alice", "ws.devs"}
    assert all(r["allowedMemberTypes"] == ["User"] and r["enabled"] is True for r in roles.values())
    assert plan.one(SP).inputs["appRoleAssignmentRequired"] is True
    held = {(a.inputs["appRoleId"], a.inputs["principalObjectId"]) for a in plan.of_type(ASSIGNMENT)}
    assert held == {(roles["ws.alice"]["id"], ALICE), (roles["ws.devs"]["id"], BOB), (roles["ws.devs"]["id"], DEVS)}
    assert DEFAULT_ACCESS_ROLE not in {role for role, _ in held}  # nobody is granted every workspace
    assert all(app.urn in a.dependencies for a in plan.of_type(ASSIGNMENT))


def test_workspace_role_ids_are_stable_and_unique(dev_config: StackConfig) -> None:
    first, _ = _team_app(dev_config)
    again, _ = _team_app(dev_config)
    assert [g.role_id for g in first] == [g.role_id for g in again]
    assert len({g.role_id for g in first}) == len(first) and DEFAULT_ACCESS_ROLE not in {g.role_id for g in first}


def test_an_app_is_granted_to_a_group_or_to_a_team_never_both_nor_neither() -> None:
    grant = WorkspaceGrant("ws.alice", "0f0f0f0f-0000-0000-0000-000000000001", "x", (ALICE,), ())
    for group, grants in ((None, ()), ("dddddddd-0000-0000-0000-00000000000d", (grant,))):
        with pytest.raises(ValueError, match="exactly one"):
            EntraAppArgs(display_name="x", redirect_uris=("https://a.example.com/oauth2/callback",), group_object_id=group,
                         secret_end_date=TODAY, secret_rotation="r", grants=grants)


def test_the_entra_stand_in_reads_a_team_app_as_the_program_registers_it(dev_config: StackConfig) -> None:
    """The demo's Entra stand-in is given the registration from the plan: the same roles, assigned to
    the same people, so its `roles` claim is what Entra would issue for this app."""
    from scripts.lab.idp import setup

    grants, plan = _team_app(dev_config)
    registration = setup.app_registration(plan.resources, plan.one(SP).values["clientId"])
    assert registration.group_membership_claims == ("None",)
    assert dict(registration.app_roles) == {g.role_id: g.value for g in grants}
    assert sorted(registration.role_assignments) == sorted((g.role_id, p) for g in grants for p in g.users + g.groups)


# A team of three: Alice works alone and with the data team; the devs group is in two workspaces.
DATA = "dada0000-0000-0000-0000-00000000000d"
TEAM_OF_THREE = [
    {"name": "alice", "users": [ALICE]},
    {"name": "devs", "users": [BOB], "groups": [DEVS]},
    {"name": "data", "users": [ALICE], "groups": [DEVS, DATA]},
]


def _team_settings() -> Settings:
    """The dev stack with the team of three instead of the access group, through the real settings parser."""
    settings = dev_settings(entraGroupName=None, entraGroupMembers=None, workspaces=TEAM_OF_THREE)
    assert settings.team is not None and settings.entra.group is None
    return settings


def _access(settings: Settings) -> tuple[PlanResult, dict[str, Any]]:
    """`EntraAccess` as the identity layer builds it for `settings` (mock runtime), and its resolved outputs."""
    seen: dict[str, Any] = {}

    def build() -> pulumi.Output[None]:
        access = EntraAccess("entra", EntraAccessArgs(entra=settings.entra, hostname=settings.hostname,
                                                      session_max=settings.gateway.cookie_expire, team=settings.team))
        return pulumi.Output.all(group=access.group_object_id, sign_out_url=access.sign_out_url,
                                 sign_out_urls=access.sign_out_urls, client_id=access.client_id).apply(seen.update)

    plan = record(build, mocks=PlanMocks(settings.entra.tenant_id))
    return plan, seen


def test_team_access_has_no_group_and_one_callback_per_workspace_host_and_no_front_channel_logout() -> None:
    plan, outputs = _access(_team_settings())
    assert not plan.of_type(GROUP)
    web = plan.one(APP).inputs["web"]
    assert web["redirectUris"] == ["https://alice.example.com/oauth2/callback", "https://devs.example.com/oauth2/callback",
                                   "https://data.example.com/oauth2/callback"]
    # one logout URL per app, one session cookie per host: no single host may stand for the team
    assert "logoutUrl" not in web
    assert outputs["group"] is None and outputs["sign_out_url"] is None
    assert outputs["sign_out_urls"] == {host: layout.sign_out_url(host, TENANT)
                                        for host in ("alice.example.com", "devs.example.com", "data.example.com")}


def test_team_access_assigns_each_workspace_role_once_to_each_of_its_people() -> None:
    plan, _ = _access(_team_settings())
    roles = {r["value"]: r["id"] for r in plan.one(APP).inputs["appRoles"]}
    assert set(roles) == {"ws.alice", "ws.devs", "ws.data"}
    pairs = [(a.inputs["appRoleId"], a.inputs["principalObjectId"]) for a in plan.of_type(ASSIGNMENT)]
    assert sorted(pairs) == sorted([(roles["ws.alice"], ALICE), (roles["ws.devs"], BOB), (roles["ws.devs"], DEVS),
                                    (roles["ws.data"], ALICE), (roles["ws.data"], DEVS), (roles["ws.data"], DATA)])
    assert all(a.inputs["resourceObjectId"] == plan.one(SP).id for a in plan.of_type(ASSIGNMENT))


def test_team_conditional_access_covers_exactly_everyone_who_can_sign_in() -> None:
    plan, outputs = _access(_team_settings())
    policy = plan.one(CA)
    conditions = policy.inputs["conditions"]
    assert conditions["users"] == {"includedUsers": [ALICE, BOB], "includedGroups": [DEVS, DATA]}
    assert conditions["applications"]["includedApplications"] == [outputs["client_id"]]
    assert plan.one(APP).urn in policy.dependencies
    assert policy.inputs["grantControls"] == {"operator": "OR", "builtInControls": ["mfa"]}
    assert policy.inputs["sessionControls"]["signInFrequency"] == 12


def test_single_user_access_keeps_its_group_its_host_and_its_sign_out() -> None:
    settings = dev_settings()
    plan, outputs = _access(settings)
    group = plan.one(GROUP)
    assert outputs["group"] == group.id.removeprefix("/groups/")
    assert plan.one(CA).inputs["conditions"]["users"] == {"includedGroups": [outputs["group"]]}
    assert plan.one(ASSIGNMENT).inputs["principalObjectId"] == outputs["group"]
    web = plan.one(APP).inputs["web"]
    assert web["redirectUris"] == ["https://code.example.com/oauth2/callback"]
    assert web["logoutUrl"] == "https://code.example.com/oauth2/sign_out"
    assert "appRoles" not in plan.one(APP).inputs
    assert outputs["sign_out_url"] == layout.sign_out_url("code.example.com", TENANT)
    assert outputs["sign_out_urls"] == {"code.example.com": outputs["sign_out_url"]}


def test_access_is_granted_to_the_group_or_to_the_team_never_both_nor_neither() -> None:
    team, single = _team_settings(), dev_settings()
    for entra, members in ((single.entra, team.team), (team.entra, None)):
        with pytest.raises(ValueError, match="exactly one"):
            EntraAccessArgs(entra=entra, hostname=single.hostname, session_max=single.gateway.cookie_expire, team=members)
