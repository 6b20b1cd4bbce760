"""The real-root fixture itself: real SSH with a pinned host key, sudo, isolation, teardown.

Everything here talks to a real sshd in a fresh Debian 13 root through real network namespaces;
nothing is mocked. These tests are what the host-hardening and live-path tests stand on.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.lab.vm.machine import RealRoot
from scripts.lab.vm.netns import existing_namespaces
from scripts.lab.vm.prereq import RealRootError
from scripts.lab.vm.runner import SshRunner, Step, StepFailed, run_steps

pytestmark = pytest.mark.slow


def test_admin_logs_in_with_the_pinned_host_key(realroot: RealRoot, ssh_runner: SshRunner) -> None:
    result = ssh_runner.run("id -un; id -Gn; hostname")
    assert result.ok, result.stderr
    user, groups, hostname = result.stdout.split("\n")[:3]
    assert (user, hostname) == ("deploy", "hcs-vm")
    assert "sshadmins" in groups.split()
    assert ssh_runner.sessions == 1
    assert "Accepted publickey for deploy from 198.51.100.7" in realroot.sshd_log()
    assert realroot.known_hosts.read_text() == f"192.0.2.10 {realroot.host_key}\n"
    assert realroot.host_key.startswith("ssh-ed25519 AAAA")


def test_a_different_host_key_is_refused(realroot: RealRoot, tmp_path: Path) -> None:
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"192.0.2.10 {' '.join(Path(f'{impostor}.pub').read_text().split()[:2])}\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    for known_hosts in (wrong, empty):  # a changed key, and no trust on first use either
        result = realroot.runner(known_hosts_file=known_hosts).run("touch /tmp/host-key-check-bypassed")
        assert result.exit_code == 255
        assert "Host key verification failed" in result.stderr
    assert not (realroot.path / "tmp/host-key-check-bypassed").exists()


def test_only_the_admin_key_and_user_get_in(ssh_runner: SshRunner) -> None:
    as_root = ssh_runner.with_target(user="root").run("true")
    assert as_root.exit_code == 255 and "Permission denied (publickey" in as_root.stderr
    assert ssh_runner.sessions == 0 and ssh_runner.run("true").ok


def test_sudo_works_without_a_password_or_terminal(ssh_runner: SshRunner) -> None:
    result = ssh_runner.run("sudo -n id -u && sudo -n cat /etc/shadow >/dev/null && echo readable")
    assert result.ok, result.stderr
    assert result.stdout.split() == ["0", "readable"]


def test_stdin_reaches_the_command(ssh_runner: SshRunner) -> None:
    result = ssh_runner.run("sha256sum", stdin="not a real secret\n")
    expected = subprocess.run(["sha256sum"], input=b"not a real secret\n", capture_output=True, check=True)
    assert result.stdout == expected.stdout.decode()


def test_the_root_is_prepared_like_a_vm_without_systemd(realroot: RealRoot, ssh_runner: SshRunner) -> None:
    result = ssh_runner.run(
        "/usr/sbin/policy-rc.d; echo policy=$?; test -d /run/systemd/system; echo systemd=$?;"
        " test -d /run/sshd && echo run-sshd; ps -o args= -p 1"
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == ["policy=101", "systemd=1", "run-sshd"]
    # Own pid namespace (pid 1 is the root's init): pkill/ps inside cannot see or hit host processes.
    assert "scripts.lab.vm.nsinit" in lines[3]
    assert realroot.chroot_run(["/usr/sbin/sshd", "-t"]).returncode == 0


def test_steps_run_in_dependency_order_and_a_failure_hides_stdin(ssh_runner: SshRunner) -> None:
    steps = [
        Step("users", "echo users >> /tmp/order", depends_on=("packages",)),
        Step("packages", "echo packages >> /tmp/order; cat >/dev/null", stdin="fine"),
        Step("report", "cat /tmp/order", depends_on=("users", "packages")),
    ]
    runs = run_steps(ssh_runner, steps)
    assert [run.name for run in runs] == ["packages", "users", "report"]
    assert runs[-1].result.stdout.split() == ["packages", "users"]
    assert ssh_runner.sessions == 3

    secret = "s3cr3t-value-that-must-not-leak"
    failing = [Step("ok", "true"), Step("breaks", "cat >/dev/null; echo broken >&2; exit 3", stdin=secret,
                                        depends_on=("ok",)), Step("never", "touch /tmp/never", depends_on=("breaks",))]
    with pytest.raises(StepFailed) as caught:
        run_steps(ssh_runner, failing)
    message = str(caught.value)
    assert "'breaks'" in message and "exit code 3" in message and "broken" in message
    assert secret not in message and secret not in repr(caught.value.step)
    assert ssh_runner.run("test -e /tmp/never").exit_code == 1


@pytest.fixture
def host_loopback_listener() -> Iterator[int]:
    """A TCP listener on the host's 127.0.0.1 (outside every test namespace)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_the_namespaces_cannot_reach_the_host_loopback(realroot: RealRoot, ssh_runner: SshRunner,
                                                       host_loopback_listener: int) -> None:
    port = host_loopback_listener
    with socket.create_connection(("127.0.0.1", port), timeout=3):  # control: reachable from the host
        pass
    probe = f"curl -sS --max-time 3 -o /dev/null http://127.0.0.1:{port}/; echo exit=$?"
    from_vm = ssh_runner.run(probe)
    from_peer = realroot.peer_run(["sh", "-c", probe])
    for output in (from_vm.stdout, from_peer.stdout):
        assert "exit=7" in output  # curl: could not connect (refused: nothing listens there)


def test_the_vm_downloads_from_the_peer_file_server(realroot: RealRoot, ssh_runner: SshRunner,
                                                    tmp_path: Path) -> None:
    (tmp_path / "pkg.deb").write_bytes(b"fake package\n")
    served = realroot.serve_directory(tmp_path)
    assert served.url.startswith("http://192.0.2.5:")
    result = ssh_runner.run(f"curl -fsS {served.url}pkg.deb; curl -fsS -o /dev/null {served.url}missing; echo exit=$?")
    assert result.stdout == "fake package\nexit=22\n"
    requests = [(r.client, r.method, r.path, r.status) for r in served.requests()]
    assert requests == [("192.0.2.10", "GET", "/pkg.deb", 200), ("192.0.2.10", "GET", "/missing", 404)]


def test_a_service_runs_unprivileged_from_a_read_only_bind_mount(realroot: RealRoot, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("served from the root\n")
    realroot.bind_mount(site, "/srv/site")
    server = realroot.chroot_spawn(["python3", "-m", "http.server", "--bind", "192.0.2.10", "8080",
                                    "--directory", "/srv/site"], user="nobody")
    realroot.wait_for_listener(8080, address="192.0.2.10")
    fetched = realroot.peer_run(["curl", "-fsS", "--interface", "192.0.2.5", "http://192.0.2.10:8080/index.html"])
    assert fetched.stdout == "served from the root\n"
    owner = realroot.chroot_run(["ps", "-o", "user=", "-C", "python3"]).stdout.split()
    assert owner == ["nobody"]
    write = realroot.chroot_run(["touch", "/srv/site/new"], check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    server.stop()
    assert not server.running()


def test_restart_sshd_applies_the_roots_own_configuration(realroot_factory: Callable[..., RealRoot]) -> None:
    root = realroot_factory(ssh_port=2222, admin_user="ops", admin_group="admins")
    runner = root.runner()
    assert runner.run("id -un").stdout == "ops\n"
    assert root.known_hosts.read_text().startswith("[192.0.2.10]:2222 ssh-ed25519 ")
    dropin = root.path / "etc/ssh/sshd_config.d/00-test.conf"
    dropin.write_text("AllowGroups nobody-is-in-this-group\n")
    root.restart_sshd()
    refused = runner.run("true")
    assert refused.exit_code == 255 and "Permission denied" in refused.stderr
    dropin.write_text("AllowGroups admins\n")
    root.restart_sshd()
    assert runner.run("true").ok
    dropin.write_text("NoSuchOption yes\n")
    with pytest.raises(RealRootError, match="NoSuchOption"):
        root.restart_sshd()


def test_teardown_leaves_no_namespace_process_or_mount(realroot_factory: Callable[..., RealRoot]) -> None:
    root = realroot_factory()
    namespaces = (root.vm_namespace, root.peer_namespace)
    sleeper = root.chroot_spawn(["sleep", "600"])
    inside = root.workdir / "root"
    root_mounts = Path(f"/proc/{root.init_pid}/mountinfo").read_text()
    assert f" {inside} " in root_mounts and f" {inside}/proc " in root_mounts
    assert str(inside) not in Path("/proc/self/mountinfo").read_text()  # never mounted on the host
    assert set(namespaces) <= set(existing_namespaces())
    assert (root.path / "etc/debian_version").read_text().startswith("13.")  # the default release: Debian 13
    root.close()
    assert not set(namespaces) & set(existing_namespaces())
    assert not sleeper.running()
    assert not Path(f"/proc/{root.init_pid}").exists()
    assert not root.path.exists() and not inside.exists()
