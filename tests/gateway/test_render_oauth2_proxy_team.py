"""oauth2-proxy of a team VM: app roles of that VM's workspaces, a callback per host, and no weakening."""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any

import pytest

from components.gateway import render_oauth2_proxy as o
from tests.gateway.team import OTHER_VM, team
from tests.gateway.test_render_oauth2_proxy import PARAMS, release_options

TEAM_PARAMS = o.TeamOAuth2ProxyParams(
    issuer_url=PARAMS.issuer_url,
    client_id=PARAMS.client_id,
    team=team(),
    vm="vm",
    email_domains=("example.com",),
    cookie_expire=dt.timedelta(hours=12),
    cookie_refresh=dt.timedelta(minutes=30),
)


def rendered(p: o.TeamOAuth2ProxyParams = TEAM_PARAMS) -> dict[str, Any]:
    return tomllib.loads(o.render_team(p))


def test_every_key_is_an_option_of_the_pinned_release() -> None:
    unknown = set(rendered()) - release_options()
    assert not unknown, f"not options of the pinned oauth2-proxy (fatal at start): {sorted(unknown)}"


def test_the_roles_of_this_vm_only_and_a_callback_per_host() -> None:
    cfg = rendered()
    assert cfg["oidc_groups_claim"] == "roles"
    assert cfg["allowed_groups"] == ["ws.a", "ws.ab", "ws.c-d"]  # not ws.z: its VM is another
    assert "redirect_url" not in cfg
    other = rendered(o.TeamOAuth2ProxyParams(**{**TEAM_PARAMS.__dict__, "vm": OTHER_VM}))
    assert other["allowed_groups"] == ["ws.z"]


def test_everything_else_is_the_single_user_policy() -> None:
    single = tomllib.loads(o.render(PARAMS))
    cfg = rendered()
    changed = {k for k in single.keys() | cfg.keys() if single.get(k) != cfg.get(k)}
    assert changed == {"allowed_groups", "oidc_groups_claim", "redirect_url"}


def test_a_vm_without_workspaces_is_refused() -> None:
    with pytest.raises(ValueError, match="hosts no workspace"):
        o.team_options(o.TeamOAuth2ProxyParams(**{**TEAM_PARAMS.__dict__, "vm": "nowhere"}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allowed_groups": []}, "allowed_groups is required with oidc_groups_claim = roles"),
        ({"allowed_groups": ["ws.a", "ws.Ab"]}, "allowed_groups must be workspace roles"),
        ({"allowed_groups": ["ws.a,ws.b"]}, "allowed_groups must be workspace roles"),
        ({"allowed_groups": ["ws.a", "66666666-7777-8888-9999-aaaaaaaaaaaa"]}, "allowed_groups must be workspace roles"),
        ({"allowed_groups": ["ws.a", "ws.a"]}, "allowed_groups must not repeat a role"),
        ({"redirect_url": "https://a.example.com/oauth2/callback"}, "redirect_url must be unset with oidc_groups_claim = roles"),
        ({"relative_redirect_url": True}, "relative_redirect_url must not be enabled"),
        ({"pass_user_headers": False}, "pass_user_headers must stay on"),
        ({"oidc_groups_claim": "wids"}, "oidc_groups_claim must be groups"),
        ({"oidc_groups_claim": "groups"}, "allowed_groups must be Entra group object IDs"),
        ({"oidc_groups_claim": "groups"}, "redirect_url must be https://<hostname>/oauth2/callback"),
    ],
)
def test_a_team_config_that_weakens_a_control_is_refused(change: dict[str, Any], message: str) -> None:
    opts = {**o.team_options(TEAM_PARAMS), **change}
    with pytest.raises(o.UnsafeConfig) as err:
        o.check_options(opts)
    assert any(r.startswith(message) for r in err.value.reasons), err.value.reasons


def test_the_single_user_checks_still_apply_in_a_team() -> None:
    opts = {**o.team_options(TEAM_PARAMS), "cookie_samesite": "none", "skip_auth_routes": ["^/"]}
    with pytest.raises(o.UnsafeConfig) as err:
        o.check_options(opts)
    assert any("cookie_samesite" in r for r in err.value.reasons) and any("skip_auth_routes" in r for r in err.value.reasons)


def test_a_single_user_config_cannot_borrow_team_values() -> None:
    """Roles with the groups claim would never match (the claim carries GUIDs); a missing redirect_url is refused."""
    single = o.options(PARAMS)
    with pytest.raises(o.UnsafeConfig, match="group object IDs"):
        o.check_options({**single, "allowed_groups": ["ws.a"]})
    with pytest.raises(o.UnsafeConfig, match="redirect_url must be https"):
        o.check_options({k: v for k, v in single.items() if k != "redirect_url"})
