"""Pure renderers for the DMZ host: settings in, file text out (no Pulumi, no I/O).

Each function returns the exact bytes a host file receives, so tests can feed them to the tool
that consumes them (`sshd -t`, `ufw`, `fail2ban-client -t`, `systemd-analyze`) without a deploy.
The comments inside the rendered files say *why* a setting is there, for whoever reads the host.
"""

from __future__ import annotations

import ipaddress

import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

from components.host.render_baseline import ISSUE_NET
from components.settings.debian import DebianRelease
from components.layout import (CODE_SERVER_PORT, GATEWAY_ACCESS_LOG, OAUTH2_PROXY_SOCKET_DIR, PROXY_ENV_FILE,
                               PROXY_STACK_DIR)
from components.settings.host import HostSettings
from components.settings.ide import EgressDomain
from components.settings.topology import IDE_PROXY_PORT, Topology

HEADER = "# Managed by hardened-code-server (Pulumi); local edits are overwritten.\n"

#: code-server's config (root-owned: the IDE user cannot change where code-server listens).
CODE_SERVER_CONFIG = "/etc/code-server/hcs.yaml"
#: code-server's environment (root-owned): the proxy and the gallery, for it and all it starts.
CODE_SERVER_ENV = "/etc/code-server/hcs.env"
SOCKET_TMPFILES = "/etc/tmpfiles.d/hcs-sockets.conf"
RESTIC_ENV_FILE = "/etc/restic/hcs-backup.env"
RESTIC_PASSWORD_FILE = "/etc/restic/hcs-backup.password"
#: The repository URL with the rest-server account in it (root-only, secret).
RESTIC_REPOSITORY_FILE = "/etc/restic/hcs-backup.repository"
#: The operator's restore command (root only), installed with the backup units.
RESTORE_COMMAND = "/usr/local/sbin/hcs-restore"
#: What code-server 4.139.1 writes into its user data directory that is no user data: its logs,
#: the caches of downloaded VSIX files and profiles (`CachedExtensionVSIXs`, `CachedProfilesData`…)
#: and its IPC socket. Rebuilt on start, so left out of the backup set.
CODE_SERVER_DATA_EXCLUDED = ("logs", "coder-logs", "Cached*", "code-server-ipc.sock")
ZABBIX_PSK_FILE = "/etc/zabbix/hcs.psk"

# No NIST curves, no SHA-1, no CBC, no encrypt-and-MAC: the set ssh-audit reports without a single
# `fail`. Key exchange by what the release's OpenSSH knows (sshd -t rejects other names; the
# release's `mlkem_kex` says which): post-quantum hybrids first; curve25519-sha256 stays last because Pulumi's own SSH client (Go's x/crypto/ssh, in
# pulumi-command) has no post-quantum exchange before x/crypto v0.40, and without it no `pulumi up`.
#: OpenSSH 9.2 (Debian 12): sntrup761 is its only hybrid.
KEX_OPENSSH_9_2 = ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "curve25519-sha256@libssh.org")
#: OpenSSH ≥ 9.9 (Debian 13's 10.0): ML-KEM first (its own default), sntrup761 under both names, no libssh alias.
KEX_MLKEM = ("mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com", "curve25519-sha256")
CIPHERS = ("chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com")
MACS = ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com")
_HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
    "rsa-sha2-256": ("rsa-sha2-512", "rsa-sha2-256"),
    "rsa-sha2-512": ("rsa-sha2-512", "rsa-sha2-256"),
}


def sshd_hardening(topology: Topology, release: DebianRelease) -> str:
    """`/etc/ssh/sshd_config.d/00-hardening.conf`: read first, so each value here wins."""
    # A VM the program created presents the Ed25519 key it generated (vmHostKey is then unset).
    pinned = topology.vm.host_key.split()[0] if topology.vm.host_key else "ssh-ed25519"
    host_key_algs = ["ssh-ed25519"] + [a for a in _HOST_KEY_ALGORITHMS[pinned] if a != "ssh-ed25519"]
    lines = [
        HEADER.rstrip("\n"),
        "# Keys only: no passwords, no keyboard-interactive, no root, no host-based trust.",
        "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "HostbasedAuthentication no",
        "IgnoreRhosts yes",
        "RequiredRSASize 3072",
        f"# Only members of {topology.accounts.admin_group} may log in (the IDE and service accounts never).",
        f"AllowGroups {topology.accounts.admin_group}",
        "# Short handshake window and few tries: brute force gets little per connection.",
        "LoginGraceTime 20",
        "MaxAuthTries 3",
        "MaxSessions 4",
        "MaxStartups 10:30:60",
        "# No forwarding of any kind: SSH is for administration, not a tunnel into the DMZ.",
        "AllowAgentForwarding no",
        "AllowTcpForwarding no",
        "AllowStreamLocalForwarding no",
        "GatewayPorts no",
        "PermitTunnel no",
        "X11Forwarding no",
        "PermitUserEnvironment no",
        "ClientAliveInterval 300",
        "ClientAliveCountMax 2",
        "# VERBOSE logs the key fingerprint of every login (audit trail, fail2ban).",
        "LogLevel VERBOSE",
        "# The login banner before authentication (the baseline step's); no distribution in the version string.",
        f"Banner {ISSUE_NET}",
        "DebianBanner no",
        f"# The pinned host key's algorithm ({pinned}) stays offered, or Pulumi could not connect.",
        "HostKeyAlgorithms " + ",".join(host_key_algs),
        f"# Debian {release.version}'s OpenSSH: post-quantum key exchange first.",
        "KexAlgorithms " + ",".join(KEX_MLKEM if release.mlkem_kex else KEX_OPENSSH_9_2),
        "Ciphers " + ",".join(CIPHERS),
        "MACs " + ",".join(MACS),
    ]
    return "\n".join(lines) + "\n"


def _ufw_address(destination: ipaddress.IPv4Address | ipaddress.IPv4Network) -> str:
    """ufw's own spelling: a single host without `/32` (as `ufw show added` prints it)."""
    network = ipaddress.ip_network(destination)
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def ufw_rules(topology: Topology, host: HostSettings) -> list[str]:
    """The UFW user rules in the exact form `ufw show added` prints them, one per line.

    Rendering ufw's own canonical form lets the firewall step compare desired and actual rules
    line by line and add/delete only the difference (never a reset that opens a window).
    """
    ssh = topology.vm.ssh_port
    rules = [
        f"ufw allow from {net} to any port {ssh} proto tcp comment 'ssh from management'"
        for net in topology.management_subnets
    ]
    rules += [
        f"ufw allow from {addr} to any port {topology.gateway_port} proto tcp comment 'gateway from front proxy'"
        for addr in topology.gateway_peers
    ]
    if host.ufw_deny_outgoing:
        for rule in topology.egress_rules:
            rules += [
                f"ufw allow out to {_ufw_address(dest)} port {rule.port} proto {rule.protocol} comment 'egress {rule.name}'"
                for dest in rule.destinations
            ]
            if rule.domains:
                # By name (the IDE proxy's): the port to any address; the hook opens it to the proxy's account alone.
                rules.append(f"ufw allow out {rule.port}/{rule.protocol} comment 'egress {rule.name}'")
    return rules


UFW_AFTER_INIT = "/etc/ufw/after.init"
LOOPBACK_CHAIN = "hcs-loopback"
EGRESS_CHAIN = "hcs-egress"
REFUSED_CHAIN = "hcs-refused"
#: The NFLOG group the hook logs refusals to, and the one `ulogd_config` reads.
NFLOG_GROUP = 7
#: How often a refusal is logged (netfilter's `limit`): a loop of attempts can't flood the journal.
REFUSAL_LOG_LIMIT = ("12/min", 24)
ULOGD_CONFIG = "/etc/ulogd.conf"
#: A TCP handshake's answer (its owner is the listening socket's): who may answer is who may listen.
SYNACK = "-p tcp --tcp-flags SYN,ACK SYN,ACK"
ULOGD_DROP_IN = "/etc/systemd/system/ulogd2.service.d/10-hcs.conf"


def _egress_lines(topology: Topology, host: HostSettings) -> list[str]:
    """`allow` calls (see the hook's shell function) for every flow and the account that opens it."""
    lines = [f"allow {identity} -p {rule.protocol} -d {_ufw_address(dest)} --dport {rule.port}  # {rule.name}"
             for rule in topology.egress_rules for identity in rule.identities for dest in rule.destinations]
    lines += [f"allow {identity} -p {rule.protocol} --dport {rule.port}  # {rule.name}: " + " ".join(d.name for d in rule.domains)
              for rule in topology.egress_rules if rule.domains for identity in rule.identities]
    if not host.ufw_deny_outgoing:
        # ufwDenyOutgoing false: the stack lets its services out freely (posture OFF); the IDE
        # user still reaches nothing.
        lines += [f"{ipt} -w -A {EGRESS_CHAIN} -m owner ! --uid-owner \"$IDE\" -j RETURN" for ipt in ("iptables", "ip6tables")]
    return lines


def ufw_after_init(topology: Topology, host: HostSettings) -> str:
    """`/etc/ufw/after.init` (ufw runs it after loading its rules): the VM's traffic by identity.

    UFW's rules are per host; these chains are per account, matched by the owner of the sending
    socket (iptables' `owner` match; ufw's own syntax cannot match owners), IPv4 and IPv6, in
    chains of their own that `stop` removes again. Every refusal goes through `hcs-refused`:
    one rate-limited NFLOG line (read by ulogd2 into the journal, with the UID) and an immediate
    REJECT as administratively prohibited (the caller sees "No route to host" at once, never a
    reset that could pass for the far side's answer), so a tool fails fast and the attempt is on
    record.

    - Off the VM (`hcs-egress`, from OUTPUT on every interface but lo): each flow of the
      allowlist only for the accounts that open it (`EgressRule.identities`); everything else
      from any local socket is refused. The IDE user has no flow at all, DNS included.
    - On the VM (`hcs-loopback`, OUTPUT on lo): code-server has no auth of its own and listens on
      127.0.0.1, so only oauth2-proxy (the service account; its container shares the host
      network) and the IDE user may connect to it. The gateway's port from the VM itself is the
      service account's only (cloudflared, the health check): no local process can pose as
      cloudflared behind trusted_proxies. With `ideEgressDomains` set, the IDE user alone may
      reach the allowlisting proxy on 127.0.0.1:{IDE_PROXY_PORT} (so its log's account is right); the
      proxy's own account opens 443 (and 80 for `http://` names) off the VM, to any address: the
      proxy judges the names. The IDE user reaches nothing else on the VM.
    - Nothing for the IDE user to squat: a listener of the IDE user may answer (SYN-ACK, whose
      owner is the listening socket's) only as code-server on 127.0.0.1:{CODE_SERVER_PORT}; a
      port it binds while its owner is down (the gateway's, on the VM's address or loopback)
      never completes a handshake, so no visitor's request reaches it.

    Not covered here: a uid that binds 127.0.0.1:{CODE_SERVER_PORT} while code-server is down. Only
    the IDE user could, and all its processes live in code-server's unit (the sandbox drop-in's
    `KillMode=mixed`): they die with it.
    """
    port, synack = topology.gateway_port, SYNACK
    proxy = (f'    iptables -w -A {LOOPBACK_CHAIN} -p tcp -d 127.0.0.1 --dport {IDE_PROXY_PORT} --syn -m owner --uid-owner "$IDE" -j RETURN\n'
             f"    iptables -w -A {LOOPBACK_CHAIN} -p tcp --dport {IDE_PROXY_PORT} --syn -j {REFUSED_CHAIN}\n") if topology.ide_proxy else ""
    loopback = f"""    iptables -w -A {LOOPBACK_CHAIN} -p tcp -d 127.0.0.1 --dport {CODE_SERVER_PORT} --syn -m owner --uid-owner "$SVC" -j RETURN
    iptables -w -A {LOOPBACK_CHAIN} -p tcp -d 127.0.0.1 --dport {CODE_SERVER_PORT} --syn -m owner --uid-owner "$IDE" -j RETURN
    iptables -w -A {LOOPBACK_CHAIN} -p tcp -d 127.0.0.1 --dport {CODE_SERVER_PORT} --syn -j {REFUSED_CHAIN}
    iptables -w -A {LOOPBACK_CHAIN} -p tcp --dport {port} --syn -m owner --uid-owner "$SVC" -j RETURN
    iptables -w -A {LOOPBACK_CHAIN} -p tcp --dport {port} --syn -j {REFUSED_CHAIN}
{proxy}    iptables -w -A {LOOPBACK_CHAIN} {synack} -s 127.0.0.1 --sport {CODE_SERVER_PORT} -m owner --uid-owner "$IDE" -j RETURN
"""
    return hook_script(topology, host, topology.accounts.ide_user, loopback)


def hook_script(topology: Topology, host: HostSettings, ide: str, loopback: str) -> str:
    """The after.init script around its loopback rules, shared by the single-user and team hooks.

    `ide` is who the IDE runs as (`IDE=`: an account, or a uid range `FIRST-LAST`, as iptables'
    `--uid-owner` takes both); `loopback` the `hcs-loopback` rules that let some accounts reach
    some local ports. Everything else is the same for both: the flows off the VM by account,
    and every other new connection, or handshake answer, of `IDE` refused and logged.
    """
    svc = topology.accounts.service_user
    limit, burst = REFUSAL_LOG_LIMIT
    synack = SYNACK
    allow = "\n    ".join(_egress_lines(topology, host))
    return f"""#!/bin/sh
{HEADER}set -e
SVC={svc}
IDE={ide}
# allow ACCOUNT MATCH...: ACCOUNT's sockets may open MATCH off the VM. An account this VM does
# not have (an optional package's) is skipped: no process can run as it.
allow() {{
    who=$1; shift
    case $who in
    *[!0-9]*) uid=$(id -u -- "$who" 2>/dev/null) || {{ echo "after.init: no account $who, its egress stays closed"; return 0; }} ;;
    *) uid=$who ;;
    esac
    iptables -w -A {EGRESS_CHAIN} "$@" -m owner --uid-owner "$uid" -j RETURN
}}
# chain IPT NAME: NAME exists and is empty
chain() {{ "$1" -w -N "$2" 2>/dev/null || "$1" -w -F "$2"; }}
# unhook IPT: remove the jumps and the chains
unhook() {{
    while "$1" -w -D OUTPUT -o lo -j {LOOPBACK_CHAIN} 2>/dev/null; do :; done
    while "$1" -w -D OUTPUT ! -o lo -j {EGRESS_CHAIN} 2>/dev/null; do :; done
    for c in {LOOPBACK_CHAIN} {EGRESS_CHAIN} {REFUSED_CHAIN}; do "$1" -w -F "$c" 2>/dev/null || true; done
    for c in {LOOPBACK_CHAIN} {EGRESS_CHAIN} {REFUSED_CHAIN}; do "$1" -w -X "$c" 2>/dev/null || true; done
}}
case "$1" in
start)
    for ipt in iptables ip6tables; do
        chain $ipt {REFUSED_CHAIN}
        $ipt -w -A {REFUSED_CHAIN} -m limit --limit {limit} --limit-burst {burst} -j NFLOG --nflog-group {NFLOG_GROUP} --nflog-prefix {REFUSED_CHAIN}
        chain $ipt {EGRESS_CHAIN}
        $ipt -w -A {EGRESS_CHAIN} {synack} -m owner --uid-owner "$IDE" -j {REFUSED_CHAIN}
        $ipt -w -A {EGRESS_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
        $ipt -w -A {EGRESS_CHAIN} -m owner ! --socket-exists -j RETURN
        chain $ipt {LOOPBACK_CHAIN}
    done
    iptables -w -A {REFUSED_CHAIN} -j REJECT --reject-with icmp-admin-prohibited
    ip6tables -w -A {REFUSED_CHAIN} -j REJECT --reject-with icmp6-adm-prohibited
    {allow}
    iptables -w -A {EGRESS_CHAIN} -j {REFUSED_CHAIN}
    ip6tables -w -A {EGRESS_CHAIN} -j {REFUSED_CHAIN}
{loopback}    for ipt in iptables ip6tables; do
        $ipt -w -A {LOOPBACK_CHAIN} {synack} -m owner --uid-owner "$IDE" -j {REFUSED_CHAIN}
        $ipt -w -A {LOOPBACK_CHAIN} -m owner --uid-owner "$IDE" -m conntrack --ctstate NEW -j {REFUSED_CHAIN}
        $ipt -w -C OUTPUT ! -o lo -j {EGRESS_CHAIN} 2>/dev/null || $ipt -w -I OUTPUT 1 ! -o lo -j {EGRESS_CHAIN}
        $ipt -w -C OUTPUT -o lo -j {LOOPBACK_CHAIN} 2>/dev/null || $ipt -w -I OUTPUT 1 -o lo -j {LOOPBACK_CHAIN}
    done
    ;;
stop)
    unhook iptables
    unhook ip6tables
    ;;
status)
    # fails unless every chain and jump is in place (the firewall step restores them then)
    for ipt in iptables ip6tables; do
        for c in {LOOPBACK_CHAIN} {EGRESS_CHAIN} {REFUSED_CHAIN}; do $ipt -w -S "$c"; done
        $ipt -w -C OUTPUT -o lo -j {LOOPBACK_CHAIN} && $ipt -w -C OUTPUT ! -o lo -j {EGRESS_CHAIN}
    done
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 1
    ;;
esac
"""


def ulogd_config() -> str:
    """`/etc/ulogd.conf`: the hook's refusals (NFLOG group `NFLOG_GROUP`) into syslog, i.e. the journal.

    The kernel's own LOG target is not always readable (a container's netfilter log never
    reaches its journal); NFLOG hands the packet to ulogd2 in userspace, which prints it with the
    sending socket's UID and GID and logs through syslog(3), where journald and Wazuh read it.
    """
    lib = "/usr/lib/x86_64-linux-gnu/ulogd"
    plugins = ("inppkt_NFLOG", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2STR", "filter_PRINTPKT", "output_SYSLOG")
    return (
        HEADER
        + "[global]\n"
        + "logfile=\"syslog\"\n"
        + "loglevel=5\n"
        + "".join(f'plugin="{lib}/ulogd_{p}.so"\n' for p in plugins)
        + "stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,sys1:SYSLOG\n\n"
        + f"[log1]\ngroup={NFLOG_GROUP}\n\n"
        + "[sys1]\nfacility=LOG_DAEMON\nlevel=LOG_NOTICE\n"
    )


def ulogd_service() -> str:
    """Drop-in for Debian's `ulogd2.service`: ulogd in the foreground, supervised by systemd.

    The packaged unit is `Type=forking` with a `PIDFile=`, and timed out at start on a booted
    VM although ulogd ran; in the foreground there is nothing to wait for.
    """
    return HEADER + "[Service]\nType=simple\nPIDFile=\nExecStart=\nExecStart=/usr/sbin/ulogd --uid ulog\nRestart=on-failure\n"


def ufw_defaults(host: HostSettings) -> dict[str, str]:
    """Default policies: nothing in, nothing routed, and out only by the allowlist (if enabled)."""
    return {"incoming": "deny", "outgoing": "deny" if host.ufw_deny_outgoing else "allow", "routed": "deny"}


def unattended_upgrades() -> str:
    """`/etc/apt/apt.conf.d/20auto-upgrades`: daily list refresh and unattended security upgrades."""
    return (
        "// Managed by hardened-code-server (Pulumi); local edits are overwritten.\n"
        'APT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "1";\n'
        'APT::Periodic::AutocleanInterval "7";\n'
    )


def apt_proxy(topology: Topology) -> str | None:
    """`/etc/apt/apt.conf.d/01hcs-proxy`: with a locked egress, apt reaches mirrors via the proxy."""
    if topology.apt_proxy is None:
        return None
    address, port = topology.apt_proxy
    return (
        "// Managed by hardened-code-server (Pulumi): the only route to package mirrors.\n"
        f'Acquire::http::Proxy "http://{address}:{port}";\n'
    )


DOCKER_DAEMON_CONFIG = "/etc/docker/daemon.json"


def docker_daemon() -> str:
    """`/etc/docker/daemon.json`: no privilege gain in containers, bounded local logs, live restore.

    Every container of the stack uses the host network, so Docker gets no bridge, no IP forwarding
    and no hand in netfilter: UFW's rules are the only ones (Docker's NAT rules would bypass them),
    and a DMZ VM never routes. (`icc: false` would need iptables, and with no bridge there is no
    inter-container network for it to close.)
    """
    config = {
        "bridge": "none",
        "ip-forward": False,
        "iptables": False,
        "ip6tables": False,
        "no-new-privileges": True,
        "live-restore": True,
        "log-driver": "local",
        "log-opts": {"max-size": "20m", "max-file": "5"},
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def fail2ban(topology: Topology) -> str:
    """`jail.d/hcs.local`: the sshd jail, reading the journal (Debian 12 has no auth.log).

    There is no jail on the gateway's log, because none could ever act: it would ban a client's
    address on the VM's INPUT chain, but every request reaches the gateway from the front proxy
    (or over loopback from cloudflared), which must never be banned, and a direct peer is dropped
    by UFW before Caddy sees it. Banning by the real client belongs where that address arrives:
    the central Caddy or the FortiGate.
    """
    ignore = " ".join(["127.0.0.1/8", "::1"] + [str(a) for a in topology.gateway_peers])
    return f"""{HEADER}[DEFAULT]
bantime = 1h
findtime = 10m
maxretry = 5
bantime.increment = true
banaction = iptables-multiport
ignoreip = {ignore}

[sshd]
enabled = true
backend = systemd
mode = aggressive
port = {topology.vm.ssh_port}
maxretry = 3
"""


#: systemd sandbox lines every shipped service shares: no kernel tunables, modules, logs, cgroups,
#: clock or hostname; /proc shows only the unit's own processes; no set-uid, namespaces or realtime.
KERNEL_AND_PRIVILEGE_LOCKDOWN = """\
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictNamespaces=yes
RestrictRealtime=yes
"""


def code_server_config(host: HostSettings) -> str:
    """`CODE_SERVER_CONFIG` (root-owned, 0644): loopback only, no own auth, no phoning home.

    The unit passes `--config` with this file, so code-server never reads the IDE user's own
    `~/.config/code-server/config.yaml`, which that user can write: the terminal cannot move the
    listener (a `bind-addr` of 0.0.0.0, or a port of its choosing). `disable-proxy` turns off
    the port proxy (`/proxy/<port>`, `/absproxy/<port>`) unless `codeServerPortProxy` opts in.

    Why TCP and not code-server's `socket`: oauth2-proxy v7.15.6 proxies plain HTTP to a
    `unix://` upstream but not WebSockets (its WebSocket transport has no Unix dialer:
    "unsupported protocol scheme unix", 502), and the IDE is one long WebSocket.
    `auth: none` is safe only because code-server listens on 127.0.0.1 and oauth2-proxy in front
    is the one that authenticates.

    `disable-file-downloads` / `disable-file-uploads` (opt-in, `codeServerDisableFileDownloads` /
    `codeServerDisableFileUploads`): in 4.139.1 the server only hands them to the workbench as
    `isEnabledFileDownloads`/`isEnabledFileUploads`, which hide its Download… and Upload… actions
    (and dropping files in). Nothing on the server refuses a transfer: the terminal can still print
    a file to the screen (`cat`, `base64`), and the editor's clipboard copies text out and in.

    `idle-timeout-seconds` (`codeServerIdleTimeout`): the timer starts when code-server starts and
    again whenever its heartbeat (every request, then a check of open connections 60 s later) finds
    no connection left: every tab of the IDE closed. An open tab's WebSocket keeps it alive however
    long nobody types; the session's end there is oauth2-proxy's (`cookieExpire`). When the timer
    fires code-server logs "Idle timeout of N seconds exceeded" and exits with status 0 (4.139.1's
    main.js, wrapper.js). The stock `code-server@.service` has `Restart=always`, which the sandbox
    drop-in keeps: systemd starts a fresh code-server at once, and `KillMode=mixed` kills what the
    terminal left running (a build, a forgotten server) with the old one. For the user: open the
    IDE after the timeout and it comes up on a new server with no terminals; files on disk are as
    they were. code-server refuses 60 or less at start (the settings refuse 1m or less).
    """
    return HEADER + f"bind-addr: 127.0.0.1:{CODE_SERVER_PORT}\n" + code_server_behaviour(host, host.code_server_port_proxy)


def code_server_behaviour(host: HostSettings, port_proxy: bool) -> str:
    """What every code-server config says after its listener (see `code_server_config` for why):
    no own auth, no port proxy unless `port_proxy`, no phoning home, the transfer switches and the
    idle timeout."""
    return (
        "auth: none\n"
        + "cert: false\n"
        + f"disable-proxy: {'false' if port_proxy else 'true'}\n"
        + "disable-telemetry: true\n"
        + "disable-update-check: true\n"
        + ("disable-file-downloads: true\n" if host.code_server_disable_downloads else "")
        + ("disable-file-uploads: true\n" if host.code_server_disable_uploads else "")
        + f"idle-timeout-seconds: {int(host.code_server_idle_timeout.total_seconds())}\n"
    )


def socket_dirs(topology: Topology) -> list[tuple[str, str, str, str]]:
    """(mode, owner, group, path) of oauth2-proxy's socket directory, the only way into oauth2-proxy.

    The service account only (Caddy and oauth2-proxy both run as it): neither the IDE user nor
    any other uid can connect, or bind the path while oauth2-proxy is down.
    """
    svc = topology.accounts.service_user
    return [("0750", svc, svc, OAUTH2_PROXY_SOCKET_DIR)]


def socket_tmpfiles(topology: Topology) -> str:
    """`/etc/tmpfiles.d/hcs-sockets.conf`: the socket directory again after every boot (/run is a tmpfs)."""
    return tmpfiles_dirs(socket_dirs(topology))


def tmpfiles_dirs(dirs: Sequence[tuple[str, str, str, str]]) -> str:
    """A tmpfiles.d file making each (mode, owner, group, path) directory at boot, before any unit uses it."""
    return HEADER + "".join(f"d {path} {mode} {owner} {group} -\n" for mode, owner, group, path in dirs)


def code_server_sandbox(host: HostSettings, ide_user: str) -> str:
    """Drop-in for `code-server@.service`: a systemd sandbox the integrated terminal survives.

    Kept out: `MemoryDenyWriteExecute` (Node's JIT needs W+X pages), `PrivateUsers` and
    `ProcSubset=pid` (tools in the terminal read /proc and the user's groups). The file system is
    read-only except the IDE user's home, the workspace volume and a private /tmp. `ExecStart` is
    replaced so code-server reads only the root-owned `CODE_SERVER_CONFIG`.

    The way out has a second layer here, independent of the firewall hook: the unit's sockets, and
    those of everything the terminal starts (same cgroup), exchange IP packets with loopback only
    (systemd's cgroup BPF filter, which acts on Debian 12's systemd too). So one mistake in either
    layer is still no way out, and a port the IDE user binds on the VM's address receives
    nothing from the network. Address families: code-server (workbench, terminal, extensions
    host) runs with Unix and IPv4 sockets only (checked on the booted demo), so no IPv6, netlink
    or packet socket is left to the terminal. `KillMode=mixed`: code-server gets SIGTERM (a clean shutdown), and
    once it is gone everything else in the unit gets SIGKILL at once, so nothing the terminal
    started outlives a stop (or code-server's death) to squat the port code-server leaves.

    Where systemd has its BPF framework (Debian 13), the unit also binds no IP port but
    code-server's own (`SocketBindAllow=`/`SocketBindDeny=`: the terminal cannot listen at all, not
    even while code-server is down) and uses no network interface but loopback
    (`RestrictNetworkInterfaces=`). Debian 12's systemd accepts both and enforces neither, so they
    are not written there: the posture says so instead of a line that does nothing.
    """
    bind_limits = (
        f"SocketBindAllow=tcp:{CODE_SERVER_PORT}\nSocketBindDeny=any\nRestrictNetworkInterfaces=lo\n"
        if host.debian.bpf_framework else ""
    )
    return f"""{HEADER}[Service]
EnvironmentFile={CODE_SERVER_ENV}
ExecStart=
ExecStart=/usr/bin/code-server --config {CODE_SERVER_CONFIG}
""" + ide_sandbox(f"/home/{ide_user} {host.workspace_volume}", bind_limits)


def ide_sandbox(read_write: str, bind_limits: str) -> str:
    """The sandbox lines of every code-server unit, single-user or a workspace's (why each is
    there: `code_server_sandbox`): nothing writable but `read_write`, IP to loopback only, and
    `bind_limits` where the VM's systemd enforces them."""
    return f"""UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={read_write}
{KERNEL_AND_PRIVILEGE_LOCKDOWN}LockPersonality=yes
KeyringMode=private
RemoveIPC=yes
RestrictAddressFamilies=AF_UNIX AF_INET
IPAddressDeny=any
IPAddressAllow=localhost
{bind_limits}KillMode=mixed
TimeoutStopSec=5s
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
"""


def ide_proxy_url() -> str:
    """The allowlisting proxy as the IDE's tools name it."""
    return f"http://127.0.0.1:{IDE_PROXY_PORT}"


def code_server_env(topology: Topology, host: HostSettings) -> str:
    """`CODE_SERVER_ENV`: what code-server, its extensions and its terminal inherit.

    With the proxy on, both spellings of each proxy variable (curl and git read `http_proxy` in
    lower case only, npm and pip either): every tool of the terminal goes through the one logged
    door, the editor's own downloads (extensions) too. Loopback stays direct (`NO_PROXY`), which
    is where code-server and its own services live. `EXTENSIONS_GALLERY` is read by code-server
    in place of its product.json gallery. `NODE_USE_SYSTEM_CA`: code-server's Node (extension
    downloads, extension hosts) trusts the VM's CA store as git and curl do, where an internal
    gallery's or code host's CA belongs (Node 24 otherwise knows only its bundled roots). A tool
    that ignores the variables reaches nothing at all (the firewall hook): convenience, not a control.
    """
    lines = [HEADER.rstrip("\n")]
    if topology.ide_proxy:
        lines += proxy_variables(ide_proxy_url())
    lines += ide_variables(host)
    return "\n".join(lines) + "\n"


def proxy_variables(url: str) -> list[str]:
    """`NAME=value` of the proxy variables every tool reads, both spellings (why: `code_server_env`)."""
    lines = []
    for name in ("HTTPS_PROXY", "HTTP_PROXY"):
        lines += [f"{name}={url}", f"{name.lower()}={url}"]
    return lines + ["NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1"]


def ide_variables(host: HostSettings) -> list[str]:
    """`NAME=value` of what every IDE reads besides its proxy (why: `code_server_env`): the CA store, the gallery."""
    return ["NODE_USE_SYSTEM_CA=1", f"EXTENSIONS_GALLERY='{json.dumps(host.ide_gallery.product, separators=(',', ':'))}'"]


@dataclass(frozen=True)
class BackupFiles:
    """restic's unit pair and its 0600 environment file (which holds no secret itself: the
    repository URL with its account and the password are the two secret files it names)."""

    service: str
    timer: str
    env: str


def restic_repository(repository: str, user: str, password: str) -> str:
    """`RESTIC_REPOSITORY_FILE`'s content: the rest: URL with the account as URL userinfo.

    restic 0.14 (Debian 12) takes rest-server credentials only in the URL; percent-encoding
    keeps any character of the password intact (restic decodes it before Basic auth).
    """
    scheme, sep, rest = repository.partition("://")
    if not scheme.startswith("rest:") or not sep or "@" in rest.split("/", 1)[0]:
        raise ValueError(f"expected rest:https://host:port/path without credentials, got {repository!r}")
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}\n"


def code_server_data_dir(ide_user: str) -> str:
    """code-server's default `user-data-dir` for the IDE user: settings, keybindings, snippets, the
    extensions' state (`User/`), and the extensions themselves (`extensions/`, the default
    `extensions-dir`, with `extensions.json`, code-server's record of what is installed)."""
    return f"/home/{ide_user}/.local/share/code-server"


def backup_paths(topology: Topology, host: HostSettings) -> tuple[str, ...]:
    """The backup set, and what `hcs-restore` brings back: the workspace, the data volume and
    code-server's user data with the extensions. All of it is the IDE user's (the ownership map)."""
    ide = topology.accounts.ide_user
    return (f"/home/{ide}/workspace", host.workspace_volume, code_server_data_dir(ide))


def backup(topology: Topology, host: HostSettings) -> BackupFiles:
    """restic service/timer backing up the IDE user's work and IDE, append-only.

    The set (`backup_paths`) leaves out what rebuilds itself: code-server's logs, caches and
    socket (`CODE_SERVER_DATA_EXCLUDED`), and every directory tagged as a cache (`CACHEDIR.TAG`,
    e.g. Cargo's `target/`). `User/workspaceStorage` stays in: it is the state extensions keep
    per folder, not a cache, and nothing rebuilds it.

    The repository password (`RESTIC_PASSWORD_FILE`) and the rest-server account
    (`RESTIC_REPOSITORY_FILE`) are root-only files, never the unit's environment or a command line.
    The server is meant to run `--append-only` with auth: the VM can add snapshots but not
    delete or rewrite any, so whoever owns the VM cannot destroy its history. Hence no `forget`
    or `prune` here (pruning is the backup host's job, with its own credentials) and no automatic
    `init`: a missing repository fails the unit loudly instead of silently starting an empty one.
    Root reads the 700 directories via CAP_DAC_READ_SEARCH only.
    """
    service = backup_service("restic backup of the code-server workspace and user data", "",
                             code_server_data_dir(topology.accounts.ide_user), backup_paths(topology, host))
    timer = backup_timer(host, "Run the restic backup of the code-server workspace")
    return BackupFiles(service=service, timer=timer, env=backup_env(topology))


def backup_env(topology: Topology) -> str:
    """`RESTIC_ENV_FILE`: where restic finds the repository and its password (root-only files, never values here)."""
    assert topology.backup.repository is not None
    return (
        HEADER
        + f"RESTIC_REPOSITORY_FILE={RESTIC_REPOSITORY_FILE}\n"
        + f"RESTIC_PASSWORD_FILE={RESTIC_PASSWORD_FILE}\n"
        + "RESTIC_CACHE_DIR=/var/cache/restic\n"
    )


def backup_service(description: str, tags: str, data: str, paths: Sequence[str]) -> str:
    """A restic backup service over `paths` (why each line: `backup`), its snapshots tagged
    hardened-code-server and `tags` (`--tag …` options), code-server's rebuilt files under `data` left out."""
    excludes = "".join(f"  --exclude {data}/{name} \\\n" for name in CODE_SERVER_DATA_EXCLUDED)
    return f"""{HEADER}[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
EnvironmentFile={RESTIC_ENV_FILE}
ExecStart=/usr/bin/restic backup --one-file-system --tag hardened-code-server {tags}--exclude-caches \\
{excludes}  {" ".join(paths)}
CacheDirectory=restic
Nice=10
IOSchedulingClass=idle
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
PrivateTmp=yes
PrivateDevices=yes
ProtectSystem=strict
ProtectHome=read-only
{KERNEL_AND_PRIVILEGE_LOCKDOWN}LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
"""


def backup_timer(host: HostSettings, description: str) -> str:
    """The timer of a backup service: `backupSchedule`, spread over 15 minutes, caught up after downtime."""
    return f"""{HEADER}[Unit]
Description={description}

[Timer]
OnCalendar={host.backup_schedule}
RandomizedDelaySec=15m
Persistent=true

[Install]
WantedBy=timers.target
"""


def restore_script(topology: Topology, host: HostSettings) -> str:
    """`RESTORE_COMMAND`: the operator's one command that brings the backup set back (docs/operations.md, Day two).

    It reads the backup unit's own environment file, so the same root-only repository and password
    files (nothing secret on a command line or in the environment), and restores every path of
    `backup_paths` from the newest snapshot of the product's tag (or the one named) to where it was.
    code-server is stopped first (`KillMode=mixed`: nothing of the IDE user still runs to write
    there) and started again however the restore ends. Root only reads: `restic dump` streams each
    path as a tar archive into a `tar` that runs as the IDE user, so every file is written with that
    user's rights and is that user's (whatever uid the account had on the VM the snapshot came
    from), and a symlink left in a target can never make root write elsewhere. A target that holds
    a file is refused unless `--force`, which writes the snapshot's files over it (files the
    snapshot lacks stay); code-server's own logs, caches and socket (`CODE_SERVER_DATA_EXCLUDED`,
    what any start writes) do not count.
    """
    ide = topology.accounts.ide_user
    return restore_command(
        usage="hcs-restore [--force] [SNAPSHOT]",
        what="the IDE user's workspace, data volume, code-server user data and\n# extensions",
        arguments="",
        account=f"account={ide}\n",
        paths=backup_paths(topology, host),
        data=code_server_data_dir(ide),
        tag="hardened-code-server",
        stop='unit=code-server@"$account".service\nsystemctl stop "$unit"\ntrap \'systemctl start "$unit"\' EXIT\n',
    )


def restore_command(*, usage: str, what: str, arguments: str, account: str, paths: Sequence[str], data: str,
                    tag: str, stop: str) -> str:
    """The restore command's text, for the IDE user (`restore_script`) or a team's workspaces
    (`render_workspaces.restore_script`): `arguments` parses what the usage adds, `account` sets
    `$account` (whose rights write every file), `paths` and `data` may name `$account`, `tag`
    picks the snapshots, `stop` stops what writes there and arranges its restart."""
    rebuilt = " -o ".join(f"-path \"{data}/{name}\"" for name in CODE_SERVER_DATA_EXCLUDED)
    return f"""#!/bin/bash
{HEADER}# {usage}: {what}
# back from the newest snapshot (or SNAPSHOT, an ID from `restic snapshots`). As root.
set -euo pipefail
umask 077
force=no snapshot=latest
usage() {{ echo "usage: {usage}" >&2; exit 2; }}
while [ $# -gt 0 ]; do
    case $1 in
        --force) force=yes ;;
{arguments}        -*) usage ;;
        *) snapshot=$1 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || {{ echo "hcs-restore: run it as root (sudo hcs-restore)" >&2; exit 1; }}
{account}set -a
. {RESTIC_ENV_FILE}
set +a
paths=({" ".join(f'"{p}"' for p in paths)})
if [ "$force" = no ]; then
    held=()
    for path in "${{paths[@]}}"; do
        if [ -n "$(find "$path" -mindepth 1 \\( {rebuilt} \\) -prune -o ! -type d -print -quit 2>/dev/null)" ]; then
            held+=("$path")
        fi
    done
    if [ "${{#held[@]}}" -gt 0 ]; then
        echo "hcs-restore: files already in ${{held[*]}}; nothing restored (--force writes the snapshot over them)" >&2
        exit 1
    fi
fi
{stop}for path in "${{paths[@]}}"; do
    depth=$(printf %s "$path" | tr -cd / | wc -c)
    runuser -u "$account" -- mkdir -p -- "$path"
    if ! restic dump --tag {tag} "$snapshot" "$path" \\
            | runuser -u "$account" -- tar -x -p -f - -C "$path" --strip-components="$depth"; then
        echo "hcs-restore: $path not restored from snapshot $snapshot (is it in the snapshot?)" >&2
        exit 1
    fi
    echo "hcs-restore: restored $path from snapshot $snapshot"
done
"""


def wazuh_agent(topology: Topology) -> str:
    """`/var/ossec/etc/ossec.conf`: enrol with the manager and watch what an intruder would touch.

    File integrity monitoring covers the proxy stack, `/etc/ssh` and the systemd units. Diffs
    (`report_changes`) would copy file content to the manager, so they are off wherever secrets
    live: the proxy stack (its `.env`, secrets), `/etc/ssh` (host private keys); `nodiff` pins the
    `.env` as a second guard.

    Logs: the journal (everything on the VM, and so the attribution: oauth2-proxy's auth and request
    lines with the user, under its container's tag; the IDE terminal's record, `hcs-terminal`; the
    firewall's refusals and the IDE proxy's requests with the account), the gateway's JSON access
    log (each request with `user_email`/`user_id` as oauth2-proxy asserted them, and its `uuid`, which
    oauth2-proxy's line repeats as `request_id`), auditd's log (the baseline's rules: accounts,
    sudoers, sshd, the proxy stack, every command of the IDE user) and dpkg's log (every package installed, upgraded or removed, unattended upgrades included).
    """
    assert topology.wazuh.address is not None
    manager = escape(str(topology.wazuh.address))

    def watch(path: str, diff: bool) -> str:
        return (
            f'    <directories check_all="yes" realtime="yes" report_changes="{"yes" if diff else "no"}">'
            f"{escape(path)}</directories>"
        )

    watched = "\n".join(
        [
            watch(PROXY_STACK_DIR, False),
            watch("/etc/ssh", False),
            watch("/etc/systemd/system", True),
            watch("/lib/systemd/system", True),
            watch("/etc/fail2ban", True),
            watch("/etc/ufw", True),
            watch("/etc/sudoers.d", False),
        ]
    )
    return f"""<!-- Managed by hardened-code-server (Pulumi); local edits are overwritten. -->
<ossec_config>
  <client>
    <server>
      <address>{manager}</address>
      <port>1514</port>
      <protocol>tcp</protocol>
    </server>
    <enrollment>
      <enabled>yes</enabled>
      <manager_address>{manager}</manager_address>
      <port>1515</port>
    </enrollment>
  </client>
  <syscheck>
    <disabled>no</disabled>
    <frequency>43200</frequency>
    <scan_on_start>yes</scan_on_start>
{watched}
    <nodiff>{escape(PROXY_ENV_FILE)}</nodiff>
  </syscheck>
  <localfile>
    <log_format>journald</log_format>
    <location>journald</location>
  </localfile>
  <localfile>
    <log_format>json</log_format>
    <location>{escape(GATEWAY_ACCESS_LOG)}</location>
  </localfile>
  <localfile>
    <log_format>audit</log_format>
    <location>/var/log/audit/audit.log</location>
  </localfile>
  <localfile>
    <log_format>syslog</log_format>
    <location>/var/log/dpkg.log</location>
  </localfile>
</ossec_config>
"""


#: Agent keys refused outright: each makes the agent (uid zabbix) a client of something local or
#: remote, or a reader of files. `web.page.*`/`net.tcp.*` on loopback reach code-server, which has
#: no auth of its own; `vfs.file.*`/`log*` read whatever uid zabbix can; `system.run` runs commands
#: (denied by agent 2's default too; stated here so no later include's AllowKey can turn it on,
#: as the first matching rule wins). Active checks of logs and file contents are thus not
#: available: Wazuh ships the logs and watches the files.
ZABBIX_DENIED_KEYS = (
    "system.run[*]",
    "web.page.get[*]",
    "web.page.perf[*]",
    "web.page.regexp[*]",
    "net.tcp.port[*]",
    "net.tcp.service[*]",
    "net.tcp.service.perf[*]",
    "net.udp.service[*]",
    "net.udp.service.perf[*]",
    "net.dns[*]",
    "net.dns.record[*]",
    "net.dns.perf[*]",
    "vfs.file.contents[*]",
    "vfs.file.regexp[*]",
    "vfs.file.regmatch[*]",
    "vfs.file.get[*]",
    "vfs.file.md5sum[*]",
    "vfs.file.cksum[*]",
    "vfs.dir.get[*]",
    "log[*]",
    "logrt[*]",
    "log.count[*]",
    "logrt.count[*]",
)


def zabbix_agent(topology: Topology, host: HostSettings) -> str:
    """`/etc/zabbix/zabbix_agent2.conf` (replaces the package's): active checks, TLS with a PSK.

    Passive checks are confined to loopback (`Server`/`ListenIP` 127.0.0.1) and the firewall has no
    inbound rule for 10050, so the agent only ever connects out to the server. The keys of
    `ZABBIX_DENIED_KEYS` come before the plugin includes, so they win over any later rule.
    """
    assert topology.zabbix.address is not None
    return (
        HEADER
        + "PidFile=/run/zabbix/zabbix_agent2.pid\n"
        + "LogType=system\n"
        + "Server=127.0.0.1\n"
        + "ListenIP=127.0.0.1\n"
        + f"ServerActive={topology.zabbix.address}:10051\n"
        + "HostnameItem=system.hostname\n"
        + "TLSConnect=psk\n"
        + "TLSAccept=psk\n"
        + f"TLSPSKIdentity={host.zabbix_psk_identity}\n"
        + f"TLSPSKFile={ZABBIX_PSK_FILE}\n"
        + "ControlSocket=/run/zabbix/agent.sock\n"
        + "".join(f"DenyKey={key}\n" for key in ZABBIX_DENIED_KEYS)
        + "Include=/etc/zabbix/zabbix_agent2.d/plugins.d/*.conf\n"
    )


def ufw_rules_text(rules: Sequence[str]) -> str:
    """The rule list as the firewall step's parameter (one `ufw …` line each)."""
    return "".join(rule + "\n" for rule in rules)


SQUID_CONFIG = "/etc/squid/squid.conf"
SQUID_DROP_IN = "/etc/systemd/system/squid.service.d/10-hcs.conf"
#: What every line of the proxy's access log starts with (in the journal, syslog identifier squid).
SQUID_LOG_TAG = "hcs-ide-proxy"


def squid_domain(domain: EgressDomain) -> str:
    """Squid's dstdomain spelling: `.example.com` is the name and every name under it, as `*.example.com` is here."""
    return "." + domain.base if domain.wildcard else domain.name


def squid_config(topology: Topology) -> str:
    """`/etc/squid/squid.conf` (replaces Debian's): the IDE user's one door off the VM.

    - Listens on 127.0.0.1 only; the firewall hook lets only the IDE user connect there, so every
      request is that account's, and the log says so (`note account`, one per listener).
    - HTTPS only as CONNECT to port 443 of a listed name; plain HTTP (port 80) only to names
      listed `http://`; everything else is refused with 403 and logged. A CONNECT to an IP literal
      is refused before any name is judged, and `dstdomain -n` never turns an address into a name
      by reverse DNS (a PTR record of an attacker's address could otherwise read like a listed name).
    - Caches nothing (no response, no credential in a request to a listed host outlives it), adds
      no X-Forwarded-For (the far side learns no local address), runs no ICMP pinger.
    - The access log goes to syslog, hence the journal, where Wazuh reads it; one line per request:
      the account, the method and target, Squid's verdict and status, the bytes.
    """
    https = " ".join(squid_domain(d) for d in topology.ide_egress)
    plain = " ".join(squid_domain(d) for d in topology.ide_egress if d.plain_http)
    ide = topology.accounts.ide_user
    http_rule = (f"acl ide_http_names dstdomain -n {plain}\n"
                 "# Plain HTTP only to the names listed http://, only on port 80, never as CONNECT.\n"
                 "http_access allow ide_client !CONNECT http_port ide_http_names\n") if plain else ""
    return f"""{HEADER}# The IDE user's allowlisting proxy: only names of ideEgressDomains, only HTTPS (and HTTP where listed).
http_port 127.0.0.1:{IDE_PROXY_PORT} name=ide
visible_hostname {SQUID_LOG_TAG}
acl ide_client myportname ide
{SQUID_ACLS}acl ide_https_names dstdomain -n {https}
# Who asked: the firewall lets only {ide} reach this listener.
note account {ide} ide_client
{SQUID_DENIALS}http_access allow ide_client CONNECT https_port ide_https_names
{http_rule}{SQUID_TAIL}"""


#: The ACLs every IDE proxy config judges by (why: `squid_config`).
SQUID_ACLS = """\
acl ip_literal dstdom_regex -n ^[0-9.]+$ ^\\[?[0-9a-fA-F:]+\\]?$
acl https_port port 443
acl http_port port 80
acl CONNECT method CONNECT
"""
#: Refused before any listener's names are judged: an IP literal, a CONNECT to another port than 443.
SQUID_DENIALS = "http_access deny ip_literal\nhttp_access deny CONNECT !https_port\n"
#: After every listener's grants: the rest refused; no cache, no forwarded address, the log (why: `squid_config`).
SQUID_TAIL = f"""\
http_access deny all
http_reply_access allow all
icp_access deny all
htcp_access deny all
snmp_access deny all
cache deny all
cache_mem 0 MB
forwarded_for delete
pinger_enable off
shutdown_lifetime 2 seconds
logformat hcs {SQUID_LOG_TAG} account=%{{account}}note client=%>a:%>p %rm %ru verdict=%Ss status=%>Hs bytes=%<st server=%<a
access_log syslog:daemon.info logformat=hcs
cache_log /var/log/squid/cache.log
cache_store_log none
coredump_dir /var/spool/squid
"""


def squid_service() -> str:
    """Drop-in for Debian's `squid.service`: started once exec'd, ready when the step sees it listen.

    The packaged unit is `Type=notify`; Squid 5.7 (Debian 12) sends its readiness from the worker
    (`NotifyAccess=all`), and on the booted Debian 12 VM systemd never took it: the start timed out
    although Squid listened. The step waits for the listener on loopback itself instead.
    """
    return HEADER + "[Service]\nType=exec\n"

