"""The DmzHost resource graph under Pulumi mocks: what the engine would receive.

Secrets must reach the VM only on stdin, the connection must pin the host key, every file must be
recorded for `make plan`, and the steps must be ordered so the firewall closes the host last.
"""

from __future__ import annotations

from components.files import FILE_TYPE
from components.host.vm import DmzHost
from scripts.lab.converge import mockgraph, sample

SECRET_VALUES = (sample.BASE["zabbixPsk"], sample.BASE["backupPassword"], "test-only")


def graph(**overrides: str | None) -> list[mockgraph.Registration]:
    s = sample.settings(**overrides)
    return mockgraph.evaluate(lambda: DmzHost("vm", s.topology, s.host).ready)


def commands(regs: list[mockgraph.Registration]) -> dict[str, mockgraph.Registration]:
    return {r.name: r for r in regs if r.type == "command:remote:Command"}


def test_connection_pins_the_host_key_and_keeps_the_key_secret() -> None:
    for reg in commands(graph()).values():
        conn = reg.values["connection"]
        assert conn["hostKey"] == sample.HOST_KEY
        assert conn["host"] == "192.0.2.10" and conn["user"] == "deploy"
        assert "connection" in reg.secret_inputs  # the private key makes it secret


def test_secrets_travel_only_on_stdin() -> None:
    cmds = commands(graph())
    for name, reg in cmds.items():
        assert not any(v in reg.values["create"] for v in SECRET_VALUES), name
        assert reg.values["create"].startswith("sudo -n /usr/bin/env ")
        assert reg.delete_before_replace and len(reg.values["triggers"]) == 1
    for name in ("vm-zabbix", "vm-backup"):
        assert "stdin" in cmds[name].secret_inputs and "triggers" in cmds[name].secret_inputs
        assert {"stdout", "stderr"} <= set(cmds[name].additional_secret_outputs)
        assert cmds[name].values["logging"] == "none"
    assert "stdin" not in cmds["vm-sshd"].secret_inputs and cmds["vm-sshd"].values["logging"] != "none"


def test_every_file_is_recorded_and_secret_ones_stay_secret() -> None:
    regs = graph()
    files = {r.values["path"]: r for r in regs if r.type == FILE_TYPE}
    assert {"/etc/ssh/sshd_config.d/00-hardening.conf", "/etc/fail2ban/jail.d/hcs.local",
            "/etc/code-server/hcs.yaml", "/etc/restic/hcs-backup.password",
            "/etc/zabbix/hcs.psk", "/var/ossec/etc/ossec.conf"} <= set(files)
    assert all(r.values["role"] == "vm" for r in files.values())
    assert "content" in files["/etc/zabbix/hcs.psk"].secret_inputs
    assert "content" in files["/etc/restic/hcs-backup.password"].secret_inputs
    assert files["/etc/restic/hcs-backup.password"].values["mode"] == "0600"
    assert "content" not in files["/etc/fail2ban/jail.d/hcs.local"].secret_inputs
    # code-server's config: root's, so the IDE user cannot change where code-server listens
    assert (files["/etc/code-server/hcs.yaml"].values["owner"], files["/etc/code-server/hcs.yaml"].values["mode"]) == ("root", "0644")


def test_order_puts_accounts_before_sshd_and_the_firewall_last() -> None:
    steps = mockgraph.command_steps(graph())
    deps = {s.name: set(s.depends_on) for s in steps}
    # sshd's Banner names the baseline's file; code-server's unit starts under the baseline's core limit.
    assert deps["vm-sshd"] == {"vm-accounts", "vm-baseline"}
    assert deps["vm-code-server"] == {"vm-layout", "vm-baseline"}
    assert deps["vm-firewall"] == {s.name for s in steps} - {"vm-firewall"}


def test_switches_remove_agent_steps() -> None:
    regs = graph(wazuhEnabled="false", zabbixEnabled="false", backupEnabled="false",
                 zabbixPsk=None, backupPassword=None, backupRestPassword=None)
    names = set(commands(regs))
    assert not names & {"vm-wazuh", "vm-zabbix", "vm-backup"}
    assert "restic" not in commands(regs)["vm-packages"].values["create"]


def test_a_parameter_change_changes_only_its_step() -> None:
    before = {n: r.values["triggers"] for n, r in commands(graph()).items()}
    after = {n: r.values["triggers"] for n, r in commands(graph(gatewayPort="8881")).items()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"vm-firewall"}  # the only host step that knows the gateway port
