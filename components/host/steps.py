"""The DMZ host's setup as data: which script runs with which parameters and files, in what order.

One `Step` per concern (packages with the configurations their first start must see, accounts,
ownership map, the auditor's baseline, auditd, sshd, upgrades, fail2ban, code-server, the VSIX files,
the IDE terminal's record, the IDE's proxy, backup, Wazuh, Zabbix, firewall). Building the list registers
nothing, so tests and the benchmark can read it; `DmzHost` turns each step into one `remote.Command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from components.files import HostFile
from components import layout
from components.host import render, render_baseline, render_terminal
from components.host import render_workspaces as team
from components.settings import debian
from components.settings.host import HostSettings
from components.settings.topology import IDE_PROXY_PORT, Topology
from components.settings.workspaces import UID_RANGE, Workspace

#: Debian packages of every host (restic only with backups; the release's own on top).
BASE_PACKAGES = (
    "ca-certificates",
    "curl",
    "docker.io",
    "fail2ban",
    "git",
    "iptables",
    "openssh-client",
    "python3-systemd",
    "ufw",
    "ulogd2",
    "unattended-upgrades",
)
WAZUH_REPO = ("wazuh", "https://packages.wazuh.com/key/GPG-KEY-WAZUH", "https://packages.wazuh.com/4.x/apt/ stable main")
ZABBIX_KEY = "https://repo.zabbix.com/zabbix-official-repo.key"


def zabbix_repo(release: debian.DebianRelease) -> tuple[str, str, str]:
    """Zabbix 7.0 LTS's repository for the VM's release (one suite per Debian codename)."""
    return ("zabbix", ZABBIX_KEY, f"https://repo.zabbix.com/zabbix/7.0/debian {release.codename} main")


@dataclass(frozen=True)
class Step:
    """One concern: `scripts/host/<script>.sh` with `env` (plain) and `files` (stdin), after `after`."""

    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[HostFile, ...] = ()
    after: tuple[str, ...] = ()


def _vm(path: str, content: object, owner: str = "root", group: str = "root", mode: str = "0644", secret: bool = False) -> HostFile:
    return HostFile(role="vm", path=path, content=content, owner=owner, group=group, mode=mode, secret=secret)


def _proxy(topology: Topology) -> dict[str, str]:
    if topology.apt_proxy is None:
        return {}
    address, port = topology.apt_proxy
    return {"HCS_PROXY": f"http://{address}:{port}"}


def ownership_map(topology: Topology, host: HostSettings, workspaces: Sequence[Workspace] = ()) -> list[tuple[str, str, str, str, str]]:
    """(kind, mode, owner, group, path) of the design's ownership map, the gateway log, the socket dirs.

    With `workspaces` (a team VM) each workspace account has the IDE user's rows (home 0750, its
    workspace folder and its directory of the volume 0700) and the IDE user none: no account is shared.
    """
    svc = topology.accounts.service_user
    people = [w.account for w in workspaces] or [topology.accounts.ide_user]
    volume = host.workspace_volume
    return [
        ("dir", "0755", "root", "root", "/opt/code-server"),
        ("dir", "0750", svc, svc, layout.PROXY_STACK_DIR),
        ("file", "0640", svc, svc, layout.PROXY_ENV_FILE),
        # A team's volume is root's; each workspace owns its own directory of it.
        *((("dir", "0755", "root", "root", volume),) if workspaces else ()),
        *(row for user in people for row in (
            ("dir", "0750", user, user, f"/home/{user}"),
            ("dir", "0700", user, user, f"/home/{user}/workspace"),
            ("dir", "0700", user, user, f"{volume}/{user}" if workspaces else volume),
        )),
        # A workspace's code-server data exists before its first start: its backup set names it.
        *(("dir", "0700", w.account, w.account, path) for w in workspaces
          for path in _parents_below_home(w.account, render.code_server_data_dir(w.account))),
        ("dir", "0750", svc, svc, layout.GATEWAY_LOG_DIR),
        ("file", "0640", svc, svc, layout.GATEWAY_ACCESS_LOG),
        *(("dir", mode, owner, group, path) for mode, owner, group, path in
          (team.socket_dirs(topology) if workspaces else render.socket_dirs(topology))),
    ]


def _parents_below_home(account: str, path: str) -> list[str]:
    """`path` and each of its parents below the account's home, top-down (`.local`, `.local/share`, …)."""
    home = f"/home/{account}"
    parts = path.removeprefix(home + "/").split("/")
    return [f"{home}/{'/'.join(parts[:n])}" for n in range(1, len(parts) + 1)]


def host_steps(topology: Topology, host: HostSettings, first_boot: bool = False,
               workspaces: Sequence[Workspace] = (), role: str = "vm") -> list[Step]:
    """Every step of the host setup, in an order that respects `after`.

    `first_boot` (a VM the program created): a `first-boot` step waits for cloud-init to have
    finished the user-data, and every step that waited for nothing waits for it, so no step races
    cloud-init's own writes (the admin's sudoers, the host keys, apt's first lists).

    `workspaces` (a team VM, `topology` being that VM's: its address, its workspaces' egress): one
    account, home, code-server instance, proxy port and backup set per workspace, made by the same
    steps (`render_workspaces` for the files), and no IDE user; see docs/team.md. `role`: the machine
    the files are for (`workspaces.resource_name`), so two VMs' files are two records.
    """
    accounts = topology.accounts
    accounts_list = " ".join(w.account for w in workspaces)
    packages = BASE_PACKAGES + host.debian.packages + (("restic",) if topology.backup.enabled else ())
    proxy_conf = render.apt_proxy(topology)
    steps = [
        Step(
            "packages",
            "packages",
            {"HCS_PACKAGES": " ".join(sorted(packages))},
            ((_vm("/etc/apt/apt.conf.d/01hcs-proxy", proxy_conf),) if proxy_conf else ())
            + (_vm(render.ULOGD_CONFIG, render.ulogd_config()), _vm(render.ULOGD_DROP_IN, render.ulogd_service()),
               _vm(render.DOCKER_DAEMON_CONFIG, render.docker_daemon())),
        ),
        Step(
            "accounts",
            "accounts",
            {
                "HCS_SERVICE_USER": accounts.service_user,
                "HCS_IDE_USER": "" if workspaces else accounts.ide_user,
                "HCS_ADMIN_GROUP": accounts.admin_group,
                "HCS_ADMIN_USER": topology.vm.admin_user,
                **({"HCS_WORKSPACES": accounts_list, "HCS_WORKSPACE_UIDS": f"{UID_RANGE[0]} {UID_RANGE[1]}"} if workspaces else {}),
            },
            after=("packages",),
        ),
        Step(
            "layout",
            "layout",
            {"HCS_PATHS": "".join(" ".join(row) + "\n" for row in ownership_map(topology, host, workspaces))},
            (_vm(render.SOCKET_TMPFILES, team.socket_tmpfiles(topology) if workspaces else render.socket_tmpfiles(topology)),),
            after=("accounts",),
        ),
        baseline_step(),
        # After the baseline: sshd's Banner names the file it installs.
        Step("sshd", "sshd", files=(_vm("/etc/ssh/sshd_config.d/00-hardening.conf", render.sshd_hardening(topology, host.debian)),),
             after=("accounts", "baseline")),
        audit_step(topology, bool(workspaces)),
        Step("upgrades", "upgrades", files=(_vm("/etc/apt/apt.conf.d/20auto-upgrades", render.unattended_upgrades()),), after=("packages",)),
    ]
    steps.append(
        Step(
            "fail2ban",
            "fail2ban",
            files=(_vm("/etc/fail2ban/jail.d/hcs.local", render.fail2ban(topology)),),
            after=("layout",),
        )
    )
    ide = accounts.ide_user
    steps.append(
        Step(
            "code-server",
            "code-server",
            {
                "HCS_CS_VERSION": host.code_server.version,
                "HCS_CS_SHA256": host.code_server.sha256,
                "HCS_CS_URL": host.code_server.url,
                "HCS_IDE_USER": "" if workspaces else ide,
                **({"HCS_WORKSPACES": accounts_list} if workspaces else {}),
                **_proxy(topology),
            },
            _team_code_server_files(topology, host, workspaces) if workspaces else (
                _vm(render.CODE_SERVER_CONFIG, render.code_server_config(host)),
                _vm(render.CODE_SERVER_ENV, render.code_server_env(topology, host)),
                _vm("/etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf", render.code_server_sandbox(host, ide)),
            ),
            # After the baseline: code-server's unit starts with the manager's core limit of 0.
            after=("layout", "baseline"),
        )
    )
    if host.ide_extensions:
        steps.append(
            Step(
                "extensions",
                "extensions",
                {
                    "HCS_IDE_USER": accounts_list if workspaces else ide,
                    "HCS_EXTENSIONS": "".join(f"{x.url} {x.sha256}\n" for x in host.ide_extensions),
                    **_proxy(topology),
                },
                after=("code-server",),
            )
        )
    steps.append(
        Step(
            "terminal-record",
            "terminal-record",
            {"HCS_RECORDER": render_terminal.TERMINAL_RECORDER},
            (_vm(render_terminal.TERMINAL_RECORDER, render_terminal.terminal_recorder(UID_RANGE if workspaces else ide)),),
            after=("code-server",),
        )
    )
    steps.append(
        Step(
            "ide-proxy",
            "ide-proxy",
            {"HCS_IDE_PROXY": "on" if topology.ide_proxy else "off", "HCS_IDE_PROXY_PORT": str(IDE_PROXY_PORT)},
            (_vm(render.SQUID_CONFIG, team.squid_config(workspaces) if workspaces else render.squid_config(topology)),
             _vm(render.SQUID_DROP_IN, render.squid_service()))
            if topology.ide_proxy else (),
            after=("packages",),
        )
    )
    agents: list[str] = []
    if topology.backup.enabled:
        steps.append(backup_step(topology, host, workspaces))
        agents.append("backup")
    if topology.wazuh.enabled:
        steps.append(_vendor_step("wazuh", WAZUH_REPO, "wazuh-agent", "wazuh-agent.service", topology,
                                  {"HCS_AGENT_ENV": f"WAZUH_MANAGER={topology.wazuh.address}"},
                                  (_vm("/var/ossec/etc/ossec.conf", render.wazuh_agent(topology), "root", "wazuh", "0640"),)))
        agents.append("wazuh")
    if topology.zabbix.enabled:
        steps.append(_vendor_step("zabbix", zabbix_repo(host.debian), "zabbix-agent2", "zabbix-agent2.service", topology, {},
                                  (_vm("/etc/zabbix/zabbix_agent2.conf", render.zabbix_agent(topology, host)),
                                   _vm(render.ZABBIX_PSK_FILE, host.zabbix_psk, "zabbix", "zabbix", "0400", secret=True))))
        agents.append("zabbix")
    steps.append(
        Step(
            "firewall",
            "firewall",
            {
                "HCS_UFW_RULES": render.ufw_rules_text(render.ufw_rules(topology, host)),
                "HCS_UFW_DEFAULTS": " ".join(f"{k}={v}" for k, v in render.ufw_defaults(host).items()),
            },
            (_vm(render.UFW_AFTER_INIT, team.ufw_after_init(topology, host, workspaces) if workspaces
                 else render.ufw_after_init(topology, host), mode="0750"),),
            # Last: every download (packages, code-server, vendor repositories) happens before the
            # egress allowlist closes the host.
            after=tuple(s.name for s in steps),
        )
    )
    if first_boot:
        steps = [Step("first-boot", "first-boot")] + [s if s.after else replace(s, after=("first-boot",)) for s in steps]
    # Every step first checks that the VM runs the release all of the above was chosen for.
    release = {"HCS_DEBIAN_RELEASE": str(host.debian.version),
               "HCS_DEBIAN_RELEASES": " ".join(str(v) for v in sorted(debian.RELEASES))}
    return [replace(s, env={**s.env, **release}, files=tuple(replace(f, role=role) for f in s.files)) for s in steps]


def _team_code_server_files(topology: Topology, host: HostSettings, workspaces: Sequence[Workspace]) -> tuple[HostFile, ...]:
    """A team VM's code-server files: the shared config, environment and sandbox, the gateway's
    socket and proxy templates, and each workspace's own drop-in (limits, proxy port)."""
    w = team
    return (
        _vm(w.CODE_SERVER_CONFIG, w.code_server_config(host)),
        _vm(w.CODE_SERVER_ENV, w.code_server_env(host)),
        _vm(w.SANDBOX_DROP_IN, w.code_server_sandbox(host)),
        _vm(w.PROXY_SOCKET_UNIT, w.proxy_socket(topology)),
        _vm(w.PROXY_SERVICE_UNIT, w.proxy_service()),
        *(_vm(w.drop_in_path(ws), w.workspace_drop_in(ws)) for ws in workspaces),
    )


def backup_step(topology: Topology, host: HostSettings, workspaces: Sequence[Workspace] = ()) -> Step:
    """restic's files and units: one backup of the IDE user's set with the operator's `hcs-restore`,
    or on a team VM one instance of the templated backup per workspace (its own set and tag) and
    `hcs-restore --workspace NAME`."""
    b = team.backup(topology, host) if workspaces else render.backup(topology, host)
    units = ((team.BACKUP_SERVICE_UNIT, team.BACKUP_TIMER_UNIT) if workspaces
             else ("/etc/systemd/system/hcs-backup.service", "/etc/systemd/system/hcs-backup.timer"))
    timers = [f"hcs-backup@{w.account}.timer" for w in workspaces] or ["hcs-backup.timer"]
    return Step(
        "backup",
        "backup",
        {"HCS_BACKUP_TIMERS": " ".join(timers)} if workspaces else {},
        (
            _vm(render.RESTIC_ENV_FILE, b.env, mode="0600"),
            _vm(render.RESTIC_PASSWORD_FILE, host.backup_password, mode="0600", secret=True),
            _vm(render.RESTIC_REPOSITORY_FILE, host.backup_rest_password.apply(
                lambda password: render.restic_repository(str(topology.backup.repository), host.backup_rest_user, password)),
                mode="0600", secret=True),
            _vm(units[0], b.service),
            _vm(units[1], b.timer),
            _vm(render.RESTORE_COMMAND, team.restore_script(host) if workspaces else render.restore_script(topology, host), mode="0750"),
        ),
        after=("layout",),
    )


def baseline_step() -> Step:
    """The auditor's baseline (components/host/render_baseline.py): sysctls, no core dumps, hidepid, banners,
    libpam-tmpdir and needrestart."""
    b = render_baseline
    return Step(
        "baseline",
        "baseline",
        {"HCS_PROC_GROUP": b.PROC_GROUP, "HCS_SYSCTLS": "".join(f"{s.key} {s.value}\n" for s in b.SYSCTLS),
         "HCS_PACKAGES": " ".join(b.BASELINE_PACKAGES)},
        (
            _vm(b.SYSCTL_FILE, b.sysctl_conf()),
            _vm(b.CORE_LIMITS, b.core_limits()),
            _vm(b.MANAGER_DROP_IN, b.manager_core_limit()),
            _vm(b.COREDUMP_DROP_IN, b.coredump_conf()),
            _vm(b.HIDEPID_UNIT, b.hidepid_unit()),
            _vm(b.LOGIND_DROP_IN, b.logind_drop_in()),
            _vm(b.ISSUE, b.issue()),
            _vm(b.ISSUE_NET, b.issue()),
            _vm(b.NEEDRESTART_CONF, b.needrestart_conf()),
        ),
        after=("packages",),
    )


def audit_step(topology: Topology, team_vm: bool = False) -> Step:
    """auditd and the rules of the accounts and files that matter (components/host/render_baseline.py).

    After layout: the IDE user named in the rules exists, and so does the proxy stack directory.
    On a team VM the rules name the workspaces' uid range instead: one rule for every workspace.
    """
    b = render_baseline
    rules = b.audit_rules(UID_RANGE if team_vm else topology.accounts.ide_user, layout.PROXY_STACK_DIR,
                          render.CODE_SERVER_CONFIG.rsplit("/", 1)[0])
    return Step("audit", "audit", {}, (_vm(b.AUDIT_RULES, rules, mode="0640"), _vm(b.AUDIT_FINALIZE, b.audit_finalize(), mode="0640")),
                after=("layout",))


def _vendor_step(
    name: str,
    repo: tuple[str, str, str],
    package: str,
    unit: str,
    topology: Topology,
    env: dict[str, str],
    files: tuple[HostFile, ...],
) -> Step:
    repo_name, key_url, line = repo
    return Step(
        name,
        "vendor-agent",
        {
            "HCS_REPO_NAME": repo_name,
            "HCS_REPO_KEY_URL": key_url,
            "HCS_REPO_LINE": line,
            "HCS_AGENT_PACKAGE": package,
            "HCS_AGENT_UNIT": unit,
            **env,
            **_proxy(topology),
        },
        files,
        after=("layout",),
    )
