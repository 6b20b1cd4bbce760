"""The real program for the shipped provider stacks (`proxmox`, `digitalocean`) under Pulumi's mock runtime.

What is checked is the graph the engine would get: the user-data the machine boots from carries the
generated host key whose public half every SSH step is pinned to; the setup starts only once the
machine exists and waits for cloud-init; every step is tied to the machine's id; the droplet's cloud
firewall is the VM's own allowlist. The answers of the provider mocks (ids) are `scripts/offline`'s;
what only a real Proxmox VE or DigitalOcean can prove is listed in docs/operations.md (Where the VM comes from).
"""

from __future__ import annotations

import functools
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.settings import MappingSource, load
from components.vm import render_cloud_firewall
from scripts.lab.example import TEST_SECRETS, TODAY
from scripts.tools.offline import (
    SECRET,
    PlanResult,
    Registered,
    load_stack_config,
    run_program,
)
from tests.host.test_render import tool

COMMAND = "command:remote:Command"
#: The resource whose inputs hold the user-data text, per stack: (type, path to the text).
USER_DATA = {"proxmox": ("proxmoxve:index/fileLegacy:FileLegacy", ("sourceRaw", "data")),
             "digitalocean": ("digitalocean:index/droplet:Droplet", ("userData",))}
MACHINE = {"proxmox": "proxmoxve:index/vmLegacy:VmLegacy", "digitalocean": "digitalocean:index/droplet:Droplet"}


@functools.cache
def _plan(stack: str) -> PlanResult:
    return run_program(load_stack_config(stack))


def _by_urn(plan: PlanResult) -> dict[str, Registered]:
    return {r.urn: r for r in plan.resources}


def _user_data(stack: str) -> tuple[Registered, str]:
    plan = _plan(stack)
    kind, path = USER_DATA[stack]
    holder = plan.one(kind)
    value: Any = holder.values
    for key in path:
        value = value[key]
    return holder, value


@pytest.mark.parametrize("stack", sorted(USER_DATA))
def test_every_step_is_pinned_to_the_key_the_user_data_installs(stack: str, tmp_path: Path) -> None:
    plan = _plan(stack)
    holder, text = _user_data(stack)
    doc = yaml.safe_load(text)
    key = tmp_path / "ssh_host_ed25519_key"
    key.write_text(doc["ssh_keys"]["ed25519_private"])
    key.chmod(0o600)
    installed = subprocess.run([tool("ssh-keygen"), "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout.split()[:2]
    steps = [r for r in plan.of_type(COMMAND) if r.name.startswith("vm-")]
    assert len(steps) > 10
    assert {r.values["connection"]["hostKey"] for r in steps} == {" ".join(installed)}
    # the user-data is a secret everywhere the plan shows it, and no output carries the host key
    assert path_secret(holder, USER_DATA[stack][1])
    assert doc["ssh_keys"]["ed25519_private"].strip() not in str(plan.outputs)


def path_secret(resource: Registered, path: tuple[str, ...]) -> bool:
    value: Any = resource.inputs
    for key in path:
        if value == SECRET:
            return True
        value = value[key]
    return value == SECRET


@pytest.mark.parametrize("stack", sorted(USER_DATA))
def test_the_setup_starts_on_the_new_machine_after_cloud_init_and_follows_its_id(stack: str) -> None:
    plan = _plan(stack)
    urns = _by_urn(plan)
    machine = plan.one(MACHINE[stack])
    steps = {r.name: r for r in plan.of_type(COMMAND) if r.name.startswith("vm-")}
    first = steps["vm-first-boot"]
    assert "cloud-init status --wait" in first.values["create"]
    # the first step waits for the machine (on DigitalOcean: its firewall and reserved IP, which follow the droplet)
    waited = {urns[d].type for d in first.dependencies}
    assert MACHINE[stack] in waited
    if stack == "digitalocean":
        assert waited >= {"digitalocean:index/firewall:Firewall", "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"}
    for name, step in steps.items():
        # every other step waits for a step (so, transitively, for cloud-init), and names the machine in its triggers
        step_deps = {urns[d].name for d in step.dependencies if urns[d].type == COMMAND}
        assert name == "vm-first-boot" or step_deps, f"{name} does not wait for cloud-init"
        assert machine.id in step.values["triggers"], f"{name}: a replaced machine would not re-run it"


def test_the_proxmox_vm_boots_from_the_snippet_at_its_static_address() -> None:
    plan = _plan("proxmox")
    snippet, vm = plan.one(USER_DATA["proxmox"][0]), plan.one(MACHINE["proxmox"])
    init = vm.values["initialization"]
    assert init["userDataFileId"] == snippet.id and snippet.values["contentType"] == "snippets"
    config = load_stack_config("proxmox").values
    assert init["ipConfigs"] == [{"ipv4": {"address": f"{config['vmAddress']}/{config['proxmoxPrefixLength']}",
                                           "gateway": config["proxmoxGateway"]}}]
    assert vm.values["networkDevices"] == [{"bridge": config["proxmoxBridge"], "model": "virtio", "vlanId": int(config["proxmoxVlanTag"])}]
    assert vm.values["clone"]["vmId"] == int(config["proxmoxTemplateVmId"]) and vm.values["agent"] == {"enabled": False}
    # another template or another user-data is another machine, never an edit of this one
    assert set(vm.replace_on_changes) == {"clone", "initialization.userDataFileId"}


def test_the_droplet_has_no_provider_key_and_is_behind_its_firewall_from_creation() -> None:
    plan = _plan("digitalocean")
    urns = _by_urn(plan)
    droplet, firewall = plan.one(MACHINE["digitalocean"]), plan.one("digitalocean:index/firewall:Firewall")
    tag = plan.one("digitalocean:index/tag:Tag")
    assert "sshKeys" not in droplet.values  # a DigitalOcean key would be root's
    assert (droplet.values["dropletAgent"], droplet.values["monitoring"], droplet.values["ipv6"]) == (False, False, False)
    assert droplet.values["tags"] == [tag.id] and firewall.values["tags"] == [tag.values["name"]]
    assert firewall.urn in droplet.dependencies  # the firewall exists before the droplet boots
    assignment = plan.one("digitalocean:index/reservedIpAssignment:ReservedIpAssignment")
    assert assignment.values["ipAddress"] == load_stack_config("digitalocean").values["vmAddress"]
    assert int(assignment.values["dropletId"]) == int(droplet.id)
    assert {urns[d].type for d in assignment.dependencies} >= {MACHINE["digitalocean"]}


def _settings(stack: str, **changes: Any) -> Any:
    config = load_stack_config(stack).with_values(**{**TEST_SECRETS, **changes})
    return load(MappingSource(config.values, config.secret_keys), today=TODAY)


@pytest.mark.parametrize(("stack", "edge"), [("proxmox", "fortigate"), ("digitalocean", "cloudflare")])
def test_the_cloud_firewall_is_the_vms_own_allowlist(stack: str, edge: str) -> None:
    """Inbound: SSH from management, the gateway port from the front proxy (FortiGate edge only).
    Outbound: the (protocol, port, destination) set of `egress_rules`, which UFW and the FortiGate render too."""
    # the rules are the topology's, whichever provider: the proxmox stack is the one with the FortiGate edge
    topo = _settings(stack).topology
    assert topo.edge == edge
    inbound = {(r.protocol, r.port): set(r.addresses) for r in render_cloud_firewall.inbound_rules(topo)}
    expected_in = {("tcp", topo.vm.ssh_port): {str(n) for n in topo.management_subnets}}
    if edge == "fortigate":
        expected_in[("tcp", topo.gateway_port)] = {f"{a}/32" for a in topo.front_proxy_addresses}
    assert inbound == expected_in
    outbound = {(r.protocol, r.port, ipaddress.ip_network(a)) for r in render_cloud_firewall.outbound_rules(topo) for a in r.addresses}
    ufw = set()
    for rule in topo.egress_rules:
        for dst in rule.destinations or (ipaddress.ip_network("0.0.0.0/0"),):
            ufw.add((rule.protocol, rule.port, ipaddress.ip_network(str(dst))))
    assert outbound == ufw


def test_another_user_data_is_another_snippet_so_another_vm() -> None:
    """A new admin key changes the user-data; its snippet gets a new name (the document's digest), so the
    VM's `userDataFileId` changes, which replaces the VM (replace_on_changes above)."""
    before = _plan("proxmox").one(USER_DATA["proxmox"][0]).id
    new_key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    changed = run_program(load_stack_config("proxmox").with_values(vmSshPrivateKey=new_key))
    after = changed.one(USER_DATA["proxmox"][0]).id
    assert before != after and changed.one(MACHINE["proxmox"]).values["initialization"]["userDataFileId"] == after
