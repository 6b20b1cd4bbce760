"""`make demo`: the whole stack on this machine, left running; `make demo-down` removes all of it.

`up()` (idempotent: a second call converges the running demo again):
1. caches: the Debian test root, the code-server `.deb` (from the npm build), the Go programs;
2. the VM: the test root booted with systemd in its own network namespace (`BootedVM`), without
   the packages a fresh VM lacks, from the user-data the program makes for a VM it creates on
   Proxmox (planned first, `first_boot_user_data`): cloud-init's NoCloud datasource in the VM makes
   the admin and installs the program's host key, as on a Proxmox clone; the demo CA is trusted by
   its Docker for the registry (the one file the demo puts on the VM itself: in production the
   registry's certificate is the operator's);
3. the test network's services in the peer namespace: the apt proxy (Debian's mirror and the
   package site with the `.deb`), the OCI registry with the two gateway images pushed by digest,
   the backup server (`_start_backup_server`);
4. the program: the real `__main__.py` evaluated for the demo stack (the example stack with
   `vmProvider: proxmox`, the demo's addresses, package digest and image digests), every remote
   command run over SSH pinned to the program's generated host key, every container created in the
   VM's Docker, the Proxmox snippet and VM checked against the booted VM (`live.LiveMocks`);
5. the central Caddy in front, serving the site block the program rendered;
6. `build/demo/demo.json`: the URL, how to reach the VM, the namespaces, the test users.

The demo's state (pids, namespaces, the VM) lives in `${HCS_DEMO_DIR:-/var/lib/hardened-code-server-demo}`,
outside the clone: the VM's root, its admin key and the CA's keys never go into `build/`. The backup
server's data lives beside it (`backup_dir`), so `down(keep_backups=True)` and `up()` re-create the
VM while its backups survive, as a backup host outlives the VMs it serves.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from components import layout
from components.files import FILE_TYPE
from components.gateway.render_caddy import FRONT_HOP_HOME
from components.gateway.stack import OAUTH2_PROXY_DIR
from components.installer import encode_contents
from scripts import REPOSITORY
from scripts.lab.converge.realhost import BRIDGE, reinstalled
from scripts.lab.demo import codehost, codeserver_deb, fortigate, images, network, vsix
from scripts.lab.demo.live import PROXMOX_SNIPPET, Applied, LiveMocks, Rewrite
from scripts.lab.demo.pki import DemoCA
from scripts.lab.idp import setup as idp_setup
from scripts.lab.livepath import signin
from scripts.lab.livepath.chain import spki_sha256, user_settings
from scripts.lab.vm import nocloud, rootfs
from scripts.lab.vm.booted import BootedVM, load_state, save_state
from scripts.lab.vm.netns import NamespacePair, existing_namespaces
from scripts.lab.vm.prereq import RealRootError
from scripts.tools import go_cache
from scripts.tools.offline import (
    PlanResult,
    StackConfig,
    load_stack_config,
    run_program,
)

BUILD = REPOSITORY / "build" / "demo"
DEFAULT_TAG = "hcsdemo"
#: The VM's Docker API version, fixed (so the client never probes at creation): 1.41 is Debian 12's docker.io 20.10, which Debian 13's 26.1 also serves.
DOCKER_API = "1.41"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoTeam:
    """A team for the demo (issue 34): workspaces on the demo VM, each granted to one test user of the
    Entra stand-in, whose object ID is fixed here (the stack names people by object ID before the
    stand-in's directory exists). `idle_timeout`: the stack's `codeServerIdleTimeout`, short for a test."""

    #: (workspace name, the stand-in user's short name) per workspace, in config order.
    workspaces: tuple[tuple[str, str], ...]
    #: The stand-in users' object IDs by short name (GUIDs; fixed, not secret).
    oids: tuple[tuple[str, str], ...]
    idle_timeout: str | None = None

    def config_values(self) -> dict[str, Any]:
        """The stack keys that make the demo stack this team (no access group: the workspaces' app roles)."""
        oids = dict(self.oids)
        entries = [{"name": name, "users": [oids[short]]} for name, short in self.workspaces]
        return {"workspaces": json.dumps(entries), "entraGroupName": None, "entraGroupMembers": None,
                **({"codeServerIdleTimeout": self.idle_timeout} if self.idle_timeout else {})}

    def accounts(self) -> list[str]:
        return [f"ws-{name}" for name, _ in self.workspaces]


#: The acceptance team of issue 34: alice is granted team-a, bob team-b, carol nothing (object IDs of
#: the stand-in's users; a workspace name has at least two characters).
TEAM = DemoTeam(workspaces=(("team-a", "alice"), ("team-b", "bob")),
                oids=(("alice", "a11ce000-0000-4000-8000-0000000000a1"), ("bob", "b0b00000-0000-4000-8000-0000000000b2")))


def demo_dir(tag: str) -> Path:
    return Path(os.environ.get("HCS_DEMO_DIR") or "/var/lib/hardened-code-server-demo") / tag


def backup_dir(tag: str) -> Path:
    """The backup server's repositories for demo `tag`: outside `demo_dir`, which `down()` removes."""
    return demo_dir(tag).with_name(f"{tag}.backups")


@dataclass
class DemoState:
    """What `down()` and a second `up()` need: the VM and the host processes the demo started."""

    tag: str
    workdir: str
    processes: dict[str, int] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    users: list[dict[str, str]] = field(default_factory=list)
    started: float = 0.0
    #: The VM's Debian release (`vmDebianRelease` of the demo stack).
    release: int = rootfs.DEFAULT_RELEASE
    #: The team's stack keys (`DemoTeam.config_values`), or None for the single IDE user.
    team: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return Path(self.workdir) / "demo-state.json"

    def save(self) -> None:
        self.path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, workdir: Path) -> DemoState | None:
        path = workdir / "demo-state.json"
        return cls(**json.loads(path.read_text())) if path.exists() else None


@dataclass
class Demo:
    """A running demo: its VM, state and the result of the last converge."""

    vm: BootedVM
    state: DemoState
    config: StackConfig
    plan: PlanResult
    applied: Applied
    timings: dict[str, float]
    #: The team the demo stack is (None: the single IDE user).
    team: DemoTeam | None = None

    @property
    def workdir(self) -> Path:
        return Path(self.state.workdir)

    def docker(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{self.vm.docker_socket}", version=DOCKER_API)


def _spawn_detached(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """A process that outlives us (its own session), output to `log`; returns its pid."""
    with log.open("ab") as sink:
        popen = subprocess.Popen(argv, cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True, env={**os.environ, **(env or {})})
    return popen.pid


def _wait(what: str, check: Callable[[], bool], log: Path | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log and log.exists() else ""
            raise RealRootError(f"{what} did not come up in {timeout:.0f} s\n{tail}")
        time.sleep(0.2)


def _https_up(vm: BootedVM, url: str, ca: Path) -> bool:
    return vm.peer_run(["curl", "-s", "-o", "/dev/null", "--cacert", str(ca), "--max-time", "2", url]).returncode == 0


def _start_services(vm: BootedVM, state: DemoState, ca: DemoCA, deb: codeserver_deb.CodeServerDeb, progress: Progress) -> None:
    work = Path(state.workdir)
    site = work / "package-site"
    site.mkdir(exist_ok=True)
    target = site / deb.path.name
    if not target.exists():
        os.link(deb.path, target) if deb.path.stat().st_dev == site.stat().st_dev else shutil.copy2(deb.path, target)
    progress("starting the apt proxy (Debian's mirror and the package site only)")
    socket_path = work / "apt-proxy.sock"
    state.processes["apt-proxy"] = _spawn_detached(
        [sys.executable, "-m", "scripts.lab.vm.aptproxy", str(socket_path), "--mirror", rootfs.debian_mirror(),
         "--site", f"{network.PACKAGE_SITE}={site}"], work / "apt-proxy.log")
    _wait("the apt proxy", socket_path.exists, work / "apt-proxy.log")
    address, port = network.APT_PROXY
    state.processes["apt-proxy-bridge"] = _spawn_detached(
        vm.peer_argv([sys.executable, str(BRIDGE), address, str(port), str(socket_path)]), work / "apt-bridge.log")
    _wait("the apt proxy bridge",
          lambda: vm.peer_run(["curl", "-s", "-o", "/dev/null", f"http://{address}:{port}/"]).returncode == 0,
          work / "apt-bridge.log")

    progress("starting the FortiOS stand-in as the firewall's API (https://192.0.2.1)")
    device = ca.issue("fortigate", ips=(network.GATEWAY,))
    state.processes["fortios"] = _spawn_detached(
        vm.peer_argv([sys.executable, "-m", "scripts.lab.demo.fortigate", "device", "--listen", network.GATEWAY,
                      "--cert", str(device.cert), "--key", str(device.key)]),
        work / "fortios.log", env={"FORTIOS_API_TOKEN": fortios_token(work)})
    _wait("the FortiOS stand-in", lambda: _https_up(vm, f"https://{network.GATEWAY}/", ca.cert), work / "fortios.log")

    progress("starting the registry (distribution, from its Go module)")
    cert = ca.issue("registry", ips=(network.REGISTRY,))
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'registry'}\nhttp:\n  addr: {network.REGISTRY}:443\n"
        f"  tls:\n    certificate: {cert.cert}\n    key: {cert.key}\n"
    )
    state.processes["registry"] = _spawn_detached(
        vm.peer_argv([str(go_cache.ensure("registry")), "serve", str(config)]), work / "registry.log",
        env={"OTEL_TRACES_EXPORTER": "none"})
    _wait("the registry", lambda: _https_up(vm, f"https://{network.REGISTRY}/v2/", ca.cert), work / "registry.log")


def _alive(state: DemoState, key: str) -> bool:
    return key in state.processes and Path(f"/proc/{state.processes[key]}").exists()


def _start_ide_hosts(vm: BootedVM, state: DemoState, ca: DemoCA, progress: Progress) -> None:
    """The IDE user's destinations on the test network: a git code host the demo stack lists, one it
    does not, and an Open VSX stand-in serving the test extension (stand-ins: scripts/lab/demo/codehost.py,
    gallery.py), each with a certificate of the demo CA for its name."""
    work = Path(state.workdir)
    repos = work / "code-host"
    if not (repos / "demo.git").exists():
        codehost.make_repo(repos, "demo")
    extensions = work / "gallery"
    vsix.build(extensions)
    for key, (name, address), argv in (
            ("code-host", network.CODE_HOST, ["-m", "scripts.lab.demo.codehost", "--root", str(repos)]),
            ("other-code-host", network.OTHER_CODE_HOST, ["-m", "scripts.lab.demo.codehost", "--root", str(repos)]),
            ("gallery", network.GALLERY, ["-m", "scripts.lab.demo.gallery", "--vsix-dir", str(extensions)])):
        if _alive(state, key):
            continue
        progress(f"starting {key} (https://{name}, {address}:443)")
        cert = ca.issue(key, dns=(name,), ips=(address,))
        state.processes[key] = _spawn_detached(
            vm.peer_argv([sys.executable, *argv, "--listen", address, "--port", "443", "--cert", str(cert.cert), "--key", str(cert.key)]),
            work / f"{key}.log")
        state.save()
        _wait(key, lambda address=address: _https_up(vm, f"https://{address}/", ca.cert), work / f"{key}.log")


def _start_backup_server(vm: BootedVM, state: DemoState, ca: DemoCA, config: StackConfig, progress: Progress) -> None:
    """The backup host: rclone's `serve restic` at `network.BACKUP`, a stand-in for restic's
    rest-server (not packaged in Debian 12, its Go module not served here) speaking the same REST
    protocol, as strict where the product relies on it: `--append-only` (a snapshot's DELETE gets 403;
    only locks may go), an htpasswd account (the stack's `backupRestUser`, `backupRestPassword`;
    a wrong one gets 401), TLS with a certificate of the demo CA. The repository is initialised
    here, once, as the backup host's operator would (the VM never runs `restic init`). It does not
    prove rest-server's own code (its `--private-repos`, its quota) or pruning on the backup host."""
    if _alive(state, "backup"):
        return
    work, data = Path(state.workdir), backup_dir(state.tag)
    data.mkdir(mode=0o700, exist_ok=True)
    repository = config.values["backupRepository"].rsplit("/", 1)[1]
    if not (data / repository / "config").exists():
        progress(f"initialising the restic repository {repository} on the backup server")
        subprocess.run(["restic", "init", "--repo", str(data / repository), "--password-file", "/dev/stdin"],
                       input=config.values["backupPassword"], text=True, capture_output=True, check=True)
    hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=config.values["backupRestPassword"],
                            text=True, capture_output=True, check=True).stdout.strip()
    htpasswd, rclone_config = work / "backup.htpasswd", work / "rclone.conf"
    htpasswd.touch(mode=0o600)
    htpasswd.write_text(f"{config.values['backupRestUser']}:{hashed}\n")
    rclone_config.touch(mode=0o600)
    address, port = network.BACKUP
    cert = ca.issue("backup", dns=(network.BACKUP_HOST,), ips=(address,))
    progress(f"starting the backup server (rclone serve restic, append-only) on https://{network.BACKUP_HOST}:{port}")
    state.processes["backup"] = _spawn_detached(
        vm.peer_argv(["rclone", "serve", "restic", str(data), "--addr", f"{address}:{port}", "--append-only",
                      "--htpasswd", str(htpasswd), "--cert", str(cert.cert), "--key", str(cert.key), "--config", str(rclone_config)]),
        work / "backup.log")
    state.save()
    _wait("the backup server", lambda: _https_up(vm, f"https://{address}:{port}/", ca.cert), work / "backup.log")


def _front_is_default_source(vm: BootedVM) -> None:
    """Connections from the peer side to the VM leave from the front proxy's address, as a real
    central Caddy's do (the peer namespace owns many addresses of the DMZ; clients bind explicitly)."""
    proc = vm.peer_run(["ip", "route", "replace", "192.0.2.0/24", "dev", "eth0", "proto", "kernel",
                        "scope", "link", "src", network.FRONT_PROXY])
    if proc.returncode != 0:
        raise RealRootError(f"making the front proxy the peer's source address failed: {proc.stderr}")


def front_ca(work: Path) -> Path:
    """The central Caddy's local CA root (what a browser must trust for the demo's public URL)."""
    return work / "front-caddy/data/caddy/pki/authorities/local/root.crt"


def front_hop_files(plan: PlanResult) -> dict[str, str]:
    """The central Caddy's hop files the program recorded for its host (path under FRONT_HOP_HOME → content)."""
    return {r.values["path"].removeprefix(FRONT_HOP_HOME + "/"): r.values["content"] for r in plan.of_type(FILE_TYPE)
            if r.values.get("role") == "front-proxy" and str(r.values["path"]).startswith(FRONT_HOP_HOME + "/")}


def _start_front(vm: BootedVM, state: DemoState, site_block: str, hostname: str, hop: dict[str, str], progress: Progress) -> None:
    """The central Caddy: the site block the program rendered, imported as production does, TLS from its local CA,
    the hop's client certificate, key and CA where the block reads them (its HCS_HOP_DIR)."""
    work = Path(state.workdir)
    front = work / "front-caddy"
    for sub in ("data", "config", "hop"):
        (front / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    site = front / f"{hostname}.caddy"
    current = all((front / "hop" / path).exists() and (front / "hop" / path).read_text() == text for path, text in hop.items())
    if site.exists() and site.read_text() == site_block and current and _alive(state, "front-caddy"):
        return
    for path, text in hop.items():
        target = front / "hop" / path
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.touch(mode=0o600)
        target.write_text(text)
    site.write_text(site_block)
    caddyfile = front / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n\tpersist_config off\n\tlocal_certs\n\tskip_install_trust\n"
                         f"\tdefault_bind {network.FRONT_PROXY}\n}}\n\nimport {site}\n")
    if "front-caddy" in state.processes:
        _stop(state.processes.pop("front-caddy"))
    progress(f"starting the central Caddy on {network.FRONT_PROXY}:443 with the rendered site block")
    log = work / "front-caddy.log"
    state.processes["front-caddy"] = _spawn_detached(
        vm.peer_argv([str(Path(sys.executable).parent / "caddy"), "run", "--adapter", "caddyfile", "--config", str(caddyfile)]),
        log, env={"XDG_DATA_HOME": str(front / "data"), "XDG_CONFIG_HOME": str(front / "config"), "HCS_HOP_DIR": str(front / "hop")})
    state.save()
    _wait("the central Caddy's local CA", front_ca(work).exists, log)


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _push_images(vm: BootedVM, ca: DemoCA, config: StackConfig, work: Path, progress: Progress) -> dict[str, str]:
    caddy_version = config.values["caddyImage"].split(":", 1)[1].split("-", 1)[0].split("@", 1)[0]
    pushed = {}
    for key, spec in (("caddyImage", images.caddy_image(caddy_version)), ("oauth2ProxyImage", images.oauth2_proxy_image())):
        progress(f"pushing {spec.repository}:{spec.tag} to the registry")
        pushed[key] = images.push(spec, network.REGISTRY, work, {"SSL_CERT_FILE": str(ca.cert)}, vm.peer_argv([]))
    return pushed


def proxmox_ssh_key(work: Path) -> str:
    """The Proxmox node's SSH key the stack must name (made once; never used: no node answers, see `demo_config`)."""
    path = work / "proxmox_ed25519"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hcs-demo-proxmox-stand-in", "-f", str(path)],
                       check=True, capture_output=True)
    return path.read_text()


def demo_config(vm: BootedVM, release: int, deb: codeserver_deb.CodeServerDeb, pushed: dict[str, str], ca: DemoCA,
                token: str, team: DemoTeam | None = None) -> StackConfig:
    """The example stack, pointed at the demo: a VM the program creates on Proxmox (the booted demo VM stands
    in for it: `live.LiveMocks`; the Proxmox API at `network.PROXMOX_ENDPOINT` is never called, nothing
    listens there), its release, package, images and identity provider. No `vmHostKey`: the program
    generates the VM's host key, and the demo VM booted with it (`first_boot_user_data`). With `team`, the
    stack is that team's (`DemoTeam.config_values`)."""
    work = Path(vm.workdir).parent
    config = load_stack_config("dev").with_values(
        vmDebianRelease=str(release),
        vmHostKey=None,
        vmProvider="proxmox",
        proxmoxEndpoint=network.PROXMOX_ENDPOINT,
        proxmoxNode=network.PROXMOX_NODE,
        proxmoxTemplateVmId="9000",
        proxmoxBridge=network.PROXMOX_BRIDGE,
        proxmoxGateway=network.GATEWAY,
        proxmoxPrefixLength="24",
        proxmoxSshUser="root",
        proxmoxApiToken=network.PROXMOX_API_TOKEN,
        proxmoxSshPrivateKey=proxmox_ssh_key(work),
        vmSshPrivateKey=vm.admin_key.read_text(),
        codeServerVersion=deb.version,
        codeServerSha256=deb.sha256,
        codeServerPackageUrl=f"http://{network.PACKAGE_SITE}/code-server_{{version}}_amd64.deb",
        aptProxyAddress=network.APT_PROXY[0],
        aptProxyPort=str(network.APT_PROXY[1]),
        entraEgress=[f"{network.IDENTITY}/32"],
        # The vendor repositories (Wazuh, Zabbix) are unreachable here: their configs are checked as
        # rendered (tests/host/test_render.py), their installs are not run.
        wazuhEnabled="false",
        zabbixEnabled="false",
        zabbixPsk=None,
        ideEgressDomains=list(network.IDE_EGRESS),
        ideExtensionGallery=f"https://{network.GALLERY[0]}",
        backupRepository=f"rest:https://{network.BACKUP_HOST}:{network.BACKUP[1]}/code-server",
        backupRepositoryAddress=network.BACKUP[0],
        backupRepositoryPort=str(network.BACKUP[1]),
        fortigateCaBundle=str(ca.cert),
        fortigateApiToken=token,
        **pushed,
    )
    return config.with_values(**team.config_values()) if team is not None else config


def program_user_data(plan: PlanResult) -> str:
    """The user-data the program hands Proxmox (its snippet's content): what a created VM boots from."""
    return str(plan.one(PROXMOX_SNIPPET).values["sourceRaw"]["data"])


def first_boot_user_data(vm: BootedVM, release: int, deb: codeserver_deb.CodeServerDeb, ca: DemoCA, work: Path,
                         progress: Progress, team: DemoTeam | None = None) -> str:
    """The program's user-data for the demo VM, before it exists: the plan of the demo stack (the VM's admin
    key made first, as the operator's `vmSshPrivateKey`; the gateway images are the stack's own until pushed,
    which the user-data does not depend on). The mock runtime's keys are deterministic per resource name,
    so the converges after boot render the same document (`LiveMocks` checks that)."""
    vm.admin_public_key()
    progress("planning the demo stack: the user-data the program makes for its VM")
    return program_user_data(run_program(demo_config(vm, release, deb, {}, ca, fortios_token(work), team)))


def _quiet_ide(vm: BootedVM, ide_user: str) -> None:
    """The demo's one setting of its own for the IDE user, made once: a quiet first screen (no chat
    panel, no welcome page), the user's to change afterwards."""
    target = f"/home/{ide_user}/.local/share/code-server/User/settings.json"
    if not (vm.path / target.lstrip("/")).exists():
        vm.chroot_run(["sh", "-c", 'umask 077 && mkdir -p "${1%/*}" && cat > "$1"', "sh", target], user=ide_user,
                      input=user_settings())


def fortios_token(work: Path) -> str:
    """The demo's FortiOS API token: random, made once, kept in a 0600 file (never on a command line)."""
    path = work / "fortios-token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text()


def apply_fortigate(vm: BootedVM, plan: PlanResult, work: Path) -> dict[str, int]:
    """The program's FortiGate objects onto the stand-in (`scripts/lab/demo/fortigate.py`), in the peer namespace."""
    registrations = [{"urn": r.urn, "type": r.type, "name": r.name, "values": r.values}
                     for r in plan.resources if r.type.startswith(fortigate.DYNAMIC_PREFIX)]
    proc = subprocess.run(vm.peer_argv([sys.executable, "-m", "scripts.lab.demo.fortigate", "apply", str(work / "fortigate-state.json")]),
                          input=json.dumps(registrations), capture_output=True, text=True, cwd=REPOSITORY, timeout=600,
                          env={**os.environ, "FORTIOS_API_TOKEN": fortios_token(work)}, check=False)
    if proc.returncode != 0:
        raise RealRootError(f"applying the FortiGate objects failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ide_hosts(vm: BootedVM, ca: DemoCA) -> None:
    """What the VM's image would bring for the internal hosts (the IDE's, the backup server): their
    names in /etc/hosts (the demo's DNS address answers no queries) and the demo CA in the system
    trust store (git, curl, restic)."""
    hosts = vm.path / "etc/hosts"
    block = "".join(f"{address} {name}\n" for name, address in
                    (network.CODE_HOST, network.OTHER_CODE_HOST, network.GALLERY, (network.BACKUP_HOST, network.BACKUP[0])))
    text = hosts.read_text()
    if block not in text:
        hosts.write_text(text + "# the demo's test hosts\n" + block)
    anchor = vm.path / "usr/local/share/ca-certificates/hcs-demo-ca.crt"
    if not anchor.exists() or anchor.read_bytes() != ca.cert.read_bytes():
        anchor.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ca.cert, anchor)
        anchor.chmod(0o644)
        vm.chroot_run(["update-ca-certificates"])


def _trust_registry(ca: DemoCA) -> Callable[[Path], None]:
    def install(root: Path) -> None:
        directory = root / "etc/docker/certs.d" / network.REGISTRY
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ca.cert, directory / "ca.crt")
    return install


def _step_files(create: str, stdin: str | None) -> dict[str, tuple[str, str]]:
    """path → (manifest line, content) of a file-installing step."""
    lines = [line for word in shlex.split(create) if word.startswith("HCS_FILES=")
             for line in word.removeprefix("HCS_FILES=").splitlines() if line]
    contents = [base64.b64decode(line).decode() for line in (stdin or "").splitlines()]
    return {line.split(" ", 3)[3]: (line, content) for line, content in zip(lines, contents, strict=True)}


def identity(config: StackConfig, work: Path, team: DemoTeam | None = None) -> idp_setup.IdpFiles:
    """The Entra stand-in's files for the demo's app registration (made once, then reused).

    The client ID, the group, the client secret, the app's `groupMembershipClaims` and its group
    assignments are what the program's graph gives Entra's resources (the plan's mocks answer them,
    as Entra would), so the stand-in knows the same app. With `team`: no group; the app roles and their
    assignments are the plan's, the redirect URIs are every workspace host's callback, and the team's
    users have the object IDs the stack grants.
    """
    plan = run_program(config)
    group, client_id = plan.outputs["entraGroupObjectId"], plan.outputs["entraClientId"]
    # groupMembershipClaims and the group assignments decide the groups claim, as in Entra.
    registration = idp_setup.app_registration(plan.resources, client_id)
    out = work / "idp"
    if (out / "users.json").exists():
        return idp_setup.load(out, group, client_id, registration)
    install = next(r for r in plan.resources if r.name == "gateway-files-install")
    files = _step_files(install.values["create"], install.values.get("stdin"))
    secret = files[f"{OAUTH2_PROXY_DIR}/client-secret"][1]
    # The callback of the stack's host, or of every workspace host (a team has no group: `group` is None).
    redirect_uris = (tuple(f"{url}{layout.CALLBACK_PATH}" for url in plan.outputs["workspaces"].values()) if team is not None
                     else idp_setup.redirect_uris(config.values["hostname"]))
    return idp_setup.write(out, tenant_id=config.values["entraTenantId"], client_id=client_id,
                           group_id=group, redirect_uris=redirect_uris, registration=registration,
                           email_domain=json.loads(config.values["emailDomains"])[0], address=network.IDENTITY,
                           client_secret=secret, oids=dict(team.oids) if team is not None else None)


def gateway_overrides(tenant_id: str, idp: idp_setup.IdpFiles) -> Rewrite:
    """The gateway files as the program renders them, with the sign-in test overrides
    (`scripts/lab/livepath/signin.py`: the stand-in's endpoints) and the stand-in's CA beside them."""
    def rewrite(create: str, stdin: str | None) -> tuple[str, str | None]:
        files = _step_files(create, stdin)
        config_path = f"{OAUTH2_PROXY_DIR}/oauth2-proxy.cfg"
        line, rendered = files[config_path]
        files[config_path] = (line, signin.with_test_overrides(rendered, tenant_id))
        mode, owner, group, _ = line.split(" ", 3)
        ca_path = f"{OAUTH2_PROXY_DIR}/idp-ca.crt"
        files[ca_path] = (f"{mode} {owner} {group} {ca_path}", idp.tls.ca_cert.read_text())
        manifest = "HCS_FILES=" + "".join(entry + "\n" for entry, _ in files.values())
        words = [manifest if w.startswith("HCS_FILES=") else w for w in shlex.split(create)]
        return shlex.join(words), encode_contents([content for _, content in files.values()])
    return rewrite


def edit_files(edits: dict[str, Callable[[str], str]]) -> Rewrite:
    """A step's files as the program renders them, each path of `edits` passed through its function."""
    def rewrite(create: str, stdin: str | None) -> tuple[str, str | None]:
        files = _step_files(create, stdin)
        missing = set(edits) - set(files)
        if missing:
            raise RealRootError(f"the step installs none of {sorted(missing)}")
        files = {path: (line, edits[path](content) if path in edits else content) for path, (line, content) in files.items()}
        return create, encode_contents([content for _, content in files.values()])
    return rewrite


def converge_demo(vm: BootedVM, config: StackConfig, idp: idp_setup.IdpFiles, progress: Progress,
                  extra: dict[str, Rewrite] | None = None) -> tuple[PlanResult, Applied]:
    """`converge` with the demo's own rewrite (the sign-in overrides for the Entra stand-in), plus `extra`."""
    rewrites = {"gateway-files-install": gateway_overrides(config.values["entraTenantId"], idp), **(extra or {})}
    return converge(vm, config, progress, rewrites)


def reconverge(running: Demo, extra: dict[str, Rewrite], progress: Progress = lambda _line: None) -> Applied:
    """Converge the running demo again as `up()` does, with more step rewrites (test-only overrides)."""
    return converge_demo(running.vm, running.config, identity(running.config, running.workdir, running.team), progress, extra)[1]


def _start_identity(vm: BootedVM, state: DemoState, idp: idp_setup.IdpFiles, progress: Progress) -> None:
    if _alive(state, "idp"):
        return
    progress(f"starting the Entra stand-in (scripts/lab/idp) on {network.IDENTITY}:443")
    work = Path(state.workdir)
    state.processes["idp"] = _spawn_detached(vm.peer_argv(signin.idp_argv(idp)), work / "idp.log")
    state.save()
    _wait("the Entra stand-in", lambda: _https_up(vm, f"https://{network.IDENTITY}/", idp.tls.ca_cert), work / "idp.log")


def converge(vm: BootedVM, config: StackConfig, progress: Progress, rewrites: dict[str, Rewrite] | None = None) -> tuple[PlanResult, Applied]:
    """Evaluate the program for `config` and apply it to the VM (see `live.LiveMocks`)."""
    engine = docker.DockerClient(base_url=f"unix://{vm.docker_socket}", version=DOCKER_API)
    mocks = LiveMocks(config.values["entraTenantId"], vm.runner(), engine, rewrites, on_progress=progress,
                      seed=nocloud.seed_user_data(vm.path))
    plan = run_program(config, mocks=mocks)
    return plan, mocks.applied


def _running_with(release: int, tag: str) -> str | None:
    """Another demo whose VM of `release` is running (its systemd alive), if any.

    Both VMs would bind the host's /sys/fs/cgroup and name their units alike: one cgroup, so one
    VM's per-unit BPF programs (IPAddressDeny) filter the other's processes (seen here: the weakened
    attacker suite timed out while a second demo ran)."""
    for work in sorted(demo_dir(tag).parent.glob("*/vm-state.json")):
        other = DemoState.load(work.parent)
        if other is None or other.tag == tag or other.release != release:
            continue
        comm = Path(f"/proc/{load_state(work).init_pid}/comm")
        if comm.is_file() and comm.read_text().strip() == "systemd":
            return other.tag
    return None


def up(tag: str = DEFAULT_TAG, progress: Progress = print, release: int = rootfs.DEFAULT_RELEASE, team: DemoTeam | None = None) -> Demo:
    """Bring the demo up on a Debian `release` VM, or converge the running one again (see the module docstring).

    With `team` the stack is that team (`DemoTeam`): its workspaces on the VM, the central Caddy serving
    every workspace host, the stand-in's app registration taken from the plan (app roles and assignments)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    work = demo_dir(tag)
    image = rootfs.ensure_image(release, progress=progress)
    deb = codeserver_deb.ensure()
    for tool in ("oauth2-proxy", "registry", "crane"):  # the Pulumi CLI is the engine tests' own
        go_cache.ensure(tool)
    timings["caches"] = time.monotonic() - started
    ca = DemoCA(work / "pki")
    state = DemoState.load(work)
    vm: BootedVM | None = None
    if state is not None and state.release != release:
        raise RealRootError(f"demo {tag} runs Debian {state.release}, not {release}: take it down first (make demo-down)")
    wanted = team.config_values() if team is not None else None
    if state is not None and state.team != wanted:
        raise RealRootError(f"demo {tag} runs another stack ({'a team' if state.team else 'the single IDE user'}): take it down first")
    if state is not None:
        try:
            vm = BootedVM.attach(image, load_state(work / "vm-state.json"))
            progress(f"attached to the running demo VM (systemd pid {vm.init_pid})")
        except (RealRootError, FileNotFoundError) as error:
            progress(f"the previous demo is gone ({error}); removing its leftovers")
            down(tag, progress)
            state, vm = None, None
    if vm is None or state is None:
        if (other := _running_with(release, tag)) is not None:
            raise RealRootError(
                f"demo {other} already runs a Debian {release} VM: two VMs of one release share this machine's cgroup paths, "
                f"so systemd's IP filters of one unit (code-server's IPAddressDeny) act on the other's; take {other} down first "
                "or use the other release (--release)")
        work.mkdir(parents=True, exist_ok=True)
        ca = DemoCA(work / "pki")
        state = DemoState(tag=tag, workdir=str(work), started=time.time(), release=release, team=wanted)
        vm = BootedVM(image, work / "vm", network.root_config(), tag=tag, purge=reinstalled(release))
        user_data = first_boot_user_data(vm, release, deb, ca, work, progress, team)
        mark = time.monotonic()
        vm.start(progress=progress, before_boot=_trust_registry(ca), user_data=user_data)
        timings["boot"] = time.monotonic() - mark
        save_state(vm, work / "vm-state.json")
        state.save()
        _front_is_default_source(vm)
        _start_services(vm, state, ca, deb, progress)
        state.images = _push_images(vm, ca, load_stack_config("dev"), work, progress)
        state.save()
    _ide_hosts(vm, ca)
    _start_ide_hosts(vm, state, ca, progress)
    config = demo_config(vm, release, deb, state.images, ca, fortios_token(work), team)
    idp = identity(config, work, team)
    _start_identity(vm, state, idp, progress)
    _start_backup_server(vm, state, ca, config, progress)
    granted = {short: name for name, short in team.workspaces} if team is not None else {}
    state.users = [{"username": u.username, "password": u.password,
                    "note": (("in the allowed group" if u.in_group else "NOT in the allowed group") if team is None
                             else f"granted workspace {granted[short]}" if short in granted else "granted no workspace")
                    + ("" if u.username.endswith("@" + json.loads(config.values["emailDomains"])[0]) else ", outside emailDomains")}
                   for short, u in idp.users.items()]
    state.save()
    progress("converging: the program's remote commands over SSH, its containers in the VM's Docker")
    mark = time.monotonic()
    plan, applied = converge_demo(vm, config, idp, progress)
    for account in (team.accounts() if team is not None else [config.values.get("ideUser", "coder")]):
        _quiet_ide(vm, account)
    counts = apply_fortigate(vm, plan, work)
    applied.add("fortigate", sum(v for k, v in counts.items() if k != "unchanged"),
                "fortigate: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    timings["converge"] = time.monotonic() - mark
    site = plan.outputs.get("frontProxySite")
    if site:
        _start_front(vm, state, site, config.values["hostname"], front_hop_files(plan), progress)
    timings["total"] = time.monotonic() - started
    progress(f"converged: {applied.total} change(s), {applied.ssh_sessions} SSH session(s), {timings['converge']:.1f} s")
    return Demo(vm, state, config, plan, applied, timings, team)


def down(tag: str = DEFAULT_TAG, progress: Progress = print, keep_backups: bool = False) -> list[str]:
    """Stop and remove everything `up()` made for `tag` (the backup server's data too, unless
    `keep_backups`: then the next `up()` serves them to its new VM); return what was removed."""
    work = demo_dir(tag)
    removed: list[str] = []
    state = DemoState.load(work)
    for name, pid in (state.processes if state else {}).items():
        if Path(f"/proc/{pid}").exists():
            _stop(pid)
            removed.append(f"process {name} ({pid})")
    vm_state = work / "vm-state.json"
    if vm_state.exists():
        saved = load_state(vm_state)
        try:
            vm = BootedVM.attach(rootfs.image_path(state.release if state else rootfs.DEFAULT_RELEASE), saved)
            vm.close()
            removed.append(f"VM (systemd pid {saved.init_pid})")
        except RealRootError:
            pass
    pair = NamespacePair(network.root_config().network, tag).adopt()
    removed += [f"network namespace {ns}" for ns in pair._created]
    pair.close()
    if work.exists():
        shutil.rmtree(work)
        removed.append(str(work))
    if not keep_backups and backup_dir(tag).exists():
        shutil.rmtree(backup_dir(tag))
        removed.append(str(backup_dir(tag)))
    for line in removed:
        progress(f"removed {line}")
    return removed


def describe(running: Demo) -> dict[str, Any]:
    """What a person needs to use the demo (`build/demo/demo.json`)."""
    vm, config, work = running.vm, running.config, running.workdir
    hostname = config.values["hostname"]
    ca = front_ca(work)
    browser = (f"ip netns exec {vm.peer_namespace} chromium --no-sandbox --user-data-dir=$(mktemp -d) "
               f"--host-resolver-rules='MAP {hostname} {network.FRONT_PROXY}' "
               f"--ignore-certificate-errors-spki-list={spki_sha256(ca)},{spki_sha256(ca.with_name('intermediate.crt'))} "
               f"https://{hostname}/")
    ssh = (f"ip netns exec {vm.peer_namespace} ssh -b {network.ADMIN} -i {vm.admin_key} "
           f"-o UserKnownHostsFile={vm.known_hosts} -o StrictHostKeyChecking=yes {vm.admin_user}@{vm.address}")
    return {
        "url": f"https://{hostname}/",
        "open_with": browser,
        "front_proxy": {"address": network.FRONT_PROXY, "ca_certificate": str(ca)},
        "vm": {"debian": vm.release, "systemd": vm.systemctl("--version").splitlines()[0],
               "address": vm.address, "ssh_port": vm.port, "admin_user": vm.admin_user, "key": str(vm.admin_key),
               "host_key": vm.host_key, "known_hosts": str(vm.known_hosts), "ssh": ssh, "systemd_pid": vm.init_pid},
        "namespaces": {"vm": vm.vm_namespace, "peer": vm.peer_namespace},
        "services": {"apt_proxy": ":".join(map(str, network.APT_PROXY)), "registry": network.REGISTRY,
                     "identity_provider": network.IDENTITY, "images": running.state.images},
        "users": running.state.users,
        "converge": {"changes": running.applied.total, "ssh_sessions": running.applied.ssh_sessions,
                     "steps": running.applied.lines},
        "timings_s": {k: round(v, 1) for k, v in running.timings.items()},
        "workdir": str(work),
    }


def user(running: Demo, short: str) -> dict[str, str]:
    """A test user of the Entra stand-in by the name before the @ (alice: in the group; bob: not)."""
    return next(u for u in running.state.users if u["username"].startswith(short + "@"))


def summary(info: dict[str, Any]) -> str:
    """The lines `make demo` prints."""
    lines = [
        "", f"The demo is up: {info['url']}",
        f"  open it:   {info['open_with']}",
        f"  the VM:    Debian {info['vm']['debian']}, {info['vm']['systemd']} as PID 1",
        f"  reach it:  {info['vm']['ssh']}",
        f"  host key:  {info['vm']['host_key']}",
        f"  namespaces: {info['namespaces']['vm']} (VM), {info['namespaces']['peer']} (its network)",
    ]
    lines += [f"  user:      {u['username']} / {u['password']}  ({u['note']})" for u in info["users"]]
    lines.append(f"  converge:  {info['converge']['changes']} change(s), {info['converge']['ssh_sessions']} SSH session(s); "
                 f"timings {info['timings_s']}")
    lines.append("  stop it:   make demo-down")
    return "\n".join(lines)


def leftovers(tag: str) -> list[str]:
    """Anything of demo `tag` still on this machine: namespaces, processes, mounts, its directory."""
    work = demo_dir(tag)
    found = [f"network namespace {ns}" for ns in existing_namespaces() if ns in (f"{tag}v", f"{tag}p")]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(work) in cmdline or f"/run/netns/{tag}v" in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    found += [f"mount {line.split()[4]}" for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(work) in line]
    found += [f"directory {path}" for path in (work, backup_dir(tag)) if path.exists()]
    return found
