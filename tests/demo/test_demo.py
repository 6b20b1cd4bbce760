"""The booted demo VM, as production runs it: units started by systemd, containers in its Docker, UFW in its netfilter.

Expectations are written from the example stack (Pulumi.dev.yaml) and the design, not read back
from the renderers: e.g. which destinations the VM may reach, which accounts run what.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts import REPOSITORY
from scripts.lab.demo import demo, network
from scripts.lab.vm.netns import ns_exec
from tests.host import sandbox
from tests.host.audit import KEX, findings

pytestmark = pytest.mark.slow

SERVICE_USER, IDE_USER = "codesvc", "coder"  # Pulumi.yaml defaults of serviceUser / ideUser
SQUID = "proxy"  # Debian's Squid, the IDE's allowlisting proxy (the demo stack lists ideEgressDomains)

ALLOWED = [flow[:4] for flow in network.ALLOWED]
DENIED = [
    ("wazuh (disabled)", "tcp", network.WAZUH, 1514), ("zabbix (disabled)", "tcp", network.ZABBIX, 10051),
    ("DMZ host", "tcp", network.DMZ_OUTSIDER, 443), ("internet", "tcp", network.INTERNET_CLIENT, 443),
    ("apt proxy, other port", "tcp", network.APT_PROXY[0], 22), ("DNS server, https", "tcp", network.DNS, 443),
    ("front proxy", "tcp", network.FRONT_PROXY, 443), ("internet, udp", "udp", network.INTERNET_CLIENT, 53),
]


def test_units_run_under_systemd(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    assert vm.chroot_run(["readlink", "/proc/1/exe"]).stdout.strip().endswith("/systemd")
    for unit in ("ssh.service", "docker.service", "fail2ban.service", f"code-server@{IDE_USER}.service"):
        assert vm.systemctl("is-active", unit) == "active", vm.systemctl("status", "--no-pager", unit)
    timers = vm.systemctl("list-timers", "--all", "--no-legend", "--plain")
    assert "hcs-backup.timer" in timers and "apt-daily-upgrade.timer" in timers, timers
    # started, not only enabled: an enabled timer nobody started waits for the next boot
    assert vm.systemctl("show", "-p", "NextElapseUSecRealtime", "--value", "hcs-backup.timer"), timers


def test_code_server_is_the_package_in_the_sandboxed_unit(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    unit = f"code-server@{IDE_USER}.service"
    assert vm.chroot_run(["dpkg-query", "-W", "-f=${Version}", "code-server"]).stdout == booted_demo.config.values["codeServerVersion"]
    dropins = vm.systemctl("show", "-p", "DropInPaths", "--value", unit)
    assert "/etc/systemd/system/code-server@.service.d/" in dropins, dropins
    pid = vm.systemctl("show", "-p", "MainPID", "--value", unit)
    status = dict(line.split(":\t", 1) for line in vm.chroot_run(["cat", f"/proc/{pid}/status"]).stdout.splitlines() if ":\t" in line)
    uid = vm.chroot_run(["id", "-u", IDE_USER]).stdout.strip()
    assert status["Uid"].split()[0] == uid and status["NoNewPrivs"].strip() == "1"
    assert vm.chroot_run(["readlink", f"/proc/{pid}/exe"]).stdout.strip() == "/usr/lib/code-server/lib/node"
    page = vm.chroot_run(["curl", "-s", "http://127.0.0.1:8080/"], user=IDE_USER).stdout
    assert "workbench.js" in page  # the workbench of the package the unit started (root is refused: by identity)


def test_containers_run_locked_down_as_the_service_account(booted_demo: demo.Demo) -> None:
    vm, engine = booted_demo.vm, booted_demo.docker()
    uid = vm.chroot_run(["id", "-u", SERVICE_USER]).stdout.strip()
    gid = vm.chroot_run(["id", "-g", SERVICE_USER]).stdout.strip()
    for name in ("caddy-gateway", "oauth2-proxy"):
        container = engine.containers.get(name)
        host = container.attrs["HostConfig"]
        assert container.attrs["Config"]["User"] == f"{uid}:{gid}"
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"], host
        assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
        assert host["NetworkMode"] == "host"
        digests = engine.images.get(container.attrs["Image"]).attrs["RepoDigests"]
        assert any(d.startswith(f"{network.REGISTRY}/") for d in digests), digests
    pid = engine.containers.get("caddy-gateway").attrs["State"]["Pid"]
    status = dict(line.split(":\t", 1) for line in vm.chroot_run(["cat", f"/proc/{pid}/status"]).stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == uid and status["CapEff"].strip() == "0" * 16 and status["NoNewPrivs"].strip() == "1"


def test_ufw_runs_in_the_vms_netfilter(booted_demo: demo.Demo) -> None:
    vm = booted_demo.vm
    assert vm.chroot_run(["ufw", "status"]).stdout.startswith("Status: active")
    port = booted_demo.config.values.get("gatewayPort", "8880")

    def reach(source: str) -> int:
        """curl's exit code for a request to the gateway from `source` (0: an HTTP answer came back)."""
        return vm.peer_run(["curl", "-s", "-o", "/dev/null", "--max-time", "3", "--interface", source,
                            f"http://{vm.address}:{port}/oauth2/ping"]).returncode

    assert reach(network.FRONT_PROXY) == 0  # the one peer UFW lets in (whatever the gateway answers)
    assert reach(network.DMZ_OUTSIDER) == 28  # dropped by UFW: no answer at all, not even a refusal


def test_second_converge_changes_nothing(booted_demo: demo.Demo) -> None:
    again = demo.up(booted_demo.state.tag, progress=lambda _line: None, release=booted_demo.state.release)
    changed = {name: n for name, n in again.applied.changes.items() if n}
    assert changed == {}, again.applied.lines



def test_sshd_as_the_vm_runs_it_passes_ssh_audit(booted_demo: demo.Demo) -> None:
    """The VM's own sshd, after the converge: its effective config (`sshd -T`) and ssh-audit 3.9 against it."""
    vm, release = booted_demo.vm, booted_demo.state.release
    version = vm.chroot_run(["sh", "-c", "ssh -V 2>&1"]).stdout
    assert version.startswith({12: "OpenSSH_9.2", 13: "OpenSSH_10.0"}[release]), version
    effective = dict(line.split(" ", 1) for line in vm.chroot_run(
        ["sshd", "-T", "-C", f"user={vm.admin_user},host=admin,addr={network.ADMIN}"]).stdout.splitlines())
    assert effective["kexalgorithms"] == KEX[release]
    assert effective["passwordauthentication"] == "no" and effective["permitrootlogin"] == "no"
    # From inside the VM's namespace: UFW admits SSH from the management subnets and loopback only.
    audit = subprocess.run(ns_exec(vm.vm_namespace, [str(Path(sys.executable).parent / "ssh-audit"), "-j", "127.0.0.1"]),
                           capture_output=True, text=True, timeout=120)
    assert audit.stdout.strip(), audit.stderr
    assert findings(json.loads(audit.stdout), release) == []


def test_the_ide_units_sandbox_directive_by_directive(booted_demo: demo.Demo) -> None:
    """The VM's own `systemd-analyze security`, one directive at a time (not a total score that a
    dropped directive could still pass), then the bind limits where the release's systemd enforces them."""
    vm, unit = booted_demo.vm, f"code-server@{IDE_USER}.service"
    report = json.loads(vm.chroot_run(["systemd-analyze", "security", "--json=short", unit]).stdout)
    open_ = sorted(item["name"] for item in report if item["set"] is False)
    expected = set(sandbox.CODE_SERVER_OPEN)
    assert open_ == sorted(expected), f"unset: {sorted(set(open_) - expected)}; set: {sorted(expected - set(open_))}"
    show = dict(line.split("=", 1) for line in vm.systemctl(
        "show", "-p", "IPAddressDeny", "-p", "IPAddressAllow", "-p", "SocketBindDeny", "-p", "SocketBindAllow",
        "-p", "RestrictNetworkInterfaces", "-p", "KillMode", unit).splitlines())
    assert set(show["IPAddressDeny"].split()) == {"0.0.0.0/0", "::/0"} and show["KillMode"] == "mixed", show
    assert set(show["IPAddressAllow"].split()) == {"127.0.0.0/8", "::1/128"}, show
    if booted_demo.state.release == 13:
        # systemd 257 prints the allowed bind as "tcp8080" (its own formatting of tcp:8080)
        assert show["SocketBindDeny"] == "any" and show["SocketBindAllow"].replace(":", "") == "tcp8080", show
        assert show["RestrictNetworkInterfaces"] == "lo", show
    else:  # Debian 12's systemd has no BPF framework: the drop-in does not claim what it cannot enforce
        assert not show.get("SocketBindDeny") and show.get("RestrictNetworkInterfaces", "~") in ("", "~"), show  # "~": none


#: The VM refused it itself: EPERM (UFW's DROP), or an immediate ICMP "administratively prohibited" (the hook).
REFUSED = ("blocked", "unreachable")


def test_egress_from_the_vm_by_identity(booted_demo: demo.Demo) -> None:
    """Each allowlisted destination answers exactly the accounts that use it (root, the service
    account); the IDE user reaches none of them; nothing else leaves the VM for anyone."""
    vm = booted_demo.vm
    served = {network.APT_PROXY, network.BACKUP, (network.REGISTRY, 443), (network.IDENTITY, 443), (network.FRONT_PROXY, 443),
              (network.CODE_HOST[1], 443)}
    specs = [f"{proto}:{addr}:{port}" for _, proto, addr, port in ALLOWED + DENIED if (addr, port) not in served]
    log = booted_demo.workdir / "listeners.log"
    log.unlink(missing_ok=True)  # "ready" must be this run's
    listeners = vm.peer_spawn([sys.executable, "-m", "scripts.lab.demo.listeners", *specs], log=log)
    users = ("root", SERVICE_USER, IDE_USER, SQUID)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in log.read_text():
            assert listeners.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        probe = (REPOSITORY / "scripts" / "lab" / "demo" / "egress_probe.py").read_text()
        rows = []
        for what, proto, addr, port in ALLOWED + DENIED:
            results = [vm.chroot_run(["python3", "-c", probe, proto, addr, str(port)], user=None if user == "root" else user,
                                     timeout=30).stdout.strip() for user in users]
            rows.append((what, f"{proto}/{port}", addr, *results))
        assert listeners.poll() is None, log.read_text()
    finally:
        listeners.kill()
        listeners.wait()
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    print("\n| destination | port | address | root | service account | IDE user | IDE proxy |\n|---|---|---|---|---|---|---|\n" + table)
    out = demo.BUILD / f"egress-debian{booted_demo.state.release}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    # Squid's account reaches port 443 of any address (the names are the proxy's to judge, and the
    # FortiGate's FQDN objects'): every row on tcp/443 connects for it. Everything else leaves the VM
    # only for the accounts of its flow, refused by the VM's own netfilter for everyone else.
    expected = [identities for *_, identities in network.ALLOWED] + [() for _ in DENIED]
    for row, identities in zip(rows, expected, strict=True):
        for user, result in zip(users, row[3:]):
            opens = user in identities or (user, row[1]) == (SQUID, "tcp/443")
            assert (result == "connected") if opens else (result in REFUSED), f"{row[0]} as {user}: {result}\n{table}"


#: The demo stack's FortiGate policy block, written from its intent (Pulumi.dev.yaml with Wazuh and
#: Zabbix off): inbound first, the VM's allowlist, the logged deny last.
DEMO_POLICY_ORDER = [
    "hcs-in-https", "hcs-proxy-to-vm", "hcs-mgmt-ssh", "hcs-out-dns-udp", "hcs-out-dns-tcp", "hcs-out-ntp",
    "hcs-out-apt-proxy", "hcs-out-backup", "hcs-out-entra-login", "hcs-out-registry", "hcs-out-ide-proxy-https", "hcs-out-deny",
]


def test_fortigate_objects_on_the_firewall_api(running_demo: demo.Demo) -> None:
    """Read back from the FortiOS stand-in, as an operator would with the REST API (token in a header file)."""
    vm, work = running_demo.vm, running_demo.workdir
    header = work / "fortios-header"
    header.touch(mode=0o600)
    header.write_text(f"Authorization: Bearer {demo.fortios_token(work)}\n")

    def table(path: str) -> list[dict]:  # type: ignore[type-arg]
        proc = vm.peer_run(["curl", "-sf", "--cacert", str(work / "pki/ca.pem"), "-H", f"@{header}",
                            f"https://{network.GATEWAY}/api/v2/cmdb/{path}?vdom=root"])
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["results"]

    policies = [p["name"] for p in table("firewall/policy")]
    assert policies == DEMO_POLICY_ORDER
    # The IDE proxy's policy opens exactly the demo's ideEgressDomains, as FQDN objects (names, never addresses).
    fqdn = {a["name"]: a.get("fqdn") for a in table("firewall/address") if a.get("type") == "fqdn"}
    ide = next(p for p in table("firewall/policy") if p["name"] == "hcs-out-ide-proxy-https")
    assert sorted(fqdn.get(m["name"]) for m in ide["dstaddr"]) == sorted(network.IDE_EGRESS), ide["dstaddr"]
    deny = next(p for p in table("firewall/policy") if p["name"] == "hcs-out-deny")
    assert deny["action"] == "deny" and deny["logtraffic"] == "all"
    vip = next(v for v in table("firewall/vip") if v["name"] == "hcs-vip-https")
    assert vip["extport"] == "443" and [m["range"] for m in vip["mappedip"]] == [network.FRONT_PROXY]


def test_the_dmz_hop_is_mutual_tls(running_demo: demo.Demo) -> None:
    """On the booted VM, from the front proxy's own address: the central Caddy's client certificate
    (the files the program recorded for its host) gets through; without it, or in plain HTTP, nothing is proxied."""
    vm, hostname = running_demo.vm, running_demo.config.values["hostname"]
    port = running_demo.config.values.get("gatewayPort", "8880")
    hop = running_demo.workdir / "front-caddy" / "hop" / hostname

    def curl(*args: str, scheme: str = "https") -> tuple[int, str]:
        done = vm.peer_run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--interface", network.FRONT_PROXY,
                            "--resolve", f"{hostname}:{port}:{vm.address}", "--cacert", str(hop / "hop-ca.crt"), *args,
                            f"{scheme}://{hostname}:{port}/oauth2/ping"])
        return done.returncode, done.stdout

    assert curl("--cert", str(hop / "hop.crt"), "--key", str(hop / "hop.key")) == (0, "200")
    refused, answer = curl()
    assert refused in (35, 55, 56) and answer == "000", (refused, answer)  # refused at the handshake
    assert curl(scheme="http") == (0, "400")  # Caddy's "HTTP request to an HTTPS server": nothing proxied
