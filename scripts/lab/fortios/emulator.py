"""A stateful FortiOS CMDB API (REST v2) on 127.0.0.1, over real HTTPS, for provider tests.

It behaves like the device where the provider depends on it, and is written independently of
the provider's own normalisation (tests must not restate the code under test):
- the full response envelope (`http_method`, `revision`, `results` list, `vdom`, `path`, `name`,
  `mkey`, `status`, `http_status`, `serial`, `version`, `build`);
- bearer-token auth only (a token in the query string gets 401, as FortiOS ≥ 7.4.5), a per-token
  VDOM scope and per-table permission (403), a lockout (429) after repeated bad tokens that
  expires after `lockout_seconds` (FortiOS `admin-lockout-duration`, default 60 s);
- the FortiOS 7.4 field facts (`components/fortigate/fortios_7_4.json`, read here as data and
  checked by this module's own code, not the provider's): a POST or PUT naming a field the table
  does not have, or a value outside its type, length, range or allowed values, is refused with
  500/-651 naming the field, as the device refuses it; name length limits and duplicate names
  are checked on POST *and* PUT (a rename);
- VDOM isolation (each VDOM has its own tables);
- duplicates → 500/-5, unknown references or invalid values → 500/-651, delete of a referenced
  object → 500/-23, missing objects → 404 (-3 on writes);
- policy IDs assigned by the device, policies appended at the bottom, `PUT ?action=move`;
- read-time normalisation and defaults: subnets as "ip mask", member tables with `q_origin_key`
  and returned sorted by name (a re-ordering the provider must not mistake for a change), a
  `uuid`, `status: enable`, `mappedport` following `extport` while it is not set itself; a GET
  returns *every* field of the table's facts, as the device does (placeholder values, not the
  device's real defaults, except the few listed in DEFAULTS);
- `with_meta=1` (q_ref counts) and `filter=` with the device's operators (`==`, `!=`, `=@`,
  `!@`, `<`, `<=`, `>`, `>=`; several `filter` parameters AND, commas OR); any other filter
  syntax is refused loudly (400) instead of being half-understood;
- a `move` relative to the policy itself is refused (-651) and leaves the table as it was;
- a collection DELETE purges every unreferenced object, as on the device (the client must
  never be able to send one);
- injectable faults: latency, a connection dropped before or after the request is applied,
  and bare 5xx answers;
- per address type, the value that type needs (`_check_address`): a valid `subnet` for `ipmask`,
  a DNS name in `fqdn` for `fqdn` (a wildcard is `fqdn "*.example.com"` on FortiOS ≥ 6.2.2);
  `type wildcard-fqdn` is not a 7.4 option (the facts' enum) and a `wildcard-fqdn` value is
  refused, a stricter stand-in than a device that may keep it unused;
- it counts and logs every request.

What it does not prove: that the field facts match a real FortiOS 7.4 (they come from the
public sources named in the facts file), the device's real default values, its exact error codes
for a bad field (assumed -651 with a `cli_error`), or how a real device orders concurrent writes.
It resolves no names: an FQDN object here is a string, so nothing shows which addresses a real
device would put behind it, whether its wildcard matches several labels or the apex, or that a
policy to it lets the traffic through.
Unverified on hardware: whether FortiOS refuses a duplicate policy *name*. By default this
stand-in accepts one (the harder case: the provider must refuse it itself);
`unique_policy_names=True` models a device that refuses it with -5.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from scripts import REPOSITORY

SERIAL, VERSION, BUILD = "FGVM02TM24000001", "v7.4.5", 2702
PREFIX = "/api/v2/cmdb/"

#: The device's field facts per table (data shared with the provider; the checking code here is our own).
FACTS: dict[str, dict[str, Any]] = json.loads(
    (REPOSITORY / "components" / "fortigate" / "fortios_7_4.json").read_text())["tables"]

#: table -> (mkey field, permission group, name length limit)
TABLES: dict[str, tuple[str, str, int]] = {
    "firewall/address": ("name", "address", FACTS["firewall/address"]["name"]["max_length"]),
    "firewall/addrgrp": ("name", "address", FACTS["firewall/addrgrp"]["name"]["max_length"]),
    "firewall.service/custom": ("name", "service", FACTS["firewall.service/custom"]["name"]["max_length"]),
    "firewall/vip": ("name", "others", FACTS["firewall/vip"]["name"]["max_length"]),
    "firewall/policy": ("policyid", "policy", FACTS["firewall/policy"]["name"]["max_length"]),
    "ips/sensor": ("name", "ips", FACTS["ips/sensor"]["name"]["max_length"]),
    "system/interface": ("name", "sysgrp", 35),
    "firewall/ssl-ssh-profile": ("name", "others", 35),
    "firewall.schedule/recurring": ("name", "others", 31),
}

#: (table, field) -> tables the named objects may live in
REFERENCES: dict[tuple[str, str], tuple[str, ...]] = {
    ("firewall/addrgrp", "member"): ("firewall/address", "firewall/addrgrp"),
    ("firewall/policy", "srcintf"): ("system/interface",),
    ("firewall/policy", "dstintf"): ("system/interface",),
    ("firewall/policy", "srcaddr"): ("firewall/address", "firewall/addrgrp"),
    ("firewall/policy", "dstaddr"): ("firewall/address", "firewall/addrgrp", "firewall/vip"),
    ("firewall/policy", "service"): ("firewall.service/custom",),
    ("firewall/policy", "ips-sensor"): ("ips/sensor",),
    ("firewall/policy", "ssl-ssh-profile"): ("firewall/ssl-ssh-profile",),
    ("firewall/policy", "schedule"): ("firewall.schedule/recurring",),
    ("firewall/vip", "extintf"): ("system/interface",),
}

#: The device defaults the tests rely on (every other field gets a placeholder, see `_placeholders`).
DEFAULTS: dict[str, dict[str, Any]] = {
    "firewall/address": {"type": "ipmask", "subnet": "0.0.0.0 0.0.0.0", "comment": "", "color": 0, "allow-routing": "disable"},
    "firewall/addrgrp": {"comment": "", "color": 0, "exclude": "disable"},
    "firewall.service/custom": {"protocol": "TCP/UDP/SCTP", "tcp-portrange": "", "udp-portrange": "", "comment": "", "category": ""},
    "firewall/vip": {"type": "static-nat", "portforward": "disable", "protocol": "tcp", "comment": "", "extport": "0-65535", "arp-reply": "enable"},
    "firewall/policy": {
        "status": "enable", "action": "deny", "schedule": "always", "logtraffic": "utm", "nat": "disable",
        "utm-status": "disable", "inspection-mode": "flow", "ips-sensor": "", "ssl-ssh-profile": "no-inspection",
        "comments": "", "logtraffic-start": "disable",
    },
    "ips/sensor": {"comment": "", "block-malicious-url": "disable", "entries": []},
}
_FILTER = re.compile(r"^([a-z0-9-]+)(==|!=|=@|!@|<=|>=|<|>)(.*)$")
#: One label of an FQDN object's name: a DNS label, or `*` alone.
_DNS_LABEL = re.compile(r"^(\*|[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)$")


def _placeholder(spec: dict[str, Any]) -> Any:
    """A type-correct value for a field the test did not set (not the device's real default)."""
    kind = spec["type"]
    if kind == "integer":
        return max(0, spec.get("range", (0, 0))[0])
    if kind == "table":
        return []
    if kind == "object":
        return {}
    return spec["values"][0] if "values" in spec else ""


def _placeholders(path: str) -> dict[str, Any]:
    key = TABLES[path][0]
    return {f: _placeholder(spec) for f, spec in FACTS.get(path, {}).items() if f not in (key, "uuid", "mappedport")}


def _bad_field(where: str, message: str) -> ApiError:
    return ApiError(500, -651, f"{where}: {message}")


def _validate(spec: dict[str, Any], value: Any, where: str) -> None:
    """The device's own check of one written value against the table's facts."""
    kind = spec["type"]
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_field(where, f"not an integer: {value!r}")
        low, high = spec.get("range", (None, None))
        if low is not None and not low <= value <= high:
            raise _bad_field(where, f"out of range [{low}, {high}]: {value}")
    elif kind == "string":
        if not isinstance(value, str):
            raise _bad_field(where, f"not a string: {value!r}")
        if len(value) > spec.get("max_length", len(value)):
            raise _bad_field(where, f"longer than {spec['max_length']} characters")
        if "values" in spec and value not in spec["values"]:
            raise _bad_field(where, f"invalid option {value!r} (options: {' '.join(spec['values'])})")
        if "words" in spec and (not value.split() or any(w not in spec["words"] for w in value.split())):
            raise _bad_field(where, f"invalid options {value!r} (options: {' '.join(spec['words'])})")
    else:
        entries = value if kind == "table" else [value]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _bad_field(where, f"not a {'table of entries' if kind == 'table' else 'mapping'}: {value!r}")
        for entry in entries:
            for name, item in entry.items():
                if name not in spec.get("fields", {}):
                    raise _bad_field(f"{where}.{name}", "no such field")
                _validate(spec["fields"][name], item, f"{where}.{name}")


def _validate_body(path: str, body: dict[str, Any]) -> None:
    facts = FACTS.get(path)
    if facts is None:
        raise ApiError(405, None, f"the stand-in does not model writes to {path}")
    for name, value in body.items():
        if name not in facts:
            raise _bad_field(name, "no such field")
        _validate(facts[name], value, name)


def _compare(have: Any, op: str, want: str) -> bool:
    text = "" if have is None else str(have)
    if op in ("==", "!="):
        return (text == want) == (op == "==")
    if op in ("=@", "!@"):
        return (want in text) == (op == "=@")
    try:
        a, b = float(text), float(want)
    except ValueError:
        a, b = text, want  # type: ignore[assignment]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _filtered(rows: list[dict[str, Any]], filters: list[str]) -> list[dict[str, Any]]:
    """FortiOS filters: each `filter` parameter must hold (AND); commas inside one are OR."""
    parsed = []
    for text in filters:
        clauses = []
        for clause in text.split(","):
            match = _FILTER.match(clause)
            if not match:
                raise ApiError(400, None, f"the stand-in does not understand filter {clause!r}")
            clauses.append(match.groups())
        parsed.append(clauses)
    return [r for r in rows if all(any(_compare(r.get(f), op, v) for f, op, v in c) for c in parsed)]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the CA bundle the tests trust)."""
    cert, key = directory / "fortigate.pem", directory / "fortigate.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=fortigate-emulator",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@dataclass
class TokenScope:
    """What a token may do: which VDOMs, and per permission group "read" or "read-write"."""

    vdoms: frozenset[str] = frozenset({"root"})
    permissions: dict[str, str] = field(default_factory=dict)
    default: str = "read-write"

    def allows(self, group: str, write: bool) -> bool:
        level = self.permissions.get(group, self.default)
        return level == "read-write" or (level == "read" and not write)


@dataclass
class Fault:
    """One injected misbehaviour for the next matching request."""

    kind: str  # latency | drop | drop-after | status
    method: str | None = None
    delay: float = 0.0
    status: int = 503


class ApiError(Exception):
    def __init__(self, http_status: int, error: int | None = None, cli_error: str | None = None) -> None:
        super().__init__(cli_error or str(error))
        self.http_status, self.error, self.cli_error = http_status, error, cli_error


def _mask(value: Any) -> str:
    parts = str(value).split()
    network = ipaddress.IPv4Network("/".join(parts) if len(parts) == 2 else str(value), strict=True)
    return f"{network.network_address} {network.netmask}"


def _check_address(obj: dict[str, Any]) -> None:
    """What each address type needs, on the stored object (POST, and PUT merged onto the old one)."""
    kind = obj.get("type")
    if obj.get("wildcard-fqdn"):
        raise _bad_field("wildcard-fqdn", 'no address type uses it in 7.4 (a wildcard is type fqdn, fqdn "*.example.com")')
    if kind == "ipmask":
        try:
            obj["subnet"] = _mask(obj.get("subnet"))
        except ValueError:
            raise ApiError(500, -651, f"invalid subnet {obj.get('subnet')!r}") from None
    elif kind == "fqdn":
        name = obj.get("fqdn")
        if not isinstance(name, str) or not name:
            raise _bad_field("fqdn", "an address of type fqdn needs a name")
        labels = name.split(".")
        if len(labels) < 2 or not all(_DNS_LABEL.match(x) for x in labels):
            raise _bad_field("fqdn", f"invalid name {name!r}")


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.split() if v]
    if not isinstance(value, list):
        raise ApiError(500, -651, "invalid member table")
    return [item["name"] if isinstance(item, dict) else str(item) for item in value]


class FortiOSEmulator:
    """The device. `start()` serves it on 127.0.0.1; `url`, `requests`, `log`, `inject()`."""

    def __init__(self, cert: Path, key: Path, tokens: dict[str, TokenScope], vdoms: tuple[str, ...] = ("root", "dmz-lab"),
                 lockout_after: int = 5, lockout_seconds: float = 60.0, unique_policy_names: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cert, self._key = cert, key
        self.tokens = tokens
        self.lockout_after, self.lockout_seconds = lockout_after, lockout_seconds
        self.unique_policy_names = unique_policy_names
        self.clock = clock
        self.failed_logins = 0
        self.locked_until: float | None = None
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[Fault] = []
        self.revision = 1
        self._lock = threading.RLock()
        self.db: dict[str, dict[str, list[dict[str, Any]]]] = {v: {t: [] for t in TABLES} for v in vdoms}
        for vdom in vdoms:
            self._seed(vdom)
        self._server: ThreadingHTTPServer | None = None

    # -- setup --------------------------------------------------------------------------------

    def _seed(self, vdom: str) -> None:
        tables = self.db[vdom]
        for name in ("wan1", "dmz", "internal", "any"):
            tables["system/interface"].append({"name": name, "q_origin_key": name})
        for name in ("certificate-inspection", "deep-inspection", "no-inspection"):
            tables["firewall/ssl-ssh-profile"].append({"name": name, "q_origin_key": name})
        tables["firewall.schedule/recurring"].append({"name": "always", "q_origin_key": "always", "day": "sunday monday tuesday wednesday thursday friday saturday"})
        for name, subnet in (("all", "0.0.0.0 0.0.0.0"), ("none", "0.0.0.0 255.255.255.255")):
            tables["firewall/address"].append(self._stored("firewall/address", {"name": name, "subnet": subnet}))
        for name, tcp in (("ALL", ""), ("HTTPS", "443"), ("SSH", "22"), ("DNS", "53")):
            tables["firewall.service/custom"].append(self._stored("firewall.service/custom", {"name": name, "tcp-portrange": tcp}))
        for name in ("default", "high_security"):
            tables["ips/sensor"].append(self._stored("ips/sensor", {"name": name}))

    def seed_policy(self, vdom: str, name: str) -> int:
        """A policy that exists before the stack (something the stack must place itself around)."""
        with self._lock:
            body = {"name": name, "srcintf": [{"name": "internal"}], "dstintf": [{"name": "wan1"}],
                    "srcaddr": [{"name": "all"}], "dstaddr": [{"name": "all"}], "service": [{"name": "ALL"}],
                    "action": "accept", "schedule": "always"}
            return int(self._create(vdom, "firewall/policy", body))

    def inject(self, kind: str, times: int = 1, *, method: str | None = None, delay: float = 0.0, status: int = 503) -> None:
        with self._lock:
            self.faults.extend(Fault(kind, method, delay, status) for _ in range(times))

    def start(self, address: str = "127.0.0.1", port: int = 0) -> FortiOSEmulator:
        """Serve over HTTPS on `address:port` (default: loopback, a free port) in a thread."""
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _Server((address, port), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert, self._key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server
        address, port = self._server.server_address[:2]
        return f"https://{address}" if port == 443 else f"https://{address}:{port}"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()

    # -- out-of-band changes (what an admin does in the GUI) -----------------------------------

    def table(self, vdom: str, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(path, o, False) for o in self.db[vdom][path]]

    def find(self, vdom: str, path: str, mkey: str | int) -> dict[str, Any] | None:
        with self._lock:
            found = self._find(vdom, path, str(mkey))
            return None if found is None else self._view(path, found, False)

    def poke(self, vdom: str, path: str, mkey: str | int, **fields: Any) -> None:
        with self._lock:
            obj = self._find(vdom, path, str(mkey))
            assert obj is not None, f"no {path} {mkey}"
            obj.update({k.replace("_", "-"): v for k, v in fields.items()})
            self.revision += 1

    def remove(self, vdom: str, path: str, mkey: str | int) -> None:
        with self._lock:
            self._delete(vdom, path, str(mkey))

    def move(self, vdom: str, policyid: int, where: str, ref: int) -> None:
        with self._lock:
            self._move(vdom, str(policyid), where, str(ref))

    # -- the CMDB -----------------------------------------------------------------------------

    def _find(self, vdom: str, path: str, mkey: str) -> dict[str, Any] | None:
        key = TABLES[path][0]
        return next((o for o in self.db[vdom][path] if str(o.get(key)) == mkey), None)

    def _stored(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store-time normalisation: what the device keeps for a POSTed body."""
        obj = {**_placeholders(path), **copy.deepcopy(DEFAULTS.get(path, {})), **copy.deepcopy(body)}
        if path in ("firewall/address", "firewall/addrgrp", "firewall/vip", "firewall/policy"):
            obj.setdefault("uuid", str(uuid.uuid4()))
        if path == "firewall/address":
            _check_address(obj)
        for (table, fld), _ in REFERENCES.items():
            if table == path and fld in obj and isinstance(obj[fld], list):
                obj[fld] = [{"name": n, "q_origin_key": n} for n in _names(obj[fld])]
        return obj

    def _view(self, path: str, obj: dict[str, Any], meta: bool, vdom: str | None = None) -> dict[str, Any]:
        """Read-time view: member tables sorted by name, origin key, optional meta."""
        out = copy.deepcopy(obj)
        out["q_origin_key"] = out.get(TABLES[path][0])
        if path == "firewall/vip" and not out.get("mappedport"):
            out["mappedport"] = out.get("extport")  # unset, it follows extport
        for (table, fld), _ in REFERENCES.items():
            if table == path and isinstance(out.get(fld), list):
                out[fld] = sorted(out[fld], key=lambda m: m["name"])
        if meta and vdom is not None:
            out.update({"q_ref": self._ref_count(vdom, path, str(out["q_origin_key"])), "q_static": False,
                        "q_no_rename": False, "q_path": path.split("/")[0], "q_name": path.split("/")[1]})
        return out

    def _refs(self, path: str, obj: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...]]]:
        found = []
        for (table, fld), targets in REFERENCES.items():
            if table == path and obj.get(fld) not in (None, ""):
                for name in _names(obj[fld]):
                    found.append((fld, name, targets))
        return found

    def _check_refs(self, vdom: str, path: str, obj: dict[str, Any]) -> None:
        for fld, name, targets in self._refs(path, obj):
            if not any(self._find(vdom, t, name) for t in targets):
                raise ApiError(500, -651, f'entry not found in datasource: {fld} "{name}"')

    def _ref_count(self, vdom: str, path: str, mkey: str) -> int:
        count = 0
        for table, objects in self.db[vdom].items():
            for obj in objects:
                count += sum(1 for _, name, targets in self._refs(table, obj) if name == mkey and path in targets)
        return count

    def _check_name(self, vdom: str, path: str, body: dict[str, Any], mkey: str | None) -> None:
        """Name length and, for policies on a device that wants them unique, duplicate names (POST and PUT)."""
        limit = TABLES[path][2]
        if "name" in body and len(str(body["name"])) > limit:
            raise ApiError(500, -651, f"name: longer than {limit} characters")
        if path == "firewall/policy" and self.unique_policy_names and body.get("name"):
            if any(r.get("name") == body["name"] and str(r["policyid"]) != mkey for r in self.db[vdom][path]):
                raise ApiError(500, -5, "duplicate policy name")

    def _create(self, vdom: str, path: str, body: dict[str, Any]) -> str:
        key = TABLES[path][0]
        rows = self.db[vdom][path]
        self._check_name(vdom, path, body, None)
        if path == "firewall/policy":
            body = {**body, "policyid": int(body.get("policyid") or max([int(r["policyid"]) for r in rows] + [0]) + 1)}
        name = str(body.get(key, ""))
        if not name:
            raise ApiError(500, -651, f"{key} is required")
        if self._find(vdom, path, name) is not None:
            raise ApiError(500, -5, "entry already exists")
        obj = self._stored(path, body)
        self._check_refs(vdom, path, obj)
        rows.append(obj)
        self.revision += 1
        return name

    def _update(self, vdom: str, path: str, mkey: str, body: dict[str, Any]) -> str:
        obj = self._find(vdom, path, mkey)
        if obj is None:
            raise ApiError(404, -3)
        key = TABLES[path][0]
        self._check_name(vdom, path, body, mkey)
        new_key = str(body.get(key, mkey))
        if new_key != mkey:
            if self._find(vdom, path, new_key) is not None:
                raise ApiError(500, -5, "entry already exists")
            if self._ref_count(vdom, path, mkey):
                raise ApiError(500, -23, "cannot rename an object in use")
        merged = self._stored(path, {**obj, **body})
        self._check_refs(vdom, path, merged)
        obj.clear()
        obj.update(merged)
        self.revision += 1
        return new_key

    def _move(self, vdom: str, mkey: str, where: str, ref: str) -> None:
        rows = self.db[vdom]["firewall/policy"]
        obj, target = self._find(vdom, "firewall/policy", mkey), self._find(vdom, "firewall/policy", ref)
        if obj is None or target is None:
            raise ApiError(500, -3, "policy to move or reference policy not found")
        if obj is target:
            raise ApiError(500, -651, "cannot move a policy relative to itself")
        rows.remove(obj)
        index = rows.index(target)
        rows.insert(index if where == "before" else index + 1, obj)
        self.revision += 1

    def _delete(self, vdom: str, path: str, mkey: str) -> None:
        obj = self._find(vdom, path, mkey)
        if obj is None:
            raise ApiError(404, -3)
        if self._ref_count(vdom, path, mkey):
            raise ApiError(500, -23, "entry is used by other objects")
        self.db[vdom][path].remove(obj)
        self.revision += 1

    def _purge(self, vdom: str, path: str) -> None:
        rows = self.db[vdom][path]
        key = TABLES[path][0]
        rows[:] = [o for o in rows if self._ref_count(vdom, path, str(o[key]))]
        self.revision += 1

    # -- HTTP ---------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        url = urlsplit(raw_path)
        multi = parse_qs(url.query)
        query = {k: v[-1] for k, v in multi.items()}
        self.record(method, url.path, query)
        vdom = query.get("vdom", "root")
        section, table, mkey = "", "", None
        if url.path.startswith(PREFIX):
            parts = url.path[len(PREFIX):].split("/")
            if len(parts) >= 2:
                section, table = parts[0], parts[1]
                mkey = unquote("/".join(parts[2:])) if len(parts) > 2 and parts[2] != "" else None
        path = f"{section}/{table}"
        env = {"http_method": method, "revision": f"{self.revision:032x}", "vdom": vdom, "path": section,
               "name": table, "serial": SERIAL, "version": VERSION, "build": BUILD}
        try:
            with self._lock:
                result = self._dispatch(method, path, mkey, vdom, query, headers, body, multi.get("filter", []))
            return 200, {**env, **result, "status": "success", "http_status": 200}
        except ApiError as err:
            out = {**env, "status": "error", "http_status": err.http_status}
            if err.error is not None:
                out["error"] = err.error
            if err.cli_error:
                out["cli_error"] = err.cli_error
            if mkey is not None:
                out["mkey"] = mkey
            return err.http_status, out

    def lock_out(self) -> None:
        """As after `lockout_after` bad tokens: every request gets 429 for `lockout_seconds`."""
        with self._lock:
            self.failed_logins, self.locked_until = self.lockout_after, self.clock() + self.lockout_seconds

    def _dispatch(self, method: str, path: str, mkey: str | None, vdom: str, query: dict[str, str],
                  headers: dict[str, str], body: bytes, filters: list[str]) -> dict[str, Any]:
        now = self.clock()
        if self.locked_until is not None and now >= self.locked_until:
            self.failed_logins, self.locked_until = 0, None  # the lockout has expired
        if self.locked_until is not None:
            raise ApiError(429)
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if "access_token" in query or token not in self.tokens:
            self.failed_logins += 1
            if self.failed_logins >= self.lockout_after:
                self.locked_until = now + self.lockout_seconds
            raise ApiError(401)
        scope = self.tokens[token]
        if path not in TABLES:
            raise ApiError(404, -3, "no such table")
        if vdom not in self.db:
            raise ApiError(404, -3, "no such vdom")
        if vdom not in scope.vdoms or not scope.allows(TABLES[path][1], method != "GET"):
            raise ApiError(403)
        if method == "GET":
            rows = self.db[vdom][path] if mkey is None else [o for o in [self._find(vdom, path, mkey)] if o]
            if mkey is not None and not rows:
                raise ApiError(404)
            if filters:
                rows = _filtered(rows, filters)
            meta = query.get("with_meta") == "1"
            return {"results": [self._view(path, o, meta, vdom) for o in rows], "matched_count": len(rows)}
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            raise ApiError(400, -651, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(400, -651, "body is not a JSON object")
        if method == "POST":
            if mkey is not None:
                raise ApiError(405)
            _validate_body(path, payload)
            return {"mkey": self._create(vdom, path, payload)}
        if method == "PUT":
            if mkey is None:
                raise ApiError(405)
            if query.get("action") == "move":
                where = "before" if "before" in query else "after"
                self._move(vdom, mkey, where, query.get(where, ""))
                return {"mkey": mkey}
            _validate_body(path, payload)
            return {"mkey": self._update(vdom, path, mkey, payload)}
        if method == "DELETE":
            if mkey is None:
                self._purge(vdom, path)
                return {}
            self._delete(vdom, path, mkey)
            return {"mkey": mkey}
        raise ApiError(405)

    def record(self, method: str, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self.requests[method] += 1
            self.log.append((method, urlsplit(path).path, query))

    def next_fault(self, method: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.method in (None, method):
                    return self.faults.pop(index)
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) is expected; anything else is shown."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    emulator: FortiOSEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.emulator.next_fault(self.command)
        if fault and fault.kind == "latency":
            time.sleep(fault.delay)
        if fault and fault.kind in ("drop", "status"):
            self.emulator.record(self.command, self.path, {"fault": fault.kind})
        if fault and fault.kind == "drop":
            self._drop()
            return
        if fault and fault.kind == "status":
            self._send(fault.status, b"<html>Service Unavailable</html>", "text/html")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.emulator.handle(self.command, self.path, headers, body)
        if fault and fault.kind == "drop-after":
            self._drop()
            return
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status: int, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve
