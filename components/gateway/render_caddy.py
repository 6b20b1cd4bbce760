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

For team workspaces, `team_gateway()` is the same gateway admitting only the workspace hosts of one
VM, plus the router oauth2-proxy proxies to (a workspace only for a session holding its role), and
`team_front_site()` is that VM's site block for the central Caddy.

Choices that code-server depends on: the Host header is never rewritten (code-server compares
the WebSocket `Origin` with it: a rewrite means "1006" in the browser), and framing is allowed
from the same origin only (`frame-ancestors 'self'`: webviews are same-origin iframes, so
`DENY` would break them).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from components.gateway.render_oauth2_proxy import REQUEST_ID_HEADER
from components.layout import CODE_SERVER_PORT, OAUTH2_PROXY_SOCKET, WORKSPACE_GATEWAY_SOCKET_DIR, workspace_gateway_socket
from components.settings.workspaces import Team, Workspace

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


#: The identity oauth2-proxy puts on its upstream requests (`pass_user_headers`); the router grants a
#: workspace by `X-Forwarded-Groups`. A client's copies, in either spelling (oauth2-proxy treats `_` as
#: `-`), are deleted by the team gateway before oauth2-proxy, which deletes them as well.
FORWARDED_IDENTITY_HEADERS = ("X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username")
#: How long the router keeps an idle connection to a workspace: a pooled connection holds the
#: workspace's socket proxy (and so its code-server) up, which would defeat code-server's idle stop.
WORKSPACE_KEEPALIVE = "30s"


@dataclass(frozen=True)
class TeamGatewayParams:
    """Inputs of a team VM's gateway: the listeners, peers, upstream and TLS as for the single user
    (`gateway.hostname` must be one of this VM's workspace hosts: the health check sends it as Host),
    the team and the VM, and where the router listens and finds the workspace sockets (production
    defaults; tests point them elsewhere)."""

    gateway: GatewayParams
    team: Team
    vm: str
    router_port: int = CODE_SERVER_PORT
    socket_dir: str = WORKSPACE_GATEWAY_SOCKET_DIR

    def __post_init__(self) -> None:
        hosts = team_hosts(self.team, self.vm)
        if not hosts:
            raise ValueError(f"TeamGatewayParams.vm: {self.vm!r} hosts no workspace")
        if self.gateway.hostname not in hosts:
            raise ValueError(f"TeamGatewayParams.gateway.hostname: expected one of {', '.join(hosts)}, got {self.gateway.hostname!r}")


def team_hosts(team: Team, vm: str) -> tuple[str, ...]:
    """The workspace hosts served by `vm`, in config order."""
    return tuple(team.hostname(w) for w in team.on(vm))


def _cidrs(addresses: Sequence[Address]) -> str:
    return " ".join(str(ipaddress.ip_network(a)) for a in addresses)


def gateway(p: GatewayParams) -> str:
    """The local gateway's Caddyfile."""
    return _gateway(p, (p.hostname,), p.hostname, strip="", router="")


def _gateway(p: GatewayParams, hosts: Sequence[str], title: str, strip: str, router: str) -> str:
    """The gateway serving `hosts`; a team adds lines that `strip` request headers and its `router`
    site (both empty for the single user)."""
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
# Local gateway for {title}, generated by hardened-code-server. Do not edit on the host.
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
{strip}
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

	@foreign_host not host {" ".join(hosts)}
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

{sites}{router}"""


def team_gateway(p: TeamGatewayParams) -> str:
    """A team VM's gateway: the single-user gateway admitting only this VM's workspace hosts (421
    for any other), deleting a client's forwarded identity, giving oauth2-proxy the admitted host as
    X-Forwarded-Host (it builds the callback URL from it: a team has no fixed `redirect_url`), and
    the router on 127.0.0.1 that oauth2-proxy proxies to."""
    hosts = team_hosts(p.team, p.vm)
    strip = "".join(f"\trequest_header -{name}\n\trequest_header -{name.replace('-', '_')}\n" for name in FORWARDED_IDENTITY_HEADERS)
    strip = ("\t# oauth2-proxy's identity for the router (X-Forwarded-Groups grants a workspace): never a client's.\n" + strip
             + "\t# oauth2-proxy builds the callback URL from X-Forwarded-Host: dropped here, reverse_proxy sets it to the\n"
               "\t# admitted Host (it would keep a trusted front proxy's value: Caddy v2.11.4 reverseproxy.go:975-981).\n"
               "\trequest_header -X-Forwarded-Host\n")
    return _gateway(p.gateway, hosts, f"the workspaces of VM {p.vm} ({', '.join(hosts)})", strip, "\n" + _router(p))


def _router(p: TeamGatewayParams) -> str:
    """oauth2-proxy's upstream: each workspace host to its socket, only for a session holding its role."""
    workspaces = p.team.on(p.vm)
    matchers = "".join(_grant(p.team.hostname(w), w) for w in workspaces)
    routes = "".join(_route(w, workspace_gateway_socket(w.account, p.socket_dir)) for w in workspaces)
    return f"""\
# The router: oauth2-proxy's upstream (only the service account may connect: the VM's firewall hook).
# It serves a workspace host only to a session holding that workspace's role, read from the
# X-Forwarded-Groups oauth2-proxy sets from its own session: the roles joined with "," (a client's
# copy never arrives), so the match is anchored on both sides and ws.a never matches ws.ab. A request
# from another origin (a sibling workspace's page: same site, so the Lax cookie rides along) and
# anything else get 403. The session cookie stays here (-Cookie): a workspace may run any process
# behind its socket, and one VM's cookie is valid on all its hosts; code-server (auth none) needs none.
# X-Forwarded-Proto is https, as the browser's request was (oauth2-proxy is no trusted proxy here).
http://:{p.router_port} {{
	bind 127.0.0.1
{matchers}
	route {{
{routes}		respond "Forbidden" 403
	}}
}}
"""


def _grant(host: str, w: Workspace) -> str:
    """The two matchers of a workspace: granted (its host and its role) and a foreign Origin on its host."""
    role = re.escape(w.role)
    return f"""
	@grant_{w.account} {{
		host {host}
		header_regexp X-Forwarded-Groups `(^|,){role}(,|$)`
	}}
	@foreign_origin_{w.account} {{
		host {host}
		header Origin *
		not header Origin https://{host}
	}}
"""


def _route(w: Workspace, socket: str) -> str:
    """A workspace's handling in the router: a foreign Origin refused, a granted request proxied."""
    return f"""\
		respond @foreign_origin_{w.account} "Forbidden" 403
		reverse_proxy @grant_{w.account} unix/{socket} {{
			header_up -Cookie
			header_up X-Forwarded-Proto https
			transport http {{
				keepalive {WORKSPACE_KEEPALIVE}
			}}
			stream_close_delay {STREAM_CLOSE_DELAY}
		}}
"""


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
# ({HOP_CA}, {HOP_CERT}, {HOP_KEY}) come from the stack's outputs (README: the DMZ hop).
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


def team_front_site(team: Team, vm: str, vm_address: Address, port: int, hop: str) -> str:
    """The central Caddy's site block for the workspace hosts of `vm` (the hop's files in
    `FRONT_HOP_DIR`/<hop>/, the gateway's certificate naming every one of its hosts).

    One `reverse_proxy` per host, each naming its host as the TLS server name: with a client
    certificate required, the gateway's Caddy refuses a request whose Host differs from the
    connection's SNI (Caddy v2.11.4 `modules/caddyhttp/app.go:268`, `server.go:530`: strict SNI-Host,
    421), and one proxy with a placeholder server name would reuse a pooled connection made for
    another host (the pool is keyed by address; `reverseproxy/httptransport.go:418-436` only sets the
    name at dial time). Host and X-Forwarded-For as in `front_site`.
    """
    hosts = team_hosts(team, vm)
    if not hosts:
        raise ValueError(f"team_front_site: {vm!r} hosts no workspace")
    d = f"{FRONT_HOP_DIR}/{hop}"
    proxies = "".join(f"""
	@{w.account} host {team.hostname(w)}
	reverse_proxy @{w.account} https://{vm_address}:{port} {{
		header_up Host {{host}}
		transport http {{
			tls_trust_pool file {d}/{HOP_CA}
			tls_client_auth {d}/{HOP_CERT} {d}/{HOP_KEY}
			tls_server_name {team.hostname(w)}
		}}
		stream_close_delay {STREAM_CLOSE_DELAY}
	}}
""" for w in team.on(vm))
    return f"""\
# Site block for the central Caddy: import it from its Caddyfile. Generated by
# hardened-code-server for the workspaces of VM {vm}; not managed by it. The hop's files
# ({HOP_CA}, {HOP_CERT}, {HOP_KEY}) come from the stack's outputs (README: the DMZ hop).
{", ".join(hosts)} {{{proxies}}}
"""
