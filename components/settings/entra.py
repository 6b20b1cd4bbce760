"""Entra ID settings: the tenant, who may sign in (one security group), and the client secret."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from components.settings import checks, rules
from components.settings.reader import Reader


#: Entra's portal offers client secrets of at most 24 months; longer ones are never rotated.
MAX_SECRET_LIFETIME = dt.timedelta(days=731)


@dataclass(frozen=True)
class ExistingGroup:
    """Grant access to a group that already exists (managed outside this stack)."""

    object_id: str


@dataclass(frozen=True)
class NewGroup:
    """Create a security group for access; membership is managed by this stack."""

    display_name: str
    member_object_ids: tuple[str, ...]


@dataclass(frozen=True)
class EntraSettings:
    """What the Entra access component needs; the group is either existing or created here, or, with
    `workspaces`, None: each workspace's app role is assigned to its own users and groups instead."""

    tenant_id: str
    app_display_name: str
    group: ExistingGroup | NewGroup | None
    secret_end_date: dt.date
    secret_rotation: str
    #: Manage a Conditional Access policy for the app (MFA, sign-in frequency = session maximum).
    conditional_access: bool = True


def parse(r: Reader, hostname: str | None, today: dt.date, team: bool = False) -> EntraSettings | None:
    """Read the `entra*` keys; exactly one of entraGroupObjectId / entraGroupName must be set, or, with
    workspaces (`team`), none of the group keys."""
    start = len(r.problems)
    tenant_id = r.string("entraTenantId", checks.guid)
    app_name = r.string("entraAppDisplayName", default=None) or (
        f"code-server ({hostname})" if hostname else None
    )
    group: ExistingGroup | NewGroup | None = None
    has_id, has_name = r.is_set("entraGroupObjectId"), r.is_set("entraGroupName")
    if team:
        for key in ("entraGroupObjectId", "entraGroupName", "entraGroupMembers"):
            if r.is_set(key) and (key != "entraGroupMembers" or r.strings(key, default=None)):
                r.problem(key, "only applies without workspaces: each workspace names its own users or groups")
    elif has_id == has_name:
        r.problem(
            "entraGroupObjectId",
            "set exactly one of entraGroupObjectId (use an existing group) or entraGroupName "
            "(create a group with entraGroupMembers)",
        )
        r.is_set("entraGroupMembers")
    elif has_id:
        object_id = r.string("entraGroupObjectId", checks.guid)
        if r.strings("entraGroupMembers", default=None):
            r.problem("entraGroupMembers", "only applies with entraGroupName (a group this stack creates)")
        group = ExistingGroup(object_id) if object_id else None
    else:
        name = r.string("entraGroupName")
        if name is not None and not name.strip():
            r.problem("entraGroupName", "expected a non-empty group display name")
        members = r.strings("entraGroupMembers", checks.guid, non_empty=True)
        group = NewGroup(name.strip(), members) if name and name.strip() and members else None
    end_date = r.string("entraSecretEndDate", checks.iso_date)
    if end_date is not None and end_date <= today:
        r.problem("entraSecretEndDate", f"expected a date after today ({today}), got {end_date}")
        end_date = None
    if end_date is not None and end_date > today + MAX_SECRET_LIFETIME:
        r.problem("entraSecretEndDate", rules.violation("secret-end-date-far", str(end_date)))
        end_date = None
    rotation = r.string("entraSecretRotation")
    if rotation is not None and not rotation.strip():
        r.problem("entraSecretRotation", "expected a non-empty label (change it to rotate the secret)")
    conditional_access = r.boolean("entraConditionalAccess", default=True)
    if len(r.problems) > start or None in (tenant_id, app_name, end_date, rotation, conditional_access) or (group is None and not team):
        return None
    return EntraSettings(tenant_id, app_name, group, end_date, rotation, conditional_access)
