"""The Docker provider's ssh options, used by the real OpenSSH client against a real sshd on loopback.

pulumi-docker runs `ssh <ssh_opts> -p PORT USER@HOST docker system dial-stdio`; here the same
options carry a harmless command instead. The key is loaded into an ssh-agent from stdin exactly
as the README tells deployers (`… | ssh-add -`), so no private key file is used by the client.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.gateway import docker_ssh
from components.settings.topology import VmSettings

pytestmark = pytest.mark.slow


@dataclass
class Server:
    port: int
    host_key: str
    other_key: str
    env: dict[str, str]
    control_dir: Path


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sshd")
    host_key = keygen(tmp / "host")
    other_key = keygen(tmp / "other")
    keygen(tmp / "admin")
    (tmp / "authorized_keys").write_text((tmp / "admin.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "sshd_config").write_text(
        f"HostKey {tmp / 'host'}\nPidFile {tmp / 'sshd.pid'}\nUsePAM no\nStrictModes no\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(tmp / "sshd_config"), "-p", str(port), "-o", "ListenAddress=127.0.0.1"],
                            stderr=subprocess.DEVNULL)
    agent_sock = tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_sock)], stdout=subprocess.DEVNULL)
    env = {**os.environ, "SSH_AUTH_SOCK": str(agent_sock)}
    try:
        deadline = time.monotonic() + 10
        while not agent_sock.exists() or not _listening(port):
            assert time.monotonic() < deadline, "sshd or ssh-agent did not start"
            time.sleep(0.05)
        # the deployer's one-liner, with the key on stdin instead of `pulumi config get`
        subprocess.run(["ssh-add", "-"], input=(tmp / "admin").read_text(), text=True, env=env, check=True, capture_output=True)
        (tmp / "cm").mkdir()
        yield Server(port, host_key, other_key, env, tmp / "cm")
    finally:
        for sock in (tmp / "cm").glob("*") if (tmp / "cm").exists() else []:
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, env=env)
        sshd.terminate()
        agent.terminate()
        sshd.wait(10)
        agent.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def run_ssh(server: Server, host_key: str, control: str) -> subprocess.CompletedProcess[str]:
    vm = VmSettings(ipaddress.ip_address("127.0.0.1"), server.port, "root", host_key, None)
    assert docker_ssh.docker_host(vm) == f"ssh://root@127.0.0.1:{server.port}"
    opts = docker_ssh.ssh_options(vm, control_path=str(server.control_dir / control))
    # what docker's connection helper runs for ssh://root@127.0.0.1:PORT
    argv = ["ssh", *opts, "-p", str(server.port), "--", "root@127.0.0.1", "echo", "dial-stdio-would-run-here"]
    return subprocess.run(argv, capture_output=True, text=True, env=server.env, timeout=60)


def test_pinned_host_key_and_agent_key_connect(server: Server) -> None:
    result = run_ssh(server, server.host_key, "ok-%C")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "dial-stdio-would-run-here"
    # the shared connection exists, so parallel sessions reuse one TCP/SSH connection
    assert any(server.control_dir.glob("ok-*"))
    again = run_ssh(server, server.host_key, "ok-%C")
    assert again.returncode == 0, again.stderr


def test_any_other_host_key_is_refused(server: Server) -> None:
    result = run_ssh(server, server.other_key, "bad-%C")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert "dial-stdio-would-run-here" not in result.stdout


def test_known_hosts_line_forms() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcXOcqc7Ue0zSkgIV7WhVKp0fHHTmoVBaWjC4O1lTF3"
    address = ipaddress.ip_address("192.0.2.10")
    assert docker_ssh.known_hosts_line(VmSettings(address, 22, "deploy", key, None)) == f"192.0.2.10 {key}"
    assert docker_ssh.known_hosts_line(VmSettings(address, 2222, "deploy", key, None)) == f"[192.0.2.10]:2222 {key}"
