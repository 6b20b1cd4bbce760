"""The Cloudflare edge, from the same stack file with only `edge` changed (mock runtime)."""

from __future__ import annotations

from typing import Any

import pytest

from components.settings import ConfigError, MappingSource, load
from scripts.offline import PlanResult, StackConfig, run_program
from tests.support import KEY, TODAY

CF = "cloudflare:index/"


@pytest.fixture(scope="module")
def cf_plan(dev_config: StackConfig) -> PlanResult:
    return run_program(dev_config.with_values(edge="cloudflare"))


def _one(plan: PlanResult, kind: str) -> dict[str, Any]:
    return plan.one(f"{CF}{kind[0].lower() + kind[1:]}:{kind}").inputs


def test_fortigate_edge_creates_nothing_at_cloudflare(dev_plan: PlanResult) -> None:
    assert not [r for r in dev_plan.resources if r.type.startswith(CF)]
    assert dev_plan.outputs["edge"] == "fortigate"


def test_access_policy_allows_only_the_entra_group_via_the_entra_idp(cf_plan: PlanResult) -> None:
    policy = _one(cf_plan, "ZeroTrustAccessPolicy")
    assert policy["decision"] == "allow"
    (include,) = policy["includes"]
    assert include["azureAd"]["id"] == cf_plan.outputs["entraGroupObjectId"]
    idp = cf_plan.one(f"{CF}zeroTrustAccessIdentityProvider:ZeroTrustAccessIdentityProvider")
    assert include["azureAd"]["identityProviderId"] == idp.id
    assert idp.inputs["type"] == "azureAD"
    assert idp.inputs["config"]["clientSecret"] == "[secret]"
    assert idp.inputs["config"]["directoryId"] == "11111111-2222-3333-4444-555555555555"


def test_access_application_is_bounded_and_uses_safe_cookies(cf_plan: PlanResult) -> None:
    app = _one(cf_plan, "ZeroTrustAccessApplication")
    assert app["type"] == "self_hosted" and app["domain"] == "code.example.com"
    assert app["sessionDuration"] == "8h0m"
    assert app["httpOnlyCookieAttribute"] is True and app["sameSiteCookieAttribute"] == "lax"
    assert len(app["allowedIdps"]) == 1 and app["autoRedirectToIdentity"] is True


def test_tunnel_enforces_access_with_the_app_aud_and_ends_in_404(cf_plan: PlanResult) -> None:
    aud = cf_plan.outputs["cloudflareAccessAud"]
    config = _one(cf_plan, "ZeroTrustTunnelCloudflaredConfig")["config"]
    first, last = config["ingresses"]
    assert first["hostname"] == "code.example.com"
    assert first["service"] == "http://127.0.0.1:8880"  # the local gateway, never code-server itself
    assert first["originRequest"]["access"] == {"required": True, "teamName": "example-team", "audTags": [aud]}
    assert last == {"service": "http_status:404"}


def test_dns_is_a_proxied_cname_to_the_tunnel(cf_plan: PlanResult) -> None:
    dns = _one(cf_plan, "DnsRecord")
    assert dns["type"] == "CNAME" and dns["proxied"] is True and dns["name"] == "code.example.com"
    assert dns["content"] == f"{cf_plan.outputs['cloudflareTunnelId']}.cfargotunnel.com"


def test_tunnel_secret_and_access_client_secret_stay_secret(cf_plan: PlanResult) -> None:
    assert _one(cf_plan, "ZeroTrustTunnelCloudflared")["tunnelSecret"] == "[secret]"
    assert _one(cf_plan, "ZeroTrustTunnelCloudflared")["configSrc"] == "cloudflare"
    apps = cf_plan.of_type("azuread:index/application:Application")
    redirects = sorted(a.inputs["web"]["redirectUris"][0] for a in apps)
    assert redirects == ["https://code.example.com/oauth2/callback", "https://example-team.cloudflareaccess.com/cdn-cgi/access/callback"]
    for sp in cf_plan.of_type("azuread:index/servicePrincipal:ServicePrincipal"):
        assert sp.inputs["appRoleAssignmentRequired"] is True


@pytest.mark.parametrize(
    ("changes", "key", "expected"),
    [
        ({"cloudflareAccountId": None}, "cloudflareAccountId", "is required"),
        ({"cloudflareZoneId": "example.com"}, "cloudflareZoneId", "32 lower-case hex"),
        ({"cloudflareTeamName": "Team Name"}, "cloudflareTeamName", "team name"),
        ({"cloudflareAccessSessionDuration": "720h"}, "cloudflareAccessSessionDuration", "between 15m and 24h"),
        ({"cloudflaredImage": "docker.io/cloudflare/cloudflared:latest"}, "cloudflaredImage", "pinned by digest"),
        ({"cloudflaredImage": "docker.io/cloudflare/cloudflared:2024.1.0@sha256:" + "a" * 64}, "cloudflaredImage", "2025.4.0 or newer"),
        ({"cloudflareTunnelEgress": ["0.0.0.0/0x"]}, "cloudflareTunnelEgress[0]", "CIDR"),
        ({"edge": "nginx"}, "edge", "fortigate, cloudflare"),
    ],
)
def test_cloudflare_settings_are_validated(dev_config: StackConfig, changes: dict[str, Any], key: str, expected: str) -> None:
    config = dev_config.with_values(**{"edge": "cloudflare", "vmSshPrivateKey": KEY, **changes})
    with pytest.raises(ConfigError) as caught:
        load(MappingSource(config.values, config.secret_keys), today=TODAY)
    assert any(p.key == key and expected in p.message for p in caught.value.problems), caught.value.problems
