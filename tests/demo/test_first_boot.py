"""The demo VM is a VM the program created, trusted from its first boot (issue 32).

The demo stack has `vmProvider: proxmox` and no `vmHostKey`: the program generated the VM's host key,
rendered the user-data, and the demo VM booted from exactly that document (cloud-init's NoCloud
datasource, as a Proxmox clone reads its snippet). These tests read the result inside the VM and
show that the program's pin refuses a server presenting any other key before a command runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.lab.demo import demo
from scripts.lab.vm import nocloud
from scripts.lab.vm.machine import RootProcess
from scripts.lab.vm.runner import SshRunner, SshTarget

pytestmark = pytest.mark.slow

IMPOSTOR_PORT = 2222


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def program_pin(running: demo.Demo) -> str:
    """The host key every remote command of the program is pinned to (one key for all of them)."""
    pins = {r.values["connection"]["hostKey"] for r in running.plan.of_type("command:remote:Command")}
    assert len(pins) == 1, pins
    return pins.pop()


def test_the_vms_sshd_presents_the_programs_generated_key(running_demo: demo.Demo) -> None:
    vm, pin = running_demo.vm, program_pin(running_demo)
    assert "vmHostKey" not in running_demo.config.values and running_demo.config.values["vmProvider"] == "proxmox"
    assert pin == nocloud.pinned_host_key(demo.program_user_data(running_demo.plan))
    keys = sorted(p.name for p in (vm.path / "etc/ssh").glob("ssh_host_*"))
    assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    derived = vm.chroot_run(["ssh-keygen", "-y", "-f", "/etc/ssh/ssh_host_ed25519_key"]).stdout.split()[:2]
    assert " ".join(derived) == pin == vm.host_key


def test_the_admin_was_made_by_cloud_init_from_the_programs_user_data(running_demo: demo.Demo) -> None:
    vm, admin = running_demo.vm, running_demo.config.values["vmAdminUser"]
    user_data = demo.program_user_data(running_demo.plan)
    status = vm.chroot_run(["cloud-init", "status", "--long"]).stdout
    assert "status: done" in status and "DataSourceNoCloud" in status, status
    # `query` prints the document with print(): one newline more than it holds
    assert _sha256(vm.chroot_run(["cloud-init", "query", "userdata"]).stdout.removesuffix("\n")) == _sha256(user_data)
    assert _sha256(vm.chroot_run(["cat", nocloud.INSTANCE_USER_DATA]).stdout) == _sha256(user_data)
    # cloud-init's own records of the account (the demo wrote none: no provisioning script ran)
    assert f"{admin} ALL=(ALL) NOPASSWD:ALL" in vm.chroot_run(["cat", "/etc/sudoers.d/90-cloud-init-users"]).stdout
    assert not (vm.path / f"etc/sudoers.d/90-realroot-{admin}").exists()
    log = vm.chroot_run(["grep", "-c", f"Adding user {admin}", nocloud.LOG], check=False).stdout.strip()
    assert log == "1", f"cloud-init's log names the admin's creation {log} time(s)"


@pytest.fixture
def impostor(running_demo: demo.Demo) -> Iterator[str]:
    """A second sshd in the VM (the VM's own config and accounts) with a freshly generated host key, on
    127.0.0.1:IMPOSTOR_PORT (UFW admits loopback): a VM-like server presenting another key. Its public key."""
    vm = running_demo.vm
    vm.chroot_run(["sh", "-c", "install -d -m 700 /run/hcs-impostor && rm -f /run/hcs-impostor/key /run/hcs-impostor/key.pub"
                   " && ssh-keygen -q -t ed25519 -N '' -f /run/hcs-impostor/key"])
    log = Path(running_demo.workdir) / "impostor-sshd.log"
    with log.open("ab") as sink:
        popen = subprocess.Popen(vm.chroot_argv(["/usr/sbin/sshd", "-D", "-e", "-p", str(IMPOSTOR_PORT), "-o", "ListenAddress=127.0.0.1",
                                                 "-o", "HostKey=/run/hcs-impostor/key", "-o", "PidFile=/run/hcs-impostor/pid"]),
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    process = RootProcess(popen, log)
    public = " ".join(vm.chroot_run(["cat", "/run/hcs-impostor/key.pub"]).stdout.split()[:2])
    deadline = time.monotonic() + 20
    while public.split()[1] not in vm.chroot_run(["ssh-keyscan", "-p", str(IMPOSTOR_PORT), "-t", "ed25519", "127.0.0.1"], check=False).stdout:
        assert process.running() and time.monotonic() < deadline, f"the second sshd did not come up:\n{process.output()}"
        time.sleep(0.2)
    yield public
    process.stop()


def test_a_server_presenting_another_key_gets_no_command(running_demo: demo.Demo, impostor: str, tmp_path: Path) -> None:
    vm, pin = running_demo.vm, program_pin(running_demo)
    assert impostor != pin
    marker = "/var/tmp/hcs-impostor-ran"
    (vm.path / marker.lstrip("/")).unlink(missing_ok=True)
    pinned = tmp_path / "program_known_hosts"
    pinned.write_text(f"[127.0.0.1]:{IMPOSTOR_PORT} {pin}\n")
    target = SshTarget("127.0.0.1", IMPOSTOR_PORT, vm.admin_user, vm.admin_key, pinned, netns=vm.vm_namespace)
    refused = SshRunner(target).run(f"touch {marker}")
    assert refused.exit_code == 255 and "Host key verification failed" in refused.stderr, refused.stderr
    assert not (vm.path / marker.lstrip("/")).exists()
    # The same server, trusted under its own key, runs the command: the pin alone refused it above.
    own = tmp_path / "impostor_known_hosts"
    own.write_text(f"[127.0.0.1]:{IMPOSTOR_PORT} {impostor}\n")
    ran = SshRunner(dataclasses.replace(target, known_hosts_file=own)).run(f"touch {marker}")
    assert ran.ok, ran.stderr
    assert (vm.path / marker.lstrip("/")).exists()
    (vm.path / marker.lstrip("/")).unlink()
