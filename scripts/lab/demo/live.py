"""Apply the program's resource graph to the demo for real, from inside Pulumi's mock runtime.

The engine cannot run every provider here (the Docker, Entra and random providers are not
buildable from the module proxy), so the demo evaluates the real `__main__.py` under the mock
runtime and answers each registration by *doing* it, in the order and with the inputs the engine
would use:

- `command:remote:Command`: the very `create` and `stdin` over real SSH (pinned host key) to the
  booted VM; its real `stdout` flows back into the graph (the gateway's uid/gid lookup included);
- `docker:index/remoteImage:RemoteImage`: pulled by digest into the VM's Docker engine; the real
  image ID flows back into the containers' `image`;
- `docker:index/container:Container`: created through the Docker Engine API (the `docker` SDK on
  the VM's socket) from exactly the graph's inputs; an input the mapping does not know fails
  loudly rather than being dropped. A container whose inputs are unchanged is kept, as a no-op
  `pulumi up` would; a changed one is replaced.

- `proxmoxve:index/fileLegacy:FileLegacy` (the user-data snippet) and `proxmoxve:index/vmLegacy:VmLegacy`:
  the demo stands in for Proxmox VE, whose API is never called. Proxmox hands a VM its snippet as a
  NoCloud seed; the demo VM was booted from a NoCloud seed before the converge, so the snippet is
  checked to be byte for byte that seed, and the VM to boot from that snippet at the demo VM's
  address; anything else fails loudly. Their answers (volume ID, VM id) are the plan's.

Every SSH session is pinned to the host key the command's own `connection` names (the program's
generated key for a created VM), not to one the demo chose.

Everything else (Entra, random, the FortiGate objects, file records) keeps the plan's mock answers.
What this does not prove is the providers' own code: pulumi-command, pulumi-docker and
pulumi-proxmoxve themselves.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pulumi
from docker.types import Mount

from scripts.lab.vm.runner import SshRunner
from scripts.tools.offline import PlanMocks, plain

INPUTS_LABEL = "org.hardened-code-server.demo-inputs-sha256"
#: Container inputs the mapping handles; anything else in the graph is refused.
CONTAINER_INPUTS = frozenset({
    "name", "image", "command", "user", "networkMode", "readOnly", "capabilities", "securityOpts", "restart",
    "logDriver", "logOpts", "mounts", "tmpfs", "labels", "healthcheck", "entrypoints", "envs", "destroyGraceSeconds",
})
PROXMOX_SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"
PROXMOX_VM = "proxmoxve:index/vmLegacy:VmLegacy"
#: A step's stdin rewrite for the demo: (create, stdin) → (create, stdin). See `GatewayOverrides`.
Rewrite = Callable[[str, str | None], tuple[str, str | None]]


class ApplyError(RuntimeError):
    """A resource could not be applied; the message names it and says why (never a secret)."""


@dataclass
class Applied:
    """What one converge did: per resource, whether it changed something, and a short line."""

    changes: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    ssh_sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, changed: int, line: str) -> None:
        with self.lock:
            self.changes[name] = changed
            self.lines.append(line)

    @property
    def total(self) -> int:
        return sum(self.changes.values())


class LiveMocks(PlanMocks):
    """The plan's mocks, except that commands, images and containers are applied to the VM."""

    def __init__(self, tenant_id: str, runner: SshRunner, engine: docker.DockerClient,
                 rewrites: dict[str, Rewrite] | None = None, on_progress: Callable[[str], None] = print,
                 seed: bytes | None = None) -> None:
        """`seed`: the user-data the demo VM booted from (its NoCloud seed), if it was booted from one."""
        super().__init__(tenant_id)
        self.runner = runner
        self.engine = engine
        self.rewrites = rewrites or {}
        self.progress = on_progress
        self.seed = seed
        self.applied = Applied()
        #: Snippet volume IDs whose content is the seed: the only ones a VM may boot from.
        self._seeded: set[str] = set()
        self._pin_lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, state = super().new_resource(args)
        inputs = {k: plain(v) for k, v in args.inputs.items()}
        if args.typ == "command:remote:Command":
            state.update(self._command(args.name, inputs))
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            state.update(self._image(args.name, inputs))
        elif args.typ == "docker:index/container:Container":
            resource_id = self._container(args.name, inputs)
        elif args.typ == PROXMOX_SNIPPET:
            self._snippet(args.name, resource_id, inputs)
        elif args.typ == PROXMOX_VM:
            self._proxmox_vm(args.name, inputs)
        return resource_id, state

    def _snippet(self, name: str, volume: str, inputs: dict[str, Any]) -> None:
        """The user-data Proxmox would store: it must be exactly what the demo VM booted from."""
        data = str((inputs.get("sourceRaw") or {}).get("data", ""))
        if self.seed is None:
            raise ApplyError(f"{name}: the program uploads user-data, but the demo VM was not booted from a seed")
        program, booted = _sha256(data.encode()), _sha256(self.seed)
        if program != booted:
            raise ApplyError(f"{name}: the program's user-data (sha256 {program}) is not the seed the demo VM booted from "
                             f"(sha256 {booted}): the VM would not be the one the program describes")
        self._seeded.add(volume)
        self.applied.add(name, 0, f"{name}: the demo VM's NoCloud seed (sha256 {program[:16]})")

    def _proxmox_vm(self, name: str, inputs: dict[str, Any]) -> None:
        """The VM Proxmox would clone: booted from the checked snippet, at the demo VM's address."""
        init = inputs.get("initialization") or {}
        if init.get("userDataFileId") not in self._seeded:
            raise ApplyError(f"{name}: boots from user-data {init.get('userDataFileId')!r}, not the snippet the demo VM booted from")
        addresses = [c["ipv4"]["address"].split("/")[0] for c in init.get("ipConfigs") or []]
        if addresses != [self.runner.target.address]:
            raise ApplyError(f"{name}: the VM's address would be {addresses}, the demo VM is at {self.runner.target.address}")
        self.applied.add(name, 0, f"{name}: the booted demo VM stands in ({addresses[0]})")

    def _pinned_runner(self, connection: dict[str, Any]) -> SshRunner:
        """The runner, its known_hosts holding only the connection's own `hostKey` (the program's pin)."""
        pin = str(connection["hostKey"])
        host = str(connection.get("host", self.runner.target.address))
        port = int(connection.get("port") or 22)
        line = f"{host if port == 22 else f'[{host}]:{port}'} {pin}\n"
        known_hosts = Path(self.runner.target.known_hosts_file).with_name(f"program_known_hosts-{_sha256(line.encode())[:12]}")
        # Steps run concurrently and share a pin: write under a temporary name and rename it into place,
        # so no ssh ever reads the file half-written (an in-place rewrite let one read it empty:
        # "No ED25519 host key is known ... Host key verification failed").
        with self._pin_lock:
            if not known_hosts.is_file() or known_hosts.read_text() != line:
                partial = known_hosts.with_name(f"{known_hosts.name}.partial")
                partial.write_text(line)
                partial.replace(known_hosts)
        return self.runner.with_target(known_hosts_file=known_hosts)

    def _command(self, name: str, inputs: dict[str, Any]) -> dict[str, str]:
        create, stdin = inputs["create"], inputs.get("stdin")
        if name in self.rewrites:
            create, stdin = self.rewrites[name](create, stdin)
        self.progress(f"  {name}: running over SSH")
        result = self._pinned_runner(inputs["connection"]).run_as_pulumi_command(create, stdin)
        with self.applied.lock:
            self.applied.ssh_sessions += 1
        if result.exit_code != 0:
            # stderr of a step names what failed; scripts never print file contents or secrets there.
            raise ApplyError(f"{name} exited {result.exit_code}: {result.stderr.strip()[-2000:]}")
        changed = sum(1 for line in result.stdout.splitlines() if line.startswith("changed: "))
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "(no output)"
        self.applied.add(name, changed, f"{name}: {last}")
        return {"stdout": result.stdout, "stderr": result.stderr}

    def _image(self, name: str, inputs: dict[str, Any]) -> dict[str, str]:
        reference = inputs["name"]
        repository, _, digest = reference.partition("@")
        repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else repository
        try:
            image = self.engine.images.get(f"{repository}@{digest}")
            changed = 0
        except docker.errors.ImageNotFound:
            self.progress(f"  {name}: pulling {reference}")
            image = self.engine.images.pull(repository, tag=digest)
            changed = 1
        self.applied.add(name, changed, f"{name}: {'pulled' if changed else 'present'} {image.id[:19]}")
        return {"imageId": image.id, "repoDigest": f"{repository}@{digest}"}

    def _container(self, name: str, inputs: dict[str, Any]) -> str:
        unknown = set(inputs) - CONTAINER_INPUTS
        if unknown:
            raise ApplyError(f"{name}: the demo does not map Container inputs {sorted(unknown)}; map them in scripts/lab/demo/live.py")
        fingerprint = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        container_name = inputs["name"]
        try:
            existing = self.engine.containers.get(container_name)
        except docker.errors.NotFound:
            existing = None
        if existing is not None and existing.labels.get(INPUTS_LABEL) == fingerprint and existing.status == "running":
            self.applied.add(name, 0, f"{name}: unchanged ({existing.id[:12]})")
            return existing.id
        if existing is not None:
            # As the provider does: stop first when the graph gives a grace period, then remove.
            if inputs.get("destroyGraceSeconds"):
                existing.stop(timeout=int(inputs["destroyGraceSeconds"]))
            existing.remove(force=True)
        created = self.engine.api.create_container(**container_spec(self.engine, inputs, fingerprint))
        self.engine.api.start(created["Id"])
        self.applied.add(name, 1, f"{name}: {'replaced' if existing else 'created'} {created['Id'][:12]}")
        return created["Id"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _nanoseconds(duration: str | None) -> int | None:
    """A Docker duration ("30s", "5m", "1h30m") in nanoseconds, as the Engine API wants it."""
    if not duration:
        return None
    total, number = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total, number = total + float(number) * units[char], ""
        else:
            raise ApplyError(f"healthcheck duration {duration!r} is not of the form 1h2m3s")
    if number:
        raise ApplyError(f"healthcheck duration {duration!r} lacks a unit")
    return int(total * 1e9)


def container_spec(engine: docker.DockerClient, inputs: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """Engine API `create_container` arguments for pulumi-docker `Container` inputs."""
    caps = inputs.get("capabilities") or {}
    labels = {item["label"]: item["value"] for item in inputs.get("labels") or []}
    labels[INPUTS_LABEL] = fingerprint
    mounts = [Mount(target=m["target"], source=m["source"], type=m.get("type", "volume"), read_only=bool(m.get("readOnly")))
              for m in inputs.get("mounts") or []]
    log_config = {"Type": inputs["logDriver"], "Config": dict(inputs.get("logOpts") or {})} if inputs.get("logDriver") else None
    host_config = engine.api.create_host_config(
        network_mode=inputs.get("networkMode"),
        read_only=bool(inputs.get("readOnly")),
        cap_drop=caps.get("drops"),
        cap_add=caps.get("adds"),
        security_opt=inputs.get("securityOpts"),
        restart_policy={"Name": inputs["restart"]} if inputs.get("restart") else None,
        log_config=log_config,
        mounts=mounts,
        tmpfs=dict(inputs.get("tmpfs") or {}),
    )
    health = inputs.get("healthcheck")
    healthcheck = None
    if health:
        healthcheck = {"test": health["tests"], "interval": _nanoseconds(health.get("interval")),
                       "timeout": _nanoseconds(health.get("timeout")), "retries": int(health.get("retries") or 0),
                       "start_period": _nanoseconds(health.get("startPeriod"))}
    return {
        "image": inputs["image"],
        "name": inputs["name"],
        "command": inputs.get("command"),
        "entrypoint": inputs.get("entrypoints"),
        "environment": inputs.get("envs"),
        "user": inputs.get("user"),
        "labels": labels,
        "healthcheck": healthcheck,
        "host_config": host_config,
    }
