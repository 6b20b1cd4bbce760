"""The attacker suite: everything the IDE user tries from code-server's own terminal, on the booted demo.

Every attempt runs in the agent a signed-in browser typed into the workbench's terminal
(`attacker.py`), so in code-server's unit as it really runs. Each must fail, except the rows
that must stay open (they say why). Then the suite runs again with the per-identity layers
switched off (the firewall hook and the unit's IP filter), a test-only override of the demo's
converge that no stack setting can express, and every row those layers guard then succeeds:
each such row can fail. The tables are printed and written to build/demo/attacker-*.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from components import layout
from components.gateway.stack import OAUTH2_PROXY_DIR
from components.host import render
from components.settings import debian
from components.settings.topology import IDE_PROXY_PORT
from scripts.lab.demo import demo, network
from scripts.lab.demo.attacker import AGENT_DIR, IDE_USER, Agent, Attempt, start_agent

pytestmark = pytest.mark.slow
SERVICE_USER = "codesvc"
#: Refused by the VM itself, at once: EPERM, ICMP admin-prohibited, or an address family the unit does not allow.
REFUSED = ("blocked", "unreachable", "unsupported")
SANDBOX = "/etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf"
#: A port nobody serves on the VM, for a listener of the terminal's own.
OWN_PORT = 9000
#: The releases whose systemd enforces the unit's bind limits (components/settings/debian.py).
BIND_LIMITED = {v for v, r in debian.RELEASES.items() if r.bpf_framework}
#: The per-identity layers switched off: a no-op hook (the previous hook's `stop` removes its
#: chains) and the unit without its IP filter and bind limits. Only the demo's harness can do this.
WEAKENED = {
    "vm-firewall": demo.edit_files({render.UFW_AFTER_INIT: lambda _text: "#!/bin/sh\nexit 0\n"}),
    "vm-code-server": demo.edit_files({SANDBOX: lambda text: re.sub(
        r"(?m)^(IPAddress(Deny|Allow)|SocketBind(Allow|Deny)|RestrictNetworkInterfaces)=.*\n", "", text)}),
}


@pytest.fixture(scope="module")
def scene(running_demo: demo.Demo) -> Iterator[None]:
    """The VM's neighbours on the network for the attempts: a listener at each destination the VM
    may reach (TCP and UDP), and IPv6 on the demo's link (the stack's allowlist is IPv4 only)."""
    vm = running_demo.vm
    served = {network.APT_PROXY, network.BACKUP, (network.REGISTRY, 443), (network.IDENTITY, 443), (network.CODE_HOST[1], 443)}
    specs = sorted({f"{p}:{addr}:{port}" for _, _, addr, port, _ in network.ALLOWED for p in ("tcp", "udp")
                    if not (p == "tcp" and (addr, port) in served)}
                   | {f"tcp:{network.INTERNET_CLIENT}:443", f"udp:{network.INTERNET_CLIENT}:53",
                      f"tcp:{network.OUTSIDE6}:53", f"udp:{network.OUTSIDE6}:53", f"tcp:{network.GATEWAY6}:443"})
    vm_ip = ["ip", "netns", "exec", vm.vm_namespace, "ip", "-6", "addr"]
    subprocess.run([*vm_ip, "replace", f"{network.VM6}/64", "dev", "eth0", "nodad"], check=True)
    for address in (network.GATEWAY6, network.OUTSIDE6):
        assert vm.peer_run(["ip", "-6", "addr", "replace", f"{address}/64", "dev", "eth0", "nodad"]).returncode == 0
    log = running_demo.workdir / "attack-listeners.log"
    log.unlink(missing_ok=True)
    listeners = vm.peer_spawn([sys.executable, "-m", "scripts.lab.demo.listeners", *specs], log=log)
    deadline = time.monotonic() + 10
    while "ready" not in (log.read_text() if log.exists() else ""):
        assert listeners.poll() is None and time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.1)
    try:
        yield
    finally:
        listeners.kill()
        listeners.wait()
        subprocess.run([*vm_ip, "del", f"{network.VM6}/64", "dev", "eth0"], check=False)
        for address in (network.GATEWAY6, network.OUTSIDE6):
            vm.peer_run(["ip", "-6", "addr", "del", f"{address}/64", "dev", "eth0"])


def _refused(result: str) -> bool:
    return result in REFUSED


def network_attempts(agent: Agent) -> list[Attempt]:
    rows = []
    allowed: dict[tuple[str, int], tuple[str, set[str]]] = {}
    for what, proto, address, port, _ in network.ALLOWED:
        allowed.setdefault((address, port), (what, set()))[1].add(proto)
    for (address, port), (what, protocols) in allowed.items():
        for p in ("udp", "tcp"):
            seen = agent.connect(p, address, port)
            label = f"{what}: {p} {address}:{port}" + (" (data out over DNS)" if what == "dns" else "")
            # a protocol the flow does not use is not in UFW's allowlist either: it stays refused without the hook
            rows.append(Attempt(label, "refused by the VM", seen, _refused(seen), by_identity=p in protocols))
    for label, p, address, port in (("outside every allowlist", "tcp", network.INTERNET_CLIENT, 443),
                                    ("outside every allowlist", "udp", network.INTERNET_CLIENT, 53),
                                    ("a DMZ host", "tcp", network.DMZ_OUTSIDER, 443),
                                    ("IPv6 resolver", "udp", network.OUTSIDE6, 53), ("IPv6 resolver", "tcp", network.OUTSIDE6, 53),
                                    ("IPv6 gateway", "tcp", network.GATEWAY6, 443)):
        seen = agent.connect(p, address, port)
        rows.append(Attempt(f"{label}: {p} [{address}]:{port}" if ":" in address else f"{label}: {p} {address}:{port}",
                            "refused by the VM", seen, _refused(seen)))
    return rows


def local_listeners(running: demo.Demo) -> list[tuple[str, str, int]]:
    """Every listening socket on the VM, as root sees it: (proto, address to dial, port)."""
    out = running.vm.chroot_run(["ss", "-H", "-ltn"]).stdout
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        address = address.strip("[]").split("%")[0]
        dial = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(address, address)
        found.add(("tcp", dial, int(port)))
    return sorted(found)


def local_attempts(running: demo.Demo, agent: Agent) -> list[Attempt]:
    rows = []
    for proto, address, port in local_listeners(running):
        seen = agent.connect(proto, address, port)
        if (address, port) == ("127.0.0.1", layout.CODE_SERVER_PORT):
            rows.append(Attempt(f"its own code-server: {proto} {address}:{port}", "open", seen, False,
                                open_because="the IDE user is code-server's own identity; its terminal is code-server's child"))
        elif (address, port) == ("127.0.0.1", IDE_PROXY_PORT):
            rows.append(Attempt(f"its allowlisting proxy: {proto} {address}:{port}", "open", seen, False,
                                open_because="the IDE user's one door off the VM; what it lets through is the proxy rows' business"))
        else:
            # IPv6 is closed to the unit by its address families too, so it stays refused without the identity layers
            rows.append(Attempt(f"local listener: {proto} {address}:{port}", "refused by the VM", seen, _refused(seen),
                                by_identity=":" not in address))
    return rows


def squat_attempts(running: demo.Demo, agent: Agent) -> list[Attempt]:
    """Take over a port or socket another account serves, while its owner is down."""
    engine, vm, rows = running.docker(), running.vm, []
    port = int(running.config.values.get("gatewayPort", "8880"))
    gateway = engine.containers.get("caddy-gateway")
    gateway.stop(timeout=5)
    try:
        held = [agent.ask("listen", family="inet", address=address, port=port) for address in (vm.address, "127.0.0.1")]
        fetched = vm.peer_run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--resolve",
                               f"{running.config.values['hostname']}:443:{network.FRONT_PROXY}",
                               f"https://{running.config.values['hostname']}/"]).stdout
        accepted = [agent.ask("unlisten", key=h["key"])["accepted"] if h.get("bound") else 0 for h in held]
        observed = f"bound {[h.get('bound') for h in held]}; front proxy answered {fetched}; squatter accepted {sum(accepted)}"
        rows.append(Attempt(f"bind the gateway's port {port} (VM address and loopback) while the gateway is down, "
                            "then a visitor fetches the site through the front proxy", "the squatter receives nothing",
                            observed, sum(accepted) == 0, by_identity=True))
    finally:
        gateway.start()
    proxy = engine.containers.get("oauth2-proxy")
    proxy.stop(timeout=5)
    try:
        held = agent.ask("listen", family="unix", address=layout.OAUTH2_PROXY_SOCKET)
        rows.append(Attempt(f"bind oauth2-proxy's socket {layout.OAUTH2_PROXY_SOCKET} while oauth2-proxy is down",
                            "refused", held.get("error", "bound"), not held.get("bound")))
    finally:
        proxy.start()
    _site_answers(running)
    held = agent.ask("listen", family="inet", address=vm.address, port=vm.port)
    rows.append(Attempt(f"bind SSH's port {vm.port} on the VM's address", "refused", held.get("error", "bound"), not held.get("bound")))
    # A listener of its own, with no owner to wait for: Debian 13's systemd refuses the bind itself.
    held = [agent.ask("listen", family="inet", address=address, port=OWN_PORT) for address in ("127.0.0.1", vm.address)]
    observed = "; ".join(h.get("error", "bound") for h in held)
    for h in held:
        if h.get("bound"):
            agent.ask("unlisten", key=h["key"])
    if running.state.release in BIND_LIMITED:
        rows.append(Attempt(f"listen on a port of its own ({OWN_PORT}, loopback and the VM's address)",
                            "refused at bind (SocketBindDeny=any)", observed, not any(h.get("bound") for h in held), by_identity=True))
    else:
        rows.append(Attempt(f"listen on a port of its own ({OWN_PORT}, loopback and the VM's address)", "refused at bind",
                            observed, not any(h.get("bound") for h in held),
                            open_because=f"Debian {running.state.release}'s systemd has no BPF framework to refuse a bind; "
                                         "the hook refuses every answer of the IDE user's listeners (the squat row)"))
    return rows


def _site_answers(running: demo.Demo, timeout: float = 60) -> None:
    """Wait until the site answers through the front proxy again (the gateway and oauth2-proxy are back)."""
    hostname = running.config.values["hostname"]
    deadline = time.monotonic() + timeout
    while (code := running.vm.peer_run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--resolve",
                                        f"{hostname}:443:{network.FRONT_PROXY}", f"https://{hostname}/"]).stdout) in ("502", "000", ""):
        assert time.monotonic() < deadline, f"the site did not come back after the squat attempts (HTTP {code})"
        time.sleep(0.5)


def host_attempts(running: demo.Demo, agent: Agent) -> list[Attempt]:
    """Files, processes, system paths, persistence, namespaces: the rest of the attacker's view."""
    rows = []

    def attempt(what: str, *argv: str, expected: str = "refused") -> None:
        out = agent.run(*argv)
        said = (out["stderr"] or out["stdout"]).strip().splitlines()
        rows.append(Attempt(what, expected, f"exit {out['rc']}: {said[-1][:90] if said else ''}", out["rc"] != 0))

    attempt("the Docker socket (root in one call)", "python3", "-c",
            "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/var/run/docker.sock')")
    for path in (f"{layout.PROXY_STACK_DIR}/.env", f"{OAUTH2_PROXY_DIR}/client-secret", f"{OAUTH2_PROXY_DIR}/cookie-secret",
                 render.RESTIC_PASSWORD_FILE, render.RESTIC_REPOSITORY_FILE):
        attempt(f"read {path}", "cat", path)
    address, port = network.BACKUP
    seen = agent.connect("tcp", address, port)
    rows.append(Attempt(f"reach the backup server {address}:{port} to delete or overwrite a snapshot "
                        "(without its credentials, which are root's)", "refused by the VM", seen, _refused(seen), by_identity=True))
    admin = running.vm.admin_user
    attempt("list root's home", "ls", "/root")
    attempt("read the admin's authorized_keys", "cat", f"/home/{admin}/.ssh/authorized_keys")
    inner = str(running.docker().containers.get("oauth2-proxy").attrs["State"]["Pid"])  # dockerd's pid: the VM's namespace
    attempt(f"read oauth2-proxy's environment (/proc/{inner}/environ)", "cat", f"/proc/{inner}/environ")
    attempt("signal oauth2-proxy's process", "kill", "-0", inner)
    seen = agent.run("sh", "-c", "ps -eo user= | sort -u")["stdout"].split()
    rows.append(Attempt("see other accounts' processes", "only its own", ", ".join(seen), seen == [IDE_USER]))
    for path in ("/etc/hcs-attack", "/usr/local/bin/hcs-attack", f"{SANDBOX.rsplit('/', 1)[0]}/99-attack.conf",
                 render.UFW_AFTER_INIT, render.CODE_SERVER_CONFIG, "/etc/cron.d/hcs-attack"):
        attempt(f"write {path}", "sh", "-c", f"echo x >> {path}")
    attempt("a crontab", "sh", "-c", "echo '* * * * * id' | crontab -")
    attempt("an at job", "sh", "-c", "echo id | at now + 1 minute")
    attempt("a user timer (systemd-run --user)", "systemd-run", "--user", "--on-active=60", "true")
    attempt("lingering (loginctl enable-linger)", "loginctl", "enable-linger", IDE_USER)
    attempt("an unprivileged user namespace", "unshare", "-U", "-r", "true")
    attempt("a network namespace", "unshare", "-n", "true")
    return rows


def run_suite(running: demo.Demo, agent: Agent) -> list[Attempt]:
    return network_attempts(agent) + local_attempts(running, agent) + squat_attempts(running, agent) + host_attempts(running, agent)


def table(rows: list[Attempt]) -> str:
    lines = ["| attempt | expected | observed |", "|---|---|---|"]
    for r in rows:
        expected = f"{r.expected} ({r.open_because})" if r.open_because else r.expected
        lines.append(f"| {r.attempt} | {expected} | {r.observed.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _write(name: str, rows: list[Attempt]) -> str:
    text = table(rows)
    demo.BUILD.mkdir(parents=True, exist_ok=True)
    (demo.BUILD / name).write_text(text)
    print(f"\n{name}:\n{text}")
    return text


def test_every_attempt_from_the_terminal_fails(running_demo: demo.Demo, scene: None, browser: Browser) -> None:
    agent = start_agent(running_demo, browser)
    rows = run_suite(running_demo, agent)
    text = _write("attacker.md", rows)
    wrong = [r for r in rows if not r.failed and not r.open_because]
    assert not wrong, text
    # Each refusal by the hook left a line naming the IDE user's uid in the VM's journal.
    uid = running_demo.vm.chroot_run(["id", "-u", IDE_USER]).stdout.strip()
    journal = running_demo.vm.chroot_run(["journalctl", "-q", "-o", "cat", "-t", "ulogd", "--since", "-10min"]).stdout
    lines = [line for line in journal.splitlines() if "hcs-refused" in line and f"UID={uid} " in line]
    print(f"{len(lines)} refusal line(s) of uid {uid} in the journal, e.g. {lines[:1]}")
    assert lines, journal[-2000:]


#: Ignores SIGTERM and SIGHUP, and tries to bind code-server's port every 10 ms; a bind is recorded.
SQUATTER = f"""import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", {layout.CODE_SERVER_PORT}))
        s.listen(1)
        open(sys.argv[1], "a").write(repr(time.time()) + "\\n")
        time.sleep(60)
    except OSError:
        s.close()
        time.sleep(0.01)
"""


def _squatter(agent: Agent) -> Path:
    """Start SQUATTER from the terminal (detached, its own session); the file it writes when it binds."""
    marker = agent.dir / "squatted"
    marker.unlink(missing_ok=True)
    (agent.dir / "squat.py").write_text(SQUATTER)
    (agent.dir / "squat.py").chmod(0o644)
    inside = f"/home/{IDE_USER}/{AGENT_DIR}"
    started = agent.run("sh", "-c", f"setsid -f python3 {inside}/squat.py {inside}/{marker.name} </dev/null >/dev/null 2>&1")
    assert started["rc"] == 0, started
    time.sleep(0.5)
    return marker


def test_code_server_stopping_takes_every_process_of_the_terminal(running_demo: demo.Demo, browser: Browser) -> None:
    """Work that outlives the session, and squatting code-server's port while it is down: a process
    started from the terminal that ignores SIGTERM and loops to bind 127.0.0.1:8080, first while the
    unit is stopped, then while the terminal itself kills code-server's main process."""
    vm, unit = running_demo.vm, f"code-server@{IDE_USER}.service"
    agent = start_agent(running_demo, browser)
    marker = _squatter(agent)
    stop = time.monotonic()
    vm.systemctl("stop", unit)
    took = time.monotonic() - stop
    left = vm.chroot_run(["pgrep", "-u", IDE_USER], check=False).stdout.split()
    squatted = marker.exists()
    vm.systemctl("start", unit)
    vm.wait_for_unit(unit)
    rows = [Attempt("a process that ignores SIGTERM outlives code-server's stop", "killed with the unit",
                    f"stop took {took:.1f} s; processes of {IDE_USER} left: {left or 'none'}", not left),
            Attempt(f"bind 127.0.0.1:{layout.CODE_SERVER_PORT} while code-server is stopped", "never bound",
                    "bound" if squatted else "never bound", not squatted)]
    # The terminal kills code-server's main process itself (the same uid may): systemd then kills
    # the rest of the unit at once (KillMode=mixed) and starts code-server again.
    agent = start_agent(running_demo, browser)
    marker = _squatter(agent)
    main = vm.systemctl("show", "-p", "MainPID", "--value", unit)
    agent.ask("run", wait=False, argv=["kill", "-KILL", main])
    deadline = time.monotonic() + 30
    while (again := vm.systemctl("show", "-p", "MainPID", "--value", unit)) in (main, "0", "") or vm.systemctl("is-active", unit) != "active":
        assert time.monotonic() < deadline, vm.systemctl("status", "--no-pager", unit)
        time.sleep(0.1)
    left = vm.chroot_run(["pgrep", "-u", IDE_USER, "-f", "attack_agent|squat.py"], check=False).stdout.split()
    squatted = marker.exists()
    deadline = time.monotonic() + 30
    while not (listener := re.search(r"pid=(\d+),", vm.chroot_run(["ss", "-H", "-ltnp", f"sport = :{layout.CODE_SERVER_PORT}"]).stdout)):
        assert time.monotonic() < deadline, "code-server did not listen again"
        time.sleep(0.2)
    owner = vm.chroot_run(["cat", f"/proc/{listener.group(1)}/cmdline"]).stdout.replace("\0", " ")
    rows += [Attempt("the terminal kills code-server's main process; its other processes live on", "killed with the unit",
                     f"code-server back as pid {again}; agent or squatter left: {left or 'none'}", not left),
             Attempt(f"bind 127.0.0.1:{layout.CODE_SERVER_PORT} in the gap after killing code-server", "never bound",
                     ("bound for the moment before systemd killed it" if squatted else "never bound")
                     + f"; 8080 is code-server's again: {'yes' if '/code-server/' in owner else owner}",
                     not squatted and "/code-server/" in owner, open_because="" if not squatted else
                     "the gap between code-server's death and systemd's SIGKILL is milliseconds; see docs/security-model.md")]
    text = _write("attacker-stop.md", rows)
    assert all(r.failed or r.open_because for r in rows), text


def test_each_identity_row_succeeds_with_the_identity_layers_off(running_demo: demo.Demo, scene: None, browser: Browser) -> None:
    try:
        applied = demo.reconverge(running_demo, WEAKENED)
        assert applied.changes.get("vm-firewall") and applied.changes.get("vm-code-server"), applied.lines
        hooks = running_demo.vm.chroot_run(["sh", "-c", "(iptables-save; ip6tables-save) | grep -c hcs- || true"]).stdout.strip()
        assert hooks == "0", "the weakened converge left the hook's chains"
        agent = start_agent(running_demo, browser)
        rows = run_suite(running_demo, agent)
        text = _write("attacker-weakened.md", rows)
        guarded = [r for r in rows if r.by_identity]
        assert guarded and all(not r.failed for r in guarded), text
    finally:
        restored = demo.reconverge(running_demo, {})
        assert restored.changes.get("vm-firewall") and restored.changes.get("vm-code-server"), restored.lines


def test_the_converge_restores_what_root_tampered_with(running_demo: demo.Demo) -> None:
    """The layers are root's files and chains; a changed drop-in or a flushed hook comes back on the next converge, reported."""
    vm = running_demo.vm
    vm.chroot_run(["sh", "-c", f"sed -i '/^IPAddress/d' {SANDBOX} && systemctl daemon-reload && {render.UFW_AFTER_INIT} stop"])
    assert vm.systemctl("show", "-p", "IPAddressDeny", "--value", f"code-server@{IDE_USER}.service") == ""
    applied = demo.reconverge(running_demo, {})
    assert applied.changes.get("vm-firewall") and applied.changes.get("vm-code-server"), applied.lines
    assert vm.chroot_run([render.UFW_AFTER_INIT, "status"], check=False).returncode == 0
    assert vm.systemctl("show", "-p", "IPAddressDeny", "--value", f"code-server@{IDE_USER}.service") != ""
