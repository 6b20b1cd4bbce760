"""The program's own remote commands, run twice over real SSH on a fresh Debian 13 root.

The commands come from the mocked resource graph of `DmzHost` (their `create`/`stdin` inputs and
dependencies), so what is tested is exactly what `pulumi up` would send. The first converge must
produce the design's accounts, ownership map, sshd, firewall and services; the second must report
no change and leave every managed file byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.settings import ConfigError
from scripts.lab.converge import sample
from scripts.lab.converge.realhost import HostUnderTest, host_under_test
from scripts.lab.vm.netns import ns_exec
from scripts.lab.vm.runner import StepFailed, order_steps, run_steps
from tests.host.audit import KEX, findings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def host() -> Iterator[HostUnderTest]:
    with host_under_test() as h:
        yield h


@pytest.fixture(scope="module")
def converged(host: HostUnderTest) -> dict[str, object]:
    """Refuse a wrong package first (fresh root), then converge twice; keep what each run printed."""
    runner = host.root.runner()
    # The packages step of a stack that says Debian 12, on this Debian 13 root: refused before it writes.
    other = {s.name: s for s in host.steps(vmDebianRelease="12")}
    wrong_release = None
    try:
        run_steps(runner, [other["vm-packages"]])
    except StepFailed as failure:
        wrong_release = failure
    written_after_wrong_release = host.root.chroot_run(["ls", "/etc/docker/daemon.json", "/etc/ulogd.conf"], check=False).returncode
    # The code-server step with a digest that does not match the served package, alone on the fresh root.
    bad = {s.name: s for s in host.steps(codeServerSha256="0" * 64)}
    refused = None
    try:
        run_steps(runner, [s for s in order_steps(list(bad.values())) if s.name in ("vm-packages", "vm-accounts", "vm-layout", "vm-baseline", "vm-code-server")])
    except StepFailed as failure:
        refused = failure
    installed_after_refusal = host.root.chroot_run(["dpkg-query", "-W", "code-server"], check=False).returncode
    first, _ = host.converge(runner)
    files = host.managed_files()
    before = host.snapshot(files)
    host.root.restart_sshd()  # as a reboot would: the hardened config must still admit the admin
    second, _ = host.converge(host.root.runner())
    return {"wrong_release": wrong_release, "written_after_wrong_release": written_after_wrong_release,
            "refused": refused, "installed_after_refusal": installed_after_refusal, "first": first,
            "second": second, "before": before, "after": host.snapshot(files)}


def sh(host: HostUnderTest, script: str) -> str:
    return host.root.chroot_run(["/bin/bash", "-c", script]).stdout


def test_wrong_checksum_is_refused(converged: dict) -> None:
    failure = converged["refused"]
    assert failure is not None and failure.step.name == "vm-code-server"
    assert "SHA-256 mismatch" in failure.result.stderr and "package refused" in failure.result.stderr
    assert converged["installed_after_refusal"] != 0  # dpkg does not know code-server


def test_a_vm_of_another_release_is_refused_before_anything_changes(converged: dict) -> None:
    failure = converged["wrong_release"]
    assert failure is not None and failure.step.name == "vm-packages"
    assert "this VM runs Debian 13 but vmDebianRelease is 12" in failure.result.stderr
    assert converged["written_after_wrong_release"] != 0  # neither file was written


def test_second_converge_changes_nothing(converged: dict) -> None:
    first = {r.name: r.result.stdout for r in converged["first"]}
    # accounts and layout already ran in the refusal check; every later step had work to do.
    assert all("changed: " in first[n] for n in ("vm-sshd", "vm-fail2ban", "vm-code-server", "vm-backup", "vm-firewall"))
    for run in converged["second"]:
        assert "changed: " not in run.result.stdout, (run.name, run.result.stdout)
        assert run.result.stdout.strip().endswith(": unchanged"), run.name
    assert converged["after"] == converged["before"]


def test_ownership_map(host: HostUnderTest, converged: dict) -> None:
    snap = converged["after"]
    expected = {
        "/opt/code-server/docker": "codesvc:codesvc:750",
        "/opt/code-server/docker/.env": "codesvc:codesvc:640",
        "/home/coder": "coder:coder:750",
        "/home/coder/workspace": "coder:coder:700",
        "/mnt/cs-workspace-volume": "coder:coder:700",
        # root's: the IDE user cannot change where code-server listens
        "/etc/code-server/hcs.yaml": "root:root:644",
        "/run/hcs-oauth2-proxy": "codesvc:codesvc:750",
        "/etc/tmpfiles.d/hcs-sockets.conf": "root:root:644",
        "/etc/restic/hcs-backup.password": "root:root:600",
        "/etc/restic/hcs-backup.repository": "root:root:600",
        "/etc/restic/hcs-backup.env": "root:root:600",
    }
    for path, meta in expected.items():
        assert snap[path].split()[-1] == meta, path


def test_accounts(host: HostUnderTest, converged: dict) -> None:
    svc = sh(host, "getent passwd codesvc").strip().split(":")
    assert svc[5] == "/nonexistent" and svc[6] == "/usr/sbin/nologin" and int(svc[2]) < 1000
    assert sh(host, "id -nG codesvc").split() == ["codesvc"]  # docker membership is root-equivalent
    assert sh(host, "test ! -e /nonexistent && echo absent").strip() == "absent"
    ide = sh(host, "getent passwd coder").strip().split(":")
    assert ide[5] == "/home/coder" and ide[6] == "/bin/bash"
    assert sh(host, "id -nG coder").split() == ["coder"]
    assert "deploy" in sh(host, "getent group sshadmins")
    assert {"sshadmins", "docker"} <= set(sh(host, "id -nG deploy").split())  # Docker provider over SSH
    for user in ("codesvc", "coder"):
        assert "not allowed" in sh(host, f"sudo -l -U {user}")
    assert sh(host, "passwd -S root").split()[1] == "L"


def test_every_account_and_group_of_the_converged_root_is_refused_as_a_stack_account(host: HostUnderTest, converged: dict) -> None:
    """The oracle is the converged Debian 13 root's own /etc/passwd and /etc/group (base-passwd,
    sysusers.d, every package the steps installed), not the settings' list."""
    names = {line.split(":")[0] for path in ("/etc/passwd", "/etc/group")
             for line in sh(host, f"cat {path}").splitlines() if line}
    ours = {"deploy", "codesvc", "coder", "sshadmins"}  # the stack's own, made by the accounts step
    assert {"ulog", "_ssh", "docker", "systemd-network"} <= names
    accepted = []
    for name in sorted(names - ours - {"root"}):
        try:
            sample.settings(ideUser=name)
        except ConfigError:
            continue
        accepted.append(name)
    assert accepted == []


def test_sshd_effective_config_and_audit(host: HostUnderTest, converged: dict) -> None:
    out = host.root.runner().run("sudo -n sshd -T -C user=deploy,host=admin,addr=198.51.100.7")
    conf = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert conf["passwordauthentication"] == "no" and conf["permitrootlogin"] == "no"
    assert conf["kbdinteractiveauthentication"] == "no" and conf["allowgroups"] == "sshadmins"
    assert conf["allowtcpforwarding"] == "no" and conf["maxauthtries"] == "3"
    assert conf["kexalgorithms"] == KEX[13]
    # ssh-audit from inside the VM namespace (loopback: UFW admits SSH only from management subnets).
    audit = subprocess.run(ns_exec(host.root.vm_namespace, [str(Path(sys.executable).parent / "ssh-audit"), "-j", "127.0.0.1"]),
                           capture_output=True, text=True, timeout=120)
    assert audit.stdout.strip(), audit.stderr
    assert findings(json.loads(audit.stdout), 13) == []


def test_firewall(host: HostUnderTest, converged: dict) -> None:
    status = host.root.runner().run("sudo -n ufw status verbose").stdout
    # "disabled (routed)": the VM does not forward at all, stricter than a deny policy.
    assert "Status: active" in status and "deny (incoming), deny (outgoing)" in status
    assert "deny (routed)" in status or "disabled (routed)" in status
    # SSH from a management address works (the runner), from another neighbour it is dropped.
    outsider = host.root.runner(source_address="192.0.2.5").with_target(connect_timeout=3)
    assert outsider.run("true").exit_code == 255
    # The gateway port: refused (allowed, nothing listens) from the front proxy, dropped otherwise.
    front = host.root.peer_run(["curl", "-sS", "--max-time", "3", "--interface", "192.0.2.5", "http://192.0.2.10:8880/"])
    other = host.root.peer_run(["curl", "-sS", "--max-time", "3", "--interface", "198.51.100.7", "http://192.0.2.10:8880/"])
    assert front.returncode == 7 and other.returncode == 28
    # ufw ran its after.init hook on enable: code-server's port is open to two uids only; off the VM
    # the IDE user has no flow at all; both chains first in OUTPUT, in both families.
    uid = {user: sh(host, f"id -u {user}").strip() for user in ("codesvc", "coder")}
    loopback = sh(host, "iptables -S hcs-loopback")
    code_server = {line.split("--uid-owner ")[1].split()[0] for line in loopback.splitlines()
                   if "--dport 8080" in line and "-j RETURN" in line}
    assert code_server == set(uid.values()) and "--dport 8080 --tcp-flags FIN,SYN,RST,ACK SYN -j hcs-refused" in loopback, loopback
    egress = sh(host, "iptables -S hcs-egress")
    opened = {line.split("--uid-owner ")[1].split()[0] for line in egress.splitlines() if "-j RETURN" in line and "--uid-owner" in line}
    assert uid["codesvc"] in opened and "0" in opened and uid["coder"] not in opened, egress
    assert egress.splitlines()[-1] == "-A hcs-egress -j hcs-refused", egress
    for family in ("iptables", "ip6tables"):
        assert sh(host, f"{family} -S OUTPUT").splitlines()[1:3] == ["-A OUTPUT -o lo -j hcs-loopback", "-A OUTPUT ! -o lo -j hcs-egress"]


def test_service_configs_pass_their_tools(host: HostUnderTest, converged: dict) -> None:
    assert host.root.chroot_run(["fail2ban-client", "-t"], check=False).returncode == 0
    verify = host.root.chroot_run(["systemd-analyze", "verify", "/etc/systemd/system/hcs-backup.service",
                                   "/etc/systemd/system/hcs-backup.timer", "/lib/systemd/system/code-server@.service"], check=False)
    assert verify.returncode == 0, verify.stderr
    score = host.root.chroot_run(["systemd-analyze", "security", "--offline=yes", "--no-pager", "code-server@coder.service"], check=False)
    exposure = float(score.stdout.split("Overall exposure level for code-server@coder.service:")[1].split()[0])
    assert exposure <= 4.0
    enabled = sh(host, "systemctl is-enabled code-server@coder.service hcs-backup.timer fail2ban.service docker.service")
    assert enabled.split() == ["enabled"] * 4
    assert sh(host, "cat /etc/code-server/hcs.yaml").count("127.0.0.1:8080") == 1
    # systemd's merged unit on the converged root: the packaged ExecStart replaced by --config
    merged = sh(host, "systemd-analyze cat-config systemd/system/code-server@.service")
    assert [l for l in merged.splitlines() if l.startswith("ExecStart=")][-2:] == ["ExecStart=", "ExecStart=/usr/bin/code-server --config /etc/code-server/hcs.yaml"]
    # the socket directory comes back after a reboot: tmpfiles recreates it on an emptied /run
    sh(host, "rm -rf /run/hcs-oauth2-proxy && systemd-tmpfiles --create /etc/tmpfiles.d/hcs-sockets.conf")
    assert sh(host, "stat -c %U:%G:%a /run/hcs-oauth2-proxy").strip() == "codesvc:codesvc:750"
