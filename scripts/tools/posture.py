"""The layered posture of a stack: for each control of the design, the resources that implement it
and whether this stack has it on, off, or not applicable (e.g. FortiGate inbound with the
Cloudflare edge). Read from the offline plan, so it reports what would really be deployed.

`make plan` prints it and writes `build/plan/posture.md`; a switched-off control is shown loudly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.host import render_baseline as baseline
from components.host.render_terminal import TERMINAL_LOG_TAG, TERMINAL_RECORDER
from components.settings import checks, debian, rules
from components.settings.topology import IDE_PROXY_PORT, SQUID
from scripts.policy.rules import (
    RULES,
    SQUID_CONFIG,
    TEAM_BACKUP_SERVICE,
    TEAM_CODE_SERVER_CONFIG,
    WORKSPACE_UIDS,
    VERSION_FLOORS,
    Res,
    code_server_version,
    debian_release,
    evaluate,
    is_team,
    release_numbers,
)
from scripts.tools.offline import PlanResult, Registered

SOCKET_TMPFILES = "/etc/tmpfiles.d/hcs-sockets.conf"
PROXMOX_VM = "proxmoxve:index/vmLegacy:VmLegacy"
DROPLET = "digitalocean:index/droplet:Droplet"
DROPLET_FIREWALL = "digitalocean:index/firewall:Firewall"

Select = Callable[[PlanResult], list[Registered]]
#: Why a control that is on is weaker than the design's baseline ("" when it is not).
Weakness = Callable[[PlanResult], str]


@dataclass(frozen=True)
class Control:
    """One row of the design's layered table."""

    layer: str
    control: str
    stops: str
    select: Select
    edges: tuple[str, ...] = ("fortigate", "cloudflare")
    #: how to switch it on when it is off (a config key), shown with the OFF status
    switch: str = ""
    #: read from the plan: what an acknowledged wide value weakens (status WEAKENED)
    weakened: Weakness = lambda plan: ""
    #: read from the plan: why the control does not apply to this stack (status n/a; "" when it does)
    inapplicable: Weakness = lambda plan: ""
    #: read from the plan: what the row says beside an `on` status (e.g. which provider made the VM)
    detail: Weakness = lambda plan: ""
    #: the control as a team's workspaces have it (its wording for a team plan; "" when it reads the same)
    team: str = ""
    #: how a team plan shows it (None: as `select`)
    team_select: Select | None = None
    #: a team's control only: a single user's posture has no row for it
    team_only: bool = False


@dataclass(frozen=True)
class Row:
    layer: str
    control: str
    stops: str
    status: str  # "on" | "WEAKENED" | "OFF" | "n/a"
    resources: tuple[str, ...]
    note: str


def _named(*names: str) -> Select:
    return lambda plan: [r for r in plan.resources if r.name in names]


def _typed(type_token: str, *, name_prefix: str = "") -> Select:
    return lambda plan: [r for r in plan.of_type(type_token) if r.name.startswith(name_prefix)]


def _file(suffix: str) -> Select:
    return lambda plan: [r for r in plan.of_type("hcs:files:File") if str(r.inputs.get("path", "")).endswith(suffix)]


def _both(*selects: Select) -> Select:
    """All parts must be present for the control to count as on."""

    def select(plan: PlanResult) -> list[Registered]:
        parts = [s(plan) for s in selects]
        return [r for part in parts for r in part] if all(parts) else []

    return select


def _ufw_out_deny(plan: PlanResult) -> list[Registered]:
    return [r for r in _named("vm-firewall")(plan) if "outgoing=deny" in str(r.inputs.get("create", ""))]


def _code_server_configs(plan: PlanResult) -> list[Registered]:
    """code-server's root-owned config: the single user's, or the one every workspace of a team VM reads."""
    return _file("/etc/code-server/hcs.yaml")(plan) + _file(TEAM_CODE_SERVER_CONFIG)(plan)


def _port_proxy_off(plan: PlanResult) -> list[Registered]:
    return [r for r in _code_server_configs(plan) if "disable-proxy: true\n" in str(r.inputs.get("content", ""))]


_TRANSFERS = (("downloads", "codeServerDisableFileDownloads"), ("uploads", "codeServerDisableFileUploads"))


def _transfers_off(plan: PlanResult) -> list[Registered]:
    return [r for r in _code_server_configs(plan)
            if any(f"disable-file-{word}: true\n" in str(r.inputs.get("content", "")) for word, _ in _TRANSFERS)]


def _transfers_half_off(plan: PlanResult) -> str:
    """One of the two switched off: name the one still on."""
    text = " ".join(str(r.inputs.get("content", "")) for r in _transfers_off(plan))
    on = [f"{word} still on ({key})" for word, key in _TRANSFERS if f"disable-file-{word}: true\n" not in text]
    return "; ".join(on)


def _idle_timeout(plan: PlanResult) -> list[Registered]:
    return [r for r in _code_server_configs(plan)
            if re.search(r"(?m)^idle-timeout-seconds: [1-9][0-9]*$", str(r.inputs.get("content", "")))]


def _code_server_pinned(plan: PlanResult) -> list[Registered]:
    """The code-server step, when it installs a release at or above the known-fixed floor.

    unattended-upgrades never sees this `.deb` (it comes from no apt source), so the pin is the
    whole update path: below the floor the row is OFF, whatever else the host does."""
    steps = _named("vm-code-server")(plan)
    release = release_numbers(code_server_version([Res(r.type, r.name, r.inputs) for r in steps]) or "")
    return steps if release is not None and release >= VERSION_FLOORS["code-server"] else []


def _backup_covers_the_ide(plan: PlanResult) -> list[Registered]:
    """The backup unit's set ends with code-server's user data (its default user-data-dir, the extensions in it)."""
    return [r for r in _file("/etc/systemd/system/hcs-backup.service")(plan)
            if re.search(r"(?m)^ .*/\.local/share/code-server$", str(r.inputs.get("content", "")))]


def _oauth2_proxy_socket(plan: PlanResult) -> list[Registered]:
    return [r for r in _file("/oauth2-proxy.cfg")(plan) if 'http_address = "unix://' in str(r.inputs.get("content", ""))]


def _hop_certificates(plan: PlanResult) -> list[Registered]:
    """The hop's leaf certificates, by name (the engine registers the two in either order)."""
    return sorted(plan.of_type("tls:index/locallySignedCert:LocallySignedCert"), key=lambda r: r.name)


def _hop_renewal_due(plan: PlanResult, now: dt.datetime | None = None) -> str:
    """The hop's certificates inside their renewal window: the next `pulumi up` replaces them, and must run."""
    not_after = plan.outputs.get("hopCertNotAfter")
    windows = [int(r.inputs.get("earlyRenewalHours", 0)) for r in _hop_certificates(plan)]
    if not not_after or not windows:
        return ""
    expiry = dt.datetime.strptime(str(not_after), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    left = expiry - (now or dt.datetime.now(dt.timezone.utc))
    if left > dt.timedelta(hours=max(windows)):
        return ""
    return (f"the hop's certificates expire {not_after} (in {max(left.days, 0)} day(s)), inside their renewal window: "
            "run pulumi up to replace them before the hop fails closed")


def _ide_unit_loopback_only(plan: PlanResult) -> list[Registered]:
    return [r for r in _file("10-hcs-sandbox.conf")(plan)
            if {"IPAddressDeny=any", "IPAddressAllow=localhost"} <= set(str(r.inputs.get("content", "")).splitlines())]


def _debian_release(plan: PlanResult) -> debian.DebianRelease | None:
    """The release every host step checks the VM for, read as the policy pack reads it."""
    version = debian_release([Res(r.type, r.name, r.inputs) for r in _named("vm-packages")(plan)])
    return None if version is None else debian.RELEASES.get(version)


def _release_checked(plan: PlanResult) -> list[Registered]:
    return _named("vm-packages")(plan) if _debian_release(plan) is not None else []


def _release_weakness(plan: PlanResult, today: dt.date | None = None) -> str:
    """What the VM's release lacks of the design: its support ending, controls its systemd or sshd cannot enforce."""
    release = _debian_release(plan)
    if release is None:
        return ""
    today = today or dt.date.today()
    found = []
    if today > release.lts_end:
        found.append(f"Debian {release.version} left long-term support on {release.lts_end}: no security updates reach the VM")
    elif release.version != debian.DEFAULT:
        found.append(f"Debian {release.version} ({release.codename}) gets long-term support only, until {release.lts_end}")
    if not release.bpf_framework:
        found.append("its systemd has no BPF framework: the IDE's unit cannot be kept from binding ports or using "
                     "interfaces other than loopback (SocketBindDeny=, RestrictNetworkInterfaces= do nothing), the "
                     "firewall hook's SYN-ACK refusal is the only guard against a port squat")
    if not release.mlkem_kex:
        found.append("its OpenSSH has no ML-KEM key exchange (sntrup761 is its post-quantum hybrid)")
    return "; ".join(found)


def _sshd_banner(plan: PlanResult) -> list[Registered]:
    return [r for r in _file("/sshd_config.d/00-hardening.conf")(plan)
            if {f"Banner {baseline.ISSUE_NET}", "DebianBanner no"} <= set(str(r.inputs.get("content", "")).splitlines())]


def _every(files: list[Registered], holds: Callable[[str], bool]) -> list[Registered]:
    """`files` when each one's content holds (a team's control is on only if every VM and workspace has it)."""
    return files if files and all(holds(str(r.inputs.get("content", ""))) for r in files) else []


def _workspace_idle_stop(plan: PlanResult) -> list[Registered]:
    """Every team VM's code-server config, when each sets an idle timeout."""
    return _every(_file(TEAM_CODE_SERVER_CONFIG)(plan), lambda text: re.search(r"(?m)^idle-timeout-seconds: [1-9][0-9]*$", text) is not None)


def _workspace_port_proxy_off(plan: PlanResult) -> list[Registered]:
    return _every(_file(TEAM_CODE_SERVER_CONFIG)(plan), lambda text: "disable-proxy: true\n" in text)


def _workspace_bind_limits(plan: PlanResult) -> list[Registered]:
    """A team's sandbox: no IP port at all (every code-server on its socket), loopback the only interface."""
    return _every(_file("10-hcs-sandbox.conf")(plan),
                  lambda text: {"SocketBindDeny=any", "RestrictNetworkInterfaces=lo"} <= set(text.splitlines())
                  and "\nSocketBindAllow=" not in text)


def _workspace_backups(plan: PlanResult) -> list[Registered]:
    """A team's backup template: each workspace's own set, its code-server data included, tagged with its account."""
    return _every(_file(TEAM_BACKUP_SERVICE)(plan),
                  lambda text: "--tag ws:%i " in text and re.search(r"(?m) /home/%i/\.local/share/code-server$", text) is not None)


def _workspace_restore(plan: PlanResult) -> list[Registered]:
    """A team's `hcs-restore`: one workspace at a time, from that workspace's own snapshots only."""
    return _every(_file("/usr/local/sbin/hcs-restore")(plan),
                  lambda text: "--workspace NAME" in text and 'restic dump --tag "ws:$account"' in text)


def _workspace_limits(plan: PlanResult) -> list[Registered]:
    """Each workspace's drop-in, when it sets all three cgroup limits."""
    return _every(_file("/20-hcs-workspace.conf")(plan),
                  lambda text: all(re.search(rf"(?m)^{key}=\S+$", text) for key in ("MemoryMax", "CPUQuota", "TasksMax")))


def _router_grants(plan: PlanResult) -> list[Registered]:
    """The team gateways whose router grants each workspace host by its role, anchored."""
    return _every(_file("/caddy/Caddyfile")(plan),
                  lambda text: bool(grants := re.findall(r"header_regexp X-Forwarded-Groups `([^`]*)`", text))
                  and all(re.fullmatch(r"\(\^\|,\)ws\\\.[a-z0-9\\-]+\(,\|\$\)", g) for g in grants))


def _ide_unit_bind_limits(plan: PlanResult) -> list[Registered]:
    wanted = {"SocketBindAllow=tcp:8080", "SocketBindDeny=any", "RestrictNetworkInterfaces=lo"}
    return [r for r in _file("10-hcs-sandbox.conf")(plan) if wanted <= set(str(r.inputs.get("content", "")).splitlines())]


@dataclass(frozen=True)
class Flow:
    """One flow off the VM and the accounts whose sockets may open it (as the firewall hook allows).

    `domains`: the names a flow by name may reach (the IDE proxy's), from the hook's comment: the
    VM's netfilter opens such a flow to any address for its account, the proxy judges the names
    (and the FortiGate, as FQDN objects).
    """

    name: str
    protocol: str
    port: str
    destinations: tuple[str, ...]
    accounts: tuple[str, ...]
    domains: tuple[str, ...] = ()


#: The hook's `allow` lines: by address (`-d ADDRESS  # flow`), or by name (`# flow: names`, no `-d`: Squid judges them).
_ALLOW = re.compile(r"(?m)^\s*allow (\S+) -p (\S+)(?: -d (\S+))? --dport (\d+)\s+# ([^\s:]+)(?::[ \t]*(.*))?$")


def egress_flows(plan: PlanResult) -> list[Flow]:
    """Who may open what off the VM, read from the firewall hook the plan installs (its `allow` lines);
    a flow by name (the IDE proxy's) goes to any address, and `domains` holds the names it lets through."""
    flows: dict[str, Flow] = {}
    for r in _file("/etc/ufw/after.init")(plan):
        for who, proto, dest, port, name, names in _ALLOW.findall(str(r.inputs.get("content", ""))):
            f = flows.get(name, Flow(name, proto, port, (), ()))
            dest = dest or "any address"
            flows[name] = Flow(name, proto, port, f.destinations + ((dest,) if dest not in f.destinations else ()),
                               f.accounts + ((who,) if who not in f.accounts else ()),
                               f.domains + tuple(d for d in names.split() if d not in f.domains))
    return list(flows.values())


def _ide_proxy_hook(plan: PlanResult) -> list[Registered]:
    """The firewall hook, when it opens the proxy's way out (HTTPS to Squid's account alone, by name)."""
    return [r for r in _file("/etc/ufw/after.init")(plan)
            if re.search(rf"(?m)^\s*allow {SQUID} -p tcp --dport 443\s+# ide-proxy-https: \S", str(r.inputs.get("content", "")))]


def _ide_plain_http(plan: PlanResult) -> str:
    """Names the proxy lets the IDE user reach over plain HTTP (`http://` entries of ideEgressDomains)."""
    names = sorted({d for f in egress_flows(plan) if f.name == "ide-proxy-http" for d in f.domains})
    return (f"plain HTTP through the IDE's proxy to {', '.join(names)} (ideEgressDomains http://): content and credentials "
            "cross the network in clear, and no TLS check proves the server is the one named") if names else ""


def _oauth2_proxy_logs_identity(plan: PlanResult) -> list[Registered]:
    """oauth2-proxy's container logs to the journal, and its config writes auth and request lines with the user."""
    journal = [r for r in _named("gateway-oauth2-proxy")(plan) if r.inputs.get("logDriver") == "journald"]
    config = [r for r in _file("/oauth2-proxy.cfg")(plan)
              if all(re.search(rf'(?m)^{key} = ".*user={{{{\.Username}}}}', str(r.inputs.get("content", "")))
                     for key in ("auth_logging_format", "request_logging_format"))]
    return journal + config if journal and config else []


def _gateway_logs_user(plan: PlanResult) -> list[Registered]:
    """The gateway's Caddyfile logs the user oauth2-proxy asserted (first value only) and hands the browser none of it."""
    wanted = ("~^([^,]+)", "log_append user_email {hcs_user_email}", "log_append user_id {hcs_user_id}", "-X-Auth-Request-*")
    return [r for r in _file("/caddy/Caddyfile")(plan) if all(w in str(r.inputs.get("content", "")) for w in wanted)]


_FORTIOS = "pulumi-python:dynamic/fortios:"


def vm_provider(plan: PlanResult) -> str:
    """Who made the VM (the `vmProvider` output): existing, proxmox or digitalocean."""
    return str(plan.outputs.get("vmProvider") or "existing")


def _not_created(plan: PlanResult) -> str:
    return "an existing VM (vmProvider existing): the connection is pinned to vmHostKey" if vm_provider(plan) == "existing" else ""


def _not_droplet(plan: PlanResult) -> str:
    return "" if vm_provider(plan) == "digitalocean" else f"not a droplet (vmProvider {vm_provider(plan)})"


def _droplet_without_fortigate(plan: PlanResult) -> str:
    """A droplet has no FortiGate in front unless one is configured: its cloud firewall holds the egress allowlist."""
    if vm_provider(plan) != "digitalocean" or _named("fortigate-hcs-out-deny")(plan):
        return ""
    return "a droplet: its DigitalOcean cloud firewall holds the egress allowlist (row below)"


def _created_vm(plan: PlanResult) -> list[Registered]:
    """The generated host key, the machine the provider made from the user-data, the wait for cloud-init."""
    made = [r for r in plan.resources if r.type in (PROXMOX_VM, DROPLET)]
    return [*_named("machine-identity-host-key", "vm-first-boot")(plan), *made] if made else []


def _ufw_rules(plan: PlanResult, pattern: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of the UFW rules (as the firewall step receives them) matching `pattern`."""
    text = " ".join(str(r.inputs.get("create", "")) for r in _named("vm-firewall")(plan))
    return [ipaddress.ip_network(m) for m in re.findall(pattern, text)]


def _public_ssh(plan: PlanResult) -> str:
    public = [n for n in _ufw_rules(plan, r"ufw allow from (\S+) to any port \d+ proto tcp comment \S*ssh from management")
              if not checks.is_internal(n)]
    return f"SSH from public {', '.join(map(str, public))} ({rules.ACK_PUBLIC_MANAGEMENT})" if public else ""


def _wide(networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    wide = sorted({str(n) for n in networks if rules.wide_egress(n)})
    return f"egress to wide networks {', '.join(wide)} ({rules.ACK_WIDE_EGRESS})" if wide else ""


def _ufw_wide_egress(plan: PlanResult) -> str:
    return _wide(_ufw_rules(plan, r"ufw allow out to (\S+) port"))


def _fortigate_wide_egress(plan: PlanResult) -> str:
    """Destinations of the `-out-` policies, looked up in the address objects the plan creates."""
    subnets = {r.inputs.get("name"): str((r.inputs.get("payload") or {}).get("subnet", "")).replace(" ", "/")
               for r in plan.of_type(_FORTIOS + "FirewallAddress")}
    names = {d["name"] for r in plan.of_type(_FORTIOS + "FirewallPolicy") if "-out-" in r.name
             for d in (r.inputs.get("payload") or {}).get("dstaddr", [])}
    weak = _wide([ipaddress.ip_network(subnets[n]) for n in names if subnets.get(n)])
    insecure = any(r.inputs.get("insecure") is True for r in plan.resources if r.type.startswith(_FORTIOS))
    return "; ".join(x for x in (weak, "API TLS not verified (fortigateInsecure)" if insecure else "") if x)

CONTROLS: tuple[Control, ...] = (
    Control("Network edge", "FortiGate VIP: only TCP 443 forwarded, to the front proxy", "direct access to anything but 443",
            _both(_typed(_FORTIOS + "FirewallVip"), _named("fortigate-hcs-in-https")), edges=("fortigate",)),
    Control("Network edge", "IPS sensor on the inbound policy, all traffic logged", "known exploit signatures",
            _both(_named("fortigate-hcs-in-https"), _typed(_FORTIOS + "IpsSensor")), edges=("fortigate",)),
    Control("Network edge", "FortiGate egress allowlist from the VM, ending in a logged deny", "exfiltration, second stages, C2",
            _both(_named("fortigate-hcs-out-deny"), _typed(_FORTIOS + "FirewallPolicy", name_prefix="fortigate-hcs-out-")),
            switch="fortigateUrl (with edge cloudflare: manages egress and SSH only)", weakened=_fortigate_wide_egress,
            inapplicable=_droplet_without_fortigate),
    Control("Network edge", "Cloudflare Tunnel: outbound only, no inbound port", "scanning and direct access",
            _typed("cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"), edges=("cloudflare",)),
    Control("Network edge", "Cloudflare Access on every request, enforced at the connector", "unauthenticated requests at the edge",
            _both(_typed("cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"),
                  _typed("cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig")), edges=("cloudflare",)),
    Control("Transport", "Central Caddy (wildcard TLS) → local gateway site block", "plaintext traffic",
            _file(".caddy"), edges=("fortigate",)),
    Control("Transport", "DMZ hop in mutual TLS, private CA: the gateway requires the central Caddy's client certificate, "
            "the central Caddy verifies the gateway against that CA (the Cloudflare edge keeps its loopback hop, "
            "limited by identity)", "session cookies and the terminal in clear on the DMZ, a spoofed front proxy, an impostor gateway",
            _both(_file(".caddy"), _hop_certificates), edges=("fortigate",),
            weakened=_hop_renewal_due),
    Control("Transport", "Local Caddy gateway: trusted proxies only, security headers, JSON access log without Access JWT or OAuth code/state",
            "direct app exposure, spoofed client IPs, credentials in shipped logs",
            _both(_file("/caddy/Caddyfile"), _named("gateway-caddy-gateway"))),
    Control("Identity", "oauth2-proxy with Entra ID (PKCE, one group, files-only secrets)", "unauthenticated users",
            _both(_file("/oauth2-proxy.cfg"), _named("gateway-oauth2-proxy")),
            team="oauth2-proxy with Entra ID on every VM (PKCE, files-only secrets): the roles claim, allowed_groups exactly "
                 "the roles of that VM's workspaces, a callback per workspace host"),
    Control("Identity", "Entra app requires assignment; one security group assigned", "everyone else in the tenant",
            _both(_typed("azuread:index/servicePrincipal:ServicePrincipal"), _typed("azuread:index/appRoleAssignment:AppRoleAssignment")),
            team="Entra app requires assignment; an app role ws.<name> per workspace, assigned to each of its people "
                 "(no group); one redirect URI per workspace host and no other"),
    Control("Identity", "The router: a workspace host only for a session holding that workspace's role (an anchored match "
            "on the roles oauth2-proxy asserts), to that workspace's own socket, without the session cookie; 403 for "
            "anything else", "a person granted one workspace opening another's IDE; a workspace replaying a session",
            _router_grants, team_only=True),
    Control("Identity", "Entra Conditional Access: MFA required, sign-in frequency = the session's maximum",
            "stolen passwords, sessions that slide forever on refresh",
            _typed("azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy"), switch="entraConditionalAccess"),
    Control("Identity", "Client secret with a fixed end date and a rotation label", "secrets that never expire",
            _typed("azuread:index/applicationPassword:ApplicationPassword")),
    Control("Host", "The VM on a supported Debian release in security support, checked by every host step before it "
            "changes anything (vmDebianRelease)", "release-specific choices made for another system; unpatched CVEs",
            _release_checked, weakened=_release_weakness),
    Control("Host", "The VM made from code (vmProvider; its resources name the provider): booted with the Ed25519 host key "
            "the program generated, handed over in its cloud-init user-data (a secret), so the first SSH contact is "
            "already pinned; the setup waits for cloud-init and runs again on a replaced VM",
            "a man in the middle at first contact, a pasted or keyscanned pin, a replaced VM left half set up",
            _created_vm, inapplicable=_not_created, detail=lambda plan: f"made by vmProvider {vm_provider(plan)}"),
    Control("Network edge", "DigitalOcean cloud firewall on the droplet from its creation (by tag): SSH from the management "
            "subnets, the gateway port from the front proxy only (none with the Cloudflare edge), out only the egress allowlist",
            "reaching the droplet's public address directly, egress if the VM's own firewall fails",
            _typed(DROPLET_FIREWALL), inapplicable=_not_droplet),
    Control("Host", "Split accounts: no-login service account outside the docker group, IDE user without sudo",
            "lateral movement, secret theft, root via the Docker socket",
            _named("vm-accounts"),
            team=f"Split accounts: no-login service account outside the docker group, one account per workspace (ws-<name>, "
                 f"uid {WORKSPACE_UIDS}) without sudo"),
    Control("Host", "Exact ownership map of the proxy stack, home, workspace, data volume", "the IDE user reading proxy secrets",
            _named("vm-layout")),
    Control("Host", "SSH keys only, no root, AllowGroups, modern crypto; root locked", "password brute force",
            _both(_file("/sshd_config.d/00-hardening.conf"), _named("vm-sshd"))),
    Control("Host", "UFW default deny in; SSH from management only; gateway only from the front proxy", "reaching anything else on the VM",
            _named("vm-firewall"), weakened=_public_ssh),
    Control("Host", "UFW default deny out, same allowlist as the firewall", "egress if the edge firewall fails",
            _ufw_out_deny, switch="ufwDenyOutgoing", weakened=_ufw_wide_egress),
    Control("Host", "Unattended security upgrades", "known CVEs", _named("vm-upgrades")),
    Control("Host", "code-server's .deb, which unattended-upgrades does not cover: the pinned codeServerVersion only, its "
            "SHA-256 checked before install, at or above the known-fixed floor " + ".".join(map(str, VERSION_FLOORS["code-server"])) + "; new releases arrive as "
            "Renovate PRs (approved on the dashboard, the SHA-256 committed by a person) and the daily advisory check "
            "fails while the pin has a published advisory", "a known code-server vulnerability left installed",
            _code_server_pinned, switch="codeServerVersion below the known-fixed floor (pin a later release)"),
    Control("Host", "Kernel and network sysctls of the baseline: kernel pointers and log hidden, no unprivileged BPF or "
            "perf, ptrace of one's own descendants only, protected links, FIFOs and files in sticky directories; no "
            "forwarding, redirects, source routes or router advertisements, strict reverse path, SYN cookies",
            "kernel information leaks for an exploit, the terminal tracing other processes, /tmp races, spoofed routes",
            _file(baseline.SYSCTL_FILE)),
    Control("Host", "No core dumps: hard limit 0 for login sessions and every unit, none of set-uid processes, "
            "systemd-coredump keeps none", "a process's memory (keys, tokens, files) left on disk",
            _both(_file(baseline.CORE_LIMITS), _file(baseline.MANAGER_DROP_IN), _file(baseline.SYSCTL_FILE))),
    Control("Host", "/proc shows each account its own processes only (hidepid=invisible; systemd-logind by a group)",
            "any account reading others' command lines and environments", _file(baseline.HIDEPID_UNIT)),
    Control("Detection", "auditd: watches on accounts, sudoers, sshd, the proxy stack, code-server's unit and config, the "
            "firewall, the clock; every command of the IDE user (by uid) and of people logged in (by login uid); "
            "rules locked until reboot (-e 2), shipped by Wazuh when on",
            "an intruder's changes and commands without a record; a terminal session nobody can attribute",
            _both(_named("vm-audit"), _file(baseline.AUDIT_RULES), _file(baseline.AUDIT_FINALIZE)),
            team="auditd: watches on accounts, sudoers, sshd, the proxy stack, code-server's unit and config, the firewall, "
                 f"the clock; every command of every workspace account (by uid, {WORKSPACE_UIDS}) and of people logged in "
                 "(by login uid); rules locked until reboot (-e 2), shipped by Wazuh when on"),
    Control("Host", "Login banners on the console and SSH before authentication; no release in them or in SSH's identification",
            "users unwarned of monitoring; scanners reading the exact Debian package", _both(_file(baseline.ISSUE_NET), _sshd_banner)),
    Control("Host", "code-server on 127.0.0.1 from a root-owned --config, own auth off, sandboxed unit",
            "bypassing the proxy chain, the IDE user moving the listener", _both(_file("/etc/code-server/hcs.yaml"), _file("10-hcs-sandbox.conf")),
            team="code-server on a socket per workspace (socket-mode 600, in its own 0700 runtime directory, no TCP port) from "
                 "a root-owned config, own auth off, sandboxed unit writing only its own home and volume directory",
            team_select=_both(_file(TEAM_CODE_SERVER_CONFIG), _file("10-hcs-sandbox.conf"))),
    Control("Host", "Workspace limits: each workspace's unit capped by the kernel (MemoryMax, CPUQuota, TasksMax), its "
            "terminal and builds included", "one workspace's runaway build or fork bomb taking the VM from its neighbours",
            _workspace_limits, team_only=True),
    Control("Host", "Local ports by identity (owner match): code-server for oauth2-proxy's uid and the IDE user only, "
            "the gateway from the VM for the service account only (cloudflared), nothing else for the IDE user",
            "any other local account acting as the IDE user, or posing as cloudflared; the terminal using local services",
            _file("/etc/ufw/after.init"),
            team="Local ports by identity (owner match): the router (oauth2-proxy's upstream) and the gateway from the VM for "
                 "the service account only, each workspace's proxy port for its own account only, nothing else for any "
                 "workspace account (the uid range) and no workspace listener answering"),
    Control("Host", "Egress by identity (owner match, IPv4 and IPv6): each flow only for its accounts (table below), "
            "nothing off the VM for the IDE user (DNS included; its only way out is the allowlisting proxy, when on), "
            "no listener of the IDE user answers; refusals rejected at once and logged with the uid (NFLOG → ulogd2 → journal)",
            "the terminal reaching out (data over DNS, a foreign tunnel), squatting a port another account serves",
            _both(_file("/etc/ufw/after.init"), _file("/etc/ulogd.conf")),
            team=f"Egress by identity (owner match, IPv4 and IPv6): each flow only for its accounts (table below), nothing "
                 f"off the VM for any workspace account (the uid range {WORKSPACE_UIDS}; DNS included; their only way out is "
                 "their own port of the allowlisting proxy, when on), no workspace listener answers; refusals rejected at "
                 "once and logged with the uid (NFLOG → ulogd2 → journal)"),
    Control("Host", f"The IDE's way out: an allowlisting proxy (Squid, as `{SQUID}`) on 127.0.0.1:{IDE_PROXY_PORT} that only "
            "the IDE user may connect to; CONNECT to 443 of listed names, plain HTTP to 80 only of names listed http://, "
            f"IP literals refused, nothing cached, each request logged with the account; only `{SQUID}` goes out, by name",
            "the terminal reaching any name or address but the listed ones, unlogged downloads, another account using the "
            "proxy's way out", _both(_file(SQUID_CONFIG), _ide_proxy_hook),
            switch="ideEgressDomains (empty: no proxy runs and the IDE user reaches nothing off the VM)", weakened=_ide_plain_http,
            team=f"The workspaces' way out: an allowlisting proxy (Squid, as `{SQUID}`) with a loopback port per workspace that "
                 "only its own account may connect to, each letting through only that workspace's names: CONNECT to 443, "
                 "plain HTTP to 80 only of names listed http://, IP literals refused, nothing cached, each request logged "
                 f"with the account; only `{SQUID}` goes out, by name"),
    Control("Host", "The IDE's unit reaches loopback only (systemd IPAddressDeny=any, IPAddressAllow=localhost; Unix and "
            "IPv4 sockets only), and everything the terminal starts dies with it",
            "a way out if the firewall hook is wrong or flushed", _ide_unit_loopback_only,
            team="Every workspace's unit reaches loopback only (systemd IPAddressDeny=any, IPAddressAllow=localhost; Unix and "
                 "IPv4 sockets only), and everything its terminal starts dies with it"),
    Control("Host", "The IDE's unit binds no IP port but code-server's and uses no interface but loopback "
            "(systemd's BPF: SocketBindDeny=any, RestrictNetworkInterfaces=lo)",
            "a listener of the terminal, a port squatted while its owner is down", _ide_unit_bind_limits,
            switch="vmDebianRelease 13 (Debian 12's systemd 252 has no BPF framework: both settings would do nothing)",
            team="Every workspace's unit binds no IP port at all (its code-server listens on its socket) and uses no interface "
                 "but loopback (systemd's BPF: SocketBindDeny=any, RestrictNetworkInterfaces=lo)",
            team_select=_workspace_bind_limits),
    Control("Host", "code-server port proxy off (/proxy/<port>, /absproxy/<port>)", "local services served on the IDE's origin",
            _port_proxy_off, switch="codeServerPortProxy (set it false)", team_select=_workspace_port_proxy_off),
    Control("Host", "code-server's download and upload actions off (the workbench's Download… and Upload…, files dropped in); "
            "the UI's actions only: the terminal still prints a file (cat, base64) and the editor's clipboard still copies",
            "workspace files taken home, or files brought in, in two clicks", _transfers_off,
            switch="codeServerDisableFileDownloads and codeServerDisableFileUploads (opt-in)", weakened=_transfers_half_off),
    Control("Host", "An IDE nobody has open ends: with no browser connected for codeServerIdleTimeout, code-server exits, "
            "systemd starts a fresh one, and what the terminal left running is killed with the old one",
            "shells and jobs left running unattended after the user has gone", _idle_timeout,
            team="A workspace nobody has open stops: with no browser connected for codeServerIdleTimeout, its code-server "
                 "exits (idle-timeout-seconds), what its terminal left running is killed with it, and its socket starts a "
                 "fresh one on the next request",
            team_select=_workspace_idle_stop),
    Control("Host", "oauth2-proxy on a Unix socket only the service account can open (no TCP port)",
            "local uids reaching oauth2-proxy, or binding its port to receive sessions",
            _both(_oauth2_proxy_socket, _file(SOCKET_TMPFILES))),
    Control("Host", "Containers read-only, all capabilities dropped, no-new-privileges, pinned digests", "container breakout, silent image changes",
            _typed("docker:index/container:Container")),
    Control("Detection", "fail2ban: sshd jail (no gateway jail: every request arrives from the front proxy)", "SSH brute force",
            _named("vm-fail2ban")),
    Control("Detection", "Wazuh file-integrity monitoring (proxy stack, /etc/ssh, units)", "silent tampering",
            _named("vm-wazuh"), switch="wazuhEnabled"),
    Control("Detection", "Attribution: oauth2-proxy's auth and request lines in the journal (`journalctl -t oauth2-proxy`, "
            "read by Wazuh) with the user's email (the auth line adds the `sub` claim) and the gateway's request ID; "
            "no authorization code, token or cookie in them", "sign-ins and requests nobody can trace to a person",
            _oauth2_proxy_logs_identity),
    Control("Detection", "Attribution: the gateway's JSON access log names the user oauth2-proxy asserted (user_email, user_id; "
            "its first value only, so a copy the upstream appends or the client sends is never logged; the browser gets "
            "none of the X-Auth-Request-* headers)", "requests and IDE sessions in the shipped log without a person, or with a forged one",
            _gateway_logs_user),
    Control("Detection", f"Attribution: the IDE terminal's record in the journal (`journalctl -t {TERMINAL_LOG_TAG}`): each "
            "interactive bash of the IDE user, its commands typed, with the uid and unit journald stamps; the person is "
            "bound by time to the gateway's lines of that moment (one shared account: correlation, not proof), and the "
            "user's own shell writes it (another profile, bash --norc, a leading space escape it; auditd on a real VM does not)",
            "commands in the IDE nobody can trace", _both(_file(TERMINAL_RECORDER), _named("vm-terminal-record")),
            team=f"Attribution: each workspace terminal's record in the journal (`journalctl -t {TERMINAL_LOG_TAG}`): each "
                 "interactive bash of a workspace account, its commands typed, with the uid (the workspace) and unit journald "
                 "stamps; the person is bound by time to the gateway's lines for that workspace's host (a workspace of "
                 "several people: correlation, not proof), and the account's own shell writes it (another profile, bash "
                 "--norc, a leading space escape it; auditd on a real VM does not)"),
    Control("Detection", "Zabbix agent 2 (active, PSK; no keys that reach the network or read files)", "unnoticed outages",
            _named("vm-zabbix"), switch="zabbixEnabled"),
    Control("Detection", "restic backups (service + timer)", "data loss", _named("vm-backup"), switch="backupEnabled"),
    Control("Detection", "Backups hold the IDE too: code-server's user data and extensions (not its logs and caches); "
            "`hcs-restore` brings them back with the workspace (Day two, tested on a re-created demo VM)",
            "losing the user's settings and extensions with the VM",
            _both(_backup_covers_the_ide, _file("/usr/local/sbin/hcs-restore")), switch="backupEnabled",
            team="Backups per workspace (hcs-backup@ws-<name>, a timer each): its workspace, volume directory and "
                 "code-server data, tagged ws:<account>; `hcs-restore --workspace <name>` brings one person's work back "
                 "from its own snapshots without touching another's",
            team_select=_both(_workspace_backups, _workspace_restore)),
    Control("Detection", "Backups append-only: rest-server account in a root-only file, no forget/prune/init on the VM",
            "an intruder deleting the backup history", _both(_named("vm-backup"), _file("/etc/restic/hcs-backup.repository")),
            switch="backupEnabled"),
)


def posture(plan: PlanResult, edge: str, controls: Sequence[Control] = CONTROLS) -> list[Row]:
    """Every control's status for this stack, plus the policy pack's verdict as a last row."""
    rows = []
    team = is_team([Res(r.type, r.name, r.inputs) for r in plan.of_type("hcs:files:File")])
    for c in controls:
        if c.team_only and not team:
            continue
        found = (c.team_select if team and c.team_select else c.select)(plan)
        if edge not in c.edges:
            status, note = "n/a", f"not part of the {edge} edge"
        elif reason := c.inapplicable(plan):
            status, note = "n/a", reason
        elif found and (weakness := c.weakened(plan)):
            status, note = "WEAKENED", f"acknowledged: {weakness}"
        elif found:
            status, note = "on", c.detail(plan)
        else:
            status, note = "OFF", f"switched off: {c.switch}" if c.switch else "missing from the plan"
        rows.append(Row(c.layer, c.team if team and c.team else c.control, c.stops, status, tuple(r.name for r in found), note))
    # A team's rules count for a team; for a single user only if they find something.
    team_rules = {rule.name for rule in RULES if rule.team}
    verdict = {name: found for name, found in evaluate([Res(r.type, r.name, r.inputs) for r in plan.resources]).items()
               if team or found or name not in team_rules}
    failing = sorted(name for name, found in verdict.items() if found)
    rows.append(Row("Guardrails", f"Policy pack: {len(verdict) - len(failing)}/{len(verdict)} mandatory policies pass",
                    "any single misconfiguration above", "OFF" if failing else "on", (),
                    "failing: " + ", ".join(failing) if failing else ""))
    return rows


def markdown(rows: Sequence[Row], stack: str, edge: str, flows: Sequence[Flow] = ()) -> str:
    """The table as Markdown; OFF and WEAKENED rows in bold so they can't be missed. Then, per flow
    off the VM, the accounts it is open to (an account the VM lacks is skipped on the VM)."""
    lines = [f"Posture of stack `{stack}` (edge: {edge})", "",
             "| layer | control | stops | status | resources |", "|---|---|---|---|---|"]
    for r in rows:
        status = f"**{r.status}**" if r.status in ("OFF", "WEAKENED") else r.status
        resources = ", ".join(f"`{n}`" for n in r.resources[:4]) + (f" (+{len(r.resources) - 4})" if len(r.resources) > 4 else "")
        detail = f"{resources} {r.note}".strip()
        lines.append(f"| {r.layer} | {r.control} | {r.stops} | {status} | {detail} |")
    if flows:
        lines += ["", "Egress by identity: who may open each flow off the VM (everyone else, the IDE user always, is refused "
                  "and logged; a service switched off has no flow)", "",
                  "| flow | destinations | port | accounts |", "|---|---|---|---|"]
        for f in flows:
            where = ", ".join(f.destinations + (("by name: " + ", ".join(f"`{d}`" for d in f.domains),) if f.domains else ()))
            who = ", ".join(f"`{a}`" for a in f.accounts) or "none (the VM opens it to no account)"
            lines.append(f"| {f.name} | {where} | {f.protocol}/{f.port} | {who} |")
    return "\n".join(lines) + "\n"


def terminal(rows: Sequence[Row]) -> str:
    """A compact text view for `make plan`; OFF and WEAKENED rows are flagged and repeated at the end."""
    width = max(len(r.control) for r in rows)
    flagged = ("OFF", "WEAKENED")
    lines = [f"  {r.layer:<12} {r.control:<{width}}  {r.status + '  <--' if r.status in flagged else r.status}" for r in rows]
    off = [r for r in rows if r.status in flagged]
    if off:
        lines.append("")
        lines += [f"WARNING: control {r.status}: {r.layer}: {r.control} ({r.note})" for r in off]
    return "\n".join(lines)
