"""The team workspaces' host files, checked by the tools that consume them (no Pulumi, no VM).

systemd-analyze verifies the units instantiated for two workspaces and scores their sandboxes
offline against the single-user code-server unit; systemd-tmpfiles makes the socket directories;
Squid parses the proxy config, and a real Squid serves it on loopback: each workspace's port grants
its own names only and logs its account; the start wait runs as systemd would run it. Expectations
(paths, owners, modes, limits) are written from the design (docs/team.md), not read back
from the renderer.
"""

from __future__ import annotations

import configparser
import dataclasses
import datetime as dt
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components.host import render
from components.host import render_workspaces as rw
from components.layout import workspace_gateway_socket
from components.settings import workspaces
from components.settings.ide import EgressDomain
from components.settings.workspaces import Limits, Workspace
from scripts.lab.converge import sample
from tests.host import sandbox
from tests.host.test_render import (
    _exec_start,
    free_port,
    squid_complaints,
    tmpfiles_create,
    tool,
    unset_directives,
)

#: Two workspaces with egress (one over plain HTTP as well) and one without, as a VM would host them.
A = Workspace("a", ("11111111-1111-1111-1111-111111111111",), (), "vm", Limits(),
              (EgressDomain("git.example.com"), EgressDomain("*.pypi.org")), 3128)
B = Workspace("b", (), ("22222222-2222-2222-2222-222222222222",), "vm", Limits("1536M", "200%", 512),
              (EgressDomain("git.example.com"), EgressDomain("deb.example.org", plain_http=True)), 3129)
C = Workspace("c", ("33333333-3333-3333-3333-333333333333",), (), "vm", Limits(), (), 3130)
#: The unit the code-server .deb ships (its content as packaged upstream, written here by hand).
PACKAGED_UNIT = ("[Unit]\nDescription=code-server\nAfter=network.target\n\n[Service]\nType=exec\n"
                 "ExecStart=/usr/bin/code-server\nRestart=always\nUser=%i\n\n[Install]\nWantedBy=default.target\n")
#: What the units run; stand-ins in the verified root (systemd-analyze only checks that they are executables there).
EXECUTABLES = ("usr/bin/code-server", "usr/bin/timeout", "bin/sh", "lib/systemd/systemd-socket-proxyd", "usr/bin/restic")


def unit(text: str) -> configparser.ConfigParser:
    """A unit file's sections and settings (the last of a repeated setting, as systemd takes it)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case, as systemd's do
    parser.read_string(text)
    return parser


def team_root(tmp_path: Path, release: str = "13") -> Path:
    """A root holding the host's own systemd units, the packaged code-server unit and every team unit
    for workspaces A and B, as the wiring installs them."""
    s = sample.settings(vmDebianRelease=release)
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    for path in EXECUTABLES:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("#!/bin/sh\n")
        (root / path).chmod(0o755)
    backup = rw.backup(s.topology, s.host)
    files = {"/etc/systemd/system/code-server@.service": PACKAGED_UNIT, rw.SANDBOX_DROP_IN: rw.code_server_sandbox(s.host),
             rw.PROXY_SOCKET_UNIT: rw.proxy_socket(s.topology), rw.PROXY_SERVICE_UNIT: rw.proxy_service(),
             rw.BACKUP_SERVICE_UNIT: backup.service, rw.BACKUP_TIMER_UNIT: backup.timer,
             **{rw.drop_in_path(w): rw.workspace_drop_in(w) for w in (A, B)}}
    for path, text in files.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(text)
    return root


def test_the_units_verify_instantiated_for_two_workspaces(tmp_path: Path) -> None:
    root = team_root(tmp_path)
    units = [f"{name}@{w.account}.{kind}" for w in (A, B) for name, kind in
             (("code-server", "service"), ("hcs-ws-proxy", "socket"), ("hcs-ws-proxy", "service"),
              ("hcs-backup", "service"), ("hcs-backup", "timer"))]
    verify = subprocess.run([tool("systemd-analyze"), "verify", f"--root={root}", *units], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr, verify.stderr
    # The verifier is no formality: a limit systemd cannot read, a missing executable.
    drop_in = root / rw.drop_in_path(B).lstrip("/")
    drop_in.write_text(drop_in.read_text().replace("MemoryMax=1536M", "MemoryMax=lots"))
    (root / "lib/systemd/systemd-socket-proxyd").unlink()
    broken = subprocess.run([tool("systemd-analyze"), "verify", f"--root={root}", *units], capture_output=True, text=True)
    assert "Invalid memory limit 'lots'" in broken.stderr and "systemd-socket-proxyd is not executable" in broken.stderr, broken.stderr


def _exposure(root: Path, unit_name: str) -> float:
    out = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", f"--root={root}", "--no-pager", unit_name],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split(f"Overall exposure level for {unit_name}:")[1].split()[0])


@pytest.mark.parametrize("release", ["12", "13"])
def test_sandboxes_score_no_worse_than_the_single_user_ide(tmp_path: Path, release: str) -> None:
    """Directive by directive (tests/host/sandbox.py says what each leaves open and why), and in total."""
    s = sample.settings(vmDebianRelease=release)
    single = tmp_path / "single"
    (single / "etc/systemd/system/code-server@.service.d").mkdir(parents=True)
    (single / "etc/systemd/system/code-server@.service").write_text(PACKAGED_UNIT)
    (single / "etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf").write_text(render.code_server_sandbox(s.host, "coder"))
    baseline = _exposure(single, "code-server@coder.service")
    root = team_root(tmp_path, release)
    assert unset_directives(root, "code-server@ws-a.service") == set(sandbox.CODE_SERVER_OPEN) | set(sandbox.OFFLINE_ONLY)
    assert unset_directives(root, "hcs-ws-proxy@ws-a.service") == set(sandbox.PROXY_OPEN) | set(sandbox.OFFLINE_ONLY)
    assert unset_directives(root, "hcs-backup@ws-a.service") == set(sandbox.BACKUP_OPEN) | set(sandbox.OFFLINE_ONLY)
    for name in ("code-server@ws-a.service", "code-server@ws-b.service", "hcs-ws-proxy@ws-b.service"):
        assert _exposure(root, name) <= baseline, name


def test_code_server_starts_on_demand_and_stays_down_when_idle(tmp_path: Path) -> None:
    """systemd's merged view of the team drop-in over the packaged unit, and the on-demand chain of section 3."""
    s = sample.settings()
    root = team_root(tmp_path)
    shown = subprocess.run([tool("systemd-analyze"), "cat-config", f"--root={root}", "systemd/system/code-server@.service"],
                           capture_output=True, text=True, check=True).stdout
    lines = shown.splitlines()
    # code-server exits 0 when idle: it must stay down (the packaged Restart=always would restart it at once)
    assert [line for line in lines if line.startswith("Restart=")][-1] == "Restart=on-failure", shown
    assert [line for line in lines if line.startswith("ExecStart=")][-2:] == [
        "ExecStart=", "ExecStart=/usr/bin/code-server --config /etc/code-server/hcs-team.yaml --socket /run/hcs-ws/%i/code-server.sock"]
    service = unit(rw.code_server_sandbox(s.host))["Service"]
    assert (service["RuntimeDirectory"], service["RuntimeDirectoryMode"]) == ("hcs-ws/%i", "0700")
    assert service["ReadWritePaths"] == "/home/%i /mnt/cs-workspace-volume/%i"  # its own home and volume directory only
    assert service["EnvironmentFile"] == "/etc/code-server/hcs-team.env"
    assert "ExecStartPost" in service and "/run/hcs-ws/%i/code-server.sock" in service["ExecStartPost"]
    # Debian 13: no port at all may be bound (code-server listens on its socket), loopback only
    assert (service["SocketBindDeny"], service["RestrictNetworkInterfaces"]) == ("any", "lo") and "SocketBindAllow" not in service
    assert "SocketBind" not in rw.code_server_sandbox(sample.settings(vmDebianRelease="12").host)  # not enforced there: not written
    proxy = unit(rw.proxy_service())
    assert (proxy["Unit"]["BindsTo"], proxy["Unit"]["After"]) == ("code-server@%i.service", "code-server@%i.service")
    assert (proxy["Service"]["User"], proxy["Service"]["Group"]) == ("%i", "%i")
    assert proxy["Service"]["ExecStart"] == "/lib/systemd/systemd-socket-proxyd /run/hcs-ws/%i/code-server.sock"
    assert (proxy["Service"]["PrivateNetwork"], proxy["Service"]["RestrictAddressFamilies"]) == ("yes", "AF_UNIX")


def test_only_the_gateway_may_use_a_workspace_socket(tmp_path: Path) -> None:
    s = sample.settings()
    sock = unit(rw.proxy_socket(s.topology))["Socket"]
    assert sock["ListenStream"] == "/run/hcs-ws-gw/%i.sock"
    # where the gateway will connect (slice 3) is where the instance listens
    assert [workspace_gateway_socket(w.account) for w in (A, B)] == [sock["ListenStream"].replace("%i", a) for a in ("ws-a", "ws-b")]
    assert (sock["SocketUser"], sock["SocketGroup"], sock["SocketMode"], sock["DirectoryMode"]) == ("root", "codesvc", "0660", "0750")
    assert unit(rw.proxy_socket(s.topology))["Install"]["WantedBy"] == "sockets.target"
    # The socket directory as systemd-tmpfiles makes it on the VM (names resolved in the root's passwd).
    tmpfiles_create(tmp_path, rw.socket_tmpfiles(s.topology))
    made = {path: (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) for path in ("run/hcs-ws-gw", "run/hcs-oauth2-proxy")
            for st in [(tmp_path / path).stat()]}
    assert made == {"run/hcs-ws-gw": ("0o750", 0, 998), "run/hcs-oauth2-proxy": ("0o750", 998, 998)}


def test_the_start_waits_for_code_servers_socket(tmp_path: Path) -> None:
    """The drop-in's ExecStartPost, run as systemd runs it (specifier and path moved under tmp_path):
    it returns only once the socket exists, so the proxy ordered after code-server never meets a
    missing socket."""
    post = unit(rw.code_server_sandbox(sample.settings().host))["Service"]["ExecStartPost"]
    argv = [word.replace("/run/hcs-ws/%i", str(tmp_path)) for word in shlex.split(post)]
    wait = subprocess.Popen(argv)
    time.sleep(1)
    assert wait.poll() is None  # still waiting: no socket yet
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "code-server.sock"))
    try:
        assert wait.wait(timeout=5) == 0
    finally:
        listener.close()


def test_each_workspace_has_its_limits_and_its_own_proxy_port() -> None:
    for workspace, port in ((A, 3128), (B, 3129)):
        service = unit(rw.workspace_drop_in(workspace))["Service"]
        limits = workspace.limits
        assert (service["MemoryMax"], service["CPUQuota"], service["TasksMax"]) == (limits.memory_max, limits.cpu_quota, str(limits.tasks_max))
        env = dict(word.split("=", 1) for word in shlex.split(service["Environment"]))
        url = f"http://127.0.0.1:{port}"
        assert {k: env[k] for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")} == dict.fromkeys(
            ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"), url)
        assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1,::1"
    assert rw.drop_in_path(B) == "/etc/systemd/system/code-server@ws-b.service.d/20-hcs-workspace.conf"
    assert "Environment=" not in rw.workspace_drop_in(C) and "MemoryMax=2G\n" in rw.workspace_drop_in(C)  # no egress: no proxy
    # The shared environment names no proxy: systemd lets an EnvironmentFile= win over the drop-in's Environment=.
    env_file = rw.code_server_env(sample.settings().host)
    assert "PROXY" not in env_file.upper() and "NODE_USE_SYSTEM_CA=1\n" in env_file and "EXTENSIONS_GALLERY=" in env_file


def test_team_code_server_config() -> None:
    host = sample.settings().host
    config = rw.code_server_config(dataclasses.replace(host, code_server_port_proxy=True, code_server_disable_uploads=True,
                                                       code_server_idle_timeout=dt.timedelta(hours=1, minutes=30)))
    lines = [line for line in config.splitlines() if not line.startswith("#")]
    assert lines == ['socket-mode: "600"', "auth: none", "cert: false", "disable-proxy: true", "disable-telemetry: true",
                     "disable-update-check: true", "disable-file-uploads: true", "idle-timeout-seconds: 5400"]


def test_the_proxys_flows_open_the_union_of_the_workspaces_names() -> None:
    union = workspaces.egress_union([A, B, C])
    assert union == (EgressDomain("git.example.com"), EgressDomain("*.pypi.org"), EgressDomain("deb.example.org", plain_http=True))
    s = sample.settings()
    rules = {r.name: r for r in dataclasses.replace(s.topology, ide_egress=union).egress_rules}
    assert [d.name for d in rules["ide-proxy-https"].domains] == ["git.example.com", "*.pypi.org", "deb.example.org"]
    assert [d.name for d in rules["ide-proxy-http"].domains] == ["deb.example.org"]
    assert workspaces.egress_union([C]) == ()


def test_squid_reads_the_team_config_without_a_complaint(tmp_path: Path) -> None:
    text = rw.squid_config([A, B, C])
    assert squid_complaints(tmp_path / "squid.conf", text) == []
    assert "name=ws-c" not in text  # no egress, no port
    with pytest.raises(ValueError, match="no workspace"):
        rw.squid_config([C])


def _squid_request(port: int, request: bytes) -> str:
    """The status line Squid answers `request` with on its port `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        return conn.recv(4096).decode(errors="replace").splitlines()[0]


def test_each_port_grants_its_own_workspaces_names_only() -> None:
    """A real Squid serving the rendered config (test overrides: free ports, files in a directory of
    its own, the access log in a file instead of syslog). A refused request is Squid's 403; a granted
    one gets past the ACLs and fails only at the connection (every name is 127.0.0.1 here, where
    nothing listens on 443 or 80): any other status."""
    a, b = (dataclasses.replace(w, proxy_port=free_port()) for w in (A, B))
    # Squid's workers run as its own account (proxy) and write the log: a directory it can enter
    tmp_path = Path(tempfile.mkdtemp(prefix="hcs-squid-"))
    tmp_path.chmod(0o777)
    text = (rw.squid_config([a, b])
            .replace("access_log syslog:daemon.info logformat=hcs", f"access_log stdio:{tmp_path}/access.log logformat=hcs")
            .replace("/var/log/squid/cache.log", f"{tmp_path}/cache.log").replace("/var/spool/squid", str(tmp_path))
            + f"pid_filename {tmp_path}/squid.pid\nhosts_file {tmp_path}/hosts\n")
    (tmp_path / "hosts").write_text("127.0.0.1 git.example.com files.pypi.org deb.example.org\n")
    conf = tmp_path / "squid.conf"
    conf.write_text(text)
    squid = subprocess.Popen([tool("squid"), "-N", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", b.proxy_port), timeout=1).close()
                break
            except OSError:
                assert squid.poll() is None and time.monotonic() < deadline, "squid did not start"
                time.sleep(0.2)
        asks = {
            ("a", "git"): (a, b"CONNECT git.example.com:443 HTTP/1.1\r\nHost: git.example.com:443\r\n\r\n"),
            ("a", "pypi"): (a, b"CONNECT files.pypi.org:443 HTTP/1.1\r\nHost: files.pypi.org:443\r\n\r\n"),
            ("a", "deb"): (a, b"CONNECT deb.example.org:443 HTTP/1.1\r\nHost: deb.example.org:443\r\n\r\n"),
            ("a", "deb http"): (a, b"GET http://deb.example.org/ HTTP/1.1\r\nHost: deb.example.org\r\n\r\n"),
            ("b", "git"): (b, b"CONNECT git.example.com:443 HTTP/1.1\r\nHost: git.example.com:443\r\n\r\n"),
            ("b", "pypi"): (b, b"CONNECT files.pypi.org:443 HTTP/1.1\r\nHost: files.pypi.org:443\r\n\r\n"),
            ("b", "deb"): (b, b"CONNECT deb.example.org:443 HTTP/1.1\r\nHost: deb.example.org:443\r\n\r\n"),
            ("b", "deb http"): (b, b"GET http://deb.example.org/ HTTP/1.1\r\nHost: deb.example.org\r\n\r\n"),
            ("b", "ip literal"): (b, b"CONNECT 192.0.2.80:443 HTTP/1.1\r\nHost: 192.0.2.80:443\r\n\r\n"),
        }
        status = {key: _squid_request(w.proxy_port, request) for key, (w, request) in asks.items()}
    finally:
        squid.terminate()
        squid.wait(timeout=30)
        log = (tmp_path / "access.log").read_text() if (tmp_path / "access.log").exists() else ""
        shutil.rmtree(tmp_path)
    refused = {key for key, line in status.items() if " 403 " in line}
    assert refused == {("a", "deb"), ("a", "deb http"), ("b", "pypi"), ("b", "ip literal")}, status
    assert "account=ws-a client=127.0.0.1" in log and "CONNECT files.pypi.org:443" in log
    assert {line.split("account=")[1].split()[0] for line in log.splitlines() if "files.pypi.org" in line} == {"ws-a", "ws-b"}


def _backup_argv(account: str) -> list[str]:
    """The backup template's restic command line for `account`'s instance, as systemd splits it."""
    s = sample.settings()
    return [word.replace("%i", account) for word in _exec_start(rw.backup(s.topology, s.host).service)]


def test_backup_template_over_a_workspaces_own_data() -> None:
    """The ws-a instance backs up ws-a's data only, tagged with it, append-only like the single-user backup."""
    s = sample.settings()
    argv = _backup_argv("ws-a")
    assert argv[:3] == ["/usr/bin/restic", "backup", "--one-file-system"]
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--tag"] == ["hardened-code-server", "ws:ws-a"]
    assert argv[-3:] == ["/home/ws-a/workspace", "/mnt/cs-workspace-volume/ws-a", "/home/ws-a/.local/share/code-server"]
    assert "--exclude-caches" in argv and "/home/ws-a/.local/share/code-server/Cached*" in argv
    assert "forget" not in argv and "prune" not in argv  # append-only, as the single-user backup
    assert unit(rw.backup(s.topology, s.host).timer)["Timer"]["OnCalendar"] == "daily"
    assert os.path.basename(rw.BACKUP_TIMER_UNIT) == "hcs-backup@.timer"  # instance ws-a's timer starts hcs-backup@ws-a.service


def test_restic_backs_up_one_workspace_under_its_tag(tmp_path: Path) -> None:
    """The ws-a instance's own restic command line (every absolute path moved under a temporary root),
    run by real restic: its workspace, volume directory and code-server data are in a snapshot tagged
    ws:ws-a; ws-b's, on the same volume and under /home, are not."""
    root = tmp_path / "root"
    kept = ["/home/ws-a/workspace/main.py", "/mnt/cs-workspace-volume/ws-a/data.csv", "/home/ws-a/.local/share/code-server/User/settings.json"]
    other = ["/home/ws-b/workspace/main.py", "/mnt/cs-workspace-volume/ws-b/data.csv", "/home/ws-a/.local/share/code-server/logs/x.log"]
    for path in kept + other:
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(path)
    (tmp_path / "password").write_text("repository password\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RESTIC_REPOSITORY": str(tmp_path / "repository"),
           "RESTIC_PASSWORD_FILE": str(tmp_path / "password")}
    subprocess.run([tool("restic"), "--no-cache", "init"], env=env, capture_output=True, check=True)
    argv = [str(root) + word if word.startswith(("/home/", "/mnt/")) else word for word in _backup_argv("ws-a")]
    done = subprocess.run([tool("restic"), "--no-cache", *argv[1:]], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    snapshots = json.loads(subprocess.run([tool("restic"), "--no-cache", "snapshots", "--json", "--tag", "ws:ws-a"], env=env,
                                          capture_output=True, text=True, check=True).stdout)
    assert len(snapshots) == 1 and "ws:ws-a" in snapshots[0]["tags"]
    listed = subprocess.run([tool("restic"), "--no-cache", "ls", "--json", snapshots[0]["short_id"]], env=env,
                            capture_output=True, text=True, check=True)
    paths = {json.loads(l)["path"].removeprefix(str(root)) for l in listed.stdout.splitlines() if '"path"' in l}
    assert set(kept) <= paths and not set(other) & paths, sorted(paths)
