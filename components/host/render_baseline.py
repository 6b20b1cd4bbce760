"""Pure renderers of the auditor's baseline on the DMZ host: kernel and network sysctls, no core
dumps, /proc that hides other accounts' processes, login banners (no Pulumi, no I/O).

What a dev-sec/CIS baseline expects of any Debian server and the rest of the design does not
already cover. Each value is chosen so that nothing of the product breaks: code-server, its
terminal (debuggers included) and the containers on the host network. The comments inside the
files say why, for whoever reads the host.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "# Managed by hardened-code-server (Pulumi); local edits are overwritten.\n"

SYSCTL_FILE = "/etc/sysctl.d/90-hcs-baseline.conf"
COREDUMP_DROP_IN = "/etc/systemd/coredump.conf.d/90-hcs.conf"
CORE_LIMITS = "/etc/security/limits.d/90-hcs-nocore.conf"
MANAGER_DROP_IN = "/etc/systemd/system.conf.d/90-hcs-nocore.conf"
#: The group that may still see every process in /proc (hidepid's `gid=`).
PROC_GROUP = "hcs-proc"
HIDEPID_UNIT = "/etc/systemd/system/hcs-hidepid.service"
LOGIND_DROP_IN = "/etc/systemd/system/systemd-logind.service.d/90-hcs-proc.conf"
ISSUE = "/etc/issue"
ISSUE_NET = "/etc/issue.net"


@dataclass(frozen=True)
class Sysctl:
    """One kernel setting: its key, value and why it is set."""

    key: str
    value: str
    why: str


#: The kernel's own settings (global: one kernel for the VM).
KERNEL_SYSCTLS = (
    Sysctl("kernel.kptr_restrict", "2", "kernel addresses hidden from everyone (/proc/kallsyms, oopses): no map for an exploit"),
    Sysctl("kernel.dmesg_restrict", "1", "the kernel log for root only"),
    Sysctl("kernel.unprivileged_bpf_disabled", "1", "no BPF programs for unprivileged users, and no switching it back until reboot"),
    # 1, not 2 or 3: a debugger the IDE starts traces its own child (gdb, delve, node --inspect,
    # strace PROGRAM); 2 refuses even PTRACE_TRACEME to anyone without CAP_SYS_PTRACE, which the
    # IDE user never has, and would break every debugger of the terminal. At 1 the terminal still
    # cannot attach to a process that is not its descendant (code-server itself, other accounts').
    Sysctl("kernel.yama.ptrace_scope", "1", "ptrace only of one's own descendants (debuggers the IDE starts keep working)"),
    Sysctl("kernel.perf_event_paranoid", "3", "no perf events for unprivileged users (Debian's kernel: 3 refuses them all)"),
    Sysctl("kernel.kexec_load_disabled", "1", "no other kernel loaded at run time"),
    Sysctl("kernel.sysrq", "0", "no magic SysRq from a console"),
    Sysctl("kernel.randomize_va_space", "2", "full address space layout randomisation"),
    Sysctl("fs.protected_hardlinks", "1", "no hard links to files one cannot write (old /tmp tricks)"),
    Sysctl("fs.protected_symlinks", "1", "no following another account's symlink in a sticky directory"),
    Sysctl("fs.protected_fifos", "2", "no opening another account's FIFO in a sticky directory"),
    Sysctl("fs.protected_regular", "2", "no opening another account's file in a sticky directory with O_CREAT"),
    Sysctl("fs.suid_dumpable", "0", "no core dump of a set-uid process (its memory may hold another account's secrets)"),
)

#: The network's settings (per network namespace). The VM is an endpoint, never a router: every
#: container uses the host network and Docker forwards nothing (`ip-forward: false`), so
#: forwarding stays off. The design's flows are IPv4 with static addressing: router advertisements
#: are ignored (no address or route an on-link attacker announces).
NETWORK_SYSCTLS = (
    Sysctl("net.ipv4.ip_forward", "0", "the VM routes nothing (Docker has no bridge here)"),
    Sysctl("net.ipv6.conf.all.forwarding", "0", "the VM routes nothing"),
    *(Sysctl(f"net.ipv4.conf.{scope}.rp_filter", "1", "strict reverse path: no spoofed source on an interface")
      for scope in ("all", "default")),
    *(Sysctl(f"net.{family}.conf.{scope}.accept_redirects", "0", "no ICMP redirect rewrites a route")
      for family in ("ipv4", "ipv6") for scope in ("all", "default")),
    *(Sysctl(f"net.ipv4.conf.{scope}.secure_redirects", "0", "not even from a listed gateway") for scope in ("all", "default")),
    *(Sysctl(f"net.ipv4.conf.{scope}.send_redirects", "0", "an endpoint sends no redirects") for scope in ("all", "default")),
    *(Sysctl(f"net.{family}.conf.{scope}.accept_source_route", "0", "no source-routed packets")
      for family in ("ipv4", "ipv6") for scope in ("all", "default")),
    *(Sysctl(f"net.ipv4.conf.{scope}.log_martians", "1", "impossible source addresses are logged") for scope in ("all", "default")),
    Sysctl("net.ipv4.icmp_echo_ignore_broadcasts", "1", "no smurf amplifier"),
    Sysctl("net.ipv4.icmp_ignore_bogus_error_responses", "1", "bogus ICMP errors are not logged (no log flood)"),
    Sysctl("net.ipv4.tcp_syncookies", "1", "SYN floods do not exhaust the backlog"),
    Sysctl("net.ipv4.tcp_rfc1337", "1", "TIME-WAIT assassination refused"),
    *(Sysctl(f"net.ipv6.conf.{scope}.accept_ra", "0", "router advertisements ignored (static addressing)") for scope in ("all", "default")),
)

SYSCTLS = KERNEL_SYSCTLS + NETWORK_SYSCTLS


def sysctl_conf() -> str:
    """`SYSCTL_FILE`: read by systemd-sysctl at every boot, applied by the baseline step at once.

    No line is marked optional (`-`): systemd-sysctl already passes over a key the kernel lacks
    and a read-only /proc/sys (a container, whose kernel is its host's; systemd-sysctl.service
    does not even start there), and the step reads every value back and says which do not hold.
    """
    lines = [HEADER.rstrip("\n"), "# The auditor's baseline: kernel and network hardening (why per line)."]
    for s in SYSCTLS:
        lines += [f"# {s.why}", f"{s.key} = {s.value}"]
    return "\n".join(lines) + "\n"


def coredump_conf() -> str:
    """`COREDUMP_DROP_IN`: should systemd-coredump ever be installed, it keeps no core and reads none."""
    return HEADER + "# A core holds the process's memory: keys, tokens, a user's files. None kept.\n[Coredump]\nStorage=none\nProcessSizeMax=0\n"


def core_limits() -> str:
    """`CORE_LIMITS`: PAM sessions (SSH, su, sudo) start with a hard core size limit of 0."""
    return HEADER + "# No core files from any login session; the hard limit cannot be raised again.\n*    hard    core    0\nroot hard    core    0\n"


def manager_core_limit() -> str:
    """`MANAGER_DROP_IN`: every systemd unit (code-server and its terminal, Docker) without core
    files, hard limit included, for units started after the manager re-reads it."""
    return HEADER + "# Units do not go through PAM: their core limit is the manager's.\n[Manager]\nDefaultLimitCORE=0:0\n"


def hidepid_unit() -> str:
    """`HIDEPID_UNIT`: /proc remounted with `hidepid=invisible` early at every boot.

    Each account sees only its own processes (another account's pid directories do not exist for
    it: no command lines, environments, open files). Root with CAP_SYS_PTRACE still sees all, so
    Docker, sshd and the agents that run as root are unaffected; `PROC_GROUP` is the exception for
    a service that needs the whole table without root's capabilities (systemd-logind, see
    `logind_drop_in`). A unit rather than /etc/fstab: the same on a VM and in a container, where
    the container manager mounts /proc and systemd does not remount it from fstab. The group's
    number is looked up at run time (the kernel takes only a number).
    """
    return (
        HEADER
        + "[Unit]\nDescription=Hide other accounts' processes in /proc (hidepid)\n"
        + "DefaultDependencies=no\nAfter=systemd-remount-fs.service\nBefore=sysinit.target systemd-logind.service\n"
        + "Conflicts=shutdown.target\n\n"
        + "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        + f"ExecStart=/bin/sh -c 'exec mount -o remount,hidepid=invisible,gid=$(getent group {PROC_GROUP} | cut -d: -f3) /proc'\n\n"
        + "[Install]\nWantedBy=sysinit.target\n"
    )


def logind_drop_in() -> str:
    """`LOGIND_DROP_IN`: systemd-logind runs as root but without CAP_SYS_PTRACE, so hidepid would
    hide the sessions' processes from it; the exception group gives them back."""
    return HEADER + f"[Service]\nSupplementaryGroups={PROC_GROUP}\n"


#: The banner before any login: who may use the system and that use is recorded. No operating
#: system, release or host name (a CIS check flags `\\s \\r \\v \\m` escapes in these files).
BANNER = (
    "Authorised use only. Activity on this system is logged and monitored, and may be used as\n"
    "evidence. Disconnect now if you are not authorised.\n"
)


def issue() -> str:
    """`/etc/issue` (local consoles) and `/etc/issue.net` (sshd's `Banner`): the same text, no escapes."""
    return BANNER


#: Installed by the baseline step: libpam-tmpdir gives every PAM session (SSH, su, sudo) a /tmp
#: directory of its own (TMPDIR=/tmp/user/UID, 0700), so no session's temporary files are another
#: account's to read or race; needrestart names the services still running old libraries after
#: an upgrade.
BASELINE_PACKAGES = ("libpam-tmpdir", "needrestart")
NEEDRESTART_CONF = "/etc/needrestart/conf.d/90-hcs.conf"


def needrestart_conf() -> str:
    """`NEEDRESTART_CONF`: list, never restart (needrestart.conf's `restart` = `l`).

    Restarting on its own would restart code-server in the middle of a session (every terminal and
    what it runs dies with the unit) and sshd or Docker under the converge. Listing leaves the stale
    libraries visible (apt's and unattended-upgrades' output, `needrestart -b`) until code-server's
    idle restart or a planned one; the kernel is the reboot's.
    """
    return HEADER + "# List the services to restart after an upgrade; restart none of them.\n$nrconf{restart} = 'l';\n"


AUDIT_RULES = "/etc/audit/rules.d/50-hcs.rules"
AUDIT_FINALIZE = "/etc/audit/rules.d/99-hcs-finalize.rules"
#: Every key the rules tag events with (`ausearch -k KEY`), and what it answers.
AUDIT_KEYS = {
    "identity": "who changed an account or group",
    "privilege": "who changed who may use sudo",
    "sshd": "who changed how SSH lets people in",
    "hcs-proxy-stack": "who touched the proxy stack (its secrets)",
    "hcs-code-server": "who changed code-server's unit or config",
    "firewall": "who changed UFW or its hook",
    "audit-config": "who changed the audit rules themselves",
    "hcs-ide-exec": "what the IDE user ran (its terminal, tasks, extensions)",
    "admin-exec": "what a person logged in over SSH ran, sudo included",
    "time-change": "who set the clock (log times)",
    "modules": "who loaded or removed a kernel module",
}


def audit_rules(ide_user: str | tuple[int, int], proxy_stack_dir: str, code_server_config_dir: str) -> str:
    """`AUDIT_RULES`: watches on the files that decide who gets in and what runs, and every command
    of the IDE user (or, for a team, of every workspace account: `ide_user` is then their uid range)
    and of people logged in.

    The IDE user never logs in (its shell is code-server's child, in code-server's unit), so its
    login uid is unset: its commands are matched by `uid=`, which attributes every terminal session,
    task and extension process to that account. A team's accounts are matched by their uid range,
    one rule that never changes when a workspace is added (the rules are locked until a reboot), and
    their units by one watch on /etc/systemd/system, for the same reason.
    A person over SSH has a login uid that sudo keeps, so `auid>=1000` follows an admin into root.
    Both architectures: a 32-bit binary would otherwise run unseen.
    """
    watches = [
        ("identity", ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/security/opasswd")),
        ("privilege", ("/etc/sudoers", "/etc/sudoers.d")),
        ("sshd", ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d")),
        ("hcs-proxy-stack", (proxy_stack_dir,)),
        # A team's units are many and grow with it (each workspace's drop-in, the gateway's socket and
        # proxy templates, the backup template): the whole of /etc/systemd/system, one watch (recursive)
        # that no new workspace has to add while the rules are locked.
        ("hcs-code-server", (code_server_config_dir,
                             "/etc/systemd/system" if isinstance(ide_user, tuple) else "/etc/systemd/system/code-server@.service.d",
                             "/usr/lib/systemd/system/code-server@.service")),
        ("firewall", ("/etc/ufw",)),
        ("audit-config", ("/etc/audit",)),
        ("time-change", ("/etc/localtime",)),
    ]
    lines = [HEADER.rstrip("\n")]
    for key, paths in watches:
        lines.append(f"## {AUDIT_KEYS[key]}")
        lines += [f"-w {path} -p wa -k {key}" for path in paths]
    syscalls = [
        ("hcs-ide-exec", "execve,execveat", "execve,execveat",
         f"-F uid={ide_user}" if isinstance(ide_user, str) else f"-F uid>={ide_user[0]} -F uid<={ide_user[1]}"),
        ("admin-exec", "execve,execveat", "execve,execveat", "-F auid>=1000 -F auid!=unset"),
        ("time-change", "adjtimex,settimeofday,clock_settime", "adjtimex,settimeofday,clock_settime,stime", ""),
        ("modules", "init_module,finit_module,delete_module", "init_module,finit_module,delete_module", ""),
    ]
    for key, b64, b32, fields in syscalls:
        lines.append(f"## {AUDIT_KEYS[key]}")
        lines += [f"-a always,exit -F arch={arch} -S {calls} {fields} -k {key}".replace("  ", " ")
                  for arch, calls in (("b64", b64), ("b32", b32))]
    return "\n".join(lines) + "\n"


def audit_finalize() -> str:
    """`AUDIT_FINALIZE`: the rules are immutable once loaded (`-e 2`): root itself cannot remove a
    watch without a reboot, which is its own record. The price: a changed rule set loads at the
    next boot (the audit step says so)."""
    return HEADER + "-e 2\n"
