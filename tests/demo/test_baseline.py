"""The auditor's baseline on the booted demo VM: hidepid, no core dumps, banners, and what of the
sysctls a container VM can show.

Expectations are written from the design (components/host/render_baseline.py's intent: each
account sees its own processes, no core file anywhere, a banner before authentication), not read
back from the renderer. The demo VM is a container: its kernel is this machine's and /proc/sys is
read-only inside (nspawn), so no sysctl can apply there; the test checks the VM says so and that
the values are the kernel's, never half-applied (the sysctls themselves are proven in a network
namespace by tests/host/test_render_baseline.py).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import Browser

from scripts.lab.demo import demo
from scripts.lab.demo.attacker import IDE_USER, start_agent
from scripts.lab.vm.netns import ns_exec

pytestmark = pytest.mark.slow

SERVICE_USER = "codesvc"  # Pulumi.yaml's default serviceUser


def test_proc_shows_each_account_its_own_processes(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    gid = vm.chroot_run(["getent", "group", "hcs-proc"]).stdout.split(":")[2]
    options = vm.chroot_run(["findmnt", "-n", "-o", "OPTIONS", "/proc"]).stdout.strip().split(",")
    assert "hidepid=invisible" in options and f"gid={gid}" in options, options
    # The admin over SSH (a PAM session, no privilege used): its own processes only.
    seen = vm.runner().run("ps -eo user= | sort -u")
    assert seen.ok and seen.stdout.split() == [vm.admin_user], seen
    # root sees every account (Docker, sshd and the agents run as root), the containers still run.
    everyone = set(vm.chroot_run(["ps", "-eo", "user="]).stdout.split())
    assert {"root", SERVICE_USER, IDE_USER} <= everyone, everyone
    running = {c.name for c in booted_demo.docker().containers.list()}
    assert {"caddy-gateway", "oauth2-proxy"} <= running
    assert vm.systemctl("is-active", "hcs-hidepid.service") == "active"


def test_no_core_dumps_for_sessions_and_units(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    assert vm.systemctl("show", "-p", "DefaultLimitCORE", "--value") == "0"
    pid = vm.systemctl("show", "-p", "MainPID", "--value", f"code-server@{IDE_USER}.service")
    limit = re.search(r"(?m)^Max core file size\s+(\S+)\s+(\S+)", vm.chroot_run(["cat", f"/proc/{pid}/limits"]).stdout)
    assert limit and limit.groups() == ("0", "0"), limit
    # An SSH login (PAM's limits) cannot raise it either.
    session = vm.runner().run("ulimit -Hc; ulimit -c unlimited 2>&1; echo rc=$?")
    assert session.stdout.splitlines()[0] == "0" and "rc=0" not in session.stdout, session


def test_sysctls_on_a_container_vm_are_the_kernels(booted_demo: demo.Demo) -> None:
    """The file is in place for the next boot of a real VM; in the container every value is the
    kernel's own because /proc/sys is read-only, which the VM shows (systemd-sysctl.service does not start)."""
    vm = booted_demo.vm
    text = vm.chroot_run(["cat", "/etc/sysctl.d/90-hcs-baseline.conf"]).stdout
    wanted = dict(re.findall(r"(?m)^([a-z0-9_.]+) = (\S+)$", text))
    assert "kernel.kptr_restrict" in wanted and "net.ipv4.conf.all.rp_filter" in wanted
    assert "ro" in vm.chroot_run(["findmnt", "-n", "-o", "OPTIONS", "--target", "/proc/sys"]).stdout.strip().split(",")
    condition = vm.systemctl("show", "-p", "ConditionResult", "--value", "systemd-sysctl.service")
    assert condition == "no", condition
    # Nothing the VM's root can write there, whatever the value: the kernel is this machine's.
    refused = vm.chroot_run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/tcp_rfc1337"], check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_banner_before_authentication(booted_demo: demo.Demo) -> None:
    """From the VM's own loopback, as ssh-audit does: sshd's per-source penalties (OpenSSH 9.8+) would
    otherwise hold the management address the converge uses after a connection that never logs in."""
    vm = booted_demo.vm
    # No key offered (method "none"): sshd shows the banner, then refuses.
    done = subprocess.run(ns_exec(vm.vm_namespace, [
        "ssh", "-F", "none", "-o", "PreferredAuthentications=none", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "LogLevel=INFO", "-p", str(vm.port), "nobody@127.0.0.1", "true"]), capture_output=True, text=True, timeout=30)
    assert done.returncode == 255 and "Authorised use only." in done.stderr, done.stderr
    # The identification string, read as a scanner does.
    read = ("import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10); "
            "print(s.makefile('rb').readline().decode().strip())")
    ident = subprocess.run(ns_exec(vm.vm_namespace, [sys.executable, "-c", read, str(vm.port)]), capture_output=True, text=True, timeout=30).stdout
    assert ident.startswith("SSH-2.0-OpenSSH_") and "Debian" not in ident, ident


def test_the_ide_terminal_gets_no_core_and_sees_only_its_own(running_demo: demo.Demo, browser: Browser) -> None:
    """From the IDE's own terminal: the hard core limit is 0, a crash leaves no core file, and /proc
    lists no other account's process (hidepid for the VM; the unit's ProtectProc for code-server)."""
    agent = start_agent(running_demo, browser)
    limits = agent.run("sh", "-c", "ulimit -c; ulimit -Hc; ulimit -c unlimited; echo rc=$?")
    assert limits["stdout"].splitlines()[:2] == ["0", "0"] and "rc=0" not in limits["stdout"], limits
    crash = agent.run("sh", "-c", "cd ~ && python3 -c 'import os; os.abort()'; echo rc=$?; ls ~ | grep -c '^core' || true")
    assert "rc=134" in crash["stdout"] and crash["stdout"].split()[-1] == "0", crash
    pids = agent.run("sh", "-c", "ls -d /proc/[0-9]* | wc -l; ps -eo user= | sort -u")["stdout"].split()
    assert pids[1:] == [IDE_USER], pids


#: auditctl's lines when the kernel refuses a request it parsed (the VM is not in the kernel's
#: initial pid namespace), and its note on -w rules; anything else is a complaint about the rule.
KERNEL_REFUSAL = re.compile(r"^(Error sending .* request \(Operation not permitted\)|There was an error while processing parameters"
                            r"|Old style watch rules are slower)$")


def test_audit_rules_compiled_and_parsed_by_the_vms_auditctl(booted_demo: demo.Demo) -> None:
    """The VM's own auditctl reads every line of the compiled rules (its users, its syscall table);
    the kernel refuses each only because the VM is a container, and the VM says so instead of a failed unit."""
    vm = booted_demo.vm
    compiled = [line for line in vm.chroot_run(["cat", "/etc/audit/audit.rules"]).stdout.splitlines() if line and not line.startswith("#")]
    assert "-a always,exit -F arch=b64 -S execve,execveat -F uid=coder -k hcs-ide-exec" in compiled
    assert "-w /etc/shadow -p wa -k identity" in compiled and compiled[-1] == "-e 2", compiled[-3:]
    assert "No change" in vm.chroot_run(["augenrules", "--check"]).stdout
    for line in compiled:
        said = vm.chroot_run(["auditctl", *line.split()], check=False)
        complaints = [m for m in (said.stdout + said.stderr).splitlines() if not KERNEL_REFUSAL.match(m)]
        assert not complaints and "Operation not permitted" in said.stderr, (line, said.stderr)
    # A rule auditctl cannot read is reported as such (the check above can fail).
    bad = vm.chroot_run(["auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "uid=nobody-here", "-k", "x"], check=False)
    assert [m for m in bad.stderr.splitlines() if not KERNEL_REFUSAL.match(m)] == ["Unknown user: nobody-here"], bad.stderr
    # The package change itself is on record where Wazuh's agent reads it (render.wazuh_agent's localfile).
    assert re.search(r"(?m) status installed auditd:amd64 ", vm.chroot_run(["cat", "/var/log/dpkg.log"]).stdout)
    # Debian 13 ships audit-rules.service beside auditd.service; Debian 12 only the latter.
    units = ["auditd.service"] + (["audit-rules.service"] if booted_demo.state.release == 13 else [])
    for unit in units:
        assert vm.systemctl("is-enabled", unit) == "disabled" and vm.systemctl("is-failed", unit) != "failed", unit
    assert vm.systemctl("is-system-running") == "running"


def test_sessions_get_a_private_tmp_and_needrestart_only_lists(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    session = vm.runner().run('echo "$TMPDIR"; stat -c %U:%a "$TMPDIR"')
    assert session.stdout.split() == [f"/tmp/user/{vm.chroot_run(['id', '-u', vm.admin_user]).stdout.strip()}", f"{vm.admin_user}:700"], session
    batch = vm.chroot_run(["needrestart", "-b"]).stdout
    assert batch.startswith("NEEDRESTART-VER:"), batch
    assert vm.chroot_run(["perl", "-e", 'our %nrconf; do "/etc/needrestart/needrestart.conf"; '
                          'do $_ for glob "/etc/needrestart/conf.d/*.conf"; print $nrconf{restart}']).stdout == "l"
