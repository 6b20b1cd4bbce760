"""The attacker at the IDE's terminal, on the running demo: an agent started from the real
terminal, and the suite of attempts it makes (`tests/demo/test_attacker.py` runs and judges them).

The agent (`attack_agent.py`) is typed into the workbench's integrated terminal by a signed-in
browser, so it is a child of code-server's own terminal: the IDE user, code-server's unit and
cgroup, its seccomp filter, namespaces and no-new-privileges, exactly as a person there. The test
(root on the VM's side) hands it requests through files in the IDE user's home and sets the
scene around it (a service down, a listener on the network).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, sync_playwright

from components.gateway import render_oauth2_proxy
from scripts.lab.demo import demo, network
from scripts.lab.livepath.browser import fill_login_form, new_session, type_in_terminal
from scripts.lab.livepath.chain import CHROMIUM, CHROMIUM_ARGS, spki_sha256

HERE = Path(__file__).resolve().parent
#: Sign-ins `start_agent` makes before it gives up on the agent starting.
SIGN_INS = 3
AGENT_DIR = ".hcs-attack"
IDE_USER = "coder"  # Pulumi.yaml's default ideUser, which the demo stack keeps


@dataclass
class Attempt:
    """One row of the attacker's table."""

    attempt: str
    expected: str
    observed: str
    failed: bool
    #: Stopped by the per-identity layers (the firewall hook, the unit's IP filter): with those
    #: switched off the attempt must succeed, which proves the row can fail.
    by_identity: bool = False
    #: A row that must stay open says why.
    open_because: str = ""


class Agent:
    """The running agent: requests in, answers out (files in the IDE user's home)."""

    def __init__(self, running: demo.Demo) -> None:
        self.vm = running.vm
        self.dir = running.vm.path / "home" / IDE_USER / AGENT_DIR
        self.count = 0
        self.pid = 0

    def ask(self, op: str, timeout: float = 40, wait: bool = True, **fields: Any) -> dict[str, Any]:
        """Hand the agent one request; its answer (nothing when `wait` is false: an attempt the agent does not survive)."""
        self.count += 1
        name = f"{self.count:04d}"
        request = self.dir / f"{name}.json"
        tmp = self.dir / f"{name}.part"
        tmp.write_text(json.dumps({"op": op, **fields}))
        tmp.chmod(0o644)
        tmp.rename(request)
        if not wait:
            return {}
        answer = self.dir / f"{name}.out.json"
        deadline = time.monotonic() + timeout
        while not answer.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"the agent did not answer {op} {fields} in {timeout:.0f} s (alive: {self.alive()})")
            time.sleep(0.05)
        return json.loads(answer.read_text())

    def run(self, *argv: str, timeout: float = 20, input: str | None = None) -> dict[str, Any]:
        return self.ask("run", argv=list(argv), timeout=timeout + 10, input=input)

    def connect(self, proto: str, address: str, port: int) -> str:
        out = self.run("python3", f"/home/{IDE_USER}/{AGENT_DIR}/egress_probe.py", proto, address, str(port))
        return out["stdout"].strip() or f"error: {out['stderr'].strip()[-200:]}"

    def alive(self) -> bool:
        return bool(self.pid) and Path(f"/proc/{self.pid}").exists()


@contextmanager
def launched_browser(running: demo.Demo) -> Iterator[Browser]:
    """Chromium in the peer namespace (a person on the network), trusting exactly the demo's CAs
    (the `browser` fixture's; a test that re-creates the demo launches one for the new CAs)."""
    work, vm = running.workdir, running.vm
    wrapper = work / "chromium-in-peer-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {vm.peer_namespace} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    front = demo.front_ca(work)
    idp_ca = work / "idp/tls/idp-ca.crt"
    pins = ",".join(spki_sha256(c) for c in (front, front.with_name("intermediate.crt"), idp_ca))
    hostname = running.config.values["hostname"]
    # A team's workspace hosts too (the plan's `workspaces` output), all served by the central Caddy.
    hosts = [hostname, *(urlsplit(url).hostname for url in (running.plan.outputs.get("workspaces") or {}).values())]
    mapped = "".join(f"MAP {host} {network.FRONT_PROXY}, " for host in hosts)
    args = [*CHROMIUM_ARGS,
            f"--host-resolver-rules={mapped}MAP {render_oauth2_proxy.ENTRA_HOST} {network.IDENTITY}",
            f"--ignore-certificate-errors-spki-list={pins}"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(wrapper), args=args)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def signed_in_workbench(running: demo.Demo, browser: Browser) -> Iterator[Page]:
    """A new browser session signed in as the demo's user alice, on the loaded workbench; closed after."""
    session = new_session(browser)
    try:
        session.page.goto(f"https://{running.config.values['hostname']}/")
        fill_login_form(session, type("User", (), demo.user(running, "alice"))())
        session.page.wait_for_selector(".monaco-workbench", timeout=90_000)
        yield session.page
    finally:
        session.context.close()


def start_agent(running: demo.Demo, browser: Browser) -> Agent:
    """Sign in as a person would and type the agent's start into the IDE's terminal."""
    vm = running.vm
    uid, gid = (int(vm.chroot_run(["id", flag, IDE_USER]).stdout) for flag in ("-u", "-g"))
    agent = Agent(running)
    # One agent at a time: code-server keeps a terminal (and what it started) for the next sign-in,
    # and an agent left by an earlier test would answer the same requests (seen: two git clones
    # racing into one directory).
    vm.chroot_run(["pkill", "-KILL", "-u", IDE_USER, "-f", "attack_agent[.]py"], check=False)
    deadline = time.monotonic() + 10
    while vm.chroot_run(["pgrep", "-u", IDE_USER, "-f", "attack_agent[.]py"], check=False).returncode == 0:
        assert time.monotonic() < deadline, "an earlier agent outlived SIGKILL for 10 s"
        time.sleep(0.1)
    shutil.rmtree(agent.dir, ignore_errors=True)
    agent.dir.mkdir(mode=0o700)
    for source in (HERE / "attack_agent.py", HERE / "egress_probe.py"):
        shutil.copy(source, agent.dir / source.name)
    for path in (agent.dir, *agent.dir.iterdir()):
        shutil.chown(path, uid, gid)
    # code-server's unit is active as soon as it is exec'd (Type=exec): after a restart (a stop test,
    # a converge that changed its drop-in) wait until it serves, or the sign-in lands on a 502.
    deadline = time.monotonic() + 60
    while vm.chroot_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:8080/healthz"],
                        user=IDE_USER, check=False).stdout != "200":
        assert time.monotonic() < deadline, "code-server did not serve on 127.0.0.1:8080 within 60 s"
        time.sleep(0.2)
    ready = agent.dir / "ready"
    for attempt in range(1, SIGN_INS + 1):
        with signed_in_workbench(running, browser) as page:
            type_in_terminal(page, f"setsid -f python3 ~/{AGENT_DIR}/attack_agent.py ~/{AGENT_DIR} >/dev/null 2>&1")
            deadline = time.monotonic() + 30
            while not (ready.exists() and ready.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.1)
        if ready.exists() and ready.read_text().strip():
            break
        # The browser's keystrokes can be lost while the workbench attaches the terminal code-server
        # kept from an earlier sign-in (seen once in about forty runs): no agent ran. Sign in again, in
        # a new browser session, and type it again; a late first start would be killed here first.
        print(f"the agent typed into the terminal did not start (sign-in {attempt} of {SIGN_INS})", file=sys.stderr)
        vm.chroot_run(["pkill", "-KILL", "-u", IDE_USER, "-f", "attack_agent[.]py"], check=False)
    else:
        raise AssertionError(f"the agent typed into the terminal did not start after {SIGN_INS} sign-ins")
    # The pid as the VM's own /proc shows it; the host sees it under another number.
    inner = int(ready.read_text())
    agent.pid = _host_pid(vm, inner)
    status = dict(line.split(":\t", 1) for line in vm.chroot_run(["cat", f"/proc/{inner}/status"]).stdout.splitlines() if ":\t" in line)
    cgroup = vm.chroot_run(["cat", f"/proc/{inner}/cgroup"]).stdout
    assert f"code-server@{IDE_USER}.service" in cgroup, cgroup
    assert status["Uid"].split()[0] == str(uid) and status["NoNewPrivs"].strip() == "1" and status["Seccomp"].strip() == "2", status
    return agent


def _host_pid(vm: Any, inner: int) -> int:
    """The host's pid of a process the VM knows as `inner` (the VM has its own pid namespace)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) > 1 and ids[-1] == str(inner) and _in_vm(vm, proc):
                            return int(proc.name)
            except OSError:
                continue
    return 0


def _in_vm(vm: Any, proc: Path) -> bool:
    try:
        return (proc / "ns/pid").readlink() == Path(f"/proc/{vm.init_pid}/ns/pid").readlink()
    except OSError:
        return False
