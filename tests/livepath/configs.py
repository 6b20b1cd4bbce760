"""The configuration files of the live chain.

INTERIM: the product's renderers (gateway Caddyfile, front-proxy site block, code-server
config.yaml, oauth2-proxy config) are being written on other branches. Until they are merged,
the functions below marked INTERIM write minimal local equivalents so the chain can be exercised;
they are test scaffolding, not the product's configuration, and are replaced by calls to the
product renderers as those land.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

CODE_SERVER_PORT = 8080
STANDIN_PORT = 4180
CADDY_ADMIN_PORT = 2019


@dataclass(frozen=True)
class ChainPlan:
    """Names and addresses of one live chain (from the example stack's settings)."""

    hostname: str
    vm_ip: str
    front_ip: str
    outsider_ip: str
    gateway_port: int

    @property
    def public_url(self) -> str:
        return f"https://{self.hostname}"


def code_server_config() -> str:
    """INTERIM code-server `config.yaml`: loopback bind, no built-in auth, no phoning home."""
    return (
        f"bind-addr: 127.0.0.1:{CODE_SERVER_PORT}\n"
        "auth: none\n"
        "cert: false\n"
        "disable-telemetry: true\n"
        "disable-update-check: true\n"
    )


def gateway_caddyfile(plan: ChainPlan, access_log: str) -> str:
    """INTERIM gateway Caddyfile: trust only the front proxy's X-Forwarded-For, proxy to :4180."""
    return f"""{{
	admin 127.0.0.1:{CADDY_ADMIN_PORT}
	servers {{
		trusted_proxies static {plan.front_ip}/32
		trusted_proxies_strict
		client_ip_headers X-Forwarded-For
	}}
}}

http://{plan.hostname}:{plan.gateway_port}, http://:{plan.gateway_port} {{
	bind {plan.vm_ip}
	log {{
		output file {access_log}
		format json
	}}
	reverse_proxy 127.0.0.1:{STANDIN_PORT}
}}
"""


def front_site_block(plan: ChainPlan) -> str:
    """INTERIM front-proxy site block: TLS for the public name, proxy to the VM's gateway port."""
    return f"""{plan.hostname} {{
	reverse_proxy {plan.vm_ip}:{plan.gateway_port}
}}
"""


def oauth2_proxy_config(plan: ChainPlan) -> dict[str, object]:
    """INTERIM oauth2-proxy options the stand-in models (the shape of the product's renderer)."""
    return {
        "provider": "entra-id",
        "oidc_issuer_url": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "redirect_url": f"https://{plan.hostname}/oauth2/callback",
        "scope": "openid email profile offline_access",
        "skip_provider_button": True,
        "http_address": f"127.0.0.1:{STANDIN_PORT}",
        "upstreams": [f"http://127.0.0.1:{CODE_SERVER_PORT}"],
        "pass_host_header": True,
        "proxy_websockets": True,
        "reverse_proxy": True,
        "cookie_name": "__Host-oauth2_proxy",
        "ping_path": "/oauth2/ping",
        "ready_path": "/oauth2/ready",
    }


def user_settings() -> str:
    """The test user's VS Code settings: a quiet screen (no chat panel, no welcome page)."""
    return json.dumps(
        {
            "chat.disableAIFeatures": True,
            "workbench.startupEditor": "none",
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "workbench.tips.enabled": False,
            "security.workspace.trust.enabled": False,
            "telemetry.telemetryLevel": "off",
            "update.mode": "none",
            "extensions.autoCheckUpdates": False,
        },
        indent=2,
    )
