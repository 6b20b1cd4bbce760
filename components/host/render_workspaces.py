"""Pure renderers for a VM's team workspaces: settings in, file text out (no Pulumi, no I/O).

Each workspace is its own account `ws-<name>` (uid in `UID_RANGE`) running its own code-server,
started on demand and stopped when idle (docs/team.md):

    gateway (service account) → /run/hcs-ws-gw/<account>.sock   (hcs-ws-proxy@.socket, root:<svc> 0660)
      → hcs-ws-proxy@<account>.service (systemd-socket-proxyd as the account; BindsTo its code-server)
      → /run/hcs-ws/<account>/code-server.sock                    (code-server@<account>, 0700 dir, 600 socket)

code-server's own `idle-timeout-seconds` is the one clock: it exits 0, `Restart=on-failure` leaves
it down, the proxy bound to it stops, and the socket listens again for the next request. Off the
VM a workspace reaches only its own port of the allowlisting proxy, which lets it reach only its
own names. Whatever the single-user files already say is reused from `render`, so the two modes
cannot drift apart on a control both have.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.host import render
from components.layout import CODE_SERVER_PORT, WORKSPACE_GATEWAY_SOCKET_DIR
from components.settings.host import HostSettings
from components.settings.topology import Topology
from components.settings.workspaces import UID_RANGE, Workspace

#: code-server's config for every workspace (root-owned 0644: no workspace can change how it listens).
CODE_SERVER_CONFIG = "/etc/code-server/hcs-team.yaml"
#: What every workspace's code-server inherits but its proxy (root-owned 0644).
CODE_SERVER_ENV = "/etc/code-server/hcs-team.env"
#: The team variant of the sandbox drop-in, at the single-user drop-in's path (one of them per VM).
SANDBOX_DROP_IN = "/etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf"
PROXY_SOCKET_UNIT = "/etc/systemd/system/hcs-ws-proxy@.socket"
PROXY_SERVICE_UNIT = "/etc/systemd/system/hcs-ws-proxy@.service"
BACKUP_SERVICE_UNIT = "/etc/systemd/system/hcs-backup@.service"
BACKUP_TIMER_UNIT = "/etc/systemd/system/hcs-backup@.timer"
#: Each workspace's code-server socket lives in its own 0700 runtime directory below this one.
RUNTIME_DIR = "/run/hcs-ws"
#: The uid range as iptables' `--uid-owner` takes it: every workspace account, one rule, never edited.
UID_OWNER = f"{UID_RANGE[0]}-{UID_RANGE[1]}"


def code_server_socket(account: str) -> str:
    """Where the code-server of `account` (or `%i` in a template) listens."""
    return f"{RUNTIME_DIR}/{account}/code-server.sock"


def code_server_config(host: HostSettings) -> str:
    """`CODE_SERVER_CONFIG`: as the single-user config (`render.code_server_config`) without a TCP listener.

    The socket's path comes from each instance's command line (`--socket`, in its own runtime
    directory); `socket-mode: 600` keeps it the account's alone, behind the 0700 directory too.
    The port proxy stays off whatever `codeServerPortProxy` says: it would serve a local port on
    the workspace's origin, and the firewall hook refuses a workspace every loopback port but its
    proxy's anyway. `idle-timeout-seconds` is what stops an idle workspace (the module's docstring).
    """
    return render.HEADER + 'socket-mode: "600"\n' + render.code_server_behaviour(host, port_proxy=False)


def code_server_env(host: HostSettings) -> str:
    """`CODE_SERVER_ENV`: the single-user environment (`render.code_server_env`) without the proxy.

    Each workspace has a proxy port of its own, set by its own drop-in (`workspace_drop_in`):
    systemd lets an `EnvironmentFile=` override `Environment=`, so a proxy here would win over it.
    """
    return "\n".join([render.HEADER.rstrip("\n"), *render.ide_variables(host)]) + "\n"


def code_server_sandbox(host: HostSettings) -> str:
    """`SANDBOX_DROP_IN`: the single-user sandbox (`render.ide_sandbox`) for an on-demand workspace.

    - `Restart=on-failure` replaces the packaged `Restart=always`: an idle exit (status 0) leaves
      the workspace down until its socket is used again; a crash still restarts it.
    - The socket lives in a runtime directory of the instance's own (0700, removed at stop, so no
      stale socket), and `ExecStartPost` holds the start job until it exists: the proxy, ordered
      after this unit, never connects to a socket that is not there yet (a first request's 502).
    - Writable: its own home and its own directory of the workspace volume, nobody else's.
    - Debian 13 (systemd's BPF framework): no IP port bound at all (`SocketBindDeny=any`, no
      exception: code-server listens on its Unix socket) and loopback as its only interface.
    """
    bind_limits = "SocketBindDeny=any\nRestrictNetworkInterfaces=lo\n" if host.debian.bpf_framework else ""
    socket = code_server_socket("%i")
    return f"""{render.HEADER}[Service]
Restart=on-failure
RuntimeDirectory={RUNTIME_DIR.removeprefix("/run/")}/%i
RuntimeDirectoryMode=0700
EnvironmentFile={CODE_SERVER_ENV}
ExecStart=
ExecStart=/usr/bin/code-server --config {CODE_SERVER_CONFIG} --socket {socket}
ExecStartPost=/usr/bin/timeout 30 /bin/sh -c 'until [ -S {socket} ]; do sleep 0.1; done'
""" + render.ide_sandbox(f"/home/%i {host.workspace_volume}/%i", bind_limits)


def proxy_socket(topology: Topology) -> str:
    """`PROXY_SOCKET_UNIT`: the gateway's door to one workspace, held by systemd while the workspace sleeps.

    Root's socket, group the service account, 0660: the gateway may connect, no workspace account
    can (nor chmod it open: it is not theirs). Its directory is made by tmpfiles (`socket_dirs`);
    should systemd have to make it, `DirectoryMode=0750` makes it root's alone, so the gateway
    fails closed rather than finding an open directory.
    """
    return f"""{render.HEADER}[Unit]
Description=The gateway's socket of workspace %i (starts its code-server on demand)

[Socket]
ListenStream={WORKSPACE_GATEWAY_SOCKET_DIR}/%i.sock
SocketUser=root
SocketGroup={topology.accounts.service_user}
SocketMode=0660
DirectoryMode=0750

[Install]
WantedBy=sockets.target
"""


def proxy_service() -> str:
    """`PROXY_SERVICE_UNIT`: passes the gateway's connections to the workspace's code-server, as the workspace.

    `BindsTo=` pulls code-server in on the first connection and stops the proxy when code-server
    exits (idle), so the socket unit takes the next request again; `After=` waits for code-server's
    `ExecStartPost`, i.e. for its socket. The proxy itself needs no network namespace of the
    host's (a path socket works across namespaces), no capability, nothing writable.
    """
    return f"""{render.HEADER}[Unit]
Description=The gateway's way into the code-server of workspace %i
BindsTo=code-server@%i.service
After=code-server@%i.service

[Service]
User=%i
Group=%i
ExecStart=/lib/systemd/systemd-socket-proxyd {code_server_socket("%i")}
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateNetwork=yes
PrivateUsers=yes
RestrictAddressFamilies=AF_UNIX
IPAddressDeny=any
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectSystem=strict
ProtectHome=yes
ProcSubset=pid
{render.KERNEL_AND_PRIVILEGE_LOCKDOWN}LockPersonality=yes
MemoryDenyWriteExecute=yes
KeyringMode=private
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
"""


def socket_dirs(topology: Topology) -> list[tuple[str, str, str, str]]:
    """(mode, owner, group, path) of the team's socket directories: oauth2-proxy's, as the single
    user's (`render.socket_dirs`), and the gateway's workspace sockets, root's with the service
    account's group, so only the gateway (and root) may enter."""
    return [*render.socket_dirs(topology), ("0750", "root", topology.accounts.service_user, WORKSPACE_GATEWAY_SOCKET_DIR)]


def socket_tmpfiles(topology: Topology) -> str:
    """`render.SOCKET_TMPFILES` in team mode: every socket directory again after a boot, before any socket unit."""
    return render.tmpfiles_dirs(socket_dirs(topology))


def drop_in_path(workspace: Workspace) -> str:
    """Where `workspace_drop_in` goes: a drop-in of this instance only."""
    return f"/etc/systemd/system/code-server@{workspace.account}.service.d/20-hcs-workspace.conf"


def workspace_drop_in(workspace: Workspace) -> str:
    """`drop_in_path`: what sets one workspace apart, its limits and its own door off the VM.

    The limits are the kernel's (cgroup) on the whole unit, terminal and all: a runaway build or a
    fork bomb ends in its own workspace. The proxy variables name its own port of the allowlisting
    proxy (the only one the firewall lets it reach); without egress domains it has none and
    reaches nothing off the VM.
    """
    limits = workspace.limits
    proxy = ("Environment=" + " ".join(render.proxy_variables(f"http://127.0.0.1:{workspace.proxy_port}")) + "\n"
             if workspace.egress else "")
    return (f"{render.HEADER}[Service]\nMemoryMax={limits.memory_max}\nCPUQuota={limits.cpu_quota}\n"
            f"TasksMax={limits.tasks_max}\n{proxy}")


def squid_config(workspaces: Sequence[Workspace]) -> str:
    """`render.SQUID_CONFIG` in team mode: one loopback port per workspace with egress domains, each
    allowed only its own names, as the single-user config allows the IDE user's (`render.squid_config`).

    The firewall hook lets each port be reached by its own account alone, so a request's port
    says whose it is: the listener's name is the account, `myportname` ties each grant to it and
    `note account` puts the account on every log line. Only for a VM where some workspace has egress.
    """
    listeners = [w for w in workspaces if w.egress]
    if not listeners:
        raise ValueError("no workspace of this VM has egress domains: the VM runs no allowlisting proxy")
    ports = acls = grants = ""
    for w in listeners:
        a, plain = w.account, " ".join(render.squid_domain(d) for d in w.egress if d.plain_http)
        ports += f"http_port 127.0.0.1:{w.proxy_port} name={a}\n"
        acls += (f"acl {a}_client myportname {a}\n"
                 f"acl {a}_https_names dstdomain -n {' '.join(render.squid_domain(d) for d in w.egress)}\n"
                 + (f"acl {a}_http_names dstdomain -n {plain}\n" if plain else "")
                 + f"note account {a} {a}_client\n")
        grants += (f"http_access allow {a}_client CONNECT https_port {a}_https_names\n"
                   + (f"http_access allow {a}_client !CONNECT http_port {a}_http_names\n" if plain else ""))
    return (f"{render.HEADER}# The workspaces' allowlisting proxy: a port per workspace, each only its own names.\n"
            f"{ports}visible_hostname {render.SQUID_LOG_TAG}\n{render.SQUID_ACLS}"
            f"# Who asked: the firewall lets each port be reached by its own account only.\n{acls}"
            f"{render.SQUID_DENIALS}{grants}{render.SQUID_TAIL}")


def ufw_after_init(topology: Topology, host: HostSettings, workspaces: Sequence[Workspace]) -> str:
    """`render.UFW_AFTER_INIT` in team mode: the single-user hook (`render.hook_script`) with the
    whole workspace uid range where it has the IDE user.

    - Off the VM: no flow for any workspace account (the range), as for the IDE user.
    - On the VM: the gateway's router on 127.0.0.1:{CODE_SERVER_PORT} and the gateway's port are the
      service account's only (no workspace reaches either); each workspace's proxy port is its own
      account's only, and only while that account exists in the range (a missing account's port
      stays closed, and the hook still starts); every other new connection of the range is
      refused and logged, IPv6 included.
    - No workspace listener answers anyone (its SYN-ACKs are refused): a workspace serves nothing
      on any port, and cannot pose as the router or the gateway while they are down.
    """
    port, refused, chain = topology.gateway_port, render.REFUSED_CHAIN, render.LOOPBACK_CHAIN
    first, last = UID_RANGE
    own = "".join(f"    own {w.account} {w.proxy_port}\n" for w in workspaces if w.egress)
    loopback = f"""    iptables -w -A {chain} -p tcp -d 127.0.0.1 --dport {CODE_SERVER_PORT} --syn -m owner --uid-owner "$SVC" -j RETURN
    iptables -w -A {chain} -p tcp -d 127.0.0.1 --dport {CODE_SERVER_PORT} --syn -j {refused}
    iptables -w -A {chain} -p tcp --dport {port} --syn -m owner --uid-owner "$SVC" -j RETURN
    iptables -w -A {chain} -p tcp --dport {port} --syn -j {refused}
    # own ACCOUNT PORT: the proxy port of a workspace, its account's only (if it is one: in the range)
    own() {{
        uid=$(id -u -- "$1" 2>/dev/null) || uid=
        if [ -n "$uid" ] && [ "$uid" -ge {first} ] && [ "$uid" -le {last} ]; then
            iptables -w -A {chain} -p tcp -d 127.0.0.1 --dport "$2" --syn -m owner --uid-owner "$uid" -j RETURN
        else
            echo "after.init: $1 is no workspace account here, its proxy port stays closed"
        fi
        iptables -w -A {chain} -p tcp --dport "$2" --syn -j {refused}
    }}
{own}"""
    return render.hook_script(topology, host, UID_OWNER, loopback)


def backup_paths(host: HostSettings, account: str) -> tuple[str, ...]:
    """The backup set of a workspace (or `%i` in the template): its workspace folder, its directory
    of the volume and its code-server data, as the single-user set (`render.backup_paths`)."""
    return (f"/home/{account}/workspace", f"{host.workspace_volume}/{account}", render.code_server_data_dir(account))


def backup(topology: Topology, host: HostSettings) -> render.BackupFiles:
    """`BACKUP_SERVICE_UNIT`, `BACKUP_TIMER_UNIT` and the restic environment: the single-user backup
    (`render.backup`: append-only, root reading through CAP_DAC_READ_SEARCH) as a template, one
    instance per workspace account, its snapshots tagged `ws:<account>` so a restore finds its own."""
    service = render.backup_service("restic backup of workspace %i: its workspace, volume and code-server data",
                                    "--tag ws:%i ", render.code_server_data_dir("%i"), backup_paths(host, "%i"))
    timer = render.backup_timer(host, "Run the restic backup of workspace %i")
    return render.BackupFiles(service=service, timer=timer, env=render.backup_env(topology))


def restore_script(host: HostSettings) -> str:
    """`render.RESTORE_COMMAND` on a team VM: `hcs-restore --workspace NAME [--force] [SNAPSHOT]` brings
    one workspace's set back from its own snapshots (tag `ws:<account>`), written with its account's
    rights, as the single user's restore does (`render.restore_command`). Only an account of the
    workspaces' uid range is a workspace; its socket is stopped first (no request starts it again
    mid-restore), then its code-server, and the socket listens again however the restore ends."""
    first, last = UID_RANGE
    account = f"""[ -n "${{workspace:-}}" ] || usage
case $workspace in *[!a-z0-9-]*) usage ;; esac
account=ws-$workspace
uid=$(id -u -- "$account" 2>/dev/null) || uid=
if [ -z "$uid" ] || [ "$uid" -lt {first} ] || [ "$uid" -gt {last} ]; then
    echo "hcs-restore: no workspace $workspace on this VM" >&2
    exit 1
fi
"""
    return render.restore_command(
        usage="hcs-restore --workspace NAME [--force] [SNAPSHOT]",
        what="workspace NAME's folder, volume directory, code-server user data\n# and extensions",
        arguments='        --workspace) [ $# -ge 2 ] || usage; workspace=$2; shift ;;\n',
        account=account,
        paths=backup_paths(host, "$account"),
        data=render.code_server_data_dir("$account"),
        tag='"ws:$account"',
        stop='systemctl stop "hcs-ws-proxy@$account.socket" "code-server@$account.service"\n'
             'trap \'systemctl start "hcs-ws-proxy@$account.socket"\' EXIT\n',
    )
