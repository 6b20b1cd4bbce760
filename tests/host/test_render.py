"""The host renderers, checked by the tools that consume their output (no Pulumi, no VM).

sshd parses and resolves the drop-in (`sshd -t`, `sshd -T`) and a real sshd serving it is audited
with ssh-audit; fail2ban validates the jail and runs the gateway filter over lines a real Caddy
wrote; systemd-analyze scores the units offline. Tools missing on the machine fail the test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from components import layout
from components.host import render
from components.host.steps import host_steps
from scripts.lab.converge import sample
from tests.host import sandbox
from tests.host.audit import KEX, findings

VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of a required tool; a missing tool fails (never skips) the test."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or (
        str(VENV_BIN / name) if (VENV_BIN / name).exists() else None
    )
    if path is None:
        pytest.fail(f"{name} is required for this test (see tests/apt-packages/host.txt, requirements-dev.txt)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sshd_config(tmp_path: Path, drop_in: str, port: int) -> Path:
    """A main config that includes the drop-in first, as Debian's does, plus test-only host key."""
    (tmp_path / "sshd_config.d").mkdir()
    (tmp_path / "sshd_config.d/00-hardening.conf").write_text(drop_in)
    subprocess.run([tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_ed25519")], check=True)
    main = tmp_path / "sshd_config"
    main.write_text(
        f"Include {tmp_path}/sshd_config.d/*.conf\n"
        f"HostKey {tmp_path}/host_ed25519\nPidFile {tmp_path}/sshd.pid\nUsePAM no\n"
        f"Port {port}\nListenAddress 127.0.0.1\n"
        # Debian's defaults after the Include: the drop-in must win over them.
        "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\nX11Forwarding yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    return main


def test_sshd_dropin_is_valid_and_wins(tmp_path: Path) -> None:
    """This machine's sshd is Debian 12's OpenSSH 9.2: it judges the Debian 12 drop-in. Debian 13's
    (OpenSSH 10) is judged by its own sshd in the test root (tests/host/test_realroot_host.py)."""
    s = sample.settings(vmDebianRelease="12")
    main = sshd_config(tmp_path, render.sshd_hardening(s.topology, s.host.debian), free_port())
    subprocess.run([tool("sshd"), "-t", "-f", str(main)], check=True)
    effective = subprocess.run(
        [tool("sshd"), "-T", "-f", str(main), "-C", "user=deploy,host=admin.example.com,addr=198.51.100.7"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    conf = dict(line.split(" ", 1) for line in effective)
    assert conf["permitrootlogin"] == "no"
    assert conf["passwordauthentication"] == "no"
    assert conf["kbdinteractiveauthentication"] == "no"
    assert conf["authenticationmethods"] == "publickey"
    assert conf["allowgroups"] == "sshadmins"
    assert conf["x11forwarding"] == "no" and conf["allowtcpforwarding"] == "no" and conf["allowagentforwarding"] == "no"
    assert int(conf["maxauthtries"]) <= 3 and int(conf["logingracetime"]) <= 30
    # Written from ssh-audit's and Mozilla's modern OpenSSH guidance: AEAD ciphers and encrypt-then-MAC SHA-2 only.
    assert conf["ciphers"] == "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com"
    assert conf["macs"] == "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com"
    assert conf["kexalgorithms"] == KEX[12]


def test_sshd_keeps_the_pinned_host_key_algorithm() -> None:
    rsa = sample.settings(vmHostKey="ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC=")
    assert "HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256\n" in render.sshd_hardening(rsa.topology, rsa.host.debian)


def test_ssh_audit_finds_no_failures(tmp_path: Path) -> None:
    """A real sshd (this machine's, Debian 12's) serving the Debian 12 drop-in, audited by ssh-audit 3.9.0:
    no failure, no warning but the allowed ones."""
    port = free_port()
    s = sample.settings(vmDebianRelease="12")
    main = sshd_config(tmp_path, render.sshd_hardening(s.topology, s.host.debian), port)
    sshd = subprocess.Popen([tool("sshd"), "-D", "-e", "-f", str(main)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.1)
        audit = subprocess.run([tool("ssh-audit"), "-j", f"127.0.0.1:{port}"], capture_output=True, text=True)
    finally:
        sshd.terminate()
        sshd.wait()
    assert audit.stdout.strip(), audit.stderr
    assert findings(json.loads(audit.stdout), 12) == []


def test_ufw_rules_follow_the_shared_egress_allowlist() -> None:
    s = sample.settings()
    rules = render.ufw_rules(s.topology, s.host)
    assert "ufw allow from 198.51.100.0/24 to any port 22 proto tcp comment 'ssh from management'" in rules
    assert "ufw allow from 192.0.2.5 to any port 8880 proto tcp comment 'gateway from front proxy'" in rules
    egress = [r for r in rules if r.startswith("ufw allow out ")]
    expected = sum(len(e.destinations) for e in s.topology.egress_rules)
    assert len(egress) == expected and expected >= 7
    assert "ufw allow out to 192.0.2.21 port 10051 proto tcp comment 'egress zabbix-active'" in egress
    assert render.ufw_defaults(s.host) == {"incoming": "deny", "outgoing": "deny", "routed": "deny"}
    open_out = sample.settings(ufwDenyOutgoing="false")
    assert not [r for r in render.ufw_rules(open_out.topology, open_out.host) if " out " in r]
    assert render.ufw_defaults(open_out.host)["outgoing"] == "allow"


#: ideEgressDomains for the proxy's tests: a name, a wildcard, one name also over plain HTTP.
PROXY_DOMAINS = '["git.example.com", "*.pypi.org", "http://deb.example.org"]'


def squid_complaints(conf: Path, text: str) -> list[str]:
    """What Squid says is wrong with `text` as its config (`squid -k parse`: every directive and ACL
    read as the daemon reads them, nothing started): its warnings and errors, and its exit status."""
    conf.write_text(text)
    done = subprocess.run([tool("squid"), "-k", "parse", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    found = [line for line in done.stderr.splitlines() if re.search(r"\b(WARNING|ERROR|FATAL)\b", line)]
    return found + ([f"exit status {done.returncode}"] if done.returncode else [])


def test_squid_reads_the_ide_proxy_config_without_a_complaint(tmp_path: Path) -> None:
    s = sample.settings(ideEgressDomains=PROXY_DOMAINS)
    text = render.squid_config(s.topology)
    assert squid_complaints(tmp_path / "squid.conf", text) == []
    # The validator is no formality: a name inside a listed wildcard, a port that is none.
    assert squid_complaints(tmp_path / "squid.conf", text.replace(" .pypi.org", " .pypi.org files.pypi.org"))
    assert "exit status 1" in squid_complaints(tmp_path / "squid.conf", text.replace("127.0.0.1:3128", "127.0.0.1:proxy"))


def test_the_ide_proxy_opens_by_name_to_squid_alone_and_its_port_to_the_ide_user_alone() -> None:
    s = sample.settings(ideEgressDomains=PROXY_DOMAINS)
    hook = render.ufw_after_init(s.topology, s.host)
    by_name = [line.strip() for line in hook.splitlines() if re.match(r"\s*allow \S+ (?!.*-d )", line)]
    assert by_name == ["allow proxy -p tcp --dport 443  # ide-proxy-https: git.example.com *.pypi.org deb.example.org",
                       "allow proxy -p tcp --dport 80  # ide-proxy-http: deb.example.org"]
    port = f"iptables -w -A hcs-loopback -p tcp -d 127.0.0.1 --dport {render.IDE_PROXY_PORT} --syn"
    assert [line.strip() for line in hook.splitlines() if f"--dport {render.IDE_PROXY_PORT} " in line] == [
        f'{port} -m owner --uid-owner "$IDE" -j RETURN',
        f"iptables -w -A hcs-loopback -p tcp --dport {render.IDE_PROXY_PORT} --syn -j hcs-refused"]
    off = sample.settings()
    assert not off.topology.ide_proxy and "--dport 3128" not in render.ufw_after_init(off.topology, off.host)
    assert not [line for line in render.ufw_after_init(off.topology, off.host).splitlines() if re.match(r"\s*allow \S+ (?!.*-d )", line)]


def test_fail2ban_configuration_passes_fail2ban_client(tmp_path: Path) -> None:
    s = sample.settings()
    jail = render.fail2ban(s.topology)
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    (conf / "jail.d/hcs.local").write_text(jail)
    check = subprocess.run([tool("fail2ban-client"), "-c", str(conf), "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # fail2ban's own reading of the jail (`-d` dumps the configuration it would load)
    dumped = subprocess.run([tool("fail2ban-client"), "-c", str(conf), "-d"], capture_output=True, text=True, check=True).stdout
    assert "['add', 'sshd', 'systemd']" in dumped  # the jail exists and reads the journal
    retries = [int(n) for n in re.findall(r"\['set', 'sshd', 'maxretry', (\d+)\]", dumped)]
    assert retries and max(retries) <= 5, retries  # a handful of tries, then the ban
    assert "192.0.2.5" in jail  # the front proxy is never banned


def test_code_server_transfers_and_idle_timeout_lines() -> None:
    """Each switch writes its own line; the idle timeout in whole seconds, whatever the duration's spelling."""
    host = sample.settings().host
    both = render.code_server_config(dataclasses.replace(host, code_server_disable_downloads=True, code_server_disable_uploads=True,
                                                         code_server_idle_timeout=dt.timedelta(hours=1, minutes=30)))
    assert "disable-file-downloads: true\n" in both and "disable-file-uploads: true\n" in both
    assert "idle-timeout-seconds: 5400\n" in both
    downloads = render.code_server_config(dataclasses.replace(host, code_server_disable_downloads=True))
    assert "disable-file-downloads: true\n" in downloads and "disable-file-uploads" not in downloads
    uploads = render.code_server_config(dataclasses.replace(host, code_server_disable_uploads=True))
    assert "disable-file-uploads: true\n" in uploads and "disable-file-downloads" not in uploads


def test_code_server_config_and_sandbox(tmp_path: Path) -> None:
    s = sample.settings()
    config = render.code_server_config(s.host)
    assert "bind-addr: 127.0.0.1:8080\n" in config and "auth: none\n" in config
    assert "disable-telemetry: true\n" in config and "disable-update-check: true\n" in config
    assert "disable-proxy: true\n" in config
    opted_in = render.code_server_config(dataclasses.replace(s.host, code_server_port_proxy=True))
    assert "disable-proxy: false\n" in opted_in
    assert "disable-file-" not in config and "idle-timeout-seconds: 3600\n" in config  # opt-in; the 1h default
    units = tmp_path / "etc/systemd/system"
    (units / "code-server@.service.d").mkdir(parents=True)
    # The unit the code-server .deb ships (its content as packaged upstream, written here by hand).
    (units / "code-server@.service").write_text(
        "[Unit]\nDescription=code-server\nAfter=network.target\n\n[Service]\nType=exec\n"
        "ExecStart=/usr/bin/code-server\nRestart=always\nUser=%i\n\n[Install]\nWantedBy=default.target\n"
    )
    assert len(unset_directives(tmp_path, "code-server@coder.service")) > 40  # the packaged unit alone: almost nothing set
    (units / "code-server@.service.d/10-hcs-sandbox.conf").write_text(render.code_server_sandbox(s.host, "coder"))
    assert unset_directives(tmp_path, "code-server@coder.service") == set(sandbox.CODE_SERVER_OPEN) | set(sandbox.OFFLINE_ONLY)
    # systemd's own view of the merged unit: the packaged ExecStart is replaced, not added to.
    shown = subprocess.run([tool("systemd-analyze"), "cat-config", f"--root={tmp_path}", "systemd/system/code-server@.service"],
                           capture_output=True, text=True)
    starts = [line for line in shown.stdout.splitlines() if line.startswith("ExecStart=")]
    assert shown.returncode == 0 and starts[-2:] == ["ExecStart=", "ExecStart=/usr/bin/code-server --config /etc/code-server/hcs.yaml"], shown
    # The idle timeout relies on the packaged Restart=always (code-server exits 0 when idle): the drop-in keeps it.
    assert [line for line in shown.stdout.splitlines() if line.startswith("Restart")] == ["Restart=always"], shown.stdout
    assert "KillMode=mixed" in shown.stdout


def tmpfiles_create(root: Path, conf_text: str) -> None:
    """`systemd-tmpfiles --create` of `conf_text` into `root`, whose passwd knows the sample's service
    account (uid and gid 998: tmpfiles resolves names in the root it is applied to)."""
    conf = root / "hcs-sockets.conf"
    conf.write_text(conf_text)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\ncodesvc:x:998:998::/nonexistent:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\ncodesvc:x:998:\n")
    done = subprocess.run([tool("systemd-tmpfiles"), "--create", f"--root={root}", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_socket_directories_as_systemd_tmpfiles_creates_them(tmp_path: Path) -> None:
    s = sample.settings()
    tmpfiles_create(tmp_path, render.socket_tmpfiles(s.topology))
    made = tmp_path / layout.OAUTH2_PROXY_SOCKET_DIR.lstrip("/")
    st = made.stat()
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o750", 998, 998)


def unset_directives(root: Path, unit: str) -> set[str]:
    """The directives `systemd-analyze security --offline` finds unset in a unit under `root`, one by one
    (a total score would let one dropped directive pass)."""
    out = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=yes", f"--root={root}", "--json=short", "--no-pager", unit],
        capture_output=True, text=True, check=True,
    ).stdout
    return {item["name"] for item in json.loads(out) if item["set"] is False}


def test_backup_units_and_env(tmp_path: Path) -> None:
    s = sample.settings()
    b = render.backup(s.topology, s.host)
    # restic reads the password from the secret, root-only file the backup step installs
    secret_files = {f.path: f for step in host_steps(s.topology, s.host) if step.name == "backup" for f in step.files if f.secret}
    password_file = re.search(r"^RESTIC_PASSWORD_FILE=(\S+)$", b.env, re.M)
    assert password_file and (secret_files[password_file[1]].owner, secret_files[password_file[1]].mode) == ("root", "0600")
    assert "RESTIC_REPOSITORY=" not in b.env and sample.BASE["backupRestPassword"] not in b.env + b.service
    assert "OnCalendar=daily\n" in b.timer
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "hcs-backup.service").write_text(b.service)
    (units / "hcs-backup.timer").write_text(b.timer)
    assert unset_directives(tmp_path, "hcs-backup.service") == set(sandbox.BACKUP_OPEN) | set(sandbox.OFFLINE_ONLY)
    verify = subprocess.run([tool("systemd-analyze"), "verify", str(units / "hcs-backup.service"), str(units / "hcs-backup.timer")],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    calendar = subprocess.run([tool("systemd-analyze"), "calendar", s.host.backup_schedule], capture_output=True, text=True)
    assert calendar.returncode == 0, calendar.stderr


def _exec_start(unit: str) -> list[str]:
    """The unit's ExecStart as systemd splits it (continuation lines joined)."""
    line = next(l for l in unit.replace("\\\n", " ").splitlines() if l.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_restic_backs_up_user_data_and_extensions_without_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit's own restic command line, every absolute path moved under a temporary root, run by
    real restic against a local repository: code-server's settings, extension state and extensions
    are in the snapshot with the workspace and the volume; its logs, caches and socket, and a
    directory tagged as a cache, are not."""
    s = sample.settings()
    root = tmp_path / "root"
    data = render.code_server_data_dir(s.topology.accounts.ide_user)
    kept = ["/home/coder/workspace/app/main.py", f"{s.host.workspace_volume}/dataset.csv",
            f"{data}/User/settings.json", f"{data}/User/globalStorage/state.vscdb",
            f"{data}/User/workspaceStorage/0f1e/state.vscdb", f"{data}/extensions/extensions.json",
            f"{data}/extensions/hcs-test.proof-0.0.1/package.json", f"{data}/machineid"]
    left_out = [f"{data}/logs/20261206T213051/remoteagent.log", f"{data}/coder-logs/code-server-stdout.log",
                f"{data}/CachedExtensionVSIXs/hcs-test.proof-0.0.1", f"{data}/CachedProfilesData/__default__profile__/main",
                "/home/coder/workspace/app/target/debug/app"]
    for path in kept + left_out:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(path)
    (root / "home/coder/workspace/app/target/CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    ipc = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(root / data.lstrip("/"))  # a socket's path must be short: bind it relative
    ipc.bind("code-server-ipc.sock")
    (tmp_path / "password").write_text("repository password\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESTIC_REPOSITORY": str(tmp_path / "repository"),
           "RESTIC_PASSWORD_FILE": str(tmp_path / "password")}
    subprocess.run([tool("restic"), "--no-cache", "init"], env=env, capture_output=True, check=True)
    argv = [str(root) + word if word.startswith(("/home/", "/mnt/")) else word
            for word in _exec_start(render.backup(s.topology, s.host).service)]
    assert argv[0] == "/usr/bin/restic" and argv[1] == "backup", argv
    done = subprocess.run([tool("restic"), "--no-cache", *argv[1:]], env=env, capture_output=True, text=True)
    ipc.close()
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([tool("restic"), "--no-cache", "ls", "--json", "latest"], env=env, capture_output=True, text=True, check=True)
    paths = {json.loads(l)["path"].removeprefix(str(root)) for l in listed.stdout.splitlines() if '"path"' in l}
    assert set(kept) <= paths, sorted(set(kept) - paths)
    gone = [f"{data}/logs", f"{data}/coder-logs", f"{data}/CachedExtensionVSIXs", f"{data}/CachedProfilesData",
            f"{data}/code-server-ipc.sock", "/home/coder/workspace/app/target/debug"]  # the tag itself stays
    assert not [p for p in paths if any(p == x or p.startswith(x + "/") for x in gone)], sorted(paths)


def test_restic_sends_the_rest_account_from_the_root_only_repository_file(tmp_path: Path) -> None:
    """Real restic reads RESTIC_REPOSITORY_FILE and authenticates with the account it holds.

    A recording HTTP server on loopback stands where the rest-server would be; it answers 401,
    so restic stops after its first request, and the test reads the Basic credentials it sent.
    """
    import base64
    import http.server
    import threading

    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(401)
            self.end_headers()

        do_GET = do_HEAD  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    password = sample.BASE["backupRestPassword"]  # has a space, '/' and '%': all must survive
    repo = tmp_path / "repository"
    repo.write_text(render.restic_repository(f"rest:http://127.0.0.1:{server.server_port}/code-server", "code-server-vm", password))
    (tmp_path / "password").write_text("repository password\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESTIC_REPOSITORY_FILE": str(repo),
           "RESTIC_PASSWORD_FILE": str(tmp_path / "password")}
    try:
        done = subprocess.run([tool("restic"), "--no-cache", "cat", "config"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert done.returncode != 0 and seen, done.stderr
    assert {base64.b64decode(h.split()[1]).decode() for h in seen} == {f"code-server-vm:{password}"}
    assert password not in done.stderr  # restic redacts the URL's password in its messages
    with pytest.raises(ValueError, match="without credentials"):
        render.restic_repository("rest:https://someone:pw@backup.example.com:8000/x", "code-server-vm", password)


def test_wazuh_config_watches_without_diffing_secrets() -> None:
    root = ET.fromstring(render.wazuh_agent(sample.settings().topology))
    assert root.findtext("client/server/address") == "192.0.2.20"
    dirs = {d.text: d.attrib for d in root.iter("directories")}
    # the design's proxy stack directory and its secret env file (the ownership map), written out here
    assert dirs["/opt/code-server/docker"]["report_changes"] == "no"
    assert dirs["/etc/ssh"]["report_changes"] == "no"
    assert dirs["/etc/systemd/system"]["check_all"] == "yes"
    assert [n.text for n in root.iter("nodiff")] == ["/opt/code-server/docker/.env"]


def test_zabbix_config_is_active_only_with_psk() -> None:
    s = sample.settings()
    lines = [l for l in render.zabbix_agent(s.topology, s.host).splitlines() if l and not l.startswith("#")]
    conf = dict(l.split("=", 1) for l in lines if not l.startswith("DenyKey="))
    assert len(conf) == len(lines) - len(render.ZABBIX_DENIED_KEYS), "a parameter is set twice"
    assert conf["ServerActive"] == "192.0.2.21:10051"
    assert conf["Server"] == conf["ListenIP"] == "127.0.0.1"
    assert conf["TLSConnect"] == conf["TLSAccept"] == "psk"
    # the PSK file the agent reads is the one the zabbix step installs: the secret, the agent's own, 0400
    (psk,) = [f for step in host_steps(s.topology, s.host) if step.name == "zabbix" for f in step.files if f.secret]
    assert (conf["TLSPSKFile"], psk.owner, psk.mode) == (psk.path, "zabbix", "0400")


def test_zabbix_agent_refuses_the_keys_that_reach_the_network_or_files(tmp_path: Path) -> None:
    """The real agent 2 (Debian's), asked each key with the rendered config: denied ones are unknown.

    Without the DenyKey lines `web.page.get` would connect (it reports "connection refused"
    here): that is how any local reader of the agent could fetch code-server's pages.
    """
    s = sample.settings()
    conf = tmp_path / "zabbix_agent2.conf"
    conf.write_text(render.zabbix_agent(s.topology, s.host))
    probes = {
        "web.page.get[127.0.0.1,/,8080]": False, "net.tcp.service[http,127.0.0.1,8080]": False,
        "vfs.file.contents[/etc/hostname]": False, "system.run[id]": False, "net.dns.record[,example.com]": False,
        "agent.ping": True, "vfs.fs.size[/,pfree]": True,
    }
    for key, allowed in probes.items():
        out = subprocess.run([tool("zabbix_agent2"), "-c", str(conf), "-t", key], capture_output=True, text=True, timeout=30).stdout
        assert ("Unknown metric" not in out) == allowed, (key, out)
    assert "[s|1]" in subprocess.run([tool("zabbix_agent2"), "-c", str(conf), "-t", "agent.ping"], capture_output=True, text=True).stdout


def test_docker_daemon_json() -> None:
    daemon = json.loads(render.docker_daemon())
    assert daemon["no-new-privileges"] is True and daemon["log-driver"] == "local"


def test_unattended_upgrades_run_daily_as_apt_reads_them(tmp_path: Path) -> None:
    """apt's own parser (`apt-config dump`) on the rendered file: the daily timers of apt.systemd.daily
    act only on values ≥ 1 (Debian's unattended-upgrades documentation)."""
    conf = tmp_path / "20auto-upgrades"
    conf.write_text(render.unattended_upgrades())
    dumped = subprocess.run([tool("apt-config"), "-c", str(conf), "dump", "APT::Periodic"], capture_output=True, text=True, check=True).stdout
    values = dict(re.findall(r'^APT::Periodic::(\S+) "([^"]*)";$', dumped, re.M))
    assert int(values["Update-Package-Lists"]) >= 1 and int(values["Unattended-Upgrade"]) >= 1, values
