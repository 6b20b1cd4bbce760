"""Every input the program gives a provider resource is one that resource's pinned SDK declares.

The mocks behind the offline plan and the unit tests accept any property, so a misspelt or
outdated input name would reach no provider and no assertion. This test runs the real
`__main__.py` for every example stack (`dev`, `cloudflare`, `proxmox`, `digitalocean`) and checks each
registration of a docker, azuread, command, tls, cloudflare, random, proxmoxve or digitalocean resource
(and explicit provider) against the SDK installed in the venv.

The oracle: the token → class table the SDK registers itself with (`_utilities.register(...)` in
the package's `__init__.py`), the resource's `<Class>Args` input type (`<Class>State` for a
`.get()` read), and pulumi's own name translation for input types
(`pulumi._types.input_type_py_to_pulumi_names`, the `@pulumi.getter(name=...)` records), so
the allowed names are the wire (camelCase) names the engine receives. A property is required
when the Args' `__init__` gives it no default. Nested values are checked the same way wherever
the Args' type hints say an input type (directly, in a list, or as a map's values) and the value
arrived as an object.

What it does not prove: that a value is valid (types, enums, formats, a Cloudflare rule's
semantics), that the provider accepts the combination, or that the pinned SDK matches the
provider plugin the engine would run; JSON-encoded provider settings are not looked into;
dynamic-provider (`pulumi-python:dynamic/...`, see tests/fortigate) and component (`hcs:...`)
resources are out of scope. Top-level misspellings in Python are already a `TypeError` of the
generated SDK; this mostly guards what the SDK passes through unchecked (dict literals for
nested input types) and pins the whole graph to the pinned schema.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import json
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pulumi import _types

from scripts.tools.offline import PlanResult, Registered, load_stack_config, run_program

#: Type-token package → the Python SDK that defines it.
SDKS = {
    "docker": "pulumi_docker",
    "azuread": "pulumi_azuread",
    "command": "pulumi_command",
    "tls": "pulumi_tls",
    "cloudflare": "pulumi_cloudflare",
    "random": "pulumi_random",
    "proxmoxve": "pulumi_proxmoxve",
    "digitalocean": "pulumi_digitalocean",
}
#: Registrations outside the SDK oracle's reach, by token prefix (each has its own tests).
OUT_OF_SCOPE = ("hcs:", "pulumi-python:dynamic")
#: Which SDKs each example stack must exercise, so the test can't pass by checking nothing.
EXPECTED = {
    "dev": {"docker", "azuread", "command", "tls", "random"},
    "cloudflare": {"docker", "azuread", "command", "cloudflare", "random"},
    "proxmox": {"docker", "azuread", "command", "tls", "random", "proxmoxve"},
    "digitalocean": {"docker", "azuread", "command", "tls", "cloudflare", "random", "digitalocean"},
}


def _package(token: str) -> str:
    """`docker` for `docker:index/container:Container` and for `pulumi:providers:docker`."""
    return token.rsplit(":", 1)[1] if token.startswith("pulumi:providers:") else token.split(":", 1)[0]


@functools.cache
def _classes(sdk: str) -> dict[str, tuple[str, str]]:
    """Type token → (module, class name), read from the `_utilities.register(...)` call the
    generated `__init__.py` makes (the SDK's own table; nothing is imported to build it)."""
    spec = importlib.util.find_spec(sdk)
    assert spec is not None and spec.origin, f"{sdk} is not installed in the venv"
    tree = ast.parse(Path(spec.origin).read_text())
    table: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register":
            kw = {k.arg: json.loads(ast.literal_eval(k.value)) for k in node.keywords}
            for module in kw.get("resource_modules", []):
                table.update({token: (module["fqn"], cls) for token, cls in module["classes"].items()})
            for package in kw.get("resource_packages", []):
                table[package["token"]] = (package["fqn"], package["class"])
    assert table, f"no resource table found in {spec.origin}"
    return table


@functools.cache
def _input_class(token: str, read: bool) -> type:
    """The input type the SDK builds `token`'s inputs from (`<Class>State` for a read)."""
    sdk = SDKS[_package(token)]
    fqn, name = _classes(sdk)[token]
    resource = getattr(importlib.import_module(fqn), name)
    module = importlib.import_module(resource.__module__)
    if read:
        exported = [getattr(module, f"_{name}State", None)]
    else:  # the one input type the module exports: `<Class>Args`, or `<Class>InitArgs` on a name clash
        exported = [getattr(module, n) for n in module.__all__ if n != name]
    found = [c for c in exported if _types.is_input_type(c)]  # type: ignore[arg-type]
    assert len(found) == 1, f"{token}: expected one input type in {resource.__module__}, found {found}"
    return found[0]


@functools.cache
def _schema(cls: type) -> tuple[frozenset[str], frozenset[str], dict[str, type]]:
    """(wire names, required wire names, wire name → input type nested under it) of `cls`."""
    names = _types.input_type_py_to_pulumi_names(cls)
    required = frozenset(
        names[p.name] for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    )
    return frozenset(names.values()), required, dict(_types.input_type_types(cls))


def _nested(hint: Any, value: Any) -> Iterator[tuple[str, type, Any]]:
    """(path suffix, input type, object) for every object in `value` that `hint` says is an input type."""
    hint = _types.unwrap_type(hint)
    if _types.is_input_type(hint):
        if isinstance(value, dict):
            yield "", hint, value
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, Sequence) and args and isinstance(value, list):
        for i, item in enumerate(value):
            yield from ((f"[{i}]{p}", t, o) for p, t, o in _nested(args[0], item))
    elif origin in (dict, Mapping) and len(args) == 2 and isinstance(value, dict):
        for key, item in value.items():
            yield from ((f"[{key!r}]{p}", t, o) for p, t, o in _nested(args[1], item))


def _problems_of(cls: type, values: dict[str, Any], where: str, check_required: bool = True) -> list[str]:
    allowed, required, hints = _schema(cls)
    problems = [f"{where}: {cls.__name__} has no input {key!r}" for key in sorted(set(values) - allowed)]
    if check_required:
        problems += [f"{where}: required input {key!r} of {cls.__name__} is missing" for key in sorted(required - set(values))]
    for key in sorted(set(values) & set(hints)):
        for path, inner, obj in _nested(hints[key], values[key]):
            problems += _problems_of(inner, obj, f"{where}.{key}{path}")
    return problems


def sdk_input_problems(resource: Registered) -> list[str]:
    """Every input of `resource` its SDK does not declare, and every required one it lacks."""
    read = resource.read_id is not None
    cls = _input_class(resource.type, read)
    return _problems_of(cls, resource.values, f"{resource.type} {resource.name!r}", check_required=not read)


def _in_scope(plan: PlanResult) -> list[Registered]:
    return [r for r in plan.resources if not r.type.startswith(OUT_OF_SCOPE)]


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_every_provider_input_is_declared_by_the_pinned_sdk(stack: str, request: pytest.FixtureRequest) -> None:
    # dev: the session's shared run (conftest); the other stack files are run here
    plan = request.getfixturevalue("dev_plan") if stack == "dev" else run_program(load_stack_config(stack))
    resources = _in_scope(plan)
    unknown = sorted({r.type for r in resources if _package(r.type) not in SDKS or r.type not in _classes(SDKS[_package(r.type)])})
    assert not unknown, f"registered types no pinned SDK defines (a new provider belongs in SDKS): {unknown}"
    assert {_package(r.type) for r in resources} >= EXPECTED[stack]
    problems = [p for r in resources for p in sdk_input_problems(r)]
    assert not problems, "\n".join(problems)


def test_the_oracle_names_a_misspelt_missing_or_nested_input() -> None:
    """The check itself can fail: a registration as a typo would reach the engine."""
    container = Registered(
        urn="urn", id="id", type="docker:index/container:Container", name="gw", parent=None, custom=True, inputs={},
        dependencies=(), values={"imag": "x", "readOnly": True, "mounts": [{"target": "/t", "type": "bind", "readOnyl": True}],
                                 "capabilities": {"drop": ["ALL"]}, "logOpts": {"max-size": "20m"}},
    )
    assert sdk_input_problems(container) == [
        "docker:index/container:Container 'gw': ContainerArgs has no input 'imag'",
        "docker:index/container:Container 'gw': required input 'image' of ContainerArgs is missing",
        "docker:index/container:Container 'gw'.capabilities: ContainerCapabilitiesArgs has no input 'drop'",
        "docker:index/container:Container 'gw'.mounts[0]: ContainerMountArgs has no input 'readOnyl'",
    ]
    group = Registered(urn="urn", id="/groups/g", type="azuread:index/group:Group", name="g", parent=None, custom=True, inputs={},
                       dependencies=(), read_id="/groups/g", values={"securityEnabled": True, "displayNam": "x"})
    assert sdk_input_problems(group) == ["azuread:index/group:Group 'g': _GroupState has no input 'displayNam'"]
