"""Acknowledged wide values show in the posture as WEAKENED, read from what the plan deploys."""

from __future__ import annotations

import datetime as dt

from scripts.lab.example import TEST_SECRETS
from scripts.tools import posture
from scripts.tools.offline import StackConfig, run_program

SSH = "UFW default deny in; SSH from management only; gateway only from the front proxy"
UFW_OUT = "UFW default deny out, same allowlist as the firewall"
FORTIGATE_OUT = "FortiGate egress allowlist from the VM, ending in a logged deny"
HOP = ("DMZ hop in mutual TLS, private CA: the gateway requires the central Caddy's client certificate, the central Caddy "
       "verifies the gateway against that CA (the Cloudflare edge keeps its loopback hop, limited by identity)")


def _weakened(config: StackConfig, **changes: object) -> tuple[dict[str, str], list[posture.Row]]:
    rows = posture.posture(run_program(config.with_values(**TEST_SECRETS, **changes)), "fortigate")
    return {r.control: r.note for r in rows if r.status == "WEAKENED"}, rows


def test_acknowledged_public_management_and_wide_egress_are_weakened(dev_config: StackConfig) -> None:
    weakened, rows = _weakened(dev_config, managementSubnets=["198.51.100.0/24", "192.169.0.7/32"], acknowledgePublicManagement=True,
                               registryEgress=["104.16.0.0/13"], acknowledgeWideEgress=True)
    assert set(weakened) == {SSH, UFW_OUT, FORTIGATE_OUT}
    assert "192.169.0.7/32" in weakened[SSH] and "198.51.100.0/24" not in weakened[SSH]
    assert "104.16.0.0/13" in weakened[UFW_OUT] and "104.16.0.0/13" in weakened[FORTIGATE_OUT]
    assert "40.126.0.0/18" not in weakened[UFW_OUT]  # a /18 is not wide
    text = posture.terminal(rows)
    assert f"WARNING: control WEAKENED: Host: {SSH} (acknowledged: SSH from public 192.169.0.7/32" in text
    assert "| **WEAKENED** |" in posture.markdown(rows, "dev", "fortigate")


def test_an_unverified_fortigate_api_weakens_the_fortigate_row(dev_config: StackConfig) -> None:
    weakened, _ = _weakened(dev_config, fortigateInsecure=True)
    assert weakened == {FORTIGATE_OUT: "acknowledged: API TLS not verified (fortigateInsecure)"}


def test_hop_certificates_inside_their_renewal_window_are_a_warning(dev_config: StackConfig) -> None:
    """Read from the plan: the leaves' expiry (an output) against their early-renewal window (an input)."""
    plan = run_program(dev_config.with_values(**TEST_SECRETS))
    fresh = {r.control: r.status for r in posture.posture(plan, "fortigate")}
    assert fresh[HOP] == "on"
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10)  # within the default 30-day window
    plan.outputs["hopCertNotAfter"] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = posture.posture(plan, "fortigate")
    note = next(r.note for r in rows if r.control == HOP and r.status == "WEAKENED")
    assert "inside their renewal window" in note and "run pulumi up" in note
    assert "WARNING: control WEAKENED: Transport: " + HOP in posture.terminal(rows)


RELEASE = ("The VM on a supported Debian release in security support, checked by every host step before it changes "
           "anything (vmDebianRelease)")
BIND_LIMITS = ("The IDE's unit binds no IP port but code-server's and uses no interface but loopback "
               "(systemd's BPF: SocketBindDeny=any, RestrictNetworkInterfaces=lo)")


def test_debian_12_is_a_warning_that_names_its_end_and_what_it_lacks(dev_config: StackConfig) -> None:
    weakened, rows = _weakened(dev_config, vmDebianRelease=12)
    assert set(weakened) == {RELEASE}
    assert "long-term support only, until 2028-06-30" in weakened[RELEASE]
    assert "no BPF framework" in weakened[RELEASE] and "no ML-KEM" in weakened[RELEASE]
    status = {r.control: r.status for r in rows}
    assert status[BIND_LIMITS] == "OFF" and status[RELEASE] == "WEAKENED"
    assert f"WARNING: control WEAKENED: Host: {RELEASE}" in posture.terminal(rows)


def test_debian_13_has_every_release_control(dev_config: StackConfig) -> None:
    weakened, rows = _weakened(dev_config)
    status = {r.control: r.status for r in rows}
    assert status[RELEASE] == "on" and status[BIND_LIMITS] == "on" and RELEASE not in weakened


IDE_PROXY = next(c.control for c in posture.CONTROLS if c.control.startswith("The IDE's way out"))


def test_the_ide_proxy_is_on_off_or_weakened_by_its_plain_http_names(dev_config: StackConfig) -> None:
    """On with HTTPS names only; weakened, naming them, when names are listed http://; off (saying what
    that means) without a list. Its flows list the names they let through, for Squid's account alone."""
    weakened, rows = _weakened(dev_config, ideEgressDomains=["git.example.com", "*.pypi.org"])
    assert {r.control: r.status for r in rows}[IDE_PROXY] == "on" and IDE_PROXY not in weakened
    proxy = next(r for r in rows if r.control == IDE_PROXY)
    assert set(proxy.resources) == {"vm:/etc/squid/squid.conf", "vm:/etc/ufw/after.init"}

    plan = run_program(dev_config.with_values(**TEST_SECRETS, ideEgressDomains=["git.example.com", "http://deb.example.org",
                                                                                "http://*.debian.example"]))
    rows = posture.posture(plan, "fortigate")
    note = next(r.note for r in rows if r.control == IDE_PROXY and r.status == "WEAKENED")
    assert "*.debian.example, deb.example.org" in note and "git.example.com" not in note and "in clear" in note
    assert f"WARNING: control WEAKENED: Host: {IDE_PROXY}" in posture.terminal(rows)
    flows = {f.name: f for f in posture.egress_flows(plan)}
    assert flows["ide-proxy-https"].domains == ("git.example.com", "deb.example.org", "*.debian.example")
    assert flows["ide-proxy-http"].domains == ("deb.example.org", "*.debian.example")
    assert flows["ide-proxy-https"].destinations == flows["ide-proxy-http"].destinations == ("any address",)
    assert flows["ide-proxy-https"].accounts == flows["ide-proxy-http"].accounts == ("proxy",)
    assert flows["ide-proxy-http"].port == "80" and flows["dns-udp"].destinations == ("192.0.2.53",)
    assert "| ide-proxy-https | any address, by name: `git.example.com`, `deb.example.org`, `*.debian.example` | tcp/443 | `proxy` |" in \
        posture.markdown(rows, "dev", "fortigate", posture.egress_flows(plan))

    _, rows = _weakened(dev_config)
    off = next(r for r in rows if r.control == IDE_PROXY)
    assert off.status == "OFF" and off.resources == ()
    assert off.note == "switched off: ideEgressDomains (empty: no proxy runs and the IDE user reaches nothing off the VM)"
    assert not [f for f in posture.egress_flows(run_program(dev_config.with_values(**TEST_SECRETS))) if f.name.startswith("ide-proxy")]


def test_the_ide_backup_row_reads_the_backup_set_from_the_plan(dev_config: StackConfig) -> None:
    """On with the product's backup unit and restore command; OFF once the unit's set no longer ends
    with code-server's user data (what a person reads there is what the VM gets)."""
    control = next(c for c in posture.CONTROLS if c.control.startswith("Backups hold the IDE too"))
    plan = run_program(dev_config.with_values(**TEST_SECRETS))
    assert [r.status for r in posture.posture(plan, "fortigate", (control,)) if r.control == control.control] == ["on"]
    unit = next(r for r in plan.of_type("hcs:files:File") if r.inputs.get("path") == "/etc/systemd/system/hcs-backup.service")
    unit.inputs["content"] = str(unit.inputs["content"]).replace(" /home/coder/.local/share/code-server\n", "\n")
    assert [r.status for r in posture.posture(plan, "fortigate", (control,)) if r.control == control.control] == ["OFF"]
