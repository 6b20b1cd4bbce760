"""The alternative edge: a Cloudflare Tunnel (outbound only) guarded by Cloudflare Access."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_random as random

from components.identity import EntraApp, EntraAppArgs
from components.settings.cloudflare import CloudflareSettings


@dataclass(frozen=True)
class CloudflareEdgeArgs:
    """What the edge needs from settings and from the identity layer."""

    cloudflare: CloudflareSettings
    hostname: str
    gateway_port: int
    tenant_id: str
    group_object_id: pulumi.Input[str]
    secret_end_date: dt.date
    secret_rotation: str


class CloudflareEdge(pulumi.ComponentResource):
    """Cloudflare Tunnel + Access in front of the gateway (token `hcs:cloudflare:Edge`).

    Builds: an Entra app for Access (its own client, redirect to the team's Access callback,
    assignment required for the same group); the Access identity provider for it; a reusable
    allow policy for that group only; a self-hosted Access application for the hostname with a
    bounded session and HttpOnly/SameSite=Lax cookies; a remotely managed tunnel whose only
    ingress is the hostname → the VM's local gateway, with Access enforced at the connector
    (`originRequest.access.required` with the application's AUD tag), then `http_status:404`;
    and the proxied CNAME `<hostname>` → `<tunnel id>.cfargotunnel.com`.

    Why: the VM opens no inbound port at all; Access checks identity at Cloudflare's edge on every
    request; the connector itself rejects requests without a valid Access token for *this*
    application, so a DNS or routing mistake can't bypass Access; and the tunnel ends at the local
    gateway, not at code-server, so oauth2-proxy and Entra stay as a second, independent gate.

    Outputs: `tunnel_id`, `access_aud`, `tunnel_token` (secret; for the cloudflared container).
    """

    tunnel_id: pulumi.Output[str]
    access_aud: pulumi.Output[str]
    tunnel_token: pulumi.Output[str]

    def __init__(self, name: str, args: CloudflareEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:cloudflare:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cf = args.cloudflare
        team_domain = f"{cf.team_name}.cloudflareaccess.com"

        access_app_entra = EntraApp(
            f"{name}-entra",
            EntraAppArgs(
                display_name=f"Cloudflare Access ({args.hostname})",
                redirect_uris=(f"https://{team_domain}/cdn-cgi/access/callback",),
                group_object_id=args.group_object_id,
                secret_end_date=args.secret_end_date,
                secret_rotation=args.secret_rotation,
            ),
            opts=child,
        )
        idp = cloudflare.ZeroTrustAccessIdentityProvider(
            f"{name}-idp",
            account_id=cf.account_id,
            name=f"Entra ID for {args.hostname}",
            type="azureAD",
            config=cloudflare.ZeroTrustAccessIdentityProviderConfigArgs(
                client_id=access_app_entra.client_id,
                client_secret=access_app_entra.client_secret,
                directory_id=args.tenant_id,
                support_groups=True,
                pkce_enabled=True,
            ),
            opts=child,
        )
        policy = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-policy",
            account_id=cf.account_id,
            name=f"{args.hostname}: Entra group only",
            decision="allow",
            includes=[
                cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                    azure_ad=cloudflare.ZeroTrustAccessPolicyIncludeAzureAdArgs(
                        id=args.group_object_id, identity_provider_id=idp.id
                    )
                )
            ],
            session_duration=cf.session_duration_text,
            opts=child,
        )
        application = cloudflare.ZeroTrustAccessApplication(
            f"{name}-app",
            account_id=cf.account_id,
            name=f"code-server {args.hostname}",
            type="self_hosted",
            domain=args.hostname,
            session_duration=cf.session_duration_text,
            http_only_cookie_attribute=True,
            same_site_cookie_attribute="lax",
            enable_binding_cookie=True,
            allowed_idps=[idp.id],
            auto_redirect_to_identity=True,
            app_launcher_visible=False,
            policies=[cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=policy.id, precedence=1)],
            opts=child,
        )
        tunnel_secret = random.RandomBytes(f"{name}-tunnel-secret", length=32, opts=child)
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=cf.account_id,
            name=f"code-server-{args.hostname}",
            config_src="cloudflare",
            tunnel_secret=tunnel_secret.base64,
            opts=child,
        )
        cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-tunnel-config",
            account_id=cf.account_id,
            tunnel_id=tunnel.id,
            config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(
                ingresses=[
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        hostname=args.hostname,
                        service=f"http://127.0.0.1:{args.gateway_port}",
                        origin_request=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestArgs(
                            access=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccessArgs(
                                required=True, team_name=cf.team_name, aud_tags=[application.aud]
                            ),
                        ),
                    ),
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(service="http_status:404"),
                ],
            ),
            opts=child,
        )
        cloudflare.DnsRecord(
            f"{name}-dns",
            zone_id=cf.zone_id,
            name=args.hostname,
            type="CNAME",
            content=tunnel.id.apply(lambda tunnel_id: f"{tunnel_id}.cfargotunnel.com"),
            proxied=True,
            ttl=1,
            comment="code-server via Cloudflare Tunnel (managed by Pulumi)",
            opts=child,
        )
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=cf.account_id, tunnel_id=tunnel.id, opts=pulumi.InvokeOutputOptions(parent=self)
        )

        self.tunnel_id = tunnel.id
        self.access_aud = application.aud
        self.tunnel_token = pulumi.Output.secret(token.token)
        self.register_outputs({"tunnelId": self.tunnel_id, "accessAud": self.access_aud, "tunnelToken": self.tunnel_token})
