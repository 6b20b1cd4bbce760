"""The auditor's baseline renderers (components/host/render_baseline.py), read by the tools that consume them.

systemd-sysctl applies the sysctl file in a throwaway network namespace, as an unprivileged
user namespace: the network settings are read back there, the kernel's own settings cannot be
written (this machine's kernel is never touched), and systemd-sysctl's debug log shows it parsed
every line. systemd-analyze verifies the hidepid unit. The expected values are written here from
the baselines (dev-sec's linux-baseline sysctl controls, CIS Debian Linux), not read from the module.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from components.host import render, render_baseline
from components.host.steps import host_steps
from scripts.lab.converge import sample
from tests.host.test_render import free_port, sshd_config, tool

SYSTEMD_SYSCTL = Path("/lib/systemd/systemd-sysctl")
#: What the baselines expect (dev-sec linux-baseline sysctl-*, CIS Debian 1.5/3.3), and the
#: project's one deliberate deviation: ptrace_scope 1, not 2 (debuggers in the IDE; see the module).
EXPECTED = {
    "kernel.kptr_restrict": "2", "kernel.dmesg_restrict": "1", "kernel.unprivileged_bpf_disabled": "1",
    "kernel.yama.ptrace_scope": "1", "kernel.perf_event_paranoid": "3", "kernel.kexec_load_disabled": "1",
    "kernel.sysrq": "0", "kernel.randomize_va_space": "2",
    "fs.protected_hardlinks": "1", "fs.protected_symlinks": "1", "fs.protected_fifos": "2", "fs.protected_regular": "2",
    "fs.suid_dumpable": "0",
    "net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0",
    "net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv6.conf.all.accept_redirects": "0", "net.ipv6.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.secure_redirects": "0", "net.ipv4.conf.default.secure_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0", "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv6.conf.all.accept_source_route": "0", "net.ipv6.conf.default.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1", "net.ipv4.conf.default.log_martians": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1", "net.ipv4.icmp_ignore_bogus_error_responses": "1",
    "net.ipv4.tcp_syncookies": "1", "net.ipv4.tcp_rfc1337": "1",
    "net.ipv6.conf.all.accept_ra": "0", "net.ipv6.conf.default.accept_ra": "0",
}


def sysctl_in_a_sandbox(text: str) -> tuple[str, dict[str, str]]:
    """systemd-sysctl on `text` (written by the sandbox itself: uid 65534 cannot read a test's directory) as uid 65534 mapped to root of a new user and network namespace:
    its debug log, and every key of EXPECTED read back there (the kernel's own ones are this
    machine's, which the sandbox cannot write)."""
    if not SYSTEMD_SYSCTL.exists():
        pytest.fail(f"{SYSTEMD_SYSCTL} is required for this test (Debian's systemd)")
    keys = " ".join(EXPECTED)
    script = (f'f=$(mktemp) && cat >"$f" && SYSTEMD_LOG_LEVEL=debug {SYSTEMD_SYSCTL} "$f" 2>&1; rm -f "$f"; '
              f'echo "--- values"; for k in {keys}; do f=/proc/sys/$(echo $k | tr . /); '
              '[ -e "$f" ] && echo "$k $(cat $f)"; done')
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "--user", "--map-root-user", "--net",
                           "sh", "-c", script], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log, _, values = done.stdout.partition("--- values\n")
    return log, dict(line.split(" ", 1) for line in values.splitlines())


def test_sysctls_are_the_baselines_values_and_apply() -> None:
    text = render_baseline.sysctl_conf()
    settings = dict(re.findall(r"(?m)^([a-z0-9_.]+) = (\S+)$", text))
    assert settings == EXPECTED
    log, seen = sysctl_in_a_sandbox(text)
    # systemd-sysctl read every line as this key and value (it logs each before writing, or failing to).
    for key, value in EXPECTED.items():
        assert f"Setting '/proc/sys/{key.replace('.', '/')}' to '{value}'" in log, (key, log)
    # The network settings are per namespace: the throwaway one now holds them all.
    for key, value in EXPECTED.items():
        if key.startswith("net.") and key in seen:
            assert seen[key] == value, (key, seen[key])
    assert {k for k in seen if k.startswith("net.")} == {k for k in EXPECTED if k.startswith("net.")}


def test_the_step_reads_back_what_the_file_sets() -> None:
    s = sample.settings()
    (step,) = [st for st in host_steps(s.topology, s.host) if st.name == "baseline"]
    listed = dict(line.split(" ", 1) for line in step.env["HCS_SYSCTLS"].splitlines())
    assert listed == EXPECTED
    files = {f.path: f for f in step.files}
    assert files["/etc/issue.net"].content == files["/etc/issue"].content
    # Every file root's, readable by all (PAM, sshd before login, systemd-sysctl): nothing secret here.
    assert {(f.owner, f.mode) for f in files.values()} == {("root", "0644")}


def test_no_core_dumps_anywhere() -> None:
    limits = [line.split() for line in render_baseline.core_limits().splitlines() if line and not line.startswith("#")]
    # limits.conf(5): "*" does not cover root; a hard limit the session cannot raise again.
    assert sorted(limits) == [["*", "hard", "core", "0"], ["root", "hard", "core", "0"]]
    manager = render_baseline.manager_core_limit()
    assert "[Manager]\nDefaultLimitCORE=0:0\n" in manager  # systemd-system.conf(5): soft:hard
    coredump = render_baseline.coredump_conf()
    assert "[Coredump]\nStorage=none\nProcessSizeMax=0\n" in coredump  # coredump.conf(5)


def test_hidepid_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    unit = tmp_path / "hcs-hidepid.service"
    unit.write_text(render_baseline.hidepid_unit())
    done = subprocess.run([tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    start = re.search(r"(?m)^ExecStart=(.*)$", unit.read_text())
    assert start and "mount -o remount,hidepid=invisible,gid=$(getent group hcs-proc" in start[1]
    assert "SupplementaryGroups=hcs-proc\n" in render_baseline.logind_drop_in()


def test_banners_name_no_system_and_sshd_serves_one(tmp_path: Path) -> None:
    text = render_baseline.issue()
    # CIS: no \m \r \s \v escapes (machine, release, OS, version) and no OS name in the banner.
    assert not re.search(r"\\[mrsv]", text) and "debian" not in text.lower() and "authorised" in text.lower()
    s = sample.settings(vmDebianRelease="12")
    port = free_port()
    main = sshd_config(tmp_path, render.sshd_hardening(s.topology, s.host.debian), port)
    effective = subprocess.run([tool("sshd"), "-T", "-f", str(main), "-C", "user=deploy,host=admin.example.com,addr=198.51.100.7"],
                               check=True, capture_output=True, text=True).stdout
    assert dict(line.split(" ", 1) for line in effective.splitlines())["banner"] == "/etc/issue.net"
    # The identification string a scanner reads first: OpenSSH's version without Debian's package release.
    sshd = subprocess.Popen([tool("sshd"), "-D", "-e", "-f", str(main)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    ident = conn.makefile("rb").readline().decode().strip()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.1)
    finally:
        sshd.terminate()
        sshd.wait()
    assert re.fullmatch(r"SSH-2\.0-OpenSSH_[0-9.]+p[0-9]+", ident), ident


def test_audit_rules_watch_what_the_baselines_name() -> None:
    """Written from CIS Debian 4.1.3 (identity, sudoers, time, modules, -e 2) and the design (the IDE
    user's commands by uid, the proxy stack, code-server's unit); the rules' syntax is checked by
    the VM's own auditctl on the demo (tests/demo/test_baseline.py)."""
    s = sample.settings()
    (step,) = [st for st in host_steps(s.topology, s.host) if st.name == "audit"]
    files = {f.path: f for f in step.files}
    rules = files[render_baseline.AUDIT_RULES].content.splitlines()
    watched = {(line.split()[1], line.split()[-1]) for line in rules if line.startswith("-w ") and " -p wa " in line}
    for path, key in (("/etc/passwd", "identity"), ("/etc/shadow", "identity"), ("/etc/group", "identity"), ("/etc/gshadow", "identity"),
                      ("/etc/sudoers", "privilege"), ("/etc/sudoers.d", "privilege"), ("/etc/ssh/sshd_config.d", "sshd"),
                      ("/opt/code-server/docker", "hcs-proxy-stack"), ("/etc/code-server", "hcs-code-server"),
                      ("/etc/systemd/system/code-server@.service.d", "hcs-code-server"), ("/etc/localtime", "time-change")):
        assert (path, key) in watched, (path, key)
    syscalls = [line for line in rules if line.startswith("-a always,exit ")]
    for arch in ("b64", "b32"):
        assert f"-a always,exit -F arch={arch} -S execve,execveat -F uid=coder -k hcs-ide-exec" in syscalls
        assert f"-a always,exit -F arch={arch} -S execve,execveat -F auid>=1000 -F auid!=unset -k admin-exec" in syscalls
        assert any(f"arch={arch} " in line and "finit_module" in line and line.endswith("-k modules") for line in syscalls)
        assert any(f"arch={arch} " in line and "settimeofday" in line and line.endswith("-k time-change") for line in syscalls)
    # Locked once loaded; augenrules puts -e last whatever the file's name, the name keeps it last too.
    assert [line for line in files[render_baseline.AUDIT_FINALIZE].content.splitlines() if not line.startswith("#")] == ["-e 2"]
    assert {(f.owner, f.mode) for f in files.values()} == {("root", "0640")}


def test_wazuh_ships_the_audit_log_and_the_package_log() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(render.wazuh_agent(sample.settings().topology))
    shipped = {(lf.findtext("log_format"), lf.findtext("location")) for lf in root.iter("localfile")}
    assert {("audit", "/var/log/audit/audit.log"), ("syslog", "/var/log/dpkg.log")} <= shipped


def test_needrestart_lists_and_restarts_nothing(tmp_path: Path) -> None:
    """perl (needrestart's configuration is Perl, read with `do`) evaluates the file: restart mode `l`, list only."""
    conf = tmp_path / "90-hcs.conf"
    conf.write_text(render_baseline.needrestart_conf())
    done = subprocess.run([tool("perl"), "-e", 'our %nrconf; do $ARGV[0] or die "$@$!"; print $nrconf{restart}', str(conf)],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "l"), done.stderr


def test_the_proc_group_is_refused_as_a_stack_account() -> None:
    """The baseline step creates the group on every VM: a stack naming it as an account would rewrite it."""
    from components.settings.accounts import SYSTEM_NAMES

    assert render_baseline.PROC_GROUP in SYSTEM_NAMES


def test_a_team_audits_every_command_of_the_workspace_uid_range() -> None:
    """One rule per architecture for all workspace accounts (`UID_RANGE`, both ends included): the
    locked rule set (`-e 2`) never needs a reboot when a workspace is added."""
    from components.settings.workspaces import UID_RANGE

    rules = render_baseline.audit_rules(UID_RANGE, "/opt/code-server/docker", "/etc/code-server").splitlines()
    exec_rules = [line for line in rules if line.endswith("-k hcs-ide-exec")]
    assert exec_rules == [f"-a always,exit -F arch={arch} -S execve,execveat -F uid>=20000 -F uid<=29999 -k hcs-ide-exec"
                          for arch in ("b64", "b32")]
    single = render_baseline.audit_rules("coder", "/opt/code-server/docker", "/etc/code-server").splitlines()
    # the rest as the single user's, but the units watched as a whole: a workspace's drop-in needs no rule of its own
    units = "-w /etc/systemd/system/code-server@.service.d -p wa -k hcs-code-server"
    assert [line for line in rules if not line.endswith("-k hcs-ide-exec")] == [
        line.replace(units, "-w /etc/systemd/system -p wa -k hcs-code-server") for line in single if not line.endswith("-k hcs-ide-exec")]
