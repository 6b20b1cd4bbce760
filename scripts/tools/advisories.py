#!/usr/bin/env python3
"""Fail when a component the stack pins has a published advisory whose affected range holds the pin.

Renovate (.github/renovate.json) proposes newer pins; this check says when staying put is no longer
acceptable. The pins are read the way the program reads them: code-server's `codeServerVersion`
(the stack file, else Pulumi.yaml's default), and the oauth2-proxy, Caddy and cloudflared versions
from the tags of their digest-pinned images. Advisories are OSV records (https://ossf.github.io/osv-schema/):
online from api.osv.dev (`querybatch`, then each record), offline from a recorded feed file, so the
logic is tested without the network (tests/test_advisories.py, tests/data/osv/).

Only SEMVER and ECOSYSTEM ranges and explicit `versions` lists are judged (GIT ranges name commits,
which a release tag does not give us). Exit 1 names each advisory that affects a pin; exit 2 means
the check itself could not run (unreadable stack, feed or network): never a silent pass.

Usage: `python -m scripts.tools.advisories [--stack dev ...] [--feed FILE] [--project-dir DIR]`
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts import REPOSITORY

PROJECT = "hardened-code-server"
OSV_API = "https://api.osv.dev/v1"


@dataclass(frozen=True)
class Component:
    """Where a pin lives in the config and what OSV calls its package."""

    key: str
    ecosystem: str
    package: str


#: code-server ships on npm; the others are Go modules (OSV writes Go versions without the "v").
COMPONENTS = {
    "code-server": Component("codeServerVersion", "npm", "code-server"),
    "oauth2-proxy": Component("oauth2ProxyImage", "Go", "github.com/oauth2-proxy/oauth2-proxy/v7"),
    "caddy": Component("caddyImage", "Go", "github.com/caddyserver/caddy/v2"),
    "cloudflared": Component("cloudflaredImage", "Go", "github.com/cloudflare/cloudflared"),
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    ecosystem: str
    package: str
    source: str  # where it was read, for the message


@dataclass(frozen=True)
class Finding:
    advisory: str
    aliases: tuple[str, ...]
    summary: str
    pin: Pin
    fixed: tuple[str, ...]

    def __str__(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"; fixed in {', '.join(self.fixed)}" if self.fixed else "; no fixed version published"
        return f"{self.advisory}{also}: {self.pin.name} {self.pin.version} ({self.pin.source}) is affected{fix}: {self.summary}"


class CheckError(RuntimeError):
    """The check could not be made (not the same as "no advisory")."""


# --- pins ---------------------------------------------------------------------------------


def _image_version(image: str) -> str | None:
    """The release in an image's tag: `repo:v7.15.3@sha256:…` → 7.15.3, `caddy:2.11.7-alpine` → 2.11.7."""
    ref = image.split("@", 1)[0]
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else ""
    found = re.match(r"^v?(\d+(?:\.\d+)*)", tag)
    return found.group(1) if found else None


def stack_pins(stack: str, project_dir: Path = REPOSITORY) -> list[Pin]:
    """The pinned component versions of one stack (stack file first, then Pulumi.yaml defaults)."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    try:
        declared = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["config"]
        values = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    except (OSError, KeyError, yaml.YAMLError) as error:
        raise CheckError(f"cannot read the config of stack {stack!r}: {error}") from error
    pins = []
    for name, c in COMPONENTS.items():
        full = f"{PROJECT}:{c.key}"
        if full in values:
            raw, source = values[full], f"{c.key} in {stack_file.name}"
        else:
            raw, source = (declared.get(c.key) or {}).get("default"), f"{c.key} default in Pulumi.yaml"
        if not raw:
            continue  # not set for this stack (e.g. cloudflared without the Cloudflare edge): nothing deployed
        version = str(raw) if c.key == "codeServerVersion" else _image_version(str(raw))
        if version is None:
            raise CheckError(f"{source}: {raw!r} carries no release tag, so its advisories cannot be checked; pin repo:tag@sha256:…")
        pins.append(Pin(name, version, c.ecosystem, c.package, source))
    return pins


# --- OSV ranges ---------------------------------------------------------------------------


def _key(version: str) -> tuple[Any, ...]:
    """A sort key for semver-like versions: numbers compare numerically; a pre-release sorts before its release."""
    core, _, pre = version.lstrip("v").partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in core.split("+", 1)[0].split("."))
    nums = nums + (0,) * (4 - len(nums))
    return (nums, 0 if pre else 1, pre)


def _in_range(version: str, events: Sequence[Mapping[str, str]]) -> tuple[bool, list[str]]:
    """OSV's rule: walk the sorted events; introduced opens, fixed/last_affected close. Also returns the fixes."""
    v = _key(version)
    points = []
    for event in events:
        for kind, at in event.items():
            points.append((_key(at) if at != "0" else ((-1,), 0, ""), kind, at))
    points.sort(key=lambda p: p[0])
    affected = False
    for at_key, kind, _ in points:
        if kind == "introduced" and at_key <= v:
            affected = True
        elif kind == "fixed" and at_key <= v:
            affected = False
        elif kind == "last_affected" and at_key < v:
            affected = False
    return affected, [at for _, kind, at in points if kind == "fixed"]


def affecting(pin: Pin, vuln: Mapping[str, Any]) -> Finding | None:
    """The finding if this OSV record affects the pinned version of the pin's package."""
    fixes: list[str] = []
    hit = False
    for entry in vuln.get("affected") or []:
        package = entry.get("package") or {}
        if package.get("ecosystem") != pin.ecosystem or package.get("name") != pin.package:
            continue
        if pin.version in (entry.get("versions") or []):
            hit = True
        for r in entry.get("ranges") or []:
            if r.get("type") not in ("SEMVER", "ECOSYSTEM"):
                continue
            inside, fixed = _in_range(pin.version, r.get("events") or [])
            hit = hit or inside
            fixes += [f for f in fixed if _key(f) > _key(pin.version)]
    if not hit:
        return None
    return Finding(vuln["id"], tuple(vuln.get("aliases") or ()), vuln.get("summary", "").strip(), pin,
                   tuple(sorted(set(fixes), key=_key)))


def check(pins: Iterable[Pin], vulns: Iterable[Mapping[str, Any]]) -> list[Finding]:
    vulns = list(vulns)
    return [f for pin in pins for v in vulns if (f := affecting(pin, v))]


# --- feeds --------------------------------------------------------------------------------


def load_feed(path: Path) -> list[dict[str, Any]]:
    """A recorded feed: a JSON list of OSV records, or {"vulns": [...]}."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckError(f"cannot read the advisory feed {path}: {error}") from error
    vulns = data.get("vulns") if isinstance(data, dict) else data
    if not isinstance(vulns, list) or not all(isinstance(v, dict) and "id" in v for v in vulns):
        raise CheckError(f"{path}: expected OSV records (a list, or an object with 'vulns'), each with an id")
    return vulns


def _post(url: str, body: Any | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (fixed https URL)
        return json.load(response)


def fetch_osv(pins: Sequence[Pin]) -> list[dict[str, Any]]:
    """Online: ask OSV which advisories affect each pin, then fetch each full record (querybatch gives ids)."""
    queries = [{"package": {"ecosystem": p.ecosystem, "name": p.package}, "version": p.version} for p in pins]
    try:
        results = _post(f"{OSV_API}/querybatch", {"queries": queries}).get("results") or []
        ids = sorted({v["id"] for r in results for v in (r.get("vulns") or [])})
        return [_post(f"{OSV_API}/vulns/{i}") for i in ids]
    except OSError as error:
        raise CheckError(f"cannot reach OSV ({OSV_API}): {error}") from error


def _stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", help="stack to check (repeatable; default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--feed", type=Path, help="recorded OSV feed (JSON) instead of querying api.osv.dev")
    parser.add_argument("--project-dir", type=Path, default=REPOSITORY)
    args = parser.parse_args(argv)
    try:
        stacks = args.stack or _stacks(args.project_dir)
        pins = {stack: stack_pins(stack, args.project_dir) for stack in stacks}
        every = [p for ps in pins.values() for p in ps]
        vulns = load_feed(args.feed) if args.feed else fetch_osv(list({(p.ecosystem, p.package, p.version): p for p in every}.values()))
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = False
    for stack, stack_pins_ in pins.items():
        findings = check(stack_pins_, vulns)
        failed = failed or bool(findings)
        checked = ", ".join(f"{p.name} {p.version}" for p in stack_pins_)
        print(f"stack {stack}: {len(findings)} advisor{'y' if len(findings) == 1 else 'ies'} against {checked}")
        for finding in findings:
            print(f"  {finding}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
