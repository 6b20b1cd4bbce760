"""Caddyfiles for the two proxies in front of code-server (pure: no Pulumi, no I/O).

`gateway()` is the local Caddy on the VM, serving only the front proxy (and loopback, for the
container health check), believing `X-Forwarded-For` only from the front proxy, and handing every
request to oauth2-proxy's socket. With `tls` (the FortiGate edge) the DMZ hop is mutual TLS: on
the VM's address the gateway speaks TLS only and requires a client certificate from the hop's
private CA, so a peer that has none (or a plain-HTTP one, or one at the front proxy's address
without it) gets nothing, and the front proxy in turn verifies the gateway against that CA, so a
local account that binds the port while the gateway is down cannot pose as it. Loopback (the
health check) stays plain HTTP. `front_site()` is the site block the central Caddy imports for
the hostname; this program records it (and the client certificate it presents) but does not
manage that server.

Choices that code-server depends on: the Host header is never rewritten (code-server compares
the WebSocket `Origin` with it: a rewrite means "1006" in the browser), and framing is allowed
from the same origin only (`frame-ancestors 'self'`: webviews are same-origin iframes, so
`DENY` would break them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from components.gateway.render_oauth2_proxy import REQUEST_ID_HEADER
from components.host.render import OAUTH2_PROXY_SOCKET

#: Where the container sees its JSON access log (a host directory fail2ban reads is mounted here).
ACCESS_LOG = "/var/log/caddy/access.log"
#: oauth2-proxy's Unix socket, in a directory only the service account (the gateway's uid) can enter.
OAUTH2_PROXY = f"unix/{OAUTH2_PROXY_SOCKET}"
#: oauth2-proxy's ping endpoint, which the container health check requests through the gateway.
HEALTH_PATH = "/oauth2/ping"
#: How long proxied WebSockets survive a config reload: an IDE session is one long WebSocket.
STREAM_CLOSE_DELAY = "5m"
HSTS = "max-age=31536000; includeSubDomains"
#: Cloudflare Access's per-request token (a credential), dropped from the access log.
ACCESS_JWT_HEADER = "Cf-Access-Jwt-Assertion"
#: OAuth callback parameters whose values are replaced in the access log.
REDACTED_QUERY = ("code", "state")
#: The identity oauth2-proxy asserts on its responses (`set_xauthrequest`): the log field each goes to.
#: Only the first value counts: oauth2-proxy sets its own before proxying, and Go's ReverseProxy
#: *appends* whatever the upstream (code-server, or anything served through it) sends under the same name.
IDENTITY_HEADERS = {"X-Auth-Request-Email": "user_email", "X-Auth-Request-User": "user_id"}
#: Every header oauth2-proxy's `set_xauthrequest` writes (the groups' object IDs among them): removed
#: from the browser's response, and a client's own copies never reach the log or the upstream.
IDENTITY_HEADER_PREFIX = "X-Auth-Request-"
_IDENTITY_HEADER_NAMES = ("X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
                          "X-Auth-Request-Groups", "X-Auth-Request-Access-Token")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Where the central Caddy's host keeps the hop's files (one directory per hostname), and how the
#: site block names it: `HCS_HOP_DIR` in the central Caddy's environment overrides the default.
FRONT_HOP_HOME = "/etc/caddy/hcs-hop"
FRONT_HOP_DIR = "{$HCS_HOP_DIR:" + FRONT_HOP_HOME + "}"
HOP_CA, HOP_CERT, HOP_KEY = "hop-ca.crt", "hop.crt", "hop.key"


@dataclass(frozen=True)
class HopTls:
    """The gateway's side of the hop: its certificate, key and the CA its clients must chain to (paths Caddy reads)."""

    cert: str
    key: str
    client_ca: str


@dataclass(frozen=True)
class GatewayParams:
    """Inputs of the local gateway's Caddyfile.

    `listen` are the addresses the gateway binds (the VM's own address, where the front proxy
    connects, and loopback, where the health check connects: not the Docker bridges or any
    other interface). `front_proxies` are the only trusted proxies and, with loopback, the only
    peers served. `upstream` and `access_log` have production defaults; tests point them
    elsewhere.
    """

    hostname: str
    port: int
    listen: tuple[Address, ...]
    front_proxies: tuple[Address, ...]
    upstream: str = OAUTH2_PROXY
    access_log: str = ACCESS_LOG
    tls: HopTls | None = None

    def __post_init__(self) -> None:
        if not self.listen:
            raise ValueError("GatewayParams.listen: expected at least one address to bind")
        if not self.front_proxies:
            raise ValueError("GatewayParams.front_proxies: expected at least one front proxy address")
        if not 1024 <= self.port <= 65535:
            raise ValueError(f"GatewayParams.port: expected an unprivileged port (1024-65535), got {self.port}")


def _cidrs(addresses: Sequence[Address]) -> str:
    return " ".join(str(ipaddress.ip_network(a)) for a in addresses)


def gateway(p: GatewayParams) -> str:
    """The local gateway's Caddyfile."""
    trusted = _cidrs(p.front_proxies)
    loopback = ipaddress.ip_address("127.0.0.1")
    if p.tls is None:
        sites = _site("http", p.port, p.listen, (*p.front_proxies, loopback), "")
    else:
        network = tuple(a for a in p.listen if a != loopback)
        client_auth = f"""
	# The hop is mutual TLS: no certificate from the hop's CA, no connection (and so no
	# X-Forwarded-For believed from a peer that did not prove it is the front proxy).
	tls {p.tls.cert} {p.tls.key} {{
		protocols tls1.3
		client_auth {{
			mode require_and_verify
			trust_pool file {p.tls.client_ca}
		}}
	}}
"""
        sites = _site("https", p.port, network, p.front_proxies, client_auth) + "\n" + _site("http", p.port, (loopback,), (loopback,), "")
    return f"""\
# Local gateway for {p.hostname}, generated by hardened-code-server. Do not edit on the host.
{{
	# No admin API: nothing on the VM can reconfigure the gateway at run time.
	admin off
	persist_config off
	auto_https off
	servers {{
		# Only the central proxy may say who the client is; strict = rightmost untrusted hop.
		trusted_proxies static {trusted}
		trusted_proxies_strict
		client_ip_headers X-Forwarded-For
		# TCP only: no HTTP/3 listener on UDP.
		protocols h1 h2
	}}
	log {{
		output stderr
		format json
	}}
}}

(gateway) {{
	log {{
		output file {p.access_log} {{
			roll_size 50MiB
			roll_keep 10
		}}
		# The log is shipped (Wazuh): no bearer values in it. Cloudflare Access's JWT is a
		# credential for this app; the OAuth code and state of the callback could be replayed
		# while fresh. (Cookie and Authorization are redacted by Caddy itself.) The logged query
		# is re-encoded by the filter: keys sorted, a bare `key` logged as `key=`.
		format filter {{
			wrap json
			fields {{
				request>headers>{ACCESS_JWT_HEADER} delete
{"".join(f"				request>headers>{h} delete{chr(10)}" for h in (*_IDENTITY_HEADER_NAMES, REQUEST_ID_HEADER))}				request>uri query {{
{"".join(f"					replace {q} REDACTED{chr(10)}" for q in REDACTED_QUERY)}				}}
			}}
		}}
	}}

	# Who this is: what oauth2-proxy asserted, read from its response (the first value only; see
	# IDENTITY_HEADERS), appended to this request's log line. The line's `uuid` goes to oauth2-proxy
	# as {REQUEST_ID_HEADER} (a client's own is dropped), which puts it in its auth and request lines.
{_identity_maps()}	# A client's own identity headers reach neither the upstream nor the log.
	request_header -{IDENTITY_HEADER_PREFIX}*

	# Set when the response is written, so upstream values cannot override them.
	header {{
		defer
		# The asserted identity is for the log: the browser needs none of it (the groups' IDs least).
		-{IDENTITY_HEADER_PREFIX}*
		Strict-Transport-Security "{HSTS}"
		X-Content-Type-Options "nosniff"
		Referrer-Policy "strict-origin-when-cross-origin"
		X-Frame-Options "SAMEORIGIN"
		?Content-Security-Policy "frame-ancestors 'self'"
		-Server
	}}

	@foreign_host not host {p.hostname}
	@health {{
		remote_ip 127.0.0.1/32
		path {HEALTH_PATH}
	}}
	log_skip @health

	route {{
		respond @foreign_peer "Forbidden" 403 {{
			close
		}}
		respond @foreign_host "Misdirected Request" 421
		reverse_proxy {p.upstream} {{
			# Host is passed unchanged (Caddy's default): code-server checks Origin against it.
			header_up X-Real-IP {{client_ip}}
			# Nothing in this chain sets these; a client-supplied value could only mislead.
			header_up -X-Forwarded-Uri
			header_up -Forwarded
			header_up {REQUEST_ID_HEADER} {{http.request.uuid}}
			stream_close_delay {STREAM_CLOSE_DELAY}
		}}
	}}
}}

{sites}"""


def _identity_maps() -> str:
    """`map` + `log_append` per identity header: the text before the first comma of the joined values
    (Caddy joins repeated fields with ","), i.e. oauth2-proxy's own value; none without one."""
    return "".join(
        f"\tmap {{http.reverse_proxy.header.{header}}} {{hcs_{field}}} {{\n\t\t~^([^,]+) \"${{1}}\"\n\t}}\n"
        f"\tlog_append {field} {{hcs_{field}}}\n"
        for header, field in IDENTITY_HEADERS.items())


def _site(scheme: str, port: int, listen: Sequence[Address], peers: Sequence[Address], tls: str) -> str:
    """One listener of the gateway: its addresses, the peers it serves (a logged 403 for anyone
    else, e.g. a direct client), TLS if any, and the shared handling."""
    served = _cidrs(tuple(dict.fromkeys(peers)))
    return f"""{scheme}://:{port} {{
	bind {" ".join(map(str, listen))}
{tls}
	@foreign_peer not remote_ip {served}
	import gateway
}}
"""


def health_check(p: GatewayParams) -> list[str]:
    """The container health check (busybox wget in the Caddy image): the whole chain answers.

    It asks oauth2-proxy's ping endpoint through the gateway on loopback, with the public
    Host, so it passes the same host check and proxy as real traffic (and is not logged).
    """
    return ["wget", "-q", "-O", "/dev/null", "--header", f"Host: {p.hostname}", f"http://127.0.0.1:{p.port}{HEALTH_PATH}"]


def front_site(hostname: str, vm_address: Address, port: int) -> str:
    """The central Caddy's site block for `hostname` (TLS from its wildcard certificate).

    Host is kept; X-Forwarded-For is set by Caddy to the address it saw (it ignores a
    client-supplied one unless the client is one of *its* trusted proxies). The hop to the
    gateway is mutual TLS: the gateway must present a certificate of the hop's CA for the
    hostname (not one the system roots vouch for, so nothing that answers on the gateway's
    address in its place is believed), and the central Caddy presents its client certificate.
    The three files live in `FRONT_HOP_DIR`/<hostname>/ on the central Caddy's host.
    """
    hop = f"{FRONT_HOP_DIR}/{hostname}"
    return f"""\
# Site block for the central Caddy: import it from its Caddyfile. Generated by
# hardened-code-server for the code-server VM; not managed by it. The hop's files
# ({HOP_CA}, {HOP_CERT}, {HOP_KEY}) come from the stack's outputs (docs/operations.md: the DMZ hop).
{hostname} {{
	reverse_proxy https://{vm_address}:{port} {{
		# Caddy sends an HTTPS upstream its own address as Host; code-server compares the
		# WebSocket Origin with Host, and the gateway requires Host = the TLS server name.
		header_up Host {{host}}
		transport http {{
			tls_trust_pool file {hop}/{HOP_CA}
			tls_client_auth {hop}/{HOP_CERT} {hop}/{HOP_KEY}
			tls_server_name {hostname}
		}}
		stream_close_delay {STREAM_CLOSE_DELAY}
	}}
}}
"""
