"""A team's workspaces: who may use which isolated IDE, on which VM, within which limits.

Each workspace is its own Unix account (`ws-<name>`, no sudo), its own code-server started on demand
behind a socket of its own, its own allowlisting-proxy port and backup set, served at its own
hostname `<name>.<workspaceDomain>` (under the wildcard certificate the front proxy already holds, so
no two workspaces share an origin: not their cookies, service workers, webviews or storage).

Who may use it is an Entra app role, `ws.<name>`, assigned to its users and groups: the ID token's
`roles` claim carries exactly the workspaces a person was granted, oauth2-proxy reads it from its own
session and the gateway grants a host only to a session holding that host's role. Without
`workspaces` the stack keeps the single IDE user of `ideUser` (`Team` is None).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from components.settings import accounts, checks, ide, rules
from components.settings.reader import Reader
from components.settings.topology import Topology

#: A workspace's name: a DNS label that also fits `ws-<name>` into Debian's 32-character user names
#: and systemd's instance names, and never ends with a hyphen.
NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}[a-z0-9]$")
#: Workspace accounts are made in this uid (and gid) range, so the VM's firewall hook and audit
#: rules match every workspace with one rule and never change when a workspace is added.
UID_RANGE = (20000, 29999)
#: Entra lets an app registration list at most 256 redirect URIs; each workspace host needs one.
MAX_WORKSPACES = 256
#: The VM the stack's own `vmAddress` (and `vmHostKey`) names; `vms` adds others under other names.
PRIMARY_VM = "vm"
#: The first workspace proxy port on each VM (the single-user IDE proxy's port); then one each.
FIRST_PROXY_PORT = 3128


def resource_name(base: str, vm: str) -> str:
    """A name of VM `vm`'s resources (and its files' machine role): `base` for the stack's own VM,
    the names a single-user stack always had; `<base>-<vm>` for a team's other VMs. Pulumi's URNs
    hold the parent's type, not its name, so each VM's children need names of their own."""
    return base if vm == PRIMARY_VM else f"{base}-{vm}"


@dataclass(frozen=True)
class Limits:
    """What one workspace may use of its VM (systemd resource control on its code-server unit)."""

    #: `MemoryMax=`: e.g. "2G"; the kernel's OOM killer ends the workspace, not its neighbours.
    memory_max: str = "2G"
    #: `CPUQuota=`: "100%" is one core.
    cpu_quota: str = "100%"
    #: `TasksMax=`: processes and threads, so a fork bomb stays inside its workspace.
    tasks_max: int = 1024


@dataclass(frozen=True)
class Workspace:
    """One isolated IDE: its people, its VM, its limits and what it may reach off the VM."""

    name: str
    #: Entra user object IDs granted this workspace (its app role is assigned to each).
    users: tuple[str, ...]
    #: Entra group object IDs granted this workspace (its app role is assigned to each group).
    groups: tuple[str, ...]
    #: The name of the VM it runs on (`PRIMARY_VM` or an entry of `vms`).
    vm: str
    limits: Limits
    #: The stack's `ideEgressDomains` plus its own: what its allowlisting proxy lets it reach.
    egress: tuple[ide.EgressDomain, ...]
    #: Its allowlisting proxy's loopback port on its VM (only its account may connect); None when
    #: `egress` is empty: no proxy port, nothing off the VM.
    proxy_port: int | None

    @property
    def account(self) -> str:
        """Its Unix account (and group), made in `UID_RANGE`."""
        return f"ws-{self.name}"

    @property
    def role(self) -> str:
        """The value of its Entra app role: what the `roles` claim of a granted person holds."""
        return f"ws.{self.name}"

    def hostname(self, domain: str) -> str:
        return f"{self.name}.{domain}"


@dataclass(frozen=True)
class TeamVm:
    """A VM that hosts workspaces, reached over SSH as the stack's VM is (same admin, key and port).
    The first is always `PRIMARY_VM`, the stack's own `vmAddress`."""

    name: str
    address: ipaddress.IPv4Address
    #: The pinned SSH host key; None when the program creates the VM (its generated key is the pin).
    host_key: str | None


@dataclass(frozen=True)
class Team:
    """The workspaces of a stack, the VMs they are spread over, and the domain their hosts live in."""

    domain: str
    vms: tuple[TeamVm, ...]
    workspaces: tuple[Workspace, ...]

    def on(self, vm: str) -> tuple[Workspace, ...]:
        """The workspaces hosted on `vm`, in config order."""
        return tuple(w for w in self.workspaces if w.vm == vm)

    def hostname(self, workspace: Workspace) -> str:
        return workspace.hostname(self.domain)

    def topology(self, vm: TeamVm, stack: Topology) -> Topology:
        """`vm`'s topology: the stack's (accounts, neighbours, ports) at `vm`'s address and pin, with
        the union of its workspaces' egress as its `ide_egress`, so its host steps, UFW and FortiGate
        objects open exactly what some workspace of that VM may reach, and nothing of another VM's."""
        return dataclasses.replace(stack, vm=dataclasses.replace(stack.vm, address=vm.address, host_key=vm.host_key),
                                   ide_egress=egress_union(self.on(vm.name)))


def egress_union(workspaces: Sequence[Workspace]) -> tuple[ide.EgressDomain, ...]:
    """Every name any workspace of the VM may reach, once (plain HTTP where any of them lists it):
    the VM's `ide_egress`, so the proxy's own flows off the VM (`Topology.egress_rules`, UFW,
    the FortiGate) open exactly what some workspace's port may ask for."""
    plain: dict[str, bool] = {}
    for workspace in workspaces:
        for domain in workspace.egress:
            plain[domain.name] = plain.get(domain.name, False) or domain.plain_http
    return tuple(ide.EgressDomain(name, http) for name, http in plain.items())


_WORKSPACE_FIELDS = ("name", "users", "groups", "vm", "limits", "ideEgressDomains")
_LIMIT_FIELDS = ("memoryMax", "cpuQuota", "tasksMax")
_VM_FIELDS = ("name", "address", "hostKey")
_MEMORY = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[MG])$")
_CPU = re.compile(r"^[1-9][0-9]*%$")
#: Below this code-server and its language servers are killed by the OOM killer while starting.
MIN_MEMORY_MB = 512
TASKS = (64, 32768)


def _memory(value: Any) -> str:
    found = _MEMORY.match(str(value))
    if not found:
        raise ValueError("expected MemoryMax such as 2G or 1536M")
    if int(found["n"]) * (1024 if found["unit"] == "G" else 1) < MIN_MEMORY_MB:
        raise ValueError(f"expected at least {MIN_MEMORY_MB}M: code-server and its language servers need it")
    return str(value)


def _cpu(value: Any) -> str:
    if not _CPU.match(str(value)):
        raise ValueError("expected CPUQuota such as 200% (100% is one core)")
    return str(value)


def _tasks(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not TASKS[0] <= value <= TASKS[1]:
        raise ValueError(f"expected TasksMax, an integer from {TASKS[0]} to {TASKS[1]}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError("expected a lower-case DNS label of 2 to 21 characters (a-z, 0-9, '-'; a letter first): "
                         "it names the host <name>.<workspaceDomain>, the account ws-<name> and its units")
    return value


def _text(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """`parse` for a field that must be a string (the checks read text; JSON may hold anything)."""
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return parse(value)
    return check


def _field(r: Reader, key: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    """`parse(value)`, or None with a problem naming `key` (e.g. `workspaces[1].limits.memoryMax`)."""
    try:
        return parse(value)
    except ValueError as err:
        r.problem(key, f"{err}, got {value!r}")
        return None


def _unknown(r: Reader, key: str, entry: dict[str, Any], fields: tuple[str, ...], what: str) -> None:
    for field in sorted(set(entry) - set(fields)):
        r.problem(f"{key}.{field}", f"is not a field of {what} ({', '.join(fields)})")


def _strings(r: Reader, key: str, value: Any, parse: Callable[[Any], Any]) -> tuple[Any, ...] | None:
    """A list field of strings, each parsed; duplicates refused."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        r.problem(key, f"expected a list of strings, got {value!r}")
        return None
    return r.items(key, value, parse)


def _limits(r: Reader, key: str, value: Any) -> Limits | None:
    if value is None:
        return Limits()
    if not isinstance(value, dict):
        r.problem(key, f"expected an object with {', '.join(_LIMIT_FIELDS)}, got {value!r}")
        return None
    _unknown(r, key, value, _LIMIT_FIELDS, "limits")
    default = Limits()
    memory = _field(r, f"{key}.memoryMax", value.get("memoryMax", default.memory_max), _memory)
    cpu = _field(r, f"{key}.cpuQuota", value.get("cpuQuota", default.cpu_quota), _cpu)
    tasks = _field(r, f"{key}.tasksMax", value.get("tasksMax", default.tasks_max), _tasks)
    return None if None in (memory, cpu, tasks) else Limits(memory, cpu, tasks)


def _vms(r: Reader, vm_address: ipaddress.IPv4Address | None, host_key: str | None, creates_vm: bool) -> tuple[TeamVm, ...] | None:
    """`PRIMARY_VM` (the stack's own VM) and the entries of `vms`, reached as the stack's VM is."""
    entries = r.objects("vms")
    if entries is None or vm_address is None:
        return None
    found = [TeamVm(PRIMARY_VM, vm_address, host_key)]
    ok = True
    for index, entry in enumerate(entries):
        key = f"vms[{index}]"
        _unknown(r, key, entry, _VM_FIELDS, "a VM")
        name = _field(r, f"{key}.name", entry.get("name"), _name)
        if name is not None and name in [v.name for v in found]:
            r.problem(f"{key}.name", f"{name!r} names another VM ('{PRIMARY_VM}' is the stack's vmAddress)")
            name = None
        address = _field(r, f"{key}.address", entry.get("address"), _text(rules.guard(checks.ipv4_address, rules.SPECIAL)))
        if address is not None and address in [v.address for v in found]:
            r.problem(f"{key}.address", f"{address} is another VM's address")
            address = None
        key_value = entry.get("hostKey")
        pin = None
        if creates_vm:
            if key_value is not None:
                r.problem(f"{key}.hostKey", "must not be set when the program creates the VMs (vmProvider other than existing): "
                          "it generates each VM's host key and pins the connection to it")
        elif key_value is None:
            r.problem(f"{key}.hostKey", "is required for an existing VM: its SSH host key, pinned (ssh-keyscan on a trusted path)")
            ok = False
        else:
            pin = _field(r, f"{key}.hostKey", key_value, _text(checks.ssh_host_key))
            ok = ok and pin is not None
        if name is None or address is None:
            ok = False
            continue
        found.append(TeamVm(name, address, pin))
    return tuple(found) if ok else None


def _domain(r: Reader, hostname: str | None) -> str | None:
    """`workspaceDomain`: by default the stack's hostname without its first label (what the front
    proxy's `*.<domain>` certificate covers)."""
    domain = r.string("workspaceDomain", checks.fqdn, default=None)
    if domain is None and hostname and hostname.count(".") >= 2:
        domain = hostname.split(".", 1)[1]
    if domain is None and hostname:
        r.problem("workspaceDomain", f"expected the domain the workspace hosts live in (*.<domain>): {hostname} has none to take")
    return domain


def parse(r: Reader, entries: tuple[dict[str, Any], ...] | None, *, hostname: str | None, edge: str | None,
          topology: Topology | None, creates_vm: bool | None) -> Team | None:
    """`workspaces` (read by the caller: it also decides the Entra keys) with `vms` and
    `workspaceDomain`, which apply only with it; None without it or on any problem.

    No workspace account may be an account the stack already names, and no proxy port a port the
    VM already uses. Every problem names its key down to the field, all at once.
    """
    if not entries:
        for key in ("vms", "workspaceDomain"):
            if r.is_set(key) and (key != "vms" or r.objects(key)):
                r.problem(key, "only applies with workspaces")
        return None
    vm = topology.vm if topology else None
    taken = (topology.accounts.service_user, topology.accounts.ide_user, topology.accounts.admin_group,
             topology.vm.admin_user) if topology else ()
    reserved = {8080: "code-server's port", 4180: "oauth2-proxy's port"} | (
        {topology.gateway_port: "gatewayPort", topology.vm.ssh_port: "vmSshPort"} if topology else {})
    stack_egress = topology.ide_egress if topology else None
    start = len(r.problems)
    if len(entries) > MAX_WORKSPACES:
        r.problem("workspaces", f"expected at most {MAX_WORKSPACES} workspaces: Entra allows {MAX_WORKSPACES} "
                  "redirect URIs per app registration, one per workspace host")
    if edge == "cloudflare":
        r.problem("workspaces", "not supported with edge cloudflare yet (one tunnel per VM is not built); use edge fortigate")
    domain = _domain(r, hostname)
    vms = _vms(r, vm.address if vm else None, vm.host_key if vm else None, bool(creates_vm))
    known_vms = [v.name for v in vms] if vms else None
    workspaces: list[Workspace] = []
    names: dict[str, int] = {}
    ports: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = f"workspaces[{index}]"
        _unknown(r, key, entry, _WORKSPACE_FIELDS, "a workspace")
        name = _field(r, f"{key}.name", entry.get("name"), _name)
        if name is not None and name in names:
            r.problem(f"{key}.name", f"{name!r} is also workspaces[{names[name]}]")
        elif name is not None:
            names[name] = index
            if domain and f"{name}.{domain}" == hostname:
                r.problem(f"{key}.name", f"its host {name}.{domain} is the stack's hostname; choose another name")
            account = f"ws-{name}"
            if account in taken or account in accounts.SYSTEM_NAMES:
                already = "an account the stack names (serviceUser, ideUser, vmAdminUser or adminGroup)" if account in taken \
                    else "a Debian system account"
                r.problem(f"{key}.name", f"its account {account} is already {already}: one account, one duty; choose another name")
        users = _strings(r, f"{key}.users", entry.get("users"), checks.guid)
        groups = _strings(r, f"{key}.groups", entry.get("groups"), checks.guid)
        if users == () and groups == ():
            r.problem(key, "expected users (Entra user object IDs) or groups (group object IDs): at least one")
        host = entry.get("vm", PRIMARY_VM)
        if known_vms is not None and host not in known_vms:
            r.problem(f"{key}.vm", f"expected the name of a VM: {', '.join(known_vms)} (vms[].name), got {host!r}")
        limits = _limits(r, f"{key}.limits", entry.get("limits"))
        own = _strings(r, f"{key}.ideEgressDomains", entry.get("ideEgressDomains"), ide.egress_domain)
        egress = None if own is None or stack_egress is None else stack_egress + own
        if egress is not None:
            for covered, by in ide.overlaps(egress):
                r.problem(f"{key}.ideEgressDomains", f"{covered} is already covered by {by} (its own list or ideEgressDomains)")
        if None in (name, users, groups, limits, egress) or known_vms is None or host not in known_vms:
            continue
        port = None
        if egress:
            port = FIRST_PROXY_PORT + ports.get(host, 0)
            ports[host] = ports.get(host, 0) + 1
            if port in reserved:
                r.problem(f"{key}.ideEgressDomains", f"its proxy port would be {port}, {reserved[port]}: move that port")
        workspaces.append(Workspace(name, users, groups, host, limits, egress, port))
    for spare in [v.name for v in vms or ()]:
        if spare not in [w.vm for w in workspaces] and len(r.problems) == start:
            # Every VM converges as a team VM: one with no workspace would have nothing to serve.
            r.problem("vms", f"{spare!r} hosts no workspace; remove it or place one there (workspaces[].vm)" if spare != PRIMARY_VM
                      else f"the stack's own VM ('{PRIMARY_VM}', vmAddress) hosts no workspace; place one there (workspaces[].vm)")
    if len(r.problems) > start or domain is None or vms is None:
        return None
    return Team(domain, vms, tuple(workspaces))
