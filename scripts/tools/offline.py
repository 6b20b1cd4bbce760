"""Run the real Pulumi program offline under Pulumi's mock runtime and capture what it registers.

This is the one harness behind `make plan` and the whole-program tests: it loads a stack the way
the CLI would (project defaults + `Pulumi.<stack>.yaml`), runs `__main__.py` with
`pulumi.runtime.set_mocks`, and records every registration as the engine would receive it
(type token, name, parent, inputs in the provider's own property names, dependencies), with
secret values masked. No CLI, credentials or network are involved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import runpy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as runtime_settings

from scripts import REPOSITORY
from scripts.tools import mock_tls

#: pulumi's `serialize_provider` wraps pickle's `_batch_setitems` anew on every dynamic resource and
#: never unwraps it; one program run adds ~40 levels, so many runs in one process overflow the stack.
#: The engine runs one program per process; the harness restores it before each run.
_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
SECRET = "[secret]"

_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"


@dataclass(frozen=True)
class StackConfig:
    """A stack's config as the engine hands it to the program (all values as strings)."""

    project: str
    stack: str
    values: dict[str, str]
    secret_keys: frozenset[str]
    placeholders: tuple[str, ...] = ()

    def with_values(self, **changes: Any) -> StackConfig:
        """A copy with keys changed (None removes a key); lists are JSON-encoded like the CLI does."""
        values = dict(self.values)
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = _engine_value(value)
        return StackConfig(self.project, self.stack, values, self.secret_keys, self.placeholders)


@dataclass(frozen=True)
class Registered:
    """One resource registration as the engine saw it.

    `inputs` has every secret replaced by SECRET (what plans and reviews may show); `values` holds
    the same inputs with secrets unwrapped (what a test runs, e.g. a command's secret stdin), and
    `secret_inputs` names the top-level inputs that are or contain a secret.
    """

    urn: str
    id: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    dependencies: tuple[str, ...]
    read_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    secret_inputs: frozenset[str] = frozenset()
    provider: str = ""
    delete_before_replace: bool = False
    additional_secret_outputs: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()


@dataclass
class PlanResult:
    """What one program run registered, and its stack outputs (secrets masked)."""

    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Registered:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}")
        return found[0]


def _engine_value(value: Any) -> str:
    """Encode a YAML config value the way the CLI passes it to a program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def placeholder_secret(key: str) -> str:
    """A clearly marked stand-in for an unset secret that still has the shape its check expects."""
    digest = hashlib.sha256(f"hcs-plan-placeholder:{key}".encode()).hexdigest()
    if key.endswith("PrivateKey"):
        # A real key (derived from the marked digest): a created VM's user-data carries its public half.
        seed = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(digest))
        return seed.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()).decode()
    if key == "proxmoxApiToken":
        return f"plan@pve!placeholder={uuid.UUID(digest[:32])}"
    if key == "digitaloceanToken":
        return f"dop_v1_{digest}"
    return digest


def load_stack_config(stack: str, project_dir: Path = REPOSITORY) -> StackConfig:
    """Merge Pulumi.yaml defaults with Pulumi.<stack>.yaml, as `pulumi up` would.

    Secrets can't be decrypted without the CLI, so every declared secret the stack file does
    not hold in plain form (an encrypted one, or one left at its empty default) gets a marked
    placeholder (listed in `placeholders`).
    """
    project_file = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    project = project_file["name"]
    declared: dict[str, dict[str, Any]] = project_file.get("config") or {}
    stack_path = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_path.exists():
        raise FileNotFoundError(f"no stack file {stack_path.name} in {project_dir}")
    stack_values = (yaml.safe_load(stack_path.read_text()) or {}).get("config") or {}

    values = {k: _engine_value(d["default"]) for k, d in declared.items() if "default" in d}
    secret_keys = {k for k, d in declared.items() if d.get("secret")}
    for full_key, value in stack_values.items():
        namespace, _, key = full_key.partition(":")
        if namespace != project:
            continue
        if isinstance(value, dict) and "secure" in value:
            secret_keys.add(key)
            continue  # encrypted: stands in below
        values[key] = _engine_value(value)
    placeholders = tuple(sorted(k for k in secret_keys if not values.get(k)))
    for key in placeholders:
        values[key] = placeholder_secret(key)
    return StackConfig(project, stack, values, frozenset(secret_keys), placeholders)


def _guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "hcs:" + ":".join(parts)))


class PlanMocks(pulumi.runtime.Mocks):
    """Answers the engine's questions with deterministic, plausible values per resource type."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        t, name = args.typ, args.name
        if t == "azuread:index/application:Application":
            object_id = _guid(t, name)
            state.update(clientId=_guid(t, name, "client"), objectId=object_id)
            return f"/applications/{object_id}", state
        if t == "azuread:index/servicePrincipal:ServicePrincipal":
            object_id = _guid(t, name)
            state.update(objectId=object_id)
            return object_id, state
        if t == "azuread:index/group:Group":
            object_id = args.resource_id.rsplit("/", 1)[-1] if args.resource_id else _guid(t, name)
            state.update(objectId=object_id, securityEnabled=True)
            return f"/groups/{object_id}", state
        if t == "azuread:index/applicationPassword:ApplicationPassword":
            state.update(keyId=_guid(t, name), value=f"mock-secret-{_guid(t, name, 'value')}")
            return _guid(t, name, "id"), state
        if t == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(f"mock:{name}".encode()).digest()[: int(state.get("length", 32))]
            state.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
            return _guid(t, name), state
        if t == "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared":
            return _guid(t, name), state
        if t == "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication":
            state.update(aud=hashlib.sha256(f"aud:{name}".encode()).hexdigest())
            return _guid(t, name), state
        if t.startswith("cloudflare:index/zeroTrustAccess"):
            return _guid(t, name), state
        if t == "docker:index/remoteImage:RemoteImage":
            # the engine reports the local image ID; the digest-pinned name stays the reference
            state.update(imageId="sha256:" + hashlib.sha256(str(state["name"]).encode()).hexdigest(), repoDigest=state["name"])
            return _guid(t, name), state
        if t == "command:remote:Command" and str(state.get("create", "")).startswith("id -u "):
            # the gateway's lookup of the service account's uid/gid (`id -u X && id -g X`)
            state.update(stdout="999\n999\n", stderr="")
            return f"{name}-id", state
        if t == "random:index/randomPassword:RandomPassword":
            state.update(result=f"mock-password-{_guid(t, name)}")
            return _guid(t, name), state
        if t == "digitalocean:index/droplet:Droplet":
            # DigitalOcean's droplet IDs are integers (the reserved IP's assignment takes one).
            droplet_id = str(int(hashlib.sha256(f"droplet:{name}".encode()).hexdigest()[:8], 16))
            state.update(ipv4Address="203.0.113.200", ipv4AddressPrivate="10.110.0.2", status="active", urn=f"do:droplet:{droplet_id}")
            return droplet_id, state
        if t == "proxmoxve:index/fileLegacy:FileLegacy":
            # The provider's id is the volume ID the VM's cloud-init drive names (`<datastore>:snippets/<file>`).
            raw = plain(state.get("sourceRaw")) or {}
            return f"{plain(state['datastoreId'])}:snippets/{raw['fileName']}", state
        if t == "proxmoxve:index/vmLegacy:VmLegacy":
            vm_id = 100 + int(hashlib.sha256(f"vm:{name}".encode()).hexdigest()[:6], 16) % 900_000
            state.update(vmId=vm_id)
            return str(vm_id), state
        if t.startswith(mock_tls.PREFIX):
            state.update(mock_tls.answer(t, name, {k: plain(v) for k, v in args.inputs.items()}))
            return _guid(t, name), state
        return args.resource_id or f"{name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "azuread:index/getClientConfig:getClientConfig":
            return {"clientId": _guid("deployer-client"), "objectId": _guid("deployer"), "tenantId": self.tenant_id}
        if args.token == "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken":
            return {"token": f"mock-secret-tunnel-token-{_guid(str(args.args.get('tunnelId')))}"}
        return {}


def _walk(value: Any, secret: Callable[[Any], Any]) -> tuple[Any, bool]:
    """Resolve the wire markers in `value`: a resource reference becomes its URN and each secret
    becomes `secret(<its unwrapped value>)`; also say whether any secret was found."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return secret(_walk(value.get("value"), secret)[0]), True
        if sig == _RESOURCE_SIG:
            return value.get("urn"), False
        pairs = {k: _walk(v, secret) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_walk(v, secret) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _mask(value: Any) -> Any:
    """`value` with every secret replaced by SECRET (what plans and reviews may show)."""
    return _walk(value, lambda _: SECRET)[0]


def _unwrap(value: Any) -> tuple[Any, bool]:
    """`value` with secrets unwrapped, and whether it held any secret."""
    return _walk(value, lambda inner: inner)


def plain(value: Any) -> Any:
    """`value` as a provider receives it: secrets unwrapped, resource references as URNs."""
    return _unwrap(value)[0]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping each request's parent, dependencies and raw inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine does not qualify a top-level resource's type with the stack's type.
        if parent and parent.split("::")[2] == "pulumi:pulumi:Stack":
            parent = ""
        return super().make_urn(parent, type_, name)

    def _record(self, request: Any, urn: str, id_: str, read_id: str | None) -> None:
        inputs = json_format.MessageToDict(request.properties if read_id else request.object)
        parent = request.parent or None
        if parent and parent.split("::")[2] == "pulumi:pulumi:Stack":
            parent = None
        deps = () if read_id else tuple(request.dependencies)
        custom = True if read_id else bool(request.custom)
        unwrapped = {k: _unwrap(v) for k, v in inputs.items()}
        self.registered.append(
            Registered(
                urn, id_, request.type, request.name, parent, custom, _mask(inputs), deps, read_id,
                values={k: v for k, (v, _) in unwrapped.items()},
                secret_inputs=frozenset(k for k, (_, secret) in unwrapped.items() if secret),
                provider=request.provider,
                delete_before_replace=False if read_id else bool(request.deleteBeforeReplace),
                additional_secret_outputs=() if read_id else tuple(request.additionalSecretOutputs),
                replace_on_changes=() if read_id else tuple(request.replaceOnChanges),
            )
        )

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, response.urn, response.id, None)
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self._record(request, response.urn, request.id, request.id)
        return response


async def _resolve_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        resolved[key] = SECRET if await output.is_secret() else await output.future()
    return resolved


def record(
    build: Callable[[], Any],
    *,
    mocks: pulumi.runtime.Mocks | None = None,
    project: str = "hardened-code-server",
    stack: str = "test",
    config: dict[str, str] | None = None,
    secret_keys: Iterable[str] = (),
) -> PlanResult:
    """Run `build()` under Pulumi's mock runtime and record what it registers.

    `build` may register any resources (a whole program, or one component in a test) and may
    return an Output to wait for; the stack's exports become `outputs`. `config` and
    `secret_keys` are fully qualified (`<project>:<key>`), as the engine passes them.
    """
    pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]
    monitor = RecordingMonitor(mocks or PlanMocks(_guid("tenant")))
    runtime_settings.ROOT.set(None)  # a fresh root stack for every run in this process
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys))
    result = PlanResult()

    @pulumi.runtime.test
    def evaluate() -> Any:
        built = build()

        async def collect() -> None:
            await pulumi.Output.from_input(built).future()
            root = runtime_settings.get_root_resource()
            result.outputs.update(await _resolve_outputs(dict(root.outputs) if root is not None else {}))

        return collect()

    evaluate()
    result.resources.extend(monitor.registered)
    return result


def run_program(config: StackConfig, project_dir: Path = REPOSITORY, mocks: pulumi.runtime.Mocks | None = None) -> PlanResult:
    """Evaluate `__main__.py` for `config` under mocks (default: the plan's); raises what the program raises."""

    def program() -> None:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    return record(
        program,
        mocks=mocks or PlanMocks(config.values.get("entraTenantId", _guid("tenant"))),
        project=config.project,
        stack=config.stack,
        config={f"{config.project}:{k}": v for k, v in config.values.items()},
        secret_keys=[f"{config.project}:{k}" for k in config.secret_keys if k in config.values],
    )
