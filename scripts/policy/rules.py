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
        if len(uris) != 1 or not str(uris[0]).startswith("https://"):
            found.append(f"{r.name}: expected exactly one https:// redirect URI, got {uris}; one relying party per app")
        for other in ("spa", "publicClient"):
            if (r.props.get(other) or {}).get("redirectUris"):
                found.append(f"{r.name}: {other} redirect URIs allow token flows outside oauth2-proxy; remove them")
        grant = web.get("implicitGrant") or {}
        if grant.get("accessTokenIssuanceEnabled") or grant.get("idTokenIssuanceEnabled"):
            found.append(f"{r.name}: implicit grant must be off (tokens in URLs); use the authorization code flow")
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


def _hook_accounts(text: str) -> tuple[str, str]:
    """The service account and the IDE user the hook's rules name (`SVC=`, `IDE=` lines)."""
    svc = re.search(r"(?m)^SVC=(\S+)$", text)
    ide = re.search(r"(?m)^IDE=(\S+)$", text)
    return (svc.group(1) if svc else ""), (ide.group(1) if ide else "")


_FIRST_IN_BOTH = r"for ipt in iptables ip6tables; do\n(?:.*\n)*?\s*\$ipt -w -C OUTPUT {m} -j {c} 2>/dev/null \|\| \$ipt -w -I OUTPUT 1 {m} -j {c}\n(?:.*\n)*?\s*done"


def code_server_port_by_identity(resources: Sequence[Res]) -> list[str]:
    """On the VM: code-server's port for two uids, the gateway's for one, nothing else for the IDE user."""
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


def egress_by_identity(resources: Sequence[Res]) -> list[str]:
    """Off the VM: each flow only for the accounts that open it; the IDE user has none; refusals logged."""
    hooks = _files(resources, UFW_AFTER_INIT)
    if not hooks:
        return [f"no {UFW_AFTER_INIT} is installed: every local account, the IDE user included, reaches the whole allowlist"]
    found = []
    for path, text in hooks:
        _, ide = _hook_accounts(text)
        for who in sorted({m for m in re.findall(r"(?m)^\s*allow (\S+) ", text)} & {ide, "$IDE", "nobody"}):
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
    for path, text in _files(resources, CODE_SERVER_DROP_IN):
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
        if _bpf_release(resources) and not {"SocketBindAllow=tcp:8080", "SocketBindDeny=any", "RestrictNetworkInterfaces=lo"} <= set(lines):
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


def _squid_findings(path: str, text: str) -> list[str]:
    """What squid.conf must say for the IDE's proxy to let out listed names only, each request logged."""
    found = []
    directives = _squid_directives(text)
    acls = _squid_acls(directives)
    ports = [w for w in directives if w[0] in ("http_port", "https_port")]
    if not ports or any(w[0] != "http_port" or len(w) < 2 or w[1] != f"127.0.0.1:{IDE_PROXY_PORT}" for w in ports):
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


def ide_proxy_allowlist(resources: Sequence[Res]) -> list[str]:
    """The IDE user's one way out is Squid on loopback, by name, to listed names; otherwise it has none."""
    squid = _files(resources, SQUID_CONFIG)
    installed = any(r.props.get("path") == SQUID_CONFIG for r in _of(resources, FILE))
    found = [finding for path, text in squid for finding in _squid_findings(path, text)]
    port = rf"iptables -w -A hcs-loopback -p tcp (?:-d 127\.0\.0\.1 )?--dport {IDE_PROXY_PORT} --syn"
    for path, text in _files(resources, UFW_AFTER_INIT):
        for who, line in _by_name_allows(text):
            if not installed:
                found.append(f"{path}: {line!r} opens a port off the VM to any address, and no {SQUID_CONFIG} is installed "
                             "to judge the names: every flow without Squid names its destination (-d)")
            elif who != SQUID_ACCOUNT or not re.fullmatch(r"allow \S+ -p tcp --dport (443|80)\s*(#.*)?", line):
                found.append(f"{path}: {line!r}: only Squid's account ({SQUID_ACCOUNT}) may go out without a destination, "
                             "and only on tcp 443 or 80; Squid judges the names, nothing else does")
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
        if not re.search(r"reverse_proxy https://", text):
            found.append(f"{path}: the central Caddy must dial the gateway over https://, not in clear")
        for directive, why in (("tls_trust_pool file", "verify the gateway against the hop's CA, not the system roots"),
                               ("tls_client_auth", "present the client certificate the gateway requires"),
                               ("tls_server_name", "verify the gateway's certificate for the right name")):
            if directive not in text:
                found.append(f"{path}: the transport must {why} ({directive})")
    return found


def code_server_port_proxy_off(resources: Sequence[Res]) -> list[str]:
    """The port proxy serves any local port on the IDE's origin; opting in is a reviewed override."""
    return [
        f"{CODE_SERVER_CONFIG}: disable-proxy must be true: /proxy/<port> and /absproxy/<port> serve local services "
        "same-origin with the workbench. To accept that risk (codeServerPortProxy), set this policy advisory "
        "with --policy-pack-config"
        for r in _of(resources, FILE)
        if r.props.get("path") == CODE_SERVER_CONFIG and (text := _known_text(r.props.get("content"))) is not None
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
        upstreams = re.findall(r"(?m)^\s*reverse_proxy\s+(\S+)", text)
        if not upstreams or any(not u.startswith(f"unix/{OAUTH2_PROXY_SOCKET_DIR}/") for u in upstreams):
            found.append(f"{path}: every reverse_proxy must dial oauth2-proxy's socket (unix/{OAUTH2_PROXY_SOCKET_DIR}/…), got {upstreams}")
    return found


def backup_append_only(resources: Sequence[Res]) -> list[str]:
    """The VM can add snapshots but never remove one: no forget/prune/init, the account in a root-only file."""
    found = []
    for path, text in _files(resources, BACKUP_SERVICE):
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
)


def evaluate(resources: Sequence[Res], rules: Sequence[Rule] = RULES) -> dict[str, list[str]]:
    """Every rule's violations (an empty list means it passes)."""
    return {rule.name: rule.check(resources) for rule in rules}
