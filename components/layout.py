"""What the layers agree on, in one place below them: where things live on the VM and the URL paths
of the sign-in. Imports no layer, so the host, gateway, Cloudflare and identity layers share these
values without importing one another's renderers.

The VM's side: the proxy stack's directory (the host creates it with the ownership map, the gateway
installs into it), the gateway's log, code-server's loopback port (the host's unit binds it,
oauth2-proxy proxies to it) and oauth2-proxy's Unix socket (the host makes its directory with the
socket ACL, the gateway's containers bind-mount it), and each team workspace's gateway-facing socket
(the host's systemd socket unit listens there, the gateway's router dials it). The public side: the paths oauth2-proxy answers,
which the Entra app registration names (its redirect and front-channel logout URIs), and the
sign-out link that ends both oauth2-proxy's and Entra's sessions.

(The policy pack, `scripts/policy/rules.py`, keeps its own copy of what it checks: it judges a plan
independently of the code that made it.)
"""

from __future__ import annotations

from urllib.parse import quote

#: The gateway's files (Caddyfile, oauth2-proxy's config and secrets) and its `.env`.
PROXY_STACK_DIR = "/opt/code-server/docker"
PROXY_ENV_FILE = f"{PROXY_STACK_DIR}/.env"
GATEWAY_LOG_DIR = "/var/log/caddy-gateway"
GATEWAY_ACCESS_LOG = f"{GATEWAY_LOG_DIR}/access.log"
#: code-server's port, on 127.0.0.1 only.
CODE_SERVER_PORT = 8080
OAUTH2_PROXY_SOCKET_DIR = "/run/hcs-oauth2-proxy"
OAUTH2_PROXY_SOCKET = f"{OAUTH2_PROXY_SOCKET_DIR}/oauth2-proxy.sock"
#: Team workspaces: the gateway-facing sockets, one per workspace account. systemd listens on them
#: (root:<svc> 0660, in a directory root:<svc> 0750), so only the gateway may connect and the
#: workspace's own account can neither open them to others nor take their place.
WORKSPACE_GATEWAY_SOCKET_DIR = "/run/hcs-ws-gw"


def workspace_gateway_socket(account: str, directory: str = WORKSPACE_GATEWAY_SOCKET_DIR) -> str:
    """The socket the gateway's router proxies to for workspace account `account` (`ws-<name>`)."""
    return f"{directory}/{account}.sock"

#: The only host `rd` may name besides this one: Entra's, whose end-session endpoint ends the
#: Entra session on sign-out. Exact host, no port, no subdomains: nothing else is an allowed redirect.
ENTRA_HOST = "login.microsoftonline.com"
CALLBACK_PATH = "/oauth2/callback"
SIGN_OUT_PATH = "/oauth2/sign_out"


def entra_logout_url(tenant_id: str) -> str:
    """Entra's end-session endpoint of the tenant. Without `post_logout_redirect_uri` Entra ends its
    session and shows its own "signed out" page: the app keeps its single redirect URI, and the
    user is not sent back into a sign-in that could silently succeed."""
    return f"https://{ENTRA_HOST}/{tenant_id}/oauth2/v2.0/logout"


def sign_out_url(hostname: str, tenant_id: str) -> str:
    """The sign-out link users follow: oauth2-proxy clears its cookie, then sends the browser to
    Entra's end-session endpoint (allowed as `rd` by `whitelist_domains`), so Entra's session ends
    too. A bare `/oauth2/sign_out` would clear only the cookie, and Entra would sign the user
    straight back in on the next request."""
    return f"https://{hostname}{SIGN_OUT_PATH}?rd={quote(entra_logout_url(tenant_id), safe='')}"
