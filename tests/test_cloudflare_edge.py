"""The Cloudflare edge, from the same stack file with only `edge` changed (mock runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.settings import ConfigError, MappingSource, load
from scripts import REPOSITORY
from scripts.lab.example import KEY, TODAY, dev_settings
from scripts.tools.offline import PlanResult, StackConfig, run_program

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


def test_cloudflared_runs_pinned_unprivileged_with_its_token_only_in_a_file(cf_plan: PlanResult, dev_config: StackConfig) -> None:
    image = next(r for r in cf_plan.of_type("docker:index/remoteImage:RemoteImage") if r.name == "gateway-cloudflared-image")
    assert image.inputs["name"] == dev_config.values["cloudflaredImage"] and "@sha256:" in image.inputs["name"]
    container = next(r for r in cf_plan.of_type("docker:index/container:Container") if r.name == "gateway-cloudflared")
    c = container.inputs
    assert c["command"] == ["tunnel", "--no-autoupdate", "--metrics", "127.0.0.1:20241", "run", "--token-file", "/etc/cloudflared/token"]
    assert "envs" not in c and c["user"] != "0:0" and not c["user"].startswith("0:")
    assert c["readOnly"] is True and c["capabilities"] == {"drops": ["ALL"]}
    assert c["securityOpts"] == ["no-new-privileges:true"] and c["networkMode"] == "host" and "ports" not in c
    assert c["mounts"] == [{"readOnly": True, "source": "/opt/code-server/docker/cloudflared", "target": "/etc/cloudflared", "type": "bind"}]
    token = next(r for r in cf_plan.of_type("hcs:files:File") if r.inputs["path"] == "/opt/code-server/docker/cloudflared/token")
    assert token.inputs["content"] == "[secret]" and token.inputs["mode"] == "0640" and token.inputs["owner"] == "codesvc"


def test_no_inbound_web_path_exists_anywhere_with_the_cloudflare_edge(cf_plan: PlanResult, dev_plan: PlanResult) -> None:
    cf_names = {r.name for r in cf_plan.resources}
    fg_names = {r.name for r in dev_plan.resources}
    # FortiGate: the inbound objects exist with the FortiGate edge and not with Cloudflare.
    inbound = {"fortigate-hcs-vip-https", "fortigate-hcs-in-https", "fortigate-hcs-proxy-to-vm", "fortigate-hcs-ips"}
    assert inbound <= fg_names and not inbound & cf_names
    # UFW: no rule lets anything reach the gateway port from the network.
    firewall = next(r for r in cf_plan.of_type("command:remote:Command") if r.name == "vm-firewall")
    assert "port 8880" not in firewall.inputs["create"] and "ufw allow from 198.51.100.0/24 to any port 22" in firewall.inputs["create"]
    # The gateway listens on loopback only and trusts only the local connector.
    caddyfile = next(r for r in cf_plan.of_type("hcs:files:File") if r.inputs["path"].endswith("/Caddyfile")).inputs["content"]
    assert "bind 127.0.0.1\n" in caddyfile and "192.0.2.10" not in caddyfile
    assert "trusted_proxies static 127.0.0.1/32\n" in caddyfile
    # No site block for a central Caddy, and no container publishes a port.
    assert not [r for r in cf_plan.of_type("hcs:files:File") if r.inputs["role"] == "front-proxy"]
    assert cf_plan.outputs["frontProxySite"] is None
    assert not [r for r in cf_plan.of_type("docker:index/container:Container") if "ports" in r.inputs]


def test_egress_adds_only_the_tunnel_port() -> None:
    fortigate = {r.name: r for r in dev_settings().topology.egress_rules}
    cloudflare = {r.name: r for r in dev_settings(edge="cloudflare").topology.egress_rules}
    added = set(cloudflare) - set(fortigate)
    assert added == {"cf-tunnel-udp", "cf-tunnel-tcp"} and not set(fortigate) - set(cloudflare)
    assert {(cloudflare[n].protocol, cloudflare[n].port) for n in added} == {("udp", 7844), ("tcp", 7844)}
    assert {str(d) for d in cloudflare["cf-tunnel-tcp"].destinations} == {"198.41.192.0/24", "198.41.200.0/24"}


def test_the_tunnel_token_never_appears_in_the_plan(cf_plan: PlanResult) -> None:
    text = json.dumps([r.inputs for r in cf_plan.resources]) + json.dumps(cf_plan.outputs)
    assert "mock-secret-tunnel-token" not in text


def test_make_plan_works_for_the_cloudflare_example_stack(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.tools.plan", "--stack", "cloudflare", "--out", str(tmp_path)],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "hcs:cloudflare:Edge  cloudflare" in done.stdout and "docker:index/container:Container  gateway-cloudflared" in done.stdout


def test_with_the_cloudflare_edge_the_vm_alone_holds_the_ides_way_out(dev_config: StackConfig) -> None:
    """No FortiGate in front: the host's own rules are the IDE proxy's only network layer, and they are
    the same as with the FortiGate edge (Squid's account out on 443, by name, the proxy's config)."""
    names = ["git.example.com", "*.pypi.org"]
    plans = {edge: run_program(dev_config.with_values(edge=edge, ideEgressDomains=names, **({"fortigateUrl": None} if edge == "cloudflare" else {})))
             for edge in ("fortigate", "cloudflare")}

    def host_files(plan: PlanResult) -> dict[str, str]:
        return {r.inputs["path"]: r.inputs["content"] for r in plan.of_type("hcs:files:File")
                if r.inputs["path"] in ("/etc/squid/squid.conf", "/etc/ufw/after.init")}

    fortigate, cloudflare = host_files(plans["fortigate"]), host_files(plans["cloudflare"])
    assert "allow proxy -p tcp --dport 443  # ide-proxy-https: git.example.com *.pypi.org" in cloudflare["/etc/ufw/after.init"]
    assert cloudflare["/etc/squid/squid.conf"] == fortigate["/etc/squid/squid.conf"]
    assert not [r for r in plans["cloudflare"].resources if r.type.startswith("pulumi-python:dynamic/fortios:")]
