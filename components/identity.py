"""Entra ID access: the app registration oauth2-proxy signs users in with, and who may use it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from components import layout
from components.settings.entra import EntraSettings, ExistingGroup
from components.settings.workspaces import Team

#: Microsoft Graph's application ID and the delegated permission (scope) IDs oauth2-proxy needs.
#: These are fixed, tenant-independent identifiers published by Microsoft.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = {
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
}
#: The "default access" app role: assigning a principal to it grants sign-in, nothing more.
DEFAULT_ACCESS_ROLE = "00000000-0000-0000-0000-000000000000"


#: The namespace of the workspaces' app role IDs (uuid5 of tenant, stack host and workspace name).
WORKSPACE_ROLE_NAMESPACE = uuid.UUID("5c0f2b9e-4a43-4c8e-9d0e-7c1f3a6b2d40")


@dataclass(frozen=True)
class WorkspaceGrant:
    """One workspace's app role and who holds it: the `roles` claim of a person assigned (directly
    or through a group) carries `value`, which the workspace's gateway grants its host to."""

    #: The role's value, `ws.<name>`.
    value: str
    #: The role's ID: stable for one tenant, stack and workspace, so a plan never replaces it.
    role_id: str
    description: str
    users: tuple[str, ...]
    groups: tuple[str, ...]


def workspace_grants(tenant_id: str, hostname: str, team: Team) -> tuple[WorkspaceGrant, ...]:
    """The app roles of `team`'s workspaces, each with the users and groups it lists."""
    return tuple(
        WorkspaceGrant(w.role, str(uuid.uuid5(WORKSPACE_ROLE_NAMESPACE, f"{tenant_id}/{hostname}/{w.name}")),
                       f"Use the workspace {team.hostname(w)}", w.users, w.groups)
        for w in team.workspaces
    )


def logout_url(hostname: str) -> str:
    """The front-channel logout URL: Entra calls it when the user signs out of Entra elsewhere."""
    return f"https://{hostname}{layout.SIGN_OUT_PATH}"


@dataclass(frozen=True)
class EntraAppArgs:
    """One OIDC client: its display name, its redirect URIs, who may use it, its secret's life, and
    the front-channel logout URL Entra calls when the user signs out of Entra.

    Who: one group (`group_object_id`, assigned the default access role), or a team's `grants`
    (one app role per workspace, assigned to its users and groups), never both.
    """

    display_name: str
    redirect_uris: tuple[str, ...]
    group_object_id: pulumi.Input[str] | None
    secret_end_date: dt.date
    secret_rotation: str
    logout_url: str | None = None
    grants: tuple[WorkspaceGrant, ...] = ()

    def __post_init__(self) -> None:
        if (self.group_object_id is None) == (not self.grants):
            raise ValueError("an Entra app is granted to one group or to a team's workspaces, exactly one of them")


class EntraApp(pulumi.ComponentResource):
    """One app registration that only one group, or only a team, may sign in to (token `hcs:identity:EntraApp`).

    Builds: a single-tenant app registration with its redirect URIs (one per host it serves), its
    front-channel logout URL (if any) and no implicit grant;
    its service principal with *app role assignment required*; the group's assignment to the
    default access role, or, for a team, one app role per workspace assigned to each of its users
    and groups; a client secret with a fixed end date and an explicit rotation label.

    Why: with assignment required, Entra itself refuses every account outside the group before
    any relying party sees a token, so a mistake in the relying party's own group check is not
    enough to get in. MFA and conditional access then apply to a deliberately small set of people.
    The groups claim is limited to groups assigned to the app (`ApplicationGroup`) so tokens stay
    small and never hit the 200-group overage that would hide the group from oauth2-proxy. A team's
    tokens carry no groups at all: the `roles` claim (the workspaces granted, however assigned) is
    what oauth2-proxy reads, and it has no overage.

    Outputs: `client_id`, `client_secret` (secret).
    """

    client_id: pulumi.Output[str]
    client_secret: pulumi.Output[str]

    def __init__(self, name: str, args: EntraAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:identity:EntraApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        deployer = azuread.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        app = azuread.Application(
            f"{name}-app",
            display_name=args.display_name,
            sign_in_audience="AzureADMyOrg",
            owners=[deployer.object_id],
            web=azuread.ApplicationWebArgs(
                redirect_uris=list(args.redirect_uris),
                logout_url=args.logout_url,
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    access_token_issuance_enabled=False,
                    id_token_issuance_enabled=False,
                ),
            ),
            group_membership_claims=["None"] if args.grants else ["ApplicationGroup"],
            app_roles=[
                azuread.ApplicationAppRoleArgs(allowed_member_types=["User"], description=grant.description,
                                               display_name=grant.value, enabled=True, id=grant.role_id, value=grant.value)
                for grant in args.grants
            ] or None,
            optional_claims=azuread.ApplicationOptionalClaimsArgs(
                id_tokens=[azuread.ApplicationOptionalClaimsIdTokenArgs(name="email", essential=True)],
                access_tokens=[azuread.ApplicationOptionalClaimsAccessTokenArgs(name="email", essential=True)],
            ),
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=GRAPH_APP_ID,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(id=scope_id, type="Scope")
                        for scope_id in GRAPH_SCOPES.values()
                    ],
                )
            ],
            opts=child,
        )
        principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=app.client_id,
            app_role_assignment_required=True,
            owners=[deployer.object_id],
            opts=child,
        )
        if args.group_object_id is not None:
            azuread.AppRoleAssignment(
                f"{name}-assignment",
                app_role_id=DEFAULT_ACCESS_ROLE,
                principal_object_id=args.group_object_id,
                resource_object_id=principal.object_id,
                opts=child,
            )
        for grant in args.grants:
            # Named by role and principal: adding a person or a workspace adds an assignment, never renames one.
            for principal_id in grant.users + grant.groups:
                azuread.AppRoleAssignment(
                    f"{name}-{grant.value}-{principal_id}",
                    app_role_id=grant.role_id,
                    principal_object_id=principal_id,
                    resource_object_id=principal.object_id,
                    # The role must exist on the app before Entra accepts an assignment to it.
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[app]),
                )
        password = azuread.ApplicationPassword(
            f"{name}-secret",
            application_id=app.id,
            display_name=args.display_name,
            # A fixed end date: a date computed from "now" would replace the secret on every run.
            end_date=f"{args.secret_end_date.isoformat()}T00:00:00Z",
            rotate_when_changed={"rotation": args.secret_rotation},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["value"]),
        )
        self.client_id = app.client_id
        self.client_secret = pulumi.Output.secret(password.value)
        self.register_outputs({"clientId": self.client_id, "clientSecret": self.client_secret})


@dataclass(frozen=True)
class EntraAccessArgs:
    """Inputs of `EntraAccess`: the validated Entra settings, the public host name, the longest a
    session may last (oauth2-proxy's `cookie_expire`), which Entra then enforces, and the team
    (None for the single IDE user, whose access is `entra.group`; a team's is its workspaces)."""

    entra: EntraSettings
    hostname: str
    session_max: dt.timedelta
    team: Team | None = None

    def __post_init__(self) -> None:
        if (self.team is None) == (self.entra.group is None):
            raise ValueError("Entra access is granted to the settings' group (single user) or to a team's workspaces, exactly one of them")


def team_redirect_uris(team: Team) -> tuple[str, ...]:
    """oauth2-proxy's callback on every workspace host, in team order, each once."""
    return tuple(dict.fromkeys(f"https://{team.hostname(w)}{layout.CALLBACK_PATH}" for w in team.workspaces))


def team_sign_out_urls(team: Team, tenant_id: str) -> dict[str, str]:
    """Each workspace host's sign-out link (its own oauth2-proxy cookie, then Entra's session)."""
    return {host: layout.sign_out_url(host, tenant_id) for host in dict.fromkeys(team.hostname(w) for w in team.workspaces)}


def team_people(team: Team) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every user and every group granted any workspace, each once, in config order: everyone who
    can sign in to the team's app."""
    users = dict.fromkeys(u for w in team.workspaces for u in w.users)
    groups = dict.fromkeys(g for w in team.workspaces for g in w.groups)
    return tuple(users), tuple(groups)


def sign_in_frequency(session_max: dt.timedelta) -> tuple[int, str]:
    """Entra's sign-in frequency (whole hours below a day, else whole days), never longer than `session_max`."""
    hours = int(session_max.total_seconds() // 3600)
    if hours < 1:
        raise ValueError(f"expected a session of at least one hour (Entra's shortest sign-in frequency), got {session_max}")
    return (hours, "hours") if hours < 24 else (hours // 24, "days")


class EntraAccess(pulumi.ComponentResource):
    """The Entra ID side of the identity layer (token `hcs:identity:EntraAccess`).

    Builds, for the single IDE user: the access group (a security group created here with its
    members, or an existing one read by object ID, whose lifecycle then stays with its owners) and
    oauth2-proxy's `EntraApp`, whose only redirect URI is `https://<hostname>/oauth2/callback` and
    whose logout URL is oauth2-proxy's sign-out. Other relying parties (the Cloudflare Access
    edge) get their own `EntraApp` for the same group.

    For a team (`args.team`): no group at all (each workspace names its own users and groups), and
    one `EntraApp` for every workspace host: a redirect URI `https://<host>/oauth2/callback` per
    host (team order, each once; one oauth2-proxy per VM builds its callback from the host it
    admits), one app role per workspace assigned to its users and groups (`workspace_grants`), and
    **no** front-channel logout URL. Why none: Entra keeps one logout URL per app and calls it once
    per app, not once per host, while every workspace host holds its own host-only `__Host-`
    session cookie; a URL on any one host would clear that host's session only, pretend to a
    single sign-out that does not exist, and move whenever the first workspace changes. A team's
    sessions end by each host's own sign-out link, and at the latest at the sign-in frequency below.

    With `entraConditionalAccess` (the default), also a Conditional Access policy for that app: MFA
    required, and a sign-in frequency equal to the session's maximum, for the access group, or, for
    a team, for every user and group granted any workspace (the union: everyone who can sign in to
    the app, each once, in config order). Why: the posture's "MFA comes from Entra" must be a
    managed fact, and oauth2-proxy's `cookie_expire` is not an absolute limit (each refresh resets
    the session's creation time, so an active session slides); the sign-in frequency makes Entra
    refuse the refresh once it is due, so the user signs in again, with MFA, at least that often.

    Outputs: `client_id`, `tenant_id`, `issuer_url`, `client_secret` (secret), `group_object_id`
    (None for a team), `sign_out_url` (the link that ends both the oauth2-proxy and the Entra
    session; None for a team, which has no one host), `sign_out_urls` (each host → its sign-out
    link: every workspace host for a team, the one hostname otherwise; registered as a component
    output only for a team, so the single user's registered outputs stay as they were).
    """

    client_id: pulumi.Output[str]
    tenant_id: pulumi.Output[str]
    issuer_url: pulumi.Output[str]
    group_object_id: pulumi.Output[str | None]
    sign_out_url: pulumi.Output[str | None]
    sign_out_urls: pulumi.Output[dict[str, str]]
    client_secret: pulumi.Output[str]

    def __init__(self, name: str, args: EntraAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:identity:EntraAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        entra = args.entra
        team = args.team
        group_id: pulumi.Output[str] | None = None
        if team is not None:
            users, groups = team_people(team)
            app_args = EntraAppArgs(
                display_name=entra.app_display_name,
                redirect_uris=team_redirect_uris(team),
                logout_url=None,
                group_object_id=None,
                secret_end_date=entra.secret_end_date,
                secret_rotation=entra.secret_rotation,
                grants=workspace_grants(entra.tenant_id, args.hostname, team),
            )
            people = azuread.ConditionalAccessPolicyConditionsUsersArgs(included_users=list(users) or None,
                                                                        included_groups=list(groups) or None)
        else:
            if isinstance(entra.group, ExistingGroup):
                group = azuread.Group.get(f"{name}-group", f"/groups/{entra.group.object_id}", opts=child)
            else:
                deployer = azuread.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
                group = azuread.Group(
                    f"{name}-group",
                    display_name=entra.group.display_name,
                    security_enabled=True,
                    mail_enabled=False,
                    prevent_duplicate_names=True,
                    members=list(entra.group.member_object_ids),
                    owners=[deployer.object_id],
                    opts=child,
                )
            app_args = EntraAppArgs(
                display_name=entra.app_display_name,
                redirect_uris=(f"https://{args.hostname}{layout.CALLBACK_PATH}",),
                logout_url=logout_url(args.hostname),
                group_object_id=group.object_id,
                secret_end_date=entra.secret_end_date,
                secret_rotation=entra.secret_rotation,
            )
            people = azuread.ConditionalAccessPolicyConditionsUsersArgs(included_groups=[group.object_id])
            group_id = group.object_id
        app = EntraApp(f"{name}-oauth2-proxy", app_args, opts=child)
        if entra.conditional_access:
            every, period = sign_in_frequency(args.session_max)
            azuread.ConditionalAccessPolicy(
                f"{name}-conditional-access",
                display_name=f"{entra.app_display_name}: MFA, sign-in every {every} {period}",
                state="enabled",
                conditions=azuread.ConditionalAccessPolicyConditionsArgs(
                    client_app_types=["all"],
                    applications=azuread.ConditionalAccessPolicyConditionsApplicationsArgs(included_applications=[app.client_id]),
                    users=people,
                ),
                grant_controls=azuread.ConditionalAccessPolicyGrantControlsArgs(operator="OR", built_in_controls=["mfa"]),
                session_controls=azuread.ConditionalAccessPolicySessionControlsArgs(
                    sign_in_frequency=every,
                    sign_in_frequency_period=period,
                    sign_in_frequency_interval="timeBased",
                    sign_in_frequency_authentication_type="primaryAndSecondaryAuthentication",
                ),
                opts=child,
            )
        self.client_id = app.client_id
        self.client_secret = app.client_secret
        self.tenant_id = pulumi.Output.from_input(entra.tenant_id)
        self.issuer_url = pulumi.Output.from_input(f"https://login.microsoftonline.com/{entra.tenant_id}/v2.0")
        if team is not None:
            self.group_object_id = pulumi.Output.from_input(None)
            self.sign_out_url = pulumi.Output.from_input(None)
            self.sign_out_urls = pulumi.Output.from_input(team_sign_out_urls(team, entra.tenant_id))
        else:
            self.group_object_id = pulumi.Output.from_input(group_id)
            self.sign_out_url = pulumi.Output.from_input(layout.sign_out_url(args.hostname, entra.tenant_id))
            self.sign_out_urls = self.sign_out_url.apply(lambda url: {args.hostname: url})
        outputs = {
            "clientId": self.client_id,
            "tenantId": self.tenant_id,
            "issuerUrl": self.issuer_url,
            "groupObjectId": self.group_object_id,
            "signOutUrl": self.sign_out_url,
            "clientSecret": self.client_secret,
        }
        if team is not None:
            outputs["signOutUrls"] = self.sign_out_urls
        self.register_outputs(outputs)
