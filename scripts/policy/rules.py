"""The security invariants of hardened-code-server as pure checks over registered resources.

Each rule looks at resources as the engine sees them (type token, name, inputs in the provider's
own property names) and returns the violations it finds, each saying how to fix it. The same
rules run in the CrossGuard policy pack (`__main__.py` beside this file, for `pulumi preview
--policy-pack scripts/policy`) and offline against `make plan`'s resource list, so a change that
breaks an invariant fails before anyone deploys it. No Pulumi import: plain data in, text out.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

FORTIOS = "pulumi-python:dynamic/fortios:"
FILE = "hcs:files:File"
COMMAND = "command:remote:Command"
_PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
#: The only container allowed to publish a port beyond loopback (it is the VM's one listener).
GATEWAY_CONTAINER = "caddy-gateway"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-hardening.conf"
# Read here independently of the renderers, as a second reading of where things must be.
CODE_SERVER_DROP_IN = "/etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf"
CODE_SERVER_CONFIG = "/etc/code-server/hcs.yaml"
OAUTH2_PROXY_SOCKET_DIR = "/run/hcs-oauth2-proxy"
UFW_AFTER_INIT = "/etc/ufw/after.init"
BACKUP_SERVICE = "/etc/systemd/system/hcs-backup.service"
BACKUP_ENV = "/etc/restic/hcs-backup.env"
BACKUP_REPOSITORY_FILE = "/etc/restic/hcs-backup.repository"
SQUID_CONFIG = "/etc/squid/squid.conf"
#: Debian's Squid account and the IDE proxy's loopback port (SQUID and IDE_PROXY_PORT of
#: components/settings/topology.py: the pack carries its own copy, tests/policy/test_rules.py
#: keeps them equal).
SQUID_ACCOUNT = "proxy"
IDE_PROXY_PORT = 3128
# Team workspaces (components/host/render_workspaces.py, components/layout.py, components/settings/
# workspaces.py): the pack's own copies again, kept equal by tests/policy/test_rules.py.
TEAM_CODE_SERVER_CONFIG = "/etc/code-server/hcs-team.yaml"
TEAM_CODE_SERVER_ENV = "/etc/code-server/hcs-team.env"
#: Each workspace's code-server socket is `<this>/<account>/code-server.sock`, in a 0700 directory of its own.
WORKSPACE_RUNTIME_DIR = "/run/hcs-ws"
#: The gateway's door to each workspace: `<this>/<account>.sock` (systemd's socket, root:<service account>).
WORKSPACE_GATEWAY_SOCKET_DIR = "/run/hcs-ws-gw"
WORKSPACE_PROXY_SOCKET = "/etc/systemd/system/hcs-ws-proxy@.socket"
WORKSPACE_PROXY_SERVICE = "/etc/systemd/system/hcs-ws-proxy@.service"
TEAM_BACKUP_SERVICE = "/etc/systemd/system/hcs-backup@.service"
#: Every workspace account's uid, as the firewall hook's `IDE=` names it (`--uid-owner FIRST-LAST`).
WORKSPACE_UIDS = "20000-29999"
#: The team gateway's router: oauth2-proxy's upstream on 127.0.0.1 (code-server's port in single-user mode).
ROUTER_PORT = 8080
_WORKSPACE_DROP_IN = re.compile(r"^/etc/systemd/system/code-server@(ws-[a-z0-9-]+)\.service\.d/20-hcs-workspace\.conf$")
_WORKSPACE_ACCOUNT = re.compile(r"^ws-([a-z][a-z0-9-]*[a-z0-9])$")


@dataclass(frozen=True)
class Res:
    """One resource: its type token, logical name and inputs (secrets already opaque)."""

    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """A mandatory invariant: `check` gets resources and returns violations.

    `stack` rules need the whole stack (cross-references, "exists", order) and run as stack
    validations; the others judge each resource alone, so the engine can stop a bad resource
    before it is created.
    """

    name: str
    description: str
    check: Callable[[Sequence[Res]], list[str]]
    stack: bool = False
    #: judges team workspaces only: a single user's stack has nothing it reads, and its posture does not count it
    team: bool = False


def _of(resources: Iterable[Res], type_token: str) -> list[Res]:
    return [r for r in resources if r.type == type_token]


def _known_text(value: Any) -> str | None:
    """Plain text if the value is known and not secret (unknowns/secrets can't be judged)."""
    return value if isinstance(value, str) else None


def _files(resources: Iterable[Res], suffix: str) -> list[tuple[str, str]]:
    return [
        (r.props["path"], text)
        for r in _of(resources, FILE)
        if str(r.props.get("path", "")).endswith(suffix) and (text := _known_text(r.props.get("content"))) is not None
    ]


# --- team workspaces: which files are a VM's --------------------------------------------


def is_team(resources: Iterable[Res]) -> bool:
    """The plan serves team workspaces: some VM has the team's code-server config, a workspace's
    drop-in or the gateway's workspace socket. A team is judged per VM and per workspace; take
    every one of these away and the stack is judged as a single user's again (and fails there)."""
    return any(path in (TEAM_CODE_SERVER_CONFIG, WORKSPACE_PROXY_SOCKET) or _WORKSPACE_DROP_IN.match(path)
               for path in (str(r.props.get("path", "")) for r in _of(resources, FILE)))


def _machine(r: Res) -> str | None:
    """The VM a file is for (`vm`, or `vm-<name>` for another VM of a team); None for other machines."""
    role = str(r.props.get("role", "vm"))
    return role if role == "vm" or role.startswith("vm-") else None


def _by_vm(resources: Iterable[Res]) -> dict[str, list[Res]]:
    """Each VM's file records, by its machine role, in plan order."""
    found: dict[str, list[Res]] = {}
    for r in _of(resources, FILE):
        if (vm := _machine(r)) is not None:
            found.setdefault(vm, []).append(r)
    return found


def _vm_texts(files: Iterable[Res], vm: str, suffix: str) -> list[tuple[str, str]]:
    """(`vm:path`, text) of a VM's files ending in `suffix` (known, non-secret content only)."""
    return [(f"{vm}:{path}", text) for path, text in _files(files, suffix)]


def _accounts(files: Iterable[Res]) -> list[str]:
    """The workspace accounts of a VM: one drop-in each (`code-server@ws-<name>…/20-hcs-workspace.conf`)."""
    return [m.group(1) for r in files if (m := _WORKSPACE_DROP_IN.match(str(r.props.get("path", ""))))]


def _role(account: str) -> str:
    """A workspace account's Entra app role: `ws-<name>` → `ws.<name>`."""
    return "ws." + account.removeprefix("ws-")


def _unit_lines(text: str) -> list[str]:
    """A unit file's lines, stripped, without comments and blank lines."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]


# --- identity ---------------------------------------------------------------------------


def service_principals_require_assignment(resources: Sequence[Res]) -> list[str]:
    return [
        f"{r.name}: appRoleAssignmentRequired must be true, or every account in the tenant may sign in; "
        "set app_role_assignment_required=True (components.identity.EntraApp does)"
        for r in _of(resources, "azuread:index/servicePrincipal:ServicePrincipal")
        if r.props.get("appRoleAssignmentRequired") is not True
    ]


def apps_have_one_https_redirect(resources: Sequence[Res]) -> list[str]:
    found = []
    for r in _of(resources, "azuread:index/application:Application"):
        web = r.props.get("web") or {}
        uris = list(web.get("redirectUris") or [])
        roles = [role.get("value") for role in r.props.get("appRoles") or [] if isinstance(role, Mapping)]
        if roles:
            found += _workspace_redirects(r.name, roles, uris)
        elif len(uris) != 1 or not str(uris[0]).startswith("https://"):
            found.append(f"{r.name}: expected exactly one https:// redirect URI, got {uris}; one relying party per app")
        for other in ("spa", "publicClient"):
            if (r.props.get(other) or {}).get("redirectUris"):
                found.append(f"{r.name}: {other} redirect URIs allow token flows outside oauth2-proxy; remove them")
        grant = web.get("implicitGrant") or {}
        if grant.get("accessTokenIssuanceEnabled") or grant.get("idTokenIssuanceEnabled"):
            found.append(f"{r.name}: implicit grant must be off (tokens in URLs); use the authorization code flow")
    return found


def _workspace_redirects(app: str, roles: list[Any], uris: list[Any]) -> list[str]:
    """A team's app: every role a workspace's (`ws.<name>`), and one callback per role,
    `https://<name>.<domain>/oauth2/callback`, all in one domain: no URI that no workspace's
    oauth2-proxy serves (Entra would send a code there)."""
    found = []
    names = []
    for value in roles:
        if (m := re.fullmatch(r"ws\.([a-z][a-z0-9-]*[a-z0-9])", str(value))) is None:
            found.append(f"{app}: app role {value!r} is no workspace role (ws.<name>): the gateway grants a host by its "
                         "workspace's role only, and another role would be a grant nothing checks")
        else:
            names.append(m.group(1))
    hosts = []
    for uri in map(str, uris):
        parts = urlsplit(uri)
        if uri != f"https://{parts.hostname}/oauth2/callback" or parts.hostname is None or "." not in parts.hostname:
            found.append(f"{app}: redirect URI {uri!r} is not https://<workspace host>/oauth2/callback exactly "
                         "(https, no port, query or other path): oauth2-proxy serves no other callback")
        else:
            hosts.append(parts.hostname)
    labels = sorted(h.split(".", 1)[0] for h in hosts)
    domains = sorted({h.split(".", 1)[1] for h in hosts})
    if labels != sorted(names) or len(domains) > 1 or len(set(labels)) != len(labels):
        found.append(f"{app}: expected one redirect URI per workspace role, https://<name>.<domain>/oauth2/callback for "
                     f"each ws.<name>, all in one domain; got hosts {sorted(hosts)} for roles {sorted(map(str, roles))}: "
                     "an app with roles must not accept a callback on a host no workspace is")
    return found


# --- containers -------------------------------------------------------------------------


def images_pinned_by_digest(resources: Sequence[Res]) -> list[str]:
    found = [
        f"{r.name}: image {r.props.get('name')!r} is not pinned; use repo:tag@sha256:<digest>"
        for r in _of(resources, "docker:index/remoteImage:RemoteImage")
        if not _PINNED.search(str(r.props.get("name", "")))
    ]
    for r in _of(resources, "docker:index/container:Container"):
        image = r.props.get("image")
        if isinstance(image, str) and not (_IMAGE_ID.match(image) or _PINNED.search(image)):
            found.append(f"{r.name}: container image {image!r} is neither an image ID nor pinned by digest")
    return found


def containers_hardened(resources: Sequence[Res]) -> list[str]:
    found = []
    for r in _of(resources, "docker:index/container:Container"):
        p, name = r.props, r.props.get("name", r.name)
        if p.get("privileged"):
            found.append(f"{name}: privileged containers own the host; remove privileged")
        if "no-new-privileges:true" not in (p.get("securityOpts") or []):
            found.append(f"{name}: add security_opts=['no-new-privileges:true'] so nothing inside can gain privileges")
        for port in p.get("ports") or []:
            if port.get("ip", "0.0.0.0") not in ("127.0.0.1", "::1") and name != GATEWAY_CONTAINER:
                found.append(f"{name}: publishes port {port.get('external')} beyond loopback; bind it to 127.0.0.1")
    return found


# --- application config files -------------------------------------------------------------


def _config_lines(text: str) -> dict[str, str]:
    """`key: value` lines of a code-server YAML config (it writes only flat scalars)."""
    pairs = (line.partition(":") for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip().strip('"') for key, colon, value in pairs if colon}


def code_server_locked_config(resources: Sequence[Res]) -> list[str]:
    """code-server reads only a root-owned config (the IDE user's own config.yaml is writable by it)."""
    if is_team(resources):
        return [f for vm, files in _by_vm(resources).items() for f in _team_locked_config(vm, files)]
    drop_ins = _files(resources, CODE_SERVER_DROP_IN)
    if not drop_ins:
        return [f"no {CODE_SERVER_DROP_IN} is installed: code-server would run unsandboxed and read the IDE user's own config"]
    found = []
    for path, text in drop_ins:
        starts = [l.split("=", 1)[1].strip() for l in text.splitlines() if l.startswith("ExecStart=")]
        if starts[:1] != [""] or len(starts) != 2 or starts[1] != f"/usr/bin/code-server --config {CODE_SERVER_CONFIG}":
            found.append(f"{path}: ExecStart must be reset and set to exactly /usr/bin/code-server --config {CODE_SERVER_CONFIG}, "
                         "or code-server reads ~/.config/code-server/config.yaml, which the IDE user can rewrite (bind-addr 0.0.0.0)")
    configs = [r for r in _of(resources, FILE) if r.props.get("path") == CODE_SERVER_CONFIG]
    if not configs:
        found.append(f"no {CODE_SERVER_CONFIG} is installed: the unit's --config would point at nothing")
    for r in configs:
        mode = int(str(r.props.get("mode", "0")), 8)
        if r.props.get("owner") != "root" or mode & 0o022:
            found.append(f"{CODE_SERVER_CONFIG}: must be owned by root and writable by root only (mode 0644), "
                         f"got {r.props.get('owner')} {r.props.get('mode')}")
        text = _known_text(r.props.get("content"))
        if text is None:
            continue
        conf = _config_lines(text)
        if not re.fullmatch(r"127\.0\.0\.1:\d+", conf.get("bind-addr", "")) or "socket" in conf:
            found.append(f"{CODE_SERVER_CONFIG}: code-server must bind 127.0.0.1 (bind-addr: 127.0.0.1:8080); it has no auth of its own")
        if conf.get("auth") != "none":
            found.append(f"{CODE_SERVER_CONFIG}: expected auth: none behind oauth2-proxy (a shared password would be a second, weak gate)")
    return found


def _root_only(r: Res) -> bool:
    """Owned by root and writable by root alone."""
    return r.props.get("owner") == "root" and not int(str(r.props.get("mode", "0")), 8) & 0o022


def _team_locked_config(vm: str, files: list[Res]) -> list[str]:
    """One VM of a team: every workspace's code-server from the team's root-owned config, on a socket of
    its own (600, in its 0700 runtime directory), no TCP listener, auth none, the team's environment."""
    socket = f"{WORKSPACE_RUNTIME_DIR}/%i/code-server.sock"
    start = f"/usr/bin/code-server --config {TEAM_CODE_SERVER_CONFIG} --socket {socket}"
    drop_ins = _vm_texts(files, vm, CODE_SERVER_DROP_IN)
    if not drop_ins:
        return [f"{vm}: no {CODE_SERVER_DROP_IN} is installed: the workspaces' code-server would run unsandboxed and read "
                "each account's own config.yaml"]
    found = []
    for path, text in drop_ins:
        lines = _unit_lines(text)
        starts = [line.split("=", 1)[1].strip() for line in lines if line.startswith("ExecStart=")]
        if starts != ["", start]:
            found.append(f"{path}: ExecStart must be reset and set to exactly {start}, or a workspace's code-server "
                         "reads ~/.config/code-server/config.yaml, which its account can rewrite (bind-addr 0.0.0.0)")
        if [line for line in lines if line.startswith("EnvironmentFile=")] != [f"EnvironmentFile={TEAM_CODE_SERVER_ENV}"]:
            found.append(f"{path}: expected EnvironmentFile={TEAM_CODE_SERVER_ENV} alone: an environment file a workspace "
                         "can write (NODE_OPTIONS) runs its code in every code-server")
    for wanted, what in ((TEAM_CODE_SERVER_CONFIG, "config"), (TEAM_CODE_SERVER_ENV, "environment")):
        records = [r for r in files if r.props.get("path") == wanted]
        if not records:
            found.append(f"{vm}: no {wanted} is installed: the workspaces' code-server would have no root-owned {what}")
        found += [f"{vm}:{wanted}: must be owned by root and writable by root only (0644), got {r.props.get('owner')} "
                  f"{r.props.get('mode')}: every workspace's code-server reads it" for r in records if not _root_only(r)]
    for path, text in _vm_texts(files, vm, TEAM_CODE_SERVER_CONFIG):
        conf = _config_lines(text)
        if conf.get("socket-mode") != "600" or {"bind-addr", "socket"} & set(conf):
            found.append(f"{path}: expected socket-mode: \"600\" and neither bind-addr nor socket: each code-server listens "
                         "only on the socket its unit names (its own directory), never on a TCP port a neighbour can reach")
        if conf.get("auth") != "none":
            found.append(f"{path}: expected auth: none behind oauth2-proxy and the router (a shared password would be a "
                         "second, weak gate)")
    return found


def _hook_accounts(text: str) -> tuple[str, str]:
    """The service account and the IDE user the hook's rules name (`SVC=`, `IDE=` lines)."""
    svc = re.search(r"(?m)^SVC=(\S+)$", text)
    ide = re.search(r"(?m)^IDE=(\S+)$", text)
    return (svc.group(1) if svc else ""), (ide.group(1) if ide else "")


_FIRST_IN_BOTH = r"for ipt in iptables ip6tables; do\n(?:.*\n)*?\s*\$ipt -w -C OUTPUT {m} -j {c} 2>/dev/null \|\| \$ipt -w -I OUTPUT 1 {m} -j {c}\n(?:.*\n)*?\s*done"


def code_server_port_by_identity(resources: Sequence[Res]) -> list[str]:
    """On the VM: code-server's port for two uids, the gateway's for one, nothing else for the IDE user."""
    if is_team(resources):
        return [f for vm, files in _by_vm(resources).items() for f in _team_ports(vm, files)]
    hooks = _files(resources, UFW_AFTER_INIT)
    if not hooks:
        return [f"no {UFW_AFTER_INIT} is installed: every local uid could connect to code-server and be the IDE user"]
    found = []
    for path, text in hooks:
        svc, ide = _hook_accounts(text)
        port = r"iptables -w -A hcs-loopback -p tcp -d 127\.0\.0\.1 --dport (\d+) --syn"
        # The IDE proxy's port is judged by ide-proxy-allowlist (open to the IDE user only with Squid).
        allowed = [(p, u) for p, u in re.findall(rf"{port} -m owner --uid-owner \"\$(\w+)\" -j RETURN", text) if p != str(IDE_PROXY_PORT)]
        rejected = [p for p in re.findall(rf"{port} -j hcs-refused", text) if p != str(IDE_PROXY_PORT)]
        if sorted(u for _, u in allowed) != ["IDE", "SVC"] or len(rejected) != 1 or {p for p, _ in allowed} != set(rejected):
            found.append(f"{path}: expected exactly the service account and the IDE user allowed to connect to code-server's "
                         f"port and a refusal for everyone else; got allowed {[u for _, u in allowed]}, refused ports {rejected}")
        gateway = r"iptables -w -A hcs-loopback -p tcp --dport (\d+) --syn"
        gw_allowed = [(p, u) for p, u in re.findall(rf"{gateway} -m owner --uid-owner \"\$(\w+)\" -j RETURN", text) if p != str(IDE_PROXY_PORT)]
        gw_rejected = [p for p in re.findall(rf"{gateway} -j hcs-refused", text) if p != str(IDE_PROXY_PORT)]
        if [u for _, u in gw_allowed] != ["SVC"] or {p for p, _ in gw_allowed} != set(gw_rejected) or len(gw_rejected) != 1:
            found.append(f"{path}: expected the gateway's port open to the service account only from the VM itself "
                         "(cloudflared, the health check), so no local process can pose as cloudflared behind trusted_proxies")
        if not re.search(r'\$ipt -w -A hcs-loopback -m owner --uid-owner "\$IDE" -m conntrack --ctstate NEW -j hcs-refused', text):
            found.append(f"{path}: every other connection of the IDE user on the VM must be refused (its own code-server only); "
                         "local services without auth of their own (agents, metrics) would be its to use")
        if not svc or not ide or svc == ide:
            found.append(f"{path}: SVC= and IDE= must name the service account and the IDE user, got {svc!r} and {ide!r}")
        if not re.search(_FIRST_IN_BOTH.format(m="-o lo", c="hcs-loopback"), text):
            found.append(f"{path}: the chain must be jumped to first from OUTPUT on lo, in iptables and ip6tables, "
                         "or UFW's loopback ACCEPT comes first")
    return found


#: The hook's `own ACCOUNT PORT` function: the port for that account's uid if it is in the workspace range, refused to all.
_OWN = re.compile(r'own\(\) \{\n\s*uid=\$\(id -u -- "\$1" 2>/dev/null\) \|\| uid=\n'
                  r'\s*if \[ -n "\$uid" \] && \[ "\$uid" -ge (\d+) \] && \[ "\$uid" -le (\d+) \]; then\n'
                  r'\s*iptables -w -A hcs-loopback -p tcp -d 127\.0\.0\.1 --dport "\$2" --syn -m owner --uid-owner "\$uid" -j RETURN\n'
                  r'\s*else\n\s*echo [^\n]*\n\s*fi\n'
                  r'\s*iptables -w -A hcs-loopback -p tcp --dport "\$2" --syn -j hcs-refused\n\s*\}')


def _own_ports(text: str) -> list[tuple[str, str]]:
    """The hook's `own ACCOUNT PORT` lines: each workspace's proxy port and the one account it is for."""
    return re.findall(r"(?m)^\s*own (\S+) (\S+)\s*$", text)


def _team_ports(vm: str, files: list[Res]) -> list[str]:
    """One VM of a team: the router and the gateway for the service account only, each workspace's proxy
    port for its own account only, nothing else on loopback for the uid range, no workspace listener answering."""
    hooks = _vm_texts(files, vm, UFW_AFTER_INIT)
    if not hooks:
        return [f"{vm}: no {UFW_AFTER_INIT} is installed: every local uid could connect to the router and be any workspace"]
    found = []
    for path, text in hooks:
        svc, ide = _hook_accounts(text)
        if not svc or not re.fullmatch(r"\d+-\d+", ide):
            found.append(f"{path}: SVC= must name the service account and IDE= the workspaces' uid range, got {svc!r} and {ide!r}")
        port = r"iptables -w -A hcs-loopback -p tcp -d 127\.0\.0\.1 --dport (\d+) --syn"
        allowed = re.findall(rf'{port} -m owner --uid-owner "\$(\w+)" -j RETURN', text)
        rejected = re.findall(rf"{port} -j hcs-refused", text)
        if allowed != [(str(ROUTER_PORT), "SVC")] or rejected != [str(ROUTER_PORT)]:
            found.append(f"{path}: expected the router's port {ROUTER_PORT} (oauth2-proxy's upstream, which grants a workspace "
                         f"by role) open to the service account only and refused to everyone else; got allowed {allowed}, "
                         f"refused {rejected}: a workspace there would reach every neighbour's IDE without a session")
        gateway = r"iptables -w -A hcs-loopback -p tcp --dport (\d+) --syn"
        gw_allowed = re.findall(rf'{gateway} -m owner --uid-owner "\$(\w+)" -j RETURN', text)
        gw_rejected = re.findall(rf"{gateway} -j hcs-refused", text)
        if [u for _, u in gw_allowed] != ["SVC"] or {p for p, _ in gw_allowed} != set(gw_rejected) or len(gw_rejected) != 1:
            found.append(f"{path}: expected the gateway's port open to the service account only from the VM itself, "
                         "refused to everyone else (no workspace may pose as the front proxy's peer)")
        owners = re.findall(r"(?m)^\s*\S+ -w -A hcs-loopback .*--uid-owner (\S+) .*-j RETURN$", text)
        if sorted(owners) != sorted(['"$SVC"'] * 2 + (['"$uid"'] if _own_ports(text) else [])):
            found.append(f"{path}: only the service account (the router, the gateway) and each workspace for its own proxy "
                         f"port may connect on loopback; got RETURN for {owners}")
        own = _OWN.search(text)
        if _own_ports(text) and (own is None or f"{own.group(1)}-{own.group(2)}" != ide):
            found.append(f"{path}: own() must open a proxy port to its account's uid only when that uid is in the workspace "
                         "range (IDE=), and refuse the port to everyone after; a name that is no workspace keeps it closed")
        accounts = [a for a, _ in _own_ports(text)]
        ports = [p for _, p in _own_ports(text)]
        if (len(set(accounts)) != len(accounts) or len(set(ports)) != len(ports) or any(not _WORKSPACE_ACCOUNT.match(a) for a in accounts)
                or any(not p.isdigit() or int(p) in (ROUTER_PORT, *(int(q) for q, _ in gw_allowed)) for p in ports)):
            found.append(f"{path}: each workspace account (ws-<name>) owns one proxy port of its own, never the router's or "
                         f"the gateway's; got {_own_ports(text)}")
        if not re.search(r'\$ipt -w -A hcs-loopback -m owner --uid-owner "\$IDE" -m conntrack --ctstate NEW -j hcs-refused', text):
            found.append(f"{path}: every other connection of a workspace on the VM must be refused: the router, a "
                         "neighbour's proxy port, local services without auth of their own")
        if (not re.search(r'\$ipt -w -A hcs-loopback -p tcp --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner "\$IDE" -j hcs-refused', text)
                or re.search(r'--tcp-flags SYN,ACK SYN,ACK .*--uid-owner "\$IDE" -j RETURN', text)):
            found.append(f"{path}: no workspace listener may answer on loopback (its SYN-ACKs refused, no exception): a "
                         "workspace serves only on its socket, and must not pose as the router or the gateway while they are down")
        if not re.search(_FIRST_IN_BOTH.format(m="-o lo", c="hcs-loopback"), text):
            found.append(f"{path}: the chain must be jumped to first from OUTPUT on lo, in iptables and ip6tables, "
                         "or UFW's loopback ACCEPT comes first")
    return found


def egress_by_identity(resources: Sequence[Res]) -> list[str]:
    """Off the VM: each flow only for the accounts that open it; the IDE user has none; refusals logged."""
    if is_team(resources):
        found = []
        for vm, files in _by_vm(resources).items():
            hooks = _vm_texts(files, vm, UFW_AFTER_INIT)
            if not hooks:
                found.append(f"{vm}: no {UFW_AFTER_INIT} is installed: every local account, every workspace included, "
                             "reaches the whole allowlist")
            found += _egress(hooks, _vm_texts(files, vm, CODE_SERVER_DROP_IN), _bpf_release(resources), team=True)
        return found
    hooks = _files(resources, UFW_AFTER_INIT)
    if not hooks:
        return [f"no {UFW_AFTER_INIT} is installed: every local account, the IDE user included, reaches the whole allowlist"]
    return _egress(hooks, _files(resources, CODE_SERVER_DROP_IN), _bpf_release(resources))


def _workspace_uid(who: str) -> bool:
    """An `allow` line's account that is a workspace's: its name, or a uid in the workspace range."""
    first, last = (int(n) for n in WORKSPACE_UIDS.split("-"))
    return bool(_WORKSPACE_ACCOUNT.match(who)) or (who.isdigit() and first <= int(who) <= last)


def _egress(hooks: list[tuple[str, str]], drop_ins: list[tuple[str, str]], bpf: bool, team: bool = False) -> list[str]:
    """egress-by-identity over the hooks and code-server drop-ins of one VM (a team's) or of the stack (a single user's)."""
    found = []
    for path, text in hooks:
        _, ide = _hook_accounts(text)
        if team and ide != WORKSPACE_UIDS:
            found.append(f"{path}: IDE= must be the whole workspace uid range {WORKSPACE_UIDS}, got {ide!r}: a workspace "
                         "account outside it would keep the VM's flows")
        allowed = {m for m in re.findall(r"(?m)^\s*allow (\S+) ", text)}
        for who in sorted(allowed & {ide, "$IDE", "nobody"} | ({w for w in allowed if _workspace_uid(w)} if team else set())):
            found.append(f"{path}: {who} must not be allowed any flow off the VM: whoever reaches the IDE's terminal "
                         "would reach it too (DNS alone carries data out)")
        # `allow` lines without `-d` (by name, Squid's) are judged by ide-proxy-allowlist.
        if re.search(r"(?m)^\s*iptables -w -A hcs-egress (?!.*--uid-owner).*-j RETURN", text):
            found.append(f"{path}: every RETURN off the VM must name its account and its destination")
        for family in ("iptables", "ip6tables"):
            if not re.search(rf"(?m)^\s*{family} -w -A hcs-egress -j hcs-refused$", text):
                found.append(f"{path}: {family}'s hcs-egress must end in a refusal, or whatever no rule names leaves the VM")
        if not re.search(r"\$ipt -w -A hcs-egress -p tcp --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner \"\$IDE\" -j hcs-refused", text):
            found.append(f"{path}: a listener of the IDE user must not answer off the VM (a port it binds while the gateway is down)")
        if not re.search(r"-j NFLOG --nflog-group \d+", text) or not re.search(r"-m limit --limit \S+", text):
            found.append(f"{path}: refusals must be logged (NFLOG, rate-limited) so an attempt leaves a line with its uid")
        if not re.search(_FIRST_IN_BOTH.format(m="! -o lo", c="hcs-egress"), text):
            found.append(f"{path}: hcs-egress must be jumped to first from OUTPUT off lo, in iptables and ip6tables")
    for path, text in drop_ins:
        lines = [line.strip() for line in text.splitlines()]
        if "IPAddressDeny=any" not in lines or [l for l in lines if l.startswith("IPAddressAllow=")] != ["IPAddressAllow=localhost"]:
            found.append(f"{path}: expected IPAddressDeny=any and IPAddressAllow=localhost: the second layer that keeps the "
                         "IDE's processes on loopback whatever the firewall hook says")
        families = [l.split("=", 1)[1].split() for l in lines if l.startswith("RestrictAddressFamilies=")]
        if families != [["AF_UNIX", "AF_INET"]]:
            found.append(f"{path}: expected RestrictAddressFamilies=AF_UNIX AF_INET (all code-server needs), got {families}: "
                         "IPv6, netlink and packet sockets are ways around an IPv4-shaped allowlist")
        if not {"KillMode=mixed", "KillMode=control-group"} & set(lines):
            found.append(f"{path}: expected KillMode=mixed (or control-group): what the IDE user starts must die with the unit")
        if team and bpf and (not {"SocketBindDeny=any", "RestrictNetworkInterfaces=lo"} <= set(lines)
                             or [line for line in lines if line.startswith("SocketBindAllow=")]):
            found.append(f"{path}: expected SocketBindDeny=any with no SocketBindAllow= and RestrictNetworkInterfaces=lo where "
                         "systemd enforces them (Debian 13): a workspace listens on its socket only, its terminal on no port")
        elif not team and bpf and not {"SocketBindAllow=tcp:8080", "SocketBindDeny=any", "RestrictNetworkInterfaces=lo"} <= set(lines):
            found.append(f"{path}: expected SocketBindAllow=tcp:8080, SocketBindDeny=any and RestrictNetworkInterfaces=lo "
                         "where systemd enforces them (Debian 13): the terminal must not listen on any port")
    return found


@dataclass(frozen=True)
class _Acl:
    """One Squid ACL, all its `acl` lines merged (Squid ORs the values of lines of the same name)."""

    type: str
    flags: frozenset[str]
    values: tuple[str, ...]


def _squid_directives(text: str) -> list[list[str]]:
    """squid.conf's directives, each split into words (comments and blank lines dropped)."""
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _squid_acls(directives: list[list[str]]) -> dict[str, _Acl]:
    acls: dict[str, _Acl] = {}
    for words in directives:
        if words[0] != "acl" or len(words) < 3:
            continue
        name, kind, rest = words[1], words[2], words[3:]
        flags = frozenset(w for w in rest if w.startswith("-"))
        values = tuple(w for w in rest if not w.startswith("-"))
        known = acls.get(name)
        acls[name] = _Acl(kind, flags | (known.flags if known else frozenset()), (known.values if known else ()) + values)
    return acls


def _ip_literal(value: str) -> bool:
    try:
        ipaddress.ip_address(value.lstrip(".").strip("[]"))
    except ValueError:
        return False
    return True


def _regex_matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:  # a pattern Python cannot read is not judged a match
        return False


def _matches_every_ip_literal(acl: _Acl | None) -> bool:
    """A `dstdom_regex -n` ACL matching IPv4 and IPv6 literals as the client wrote them (never looked up)."""
    if acl is None or acl.type != "dstdom_regex" or "-n" not in acl.flags:
        return False
    samples = ("192.0.2.1", "2001:db8::1", "[2001:db8::1]")
    return all(any(_regex_matches(pattern, sample) for pattern in acl.values) for sample in samples)


def _squid_listeners(directives: list[list[str]]) -> list[tuple[str, str]]:
    """(name, port) of each `http_port 127.0.0.1:PORT name=NAME` of a team's Squid (a port per workspace)."""
    return [(w[2].removeprefix("name="), w[1].removeprefix("127.0.0.1:")) for w in directives
            if w[0] == "http_port" and len(w) == 3 and w[2].startswith("name=") and w[1].startswith("127.0.0.1:")]


def _team_squid_findings(path: str, directives: list[list[str]], acls: dict[str, _Acl]) -> list[str]:
    """A team's Squid: a loopback port per workspace, named after its account; each allow for one port
    and only that workspace's own names; each port's requests logged as its account."""
    found = []
    ports = [w for w in directives if w[0] in ("http_port", "https_port")]
    listeners = _squid_listeners(directives)
    names = [n for n, _ in listeners]
    if (not ports or len(listeners) != len(ports) or len(set(names)) != len(names) or len({p for _, p in listeners}) != len(listeners)
            or any(not _WORKSPACE_ACCOUNT.match(n) or not p.isdigit() for n, p in listeners)):
        found.append(f"{path}: Squid must listen only on 127.0.0.1, a port per workspace named after its account "
                     f"(http_port 127.0.0.1:PORT name=ws-<name>), no port or name twice; got {[' '.join(w) for w in ports]}")
    owner = {n: a.values[0] for n, a in acls.items() if a.type == "myportname" and len(a.values) == 1}
    for words in (w[1:] for w in directives if w[0] == "http_access" and len(w) > 1 and w[1] == "allow"):
        ports_of = {owner[t] for t in words[1:] if t in owner}
        lists = [t for t in words[1:] if t in acls and acls[t].type in ("dstdomain", "dstdom_regex")]
        if len(ports_of) != 1 or any(not t.startswith(f"{next(iter(ports_of))}_") for t in lists):
            found.append(f"{path}: http_access allow {' '.join(words[1:])}: each allow must be for one workspace's port "
                         "(acl myportname) and only that workspace's own names (its <account>_… lists): a port allowing "
                         "another workspace's names lets it out where it was never granted")
    for words in (w for w in directives if w[:2] == ["note", "account"]):
        if len(words) != 4 or owner.get(words[3]) != words[2]:
            found.append(f"{path}: {' '.join(words)}: each port's requests must be logged as its own account "
                         "(note account <account> <the acl of its port>)")
    return found


def _squid_findings(path: str, text: str, team: bool = False) -> list[str]:
    """What squid.conf must say for the IDE's proxy to let out listed names only, each request logged."""
    found = []
    directives = _squid_directives(text)
    acls = _squid_acls(directives)
    ports = [w for w in directives if w[0] in ("http_port", "https_port")]
    if team:
        found += _team_squid_findings(path, directives, acls)
    elif not ports or any(w[0] != "http_port" or len(w) < 2 or w[1] != f"127.0.0.1:{IDE_PROXY_PORT}" for w in ports):
        found.append(f"{path}: Squid must listen on 127.0.0.1:{IDE_PROXY_PORT} alone (http_port 127.0.0.1:{IDE_PROXY_PORT}), "
                     f"the port the firewall hook opens to the IDE user only; got {[' '.join(w) for w in ports]}")
    listener_names = {o.split("=", 1)[1] for w in ports for o in w[2:] if o.startswith("name=")}
    listener = {n for n, a in acls.items() if a.type == "myportname" and a.values and set(a.values) <= listener_names}
    connect = {n for n, a in acls.items() if a.type == "method" and a.values == ("CONNECT",)}
    port_443 = {n for n, a in acls.items() if a.type == "port" and a.values == ("443",)}
    port_80 = {n for n, a in acls.items() if a.type == "port" and a.values == ("80",)}
    names = {n for n, a in acls.items() if a.type == "dstdomain"}
    for name in sorted(names):
        acl = acls[name]
        if "-n" not in acl.flags:
            found.append(f"{path}: acl {name} dstdomain must use -n: without it Squid turns an IP literal into a name by "
                         "reverse DNS, and an attacker's PTR record can read like a listed name")
        if literals := [v for v in acl.values if _ip_literal(v)]:
            found.append(f"{path}: acl {name} lists IP literals {literals}: the IDE's way out is by name only")
        if files := [v for v in acl.values if v.startswith('"')]:
            found.append(f"{path}: acl {name} reads names from {files}: list them inline, so the plan shows what is allowed")
    access = [w[1:] for w in directives if w[0] == "http_access" and len(w) > 1]
    first_allow = next((i for i, w in enumerate(access) if w[0] == "allow"), len(access))
    if not any(w[0] == "deny" and len(w) == 2 and _matches_every_ip_literal(acls.get(w[1])) for w in access[:first_allow]):
        found.append(f"{path}: before any http_access allow, an http_access deny of an acl dstdom_regex -n matching IPv4 and "
                     "IPv6 literals: an address is no name, it bypasses what the list, the log and the FortiGate judge")
    for words in access[first_allow:]:
        if words[0] != "allow":
            continue
        terms = set(words[1:])
        https = bool(terms & connect and terms & port_443)
        http = bool({"!" + n for n in connect} & terms and terms & port_80)
        if not (terms & listener and terms & names and (https or http)):
            found.append(f"{path}: http_access allow {' '.join(words[1:])}: every allow must require the IDE's listener "
                         "(acl myportname), a dstdomain list, and either CONNECT with port 443 or !CONNECT with port 80")
    if access[-1:] != [["deny", "all"]]:
        found.append(f"{path}: the last http_access must be deny all, or whatever no rule names is let through")
    if ["cache", "deny", "all"] not in directives or any(w[:2] == ["cache", "allow"] for w in directives):
        found.append(f"{path}: cache deny all: nothing fetched (a credential in a request, a response) may outlive the request")
    formats = {w[1]: " ".join(w[2:]) for w in directives if w[0] == "logformat" and len(w) > 2}
    logs = [w for w in directives if w[0] == "access_log"]
    logged = [w for w in logs if len(w) > 1 and w[1].startswith("syslog:")
              and any(o.startswith("logformat=") and "%{account}note" in formats.get(o.split("=", 1)[1], "") for o in w[2:])]
    notes = [w for w in directives if w[:2] == ["note", "account"] and len(w) > 3 and set(w[3:]) <= listener]
    if not logged or any(w[1:2] == ["none"] for w in logs) or not notes:
        found.append(f"{path}: every request must be logged to syslog (the journal) with the account: access_log syslog:… "
                     "logformat=<a format with %{account}note>, and note account <IDE user> <the listener's acl>")
    return found


def _by_name_allows(text: str) -> list[tuple[str, str]]:
    """The hook's `allow` lines without a destination (by name: Squid judges it): (account, the line)."""
    return [(m.group(1), m.group(0).strip()) for m in re.finditer(r"(?m)^\s*allow (\S+) (?!.*-d ).*$", text)]


def _by_name_findings(path: str, text: str, installed: bool) -> list[str]:
    """The hook's flows without a destination: Squid's alone, on tcp 443 or 80, and only with Squid installed."""
    found = []
    for who, line in _by_name_allows(text):
        if not installed:
            found.append(f"{path}: {line!r} opens a port off the VM to any address, and no {SQUID_CONFIG} is installed "
                         "to judge the names: every flow without Squid names its destination (-d)")
        elif who != SQUID_ACCOUNT or not re.fullmatch(r"allow \S+ -p tcp --dport (443|80)\s*(#.*)?", line):
            found.append(f"{path}: {line!r}: only Squid's account ({SQUID_ACCOUNT}) may go out without a destination, "
                         "and only on tcp 443 or 80; Squid judges the names, nothing else does")
    return found


def ide_proxy_allowlist(resources: Sequence[Res]) -> list[str]:
    """The IDE user's one way out is Squid on loopback, by name, to listed names; otherwise it has none."""
    if is_team(resources):
        return [f for vm, files in _by_vm(resources).items() for f in _team_proxy(vm, files)]
    squid = _files(resources, SQUID_CONFIG)
    installed = any(r.props.get("path") == SQUID_CONFIG for r in _of(resources, FILE))
    found = [finding for path, text in squid for finding in _squid_findings(path, text)]
    port = rf"iptables -w -A hcs-loopback -p tcp (?:-d 127\.0\.0\.1 )?--dport {IDE_PROXY_PORT} --syn"
    for path, text in _files(resources, UFW_AFTER_INIT):
        found += _by_name_findings(path, text, installed)
        allowed = re.findall(rf'{port} -m owner --uid-owner "?\$?(\w+)"? -j RETURN', text)
        refused = re.search(rf"(?m)^\s*{port} -j hcs-refused$", text)
        if installed and (allowed != ["IDE"] or not refused):
            found.append(f"{path}: the IDE user alone may connect to the proxy on 127.0.0.1:{IDE_PROXY_PORT} and everyone "
                         f"else must be refused there (got allowed {allowed}, refusal {'present' if refused else 'missing'}): "
                         "another account would use Squid's way out, logged as the IDE user")
        if not installed and allowed:
            found.append(f"{path}: {allowed} may connect to 127.0.0.1:{IDE_PROXY_PORT} but no {SQUID_CONFIG} is installed: "
                         "whatever listens there is no allowlisting proxy")
    return found


def _team_proxy(vm: str, files: list[Res]) -> list[str]:
    """One VM of a team: Squid's ports are the hook's `own` ports, each for the account it is named after;
    only Squid's account goes out by name; no port of the proxy for the whole range."""
    squid = _vm_texts(files, vm, SQUID_CONFIG)
    installed = any(r.props.get("path") == SQUID_CONFIG for r in files)
    found = [finding for path, text in squid for finding in _squid_findings(path, text, team=True)]
    listeners = {pair for _, text in squid for pair in _squid_listeners(_squid_directives(text))}
    for path, text in _vm_texts(files, vm, UFW_AFTER_INIT):
        found += _by_name_findings(path, text, installed)
        if (set(_own_ports(text)) != listeners or len(_own_ports(text)) != len(listeners)) and (installed or _own_ports(text)):
            found.append(f"{path}: the hook's proxy ports (own ACCOUNT PORT: {sorted(_own_ports(text))}) must be Squid's, "
                         f"each for the account its port is named after ({sorted(listeners)}): a port open to another "
                         "account lets that account out with this workspace's names, logged as it")
    return found


#: The Debian releases whose systemd enforces SocketBind*= and RestrictNetworkInterfaces= (the
#: `bpf_framework` releases of components/settings/debian.py: the pack runs without the program,
#: so it carries its own copy, and tests/policy/test_rules.py keeps the two equal).
BPF_RELEASES = frozenset({13})


def debian_release(resources: Iterable[Res]) -> int | None:
    """The Debian release the host steps were rendered for (`HCS_DEBIAN_RELEASE` in their commands)."""
    for r in _of(resources, COMMAND):
        found = re.search(r"\bHCS_DEBIAN_RELEASE=(\d+)\b", str(r.props.get("create", "")))
        if found:
            return int(found.group(1))
    return None


def _bpf_release(resources: Iterable[Res]) -> bool:
    """The host steps were rendered for a Debian release whose systemd has its BPF framework."""
    return debian_release(resources) in BPF_RELEASES


def dmz_hop_mutual_tls(resources: Sequence[Res]) -> list[str]:
    """The hop central Caddy → gateway is mutual TLS on the network; loopback may stay plain."""
    found = []
    for path, text in _files(resources, "/caddy/Caddyfile"):
        for block in re.split(r"\n(?=https?://)", text)[1:]:
            scheme = block.split("://", 1)[0]
            bound = re.search(r"(?m)^\s*bind (.+)$", block)
            addresses = bound.group(1).split() if bound else ["(all)"]
            if all(a.startswith("127.") or a == "::1" for a in addresses):
                continue
            if scheme != "https":
                found.append(f"{path}: the gateway serves {', '.join(addresses)} over plain HTTP: session cookies and the "
                             "terminal would cross the DMZ in clear; serve the network address over TLS with client_auth")
                continue
            if not re.search(r"client_auth \{\s*mode require_and_verify\s*trust_pool file \S+\s*\}", block):
                found.append(f"{path}: the TLS site on {', '.join(addresses)} must require and verify a client certificate of "
                             "the hop's CA (client_auth: mode require_and_verify, trust_pool file); anyone at the front "
                             "proxy's address would be believed otherwise")
    for path, text in _files(resources, ".caddy"):
        if "reverse_proxy" not in text:
            continue
        # Each reverse_proxy with what follows it (a team's site has one per workspace host, behind a host matcher).
        proxies = [re.match(r"(?:@(\S+)\s+)?(\S*)", block) for block in re.split(r"(?m)^\s*reverse_proxy\s+", text)[1:]]
        blocks = re.split(r"(?m)^\s*reverse_proxy\s+", text)[1:]
        if any(m is None or not m.group(2).startswith("https://") for m in proxies):
            found.append(f"{path}: the central Caddy must dial the gateway over https://, not in clear")
        for directive, why in (("tls_trust_pool file", "verify the gateway against the hop's CA, not the system roots"),
                               ("tls_client_auth", "present the client certificate the gateway requires"),
                               ("tls_server_name", "verify the gateway's certificate for the right name")):
            if any(directive not in block for block in blocks):
                found.append(f"{path}: the transport must {why} ({directive})")
        hosts = dict(re.findall(r"(?m)^\s*@(\S+) host (\S+)$", text))
        for m, block in zip(proxies, blocks):
            named = re.search(r"tls_server_name (\S+)", block)
            if m is not None and m.group(1) and named and hosts.get(m.group(1)) != named.group(1):
                found.append(f"{path}: the proxy for @{m.group(1)} ({hosts.get(m.group(1))}) must verify the gateway's "
                             f"certificate for that host, not {named.group(1)}")
    return found


def code_server_port_proxy_off(resources: Sequence[Res]) -> list[str]:
    """The port proxy serves any local port on the IDE's origin; opting in is a reviewed override."""
    found = [
        f"{CODE_SERVER_CONFIG}: disable-proxy must be true: /proxy/<port> and /absproxy/<port> serve local services "
        "same-origin with the workbench. To accept that risk (codeServerPortProxy), set this policy advisory "
        "with --policy-pack-config"
        for r in _of(resources, FILE)
        if r.props.get("path") == CODE_SERVER_CONFIG and (text := _known_text(r.props.get("content"))) is not None
        and _config_lines(text).get("disable-proxy") != "true"
    ]
    # A team's config: no override (codeServerPortProxy does not apply); a workspace's port proxy would
    # serve its local ports on its origin, which the firewall refuses it anyway.
    return found + [
        f"{_machine(r)}:{TEAM_CODE_SERVER_CONFIG}: disable-proxy must be true for every workspace: /proxy/<port> and "
        "/absproxy/<port> serve local services same-origin with the workbench"
        for r in _of(resources, FILE)
        if r.props.get("path") == TEAM_CODE_SERVER_CONFIG and (text := _known_text(r.props.get("content"))) is not None
        and _config_lines(text).get("disable-proxy") != "true"
    ]


def oauth2_proxy_on_unix_socket(resources: Sequence[Res]) -> list[str]:
    """oauth2-proxy has no TCP listener: the gateway reaches it on a socket only the service account can open."""
    found = []
    for path, text in _files(resources, "/oauth2-proxy.cfg"):
        address = str(tomllib.loads(text).get("http_address", ""))
        if not address.startswith(f"unix://{OAUTH2_PROXY_SOCKET_DIR}/"):
            found.append(f"{path}: http_address must be a Unix socket in {OAUTH2_PROXY_SOCKET_DIR} (unix://…), got {address!r}: "
                         "on a TCP port any local uid can connect, or bind it while oauth2-proxy is down and receive the sessions")
    for path, text in _files(resources, "/caddy/Caddyfile"):
        router = _router(text)
        upstreams = re.findall(r"(?m)^\s*reverse_proxy\s+(\S+)", text.replace(router, "") if router else text)
        if not upstreams or any(not u.startswith(f"unix/{OAUTH2_PROXY_SOCKET_DIR}/") for u in upstreams):
            found.append(f"{path}: every reverse_proxy must dial oauth2-proxy's socket (unix/{OAUTH2_PROXY_SOCKET_DIR}/…), got {upstreams}")
        dials = re.findall(r"(?m)^\s*reverse_proxy\s+(?:@\S+\s+)?(\S+)", router)
        if router and (not dials or any(not u.startswith(f"unix/{WORKSPACE_GATEWAY_SOCKET_DIR}/") for u in dials)):
            found.append(f"{path}: the router (oauth2-proxy's upstream) must dial each workspace on its socket in "
                         f"{WORKSPACE_GATEWAY_SOCKET_DIR} (unix/…), got {dials}: a TCP upstream is one any local uid can bind")
    return found


def _router(text: str) -> str:
    """A team gateway's router: its `http://:ROUTER_PORT` site bound to 127.0.0.1 alone ("" if there is none)."""
    for block in re.split(r"\n(?=https?://)", text)[1:]:
        if block.startswith(f"http://:{ROUTER_PORT} {{\n") and re.findall(r"(?m)^\s*bind (.+)$", block) == ["127.0.0.1"]:
            return block
    return ""


def backup_append_only(resources: Sequence[Res]) -> list[str]:
    """The VM can add snapshots but never remove one: no forget/prune/init, the account in a root-only file."""
    found = []
    for path, text in _files(resources, BACKUP_SERVICE) + _files(resources, TEAM_BACKUP_SERVICE):
        for word in ("forget", "prune", "init", "unlock"):
            if re.search(rf"\brestic\b.*\b{word}\b", text):
                found.append(f"{path}: must not run restic {word}: the rest-server is append-only and pruning is the "
                             "backup host's job; a VM that may delete its history lets an intruder destroy it")
    for path, text in _files(resources, BACKUP_ENV):
        if re.search(r"(?m)^RESTIC_REPOSITORY=", text) or not re.search(r"(?m)^RESTIC_REPOSITORY_FILE=/", text):
            found.append(f"{path}: name the repository with RESTIC_REPOSITORY_FILE (a root-only secret file holding the "
                         "rest-server account), not RESTIC_REPOSITORY")
    for r in _of(resources, FILE):
        if r.props.get("path") == BACKUP_REPOSITORY_FILE and (r.props.get("owner"), r.props.get("mode")) != ("root", "0600"):
            found.append(f"{BACKUP_REPOSITORY_FILE}: holds the rest-server account; must be root 0600, "
                         f"got {r.props.get('owner')} {r.props.get('mode')}")
    return found


def oauth2_proxy_cookie_safe(resources: Sequence[Res]) -> list[str]:
    found = []
    for path, text in _files(resources, "/oauth2-proxy.cfg"):
        cfg = tomllib.loads(text)
        if cfg.get("cookie_secure") is not True:
            found.append(f"{path}: cookie_secure must be true (the session cookie must never travel over HTTP)")
        if str(cfg.get("cookie_samesite", "")).lower() in ("", "none"):
            found.append(f"{path}: cookie_samesite must be lax (none sends the session cross-site; strict breaks the callback)")
        if cfg.get("cookie_httponly") is False:
            found.append(f"{path}: cookie_httponly must not be false (scripts must not read the session)")
    return found


def sshd_forbids_passwords_and_root(resources: Sequence[Res]) -> list[str]:
    drop_ins = _files(resources, SSHD_DROP_IN)
    if not [r for r in _of(resources, FILE) if r.props.get("path") == SSHD_DROP_IN]:
        return [f"no {SSHD_DROP_IN} is installed: the VM would keep Debian's SSH defaults"]
    found = []
    for path, text in drop_ins:
        settings = {
            line.split(None, 1)[0].lower(): line.split(None, 1)[1].strip().lower()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and len(line.split(None, 1)) == 2
        }
        for key, want in (("passwordauthentication", "no"), ("permitrootlogin", "no"), ("kbdinteractiveauthentication", "no")):
            if settings.get(key) != want:
                found.append(f"{path}: {key} must be {want} (keys only, no root)")
    return found


# --- team workspaces -----------------------------------------------------------------------


def _matchers(text: str) -> dict[str, list[str]]:
    """A Caddyfile's named matcher blocks (`@name {` … `}`): their lines, stripped."""
    return {m.group(1): [line.strip() for line in m.group(2).splitlines() if line.strip()]
            for m in re.finditer(r"(?m)^\s*@(\S+) \{\n(.*?)^\s*\}$", text, re.S)}


def _grants(router: str) -> list[tuple[str | None, str, str]]:
    """(matcher, upstream, the block up to the next proxy) of each reverse_proxy in a router."""
    found = []
    for block in re.split(r"(?m)^\s*reverse_proxy\s+", router)[1:]:
        m = re.match(r"(?:@(\S+)\s+)?(\S*)", block)
        found.append((m.group(1) if m else None, m.group(2) if m else "", block))
    return found


def workspace_router_grants(resources: Sequence[Res]) -> list[str]:
    """A team gateway's router serves a workspace host only to a session holding that workspace's role."""
    found = []
    for path, text in _files(resources, "/caddy/Caddyfile"):
        router = _router(text)
        if not router:
            if WORKSPACE_GATEWAY_SOCKET_DIR in text or "@grant_" in text:
                found.append(f"{path}: names workspace sockets or grants but has no router on 127.0.0.1:{ROUTER_PORT} alone: "
                             "the workspaces must be reached through the router's grants only")
            continue
        matchers, admitted = _matchers(router), re.search(r"(?m)^\s*@foreign_host not host (.+)$", text)
        admitted_hosts = admitted.group(1).split() if admitted else []
        seen: list[str] = []
        for matcher, _, block in _grants(router):
            account = (matcher or "").removeprefix("grant_")
            name = _WORKSPACE_ACCOUNT.match(account)
            lines = matchers.get(matcher or "", [])
            host = lines[0].removeprefix("host ") if lines[:1] and lines[0].startswith("host ") else ""
            want = f"header_regexp X-Forwarded-Groups `(^|,){re.escape(_role(account))}(,|$)`"
            if (not matcher or not matcher.startswith("grant_") or name is None or len(lines) != 2 or lines[1] != want
                    or len(host.split()) != 1 or host.split(".", 1)[0] != name.group(1) or host not in admitted_hosts):
                found.append(f"{path}: reverse_proxy @{matcher} must be behind its workspace's grant: exactly `host "
                             f"<name>.<domain>` (a host the gateway admits) and {want}, anchored on both sides, "
                             f"got {lines}: an unanchored or missing role match serves the IDE to whoever holds a "
                             "similar role, or none")
            if matcher in seen:
                found.append(f"{path}: @{matcher} is used by two proxies: one grant, one workspace")
            seen.append(matcher or "")
            if not re.search(r"(?m)^\s*header_up -Cookie$", block):
                found.append(f"{path}: the proxy for @{matcher} must drop the session cookie (header_up -Cookie): a "
                             "process in one workspace would otherwise replay it on every host of its VM")
        if not seen or not re.search(r'(?m)^\s*respond "Forbidden" 403\n\s*\}\n\}\s*$', router):
            found.append(f"{path}: the router's route must end in respond \"Forbidden\" 403: what no grant matches gets nothing")
        for header in ("X-Forwarded-Groups", "X_Forwarded_Groups"):
            if not re.search(rf"(?m)^\s*request_header -{header}$", text):
                found.append(f"{path}: the gateway must delete a client's {header} before oauth2-proxy: the router grants "
                             "a workspace by it")
    return found


def _team_gateway(files: list[Res]) -> tuple[dict[str, Any] | None, str]:
    """A VM's oauth2-proxy options (None if unreadable) and its gateway's router."""
    cfg = next((tomllib.loads(text) for _, text in _files(files, "/oauth2-proxy.cfg")), None)
    router = next((_router(text) for _, text in _files(files, "/caddy/Caddyfile")), "")
    return cfg, router


def team_oauth2_proxy_roles(resources: Sequence[Res]) -> list[str]:
    """Each VM's oauth2-proxy admits exactly the roles of its own workspaces (the roles claim), its router
    grants exactly those, and the Entra app has a role and a callback for every workspace and no other."""
    if not is_team(resources):
        return []
    found = []
    every_role: set[str] = set()
    every_host: set[str] = set()
    for vm, files in _by_vm(resources).items():
        roles = sorted(_role(a) for a in _accounts(files))
        every_role |= set(roles)
        cfg, router = _team_gateway(files)
        if cfg is None:
            found.append(f"{vm}: no oauth2-proxy.cfg to judge: each VM's oauth2-proxy must admit its own workspaces' roles only")
            continue
        label = f"{vm}:oauth2-proxy.cfg"
        if cfg.get("oidc_groups_claim") != "roles":
            found.append(f"{label}: oidc_groups_claim must be \"roles\": a workspace is granted by its app role, and the "
                         "groups claim carries group IDs no workspace is")
        groups = [str(g) for g in cfg.get("allowed_groups") or []]
        if sorted(groups) != roles or len(set(groups)) != len(groups):
            found.append(f"{label}: allowed_groups must be exactly the roles of this VM's workspaces {roles}, got {groups}: "
                         "a role of another VM's workspace signs its holder in here")
        if "redirect_url" in cfg:
            found.append(f"{label}: redirect_url must be unset: each workspace host has its own callback")
        granted = sorted(_role((m or "").removeprefix("grant_")) for m, _, _ in _grants(router))
        if granted != roles:
            found.append(f"{vm}: the router's grants {granted} must be this VM's workspaces {roles}, one each")
        matchers = _matchers(router)
        every_host |= {line.removeprefix("host ") for m, _, _ in _grants(router) for line in matchers.get(m or "", [])[:1]}
    for app in _of(resources, "azuread:index/application:Application"):
        values = {str(r.get("value")) for r in app.props.get("appRoles") or [] if isinstance(r, Mapping)}
        hosts = {urlsplit(str(u)).hostname for u in ((app.props.get("web") or {}).get("redirectUris") or [])}
        if values != every_role or hosts != every_host:
            found.append(f"{app.name}: the app's roles {sorted(values)} and callback hosts {sorted(map(str, hosts))} must be "
                         f"the workspaces the VMs serve ({sorted(every_role)} at {sorted(every_host)}): a role or a "
                         "callback no VM serves is a grant or a code sent nowhere it is checked")
    return found


def workspace_isolation(resources: Sequence[Res]) -> list[str]:
    """No two workspaces share an account, a socket, a home or a backup set: every account on one VM
    only, each grant to its own account's socket, every unit writing and listening as its own instance."""
    if not is_team(resources):
        return []
    found = []
    where: dict[str, list[str]] = {}
    for vm, files in _by_vm(resources).items():
        for account in _accounts(files):
            where.setdefault(account, []).append(vm)
        for path, text in _files(files, "/caddy/Caddyfile"):
            sockets = [u for _, u, _ in _grants(_router(text))]
            for matcher, upstream, _ in _grants(_router(text)):
                own = f"unix/{WORKSPACE_GATEWAY_SOCKET_DIR}/{(matcher or '').removeprefix('grant_')}.sock"
                if upstream != own or sockets.count(upstream) != 1:
                    found.append(f"{vm}:{path}: @{matcher} must reach its own workspace's socket {own} alone, got {upstream}: "
                                 "a grant for one workspace would serve another's IDE")
        for path, text in _vm_texts(files, vm, CODE_SERVER_DROP_IN):
            lines = _unit_lines(text)
            writable = [w for line in lines if line.startswith("ReadWritePaths=") for w in line.split("=", 1)[1].split()]
            if (not writable or any(w.rstrip("/").rsplit("/", 1)[-1] != "%i" for w in writable)
                    or "ProtectSystem=strict" not in lines or "ProtectHome=read-only" not in lines):
                found.append(f"{path}: expected ProtectSystem=strict, ProtectHome=read-only and ReadWritePaths of the "
                             f"instance's own directories only (…/%i), got {writable}: a workspace would write a neighbour's home")
            if f"RuntimeDirectory={WORKSPACE_RUNTIME_DIR.removeprefix('/run/')}/%i" not in lines or "RuntimeDirectoryMode=0700" not in lines:
                found.append(f"{path}: expected RuntimeDirectory={WORKSPACE_RUNTIME_DIR.removeprefix('/run/')}/%i with "
                             "RuntimeDirectoryMode=0700: each code-server's socket in a directory only its account enters")
        for path, text in _vm_texts(files, vm, WORKSPACE_PROXY_SOCKET):
            lines = _unit_lines(text)
            if (f"ListenStream={WORKSPACE_GATEWAY_SOCKET_DIR}/%i.sock" not in lines or "SocketUser=root" not in lines
                    or not {"SocketMode=0660", "SocketMode=0600"} & set(lines)):
                found.append(f"{path}: expected ListenStream={WORKSPACE_GATEWAY_SOCKET_DIR}/%i.sock, SocketUser=root, "
                             "SocketMode=0660: each workspace's door its own, for the gateway's group only")
        for path, text in _vm_texts(files, vm, WORKSPACE_PROXY_SERVICE):
            lines = _unit_lines(text)
            if ("User=%i" not in lines or "BindsTo=code-server@%i.service" not in lines
                    or f"ExecStart=/lib/systemd/systemd-socket-proxyd {WORKSPACE_RUNTIME_DIR}/%i/code-server.sock" not in lines):
                found.append(f"{path}: expected User=%i, BindsTo=code-server@%i.service and systemd-socket-proxyd to "
                             f"{WORKSPACE_RUNTIME_DIR}/%i/code-server.sock: the gateway's door leads to its own workspace only")
        for path, text in _vm_texts(files, vm, TEAM_BACKUP_SERVICE):
            command = re.search(r"(?m)^ExecStart=((?:.*\\\n)*.*)$", text)
            words = command.group(1).replace("\\\n", " ").split() if command else []
            paths = [w for w in words[1:] if w.startswith("/")]
            if "ws:%i" not in words or not paths or any("/%i" not in w for w in paths):
                found.append(f"{path}: each workspace's backup must read only its own directories (…/%i) and tag its "
                             f"snapshots ws:%i, got {paths}: a restore must bring back one workspace, not a neighbour's files")
    for account, vms in where.items():
        if len(vms) > 1:
            found.append(f"{account}: one workspace, one VM; its drop-in is on {', '.join(vms)}: two IDEs, one host and role")
    return found


#: What a workspace's own drop-in may set: its limits and its own proxy; anything else would undo the sandbox.
_LIMIT_KEYS = {"MemoryMax": r"[1-9][0-9]*[KMGT]?", "CPUQuota": r"[1-9][0-9]*%", "TasksMax": r"[1-9][0-9]*"}
_PROXY_VARIABLES = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}


def workspace_limits(resources: Sequence[Res]) -> list[str]:
    """Every workspace's drop-in caps it (MemoryMax, CPUQuota, TasksMax: the kernel's cgroup limits) and sets
    nothing else but its own proxy port, so no workspace starves its neighbours or undoes the shared sandbox."""
    if not is_team(resources):
        return []
    found = []
    for vm, files in _by_vm(resources).items():
        own = {a: p for _, text in _files(files, UFW_AFTER_INIT) for a, p in _own_ports(text)}
        for r in files:
            m = _WORKSPACE_DROP_IN.match(str(r.props.get("path", "")))
            text = _known_text(r.props.get("content"))
            if m is None or text is None:
                continue
            path, account, lines = f"{vm}:{r.props['path']}", m.group(1), _unit_lines(text)
            keys = [line.split("=", 1)[0] for line in lines if line != "[Service]"]
            for key, form in _LIMIT_KEYS.items():
                values = [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]
                if len(values) != 1 or not re.fullmatch(form, values[0]):
                    found.append(f"{path}: expected one {key}= with a finite value, got {values}: without it one workspace's "
                                 "build or fork bomb takes the VM from every other")
            if lines[:1] != ["[Service]"] or set(keys) - {*_LIMIT_KEYS, "Environment"}:
                found.append(f"{path}: a workspace's drop-in may set only [Service] MemoryMax, CPUQuota, TasksMax and its "
                             f"proxy variables, got {sorted(set(keys))}: anything else overrides the shared sandbox for it")
            for line in (line for line in lines if line.startswith("Environment=")):
                pairs = [w.split("=", 1) for w in line.split("=", 1)[1].split()]
                proxies = {v for k, v in pairs if k in _PROXY_VARIABLES and not k.lower().startswith("no_")}
                if any(len(p) != 2 or p[0] not in _PROXY_VARIABLES for p in pairs) or proxies != {f"http://127.0.0.1:{own.get(account)}"}:
                    found.append(f"{path}: Environment= may set only the proxy variables, to its own proxy port "
                                 f"(http://127.0.0.1:{own.get(account)}), got {line!r}")
    return found


# --- FortiGate ----------------------------------------------------------------------------


def _names(members: Any) -> list[str]:
    return [m.get("name") for m in members or [] if isinstance(m, Mapping)]


def _chain(policies: list[Res]) -> list[Res]:
    """The stack's policies in device order, following each `placement: after:<name>` link."""
    by_name = {p.props.get("name"): p for p in policies}
    after = {str(p.props.get("placement", ""))[len("after:"):]: p for p in policies if str(p.props.get("placement", "")).startswith("after:")}
    heads = [p for p in policies if str(p.props.get("placement", "")).partition(":")[2] not in by_name]
    ordered: list[Res] = []
    for head in heads:
        node: Res | None = head
        while node is not None and node not in ordered:
            ordered.append(node)
            node = after.get(node.props.get("name"))
    return ordered + [p for p in policies if p not in ordered]


def fortigate_inbound_protected(resources: Sequence[Res]) -> list[str]:
    vips = {r.props.get("name") for r in _of(resources, FORTIOS + "FirewallVip")}
    services = {r.props.get("name"): r.props.get("payload") or {} for r in _of(resources, FORTIOS + "FirewallServiceCustom")}
    found = []
    for r in _of(resources, FORTIOS + "FirewallPolicy"):
        payload = r.props.get("payload") or {}
        if not set(_names(payload.get("dstaddr"))) & vips or payload.get("action", "accept") != "accept":
            continue
        if not payload.get("ips-sensor") or payload.get("utm-status") != "enable":
            found.append(f"{r.name}: the inbound policy to the VIP must inspect with an IPS sensor (utm-status enable, ips-sensor)")
        if payload.get("logtraffic") != "all":
            found.append(f"{r.name}: the inbound policy must log all traffic (logtraffic all)")
        for service in _names(payload.get("service")):
            spec = services.get(service)
            if spec is None or spec.get("tcp-portrange") != "443" or spec.get("udp-portrange") or spec.get("sctp-portrange"):
                found.append(f"{r.name}: inbound service {service} is not HTTPS only (TCP 443)")
    return found


def vm_egress_ends_in_logged_deny(resources: Sequence[Res]) -> list[str]:
    policies = _of(resources, FORTIOS + "FirewallPolicy")
    if not policies:
        return []
    vips = {r.props.get("name") for r in _of(resources, FORTIOS + "FirewallVip")}
    # The VM is what inbound/management policies lead to (not a VIP), and egress leaves from it.
    vm = {n for p in policies if (p.props.get("payload") or {}).get("action", "accept") == "accept"
          for n in _names((p.props.get("payload") or {}).get("dstaddr")) if n not in vips and n != "all"}
    egress = [p for p in _chain(policies) if set(_names((p.props.get("payload") or {}).get("srcaddr"))) <= vm
              and _names((p.props.get("payload") or {}).get("srcaddr"))]
    if not egress:
        return ["no FortiGate policy governs traffic from the VM: add its egress allowlist and a logged deny"]
    found = []
    for p in egress:
        payload = p.props.get("payload") or {}
        if payload.get("action", "accept") == "accept" and ("all" in _names(payload.get("dstaddr")) or "ALL" in _names(payload.get("service"))):
            found.append(f"{p.name}: allows the VM out to any destination or on any service; list each allowed destination and port")
    last = egress[-1].props.get("payload") or {}
    if not (last.get("action") == "deny" and _names(last.get("dstaddr")) == ["all"] and _names(last.get("service")) == ["ALL"]
            and last.get("logtraffic") == "all"):
        found.append(f"{egress[-1].name}: the VM's egress must end in a deny of everything with logtraffic all")
    return found


# --- staying current ----------------------------------------------------------------------

#: The oldest releases without the known auth bypasses and cookie leaks (`>=` these passes).
#: oauth2-proxy v7.15.2 fixed five advisories, among them two critical authentication bypasses
#: (GHSA-5hvv-m4w4-gf6v, health-check User-Agent; GHSA-7x63-xv5r-3p2x, spoofed X-Forwarded-Uri).
#: code-server: GHSA-p483-wpfp-42cj (session cookie extractable through a crafted proxy URL) and
#: 4.124.2's fix (code-server's session token stripped before proxying to a local port) — the floor is
#: 4.124.2, the later of the two. 4.145.0 stripped it from proxied WebSockets too; not required here,
#: because the port proxy stays off (code-server-port-proxy-off) and code-server runs with auth none.
VERSION_FLOORS = {"oauth2-proxy": (7, 15, 2), "code-server": (4, 124, 2)}
_FLOOR_WHY = {
    "oauth2-proxy": "earlier releases have authentication bypasses fixed in v7.15.2 (GHSA-5hvv-m4w4-gf6v, GHSA-7x63-xv5r-3p2x)",
    "code-server": "earlier releases leak code-server's session cookie through the port proxy (GHSA-p483-wpfp-42cj, "
                   "fixed by 4.99.4; the token is stripped before proxying since 4.124.2)",
}


def release_numbers(text: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a release tag such as `v7.15.6` or `4.139.1` (a suffix is ignored); None if it names none.

    The one reading of a version the policy pack's floor and the posture's row share."""
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(n) for n in found.groups()) if found else None


def code_server_version(resources: Iterable[Res]) -> str | None:
    """The code-server release the host steps install (`HCS_CS_VERSION` in their commands)."""
    for r in _of(resources, COMMAND):
        found = re.search(r"\bHCS_CS_VERSION=([0-9][^\s;'\"]*)", str(r.props.get("create", "")))
        if found:
            return found.group(1)
    return None


def known_fixed_versions(resources: Sequence[Res]) -> list[str]:
    """oauth2-proxy and code-server are at least the releases that fixed their known advisories."""
    pinned: list[tuple[str, str, str]] = []
    for r in _of(resources, "docker:index/remoteImage:RemoteImage"):
        ref = str(r.props.get("name", "")).split("@", 1)[0]
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
        if repo.endswith("/oauth2-proxy"):
            pinned.append(("oauth2-proxy", r.name, tag))
    if (version := code_server_version(resources)) is not None:
        pinned.append(("code-server", "the code-server step", version))
    found = []
    for component, where, version in pinned:
        floor = ".".join(map(str, VERSION_FLOORS[component]))
        release = release_numbers(version)
        if release is None:
            found.append(f"{where}: {component} {version!r} names no release, so it cannot be held to the floor {floor}; pin a release tag")
        elif release < VERSION_FLOORS[component]:
            found.append(f"{where}: {component} {version} is older than {floor}: {_FLOOR_WHY[component]}; pin {floor} or later")
    return found


def tunnel_enforces_access(resources: Sequence[Res]) -> list[str]:
    found = []
    for r in _of(resources, "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"):
        ingresses = ((r.props.get("config") or {}).get("ingresses")) or []
        for ingress in ingresses:
            if ingress.get("hostname") and not (((ingress.get("originRequest") or {}).get("access") or {}).get("required")):
                found.append(f"{r.name}: ingress for {ingress['hostname']} must require Access at the connector (originRequest.access.required)")
        if not ingresses or ingresses[-1].get("service") != "http_status:404":
            found.append(f"{r.name}: the tunnel's last ingress rule must be http_status:404")
    return found


RULES: tuple[Rule, ...] = (
    Rule("sp-requires-assignment", "Entra service principals require assignment (only the group may sign in).",
         service_principals_require_assignment),
    Rule("app-single-https-redirect", "Entra apps have exactly one HTTPS redirect URI and no implicit grant.",
         apps_have_one_https_redirect),
    Rule("images-pinned-by-digest", "Every container image is pinned by digest.", images_pinned_by_digest),
    Rule("containers-hardened", "No container is privileged, lacks no-new-privileges, or publishes beyond loopback "
         "(the gateway excepted).", containers_hardened),
    Rule("code-server-locked-config", "code-server runs with a root-owned config (loopback, auth none) the IDE user "
         "cannot rewrite.", code_server_locked_config, stack=True),
    Rule("code-server-port-by-identity", "Only oauth2-proxy's uid and the IDE user may connect to code-server's "
         "loopback port, only the service account to the gateway from the VM, the IDE user to nothing else "
         "(owner match in ufw's after.init).", code_server_port_by_identity, stack=True),
    Rule("egress-by-identity", "Off the VM each flow is open only to the accounts that use it, the IDE user to none "
         "(IPv4 and IPv6, refusals logged), and the IDE's unit reaches loopback only.", egress_by_identity, stack=True),
    Rule("ide-proxy-allowlist", "The IDE's way out is the allowlisting proxy alone: Squid on 127.0.0.1, reachable by the "
         "IDE user only, CONNECT to 443 (plain HTTP to 80 where listed) of listed names only, no IP literal, nothing "
         "cached, each request logged with the account; only Squid's account goes out by name, and only with Squid.",
         ide_proxy_allowlist, stack=True),
    Rule("dmz-hop-mutual-tls", "The hop central Caddy → gateway is mutual TLS: the gateway requires a client certificate "
         "of the hop's CA on the network, the central Caddy verifies the gateway against that CA.", dmz_hop_mutual_tls, stack=True),
    Rule("code-server-port-proxy-off", "code-server's port proxy (/proxy/<port>, /absproxy/<port>) is off.",
         code_server_port_proxy_off),
    Rule("oauth2-proxy-unix-socket", "oauth2-proxy listens on a Unix socket in the service account's directory only, "
         "and the gateway dials it there.", oauth2_proxy_on_unix_socket),
    Rule("backup-append-only", "The backup never forgets, prunes or inits; the rest-server account is in a root-only file.",
         backup_append_only),
    Rule("oauth2-proxy-cookie", "oauth2-proxy's session cookie is Secure, HttpOnly and not SameSite=None.",
         oauth2_proxy_cookie_safe),
    Rule("sshd-keys-only", "The SSH drop-in forbids passwords, keyboard-interactive and root.",
         sshd_forbids_passwords_and_root, stack=True),
    Rule("fortigate-inbound", "The FortiGate inbound policy to the VIP is HTTPS only, IPS-inspected and logged.",
         fortigate_inbound_protected, stack=True),
    Rule("fortigate-vm-egress", "The VM's FortiGate egress lists each destination and ends in a logged deny.",
         vm_egress_ends_in_logged_deny, stack=True),
    Rule("known-fixed-versions", "oauth2-proxy is v7.15.2 or later and code-server 4.124.2 or later (the releases that "
         "fixed their known auth bypasses and the port-proxy cookie leak).", known_fixed_versions, stack=True),
    Rule("tunnel-access-required", "A Cloudflare tunnel enforces Access at the connector and ends in 404.",
         tunnel_enforces_access),
    Rule("workspace-router-grants", "A team gateway's router serves each workspace host only to a session holding that "
         "workspace's role (an anchored match), drops the session cookie, and refuses everything else.",
         workspace_router_grants, team=True),
    Rule("team-oauth2-proxy-roles", "Each VM's oauth2-proxy reads the roles claim and admits exactly its own workspaces' "
         "roles, its router grants exactly those, and the Entra app has a role and a callback for every workspace and "
         "no other.", team_oauth2_proxy_roles, stack=True, team=True),
    Rule("workspace-isolation", "No two workspaces share an account, a socket, a home or a backup set: every account on "
         "one VM, each grant to its own socket, every unit as its own instance.", workspace_isolation, stack=True, team=True),
    Rule("workspace-limits", "Every workspace's drop-in sets MemoryMax, CPUQuota and TasksMax and nothing but its own proxy.",
         workspace_limits, stack=True, team=True),
)


def evaluate(resources: Sequence[Res], rules: Sequence[Rule] = RULES) -> dict[str, list[str]]:
    """Every rule's violations (an empty list means it passes)."""
    return {rule.name: rule.check(resources) for rule in rules}
