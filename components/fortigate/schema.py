"""What the CMDB provider knows about each FortiOS table it manages, and how values compare.

Pure (no pulumi, no httpx), so it is tested on its own and imported by the provider process
without side effects. The device's own field facts (names, types, length limits, integer
ranges, allowed values) are data, in `fortios_7_4.json` beside this module, with their public
source and version recorded there; `check_payload` refuses a field FortiOS 7.4 does not have, or
a value it does not allow, before any request is sent (a device that silently ignores an unknown
field would otherwise never apply the setting).

`check` normalises the program's inputs and `managed_view` normalises the device's answer with
the *same* functions: a CIDR the device shows as "ip mask", a member list it returns in another
order, a port range written "443-443", a whole number that came back through gRPC as 443.0 all
compare equal, so a device's rewriting never causes a perpetual diff. Only the fields the
program sets are compared (recursively); everything the device adds (uuid, q_origin_key,
defaults) is ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The value Pulumi passes for an input that is not known yet (preview).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

#: FortiOS 7.4 field facts per table (see the file's "sources").
FACTS_FILE = Path(__file__).with_name("fortios_7_4.json")

_VDOM = re.compile(r"^[A-Za-z0-9_-]{1,31}$")
_BAD_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\"\\]")
_FQDN_LABEL = re.compile(r"^(\*|(?!-)[A-Za-z0-9_-]{1,63}(?<!-))$")
_PORTS = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


def load_facts(path: Path = FACTS_FILE) -> dict[str, dict[str, Any]]:
    """Field facts per CMDB path: `{path: {field: {"type", "max_length", "range", "values", "words", "fields"}}}`."""
    return json.loads(path.read_text())["tables"]


_FACTS = load_facts()


@dataclass(frozen=True)
class Table:
    """One CMDB table: where it lives, how objects are keyed, and which fields need care.

    `permission` is the admin-profile permission a token needs to write here; a 403 names it.
    `fields` are the device's field facts (from `fortios_7_4.json`); `name_limit` is the name's.
    `required_by_type`: what an object of that `type` needs besides `required` (`type` unset
    counts as the first key: the device's default type).
    """

    path: str
    label: str
    mkey: str
    permission: str
    required: tuple[str, ...] = ()
    required_by_type: dict[str, tuple[str, ...]] = field(default_factory=dict)
    member_fields: frozenset[str] = frozenset()
    subnet_fields: frozenset[str] = frozenset()
    port_list_fields: frozenset[str] = frozenset()
    port_range_fields: frozenset[str] = frozenset()
    fields: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def name_limit(self) -> int:
        return int(self.fields["name"]["max_length"])

    @property
    def keyed_by_name(self) -> bool:
        return self.mkey == "name"

    @property
    def ordered(self) -> bool:
        """Policies are evaluated top-down, so their position is managed state."""
        return self.path == "firewall/policy"


TABLES: dict[str, Table] = {
    t.path: t
    for t in (
        Table(
            "firewall/address", "firewall address", "name",
            "fwgrp-permission address (Firewall > Address: read-write)",
            # A subnet, or a name (a wildcard is `type fqdn` too: `fqdn "*.example.com"`).
            required_by_type={"ipmask": ("subnet",), "fqdn": ("fqdn",)},
            subnet_fields=frozenset({"subnet"}),
            fields=_FACTS["firewall/address"],
        ),
        Table(
            "firewall/addrgrp", "firewall address group", "name",
            "fwgrp-permission address (Firewall > Address: read-write)",
            required=("member",),
            member_fields=frozenset({"member"}),
            fields=_FACTS["firewall/addrgrp"],
        ),
        Table(
            "firewall.service/custom", "custom service", "name",
            "fwgrp-permission service (Firewall > Service: read-write)",
            port_list_fields=frozenset({"tcp-portrange", "udp-portrange", "sctp-portrange"}),
            fields=_FACTS["firewall.service/custom"],
        ),
        Table(
            "firewall/vip", "virtual IP", "name",
            "fwgrp-permission others (Firewall > Virtual IP: read-write)",
            required=("extip", "extintf", "mappedip"),
            port_range_fields=frozenset({"extport", "mappedport"}),
            fields=_FACTS["firewall/vip"],
        ),
        Table(
            "firewall/policy", "firewall policy", "policyid",
            "fwgrp-permission policy (Firewall > Policy: read-write)",
            required=("srcintf", "dstintf", "srcaddr", "dstaddr", "service", "action", "schedule"),
            member_fields=frozenset({"srcintf", "dstintf", "srcaddr", "dstaddr", "service"}),
            fields=_FACTS["firewall/policy"],
        ),
        Table(
            "ips/sensor", "IPS sensor", "name",
            "utmgrp-permission ips (Security Profile > IPS: read-write)",
            fields=_FACTS["ips/sensor"],
        ),
    )
}


class CheckError(ValueError):
    """A bad input value; `field` is the payload field it belongs to."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def is_unknown(value: Any) -> bool:
    """Whether `value` is (or contains) a value not known until deployment."""
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(is_unknown(v) for v in value)
    return value == UNKNOWN


def table(path: str) -> Table:
    """The table at `path`, or a ValueError listing the tables this provider manages."""
    try:
        return TABLES[path]
    except KeyError:
        raise ValueError(f"path: expected one of {', '.join(sorted(TABLES))}, got {path!r}") from None


def vdom(value: Any) -> str:
    if not isinstance(value, str) or not _VDOM.match(value):
        raise CheckError("vdom", f"expected a VDOM name (letters, digits, _ or -, 1-31 characters), got {value!r}")
    return value


def name(tbl: Table, field_name: str, value: Any) -> str:
    """An object name within the table's length limit (FortiOS truncates nothing: it refuses)."""
    if not isinstance(value, str) or not value.strip():
        raise CheckError(field_name, f"{tbl.label} {field_name}: expected a non-empty name")
    if len(value) > tbl.name_limit:
        raise CheckError(
            field_name, f"{tbl.label} {field_name} {value!r}: at most {tbl.name_limit} characters, got {len(value)}"
        )
    if _BAD_NAME_CHARS.search(value) or value != value.strip():
        raise CheckError(field_name, f"{tbl.label} {field_name} {value!r}: no quotes, backslashes, control characters or outer spaces")
    return value


def subnet(value: Any) -> str:
    """`192.0.2.0/24`, `192.0.2.0 255.255.255.0` or a bare address → the device's "ip mask" form."""
    text = str(value).strip()
    try:
        parts = text.split()
        network = ipaddress.IPv4Network("/".join(parts) if len(parts) == 2 else text, strict=True)
    except ValueError:
        raise ValueError(f"expected an IPv4 network such as 192.0.2.0/24 (no host bits), got {value!r}") from None
    return f"{network.network_address} {network.netmask}"


def _port_range(text: str) -> str:
    match = _PORTS.match(text)
    if not match:
        raise ValueError(f"expected a port or range such as 443 or 8000-8080, got {text!r}")
    lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
    if not (1 <= lo <= hi <= 65535):
        raise ValueError(f"expected ports from 1 to 65535 with low <= high, got {text!r}")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def port_range(value: Any) -> str:
    """One port or range (`443`, `8000-8080`); `443-443` is written `443`, as the device shows it."""
    return _port_range(str(value).strip())


def port_list(value: Any) -> str:
    """Space-separated `dst[:src]` ranges, each canonical (the service `*-portrange` fields)."""
    items = str(value).split()
    if not items:
        raise ValueError("expected at least one port or range")
    out = []
    for item in items:
        dst, _, src = item.partition(":")
        out.append(_port_range(dst) + (":" + _port_range(src) if src else ""))
    return " ".join(out)


def members(value: Any) -> list[dict[str, str]]:
    """A member table (`[{"name": …}]`, or plain names) as a list sorted by name.

    The device keeps member tables as sets; comparing them sorted means a device that returns
    them in another order never shows a change.
    """
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of names")
    names = []
    for item in value:
        entry = item.get("name") if isinstance(item, dict) else item
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"expected each member as a name or {{'name': …}}, got {item!r}")
        names.append(entry)
    if len(set(names)) != len(names):
        raise ValueError(f"expected no duplicate members, got {names}")
    return [{"name": n} for n in sorted(names)]


def plain(value: Any) -> Any:
    """Numbers as the program wrote them: gRPC turns every number into a float."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _expected(spec: dict[str, Any]) -> str:
    """What a field takes, in words (for error messages)."""
    kind = spec["type"]
    if "values" in spec:
        return "one of " + ", ".join(spec["values"])
    if "words" in spec:
        return "space-separated words from " + " ".join(spec["words"])
    if kind == "integer" and "range" in spec:
        return f"an integer from {spec['range'][0]} to {spec['range'][1]}"
    if kind == "string" and "max_length" in spec:
        return f"a string of at most {spec['max_length']} characters"
    return {"table": "a list of entries", "object": "a mapping"}.get(kind, f"a {kind}")


def _unknown_field(label: str, key: str, known: dict[str, Any]) -> str:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"{label}: FortiOS 7.4 has no field {key!r}{hint}"


def shape(spec: dict[str, Any], value: Any, where: str, nested: bool = False) -> None:
    """Raise ValueError unless `value` has the shape the device's facts give for this field.

    `where` names the field ("entries[0].severity" inside a sub-table); messages of a top-level field
    leave it out, because the caller already names it.
    """
    if is_unknown(value):
        return
    at = f"{where}: " if nested else ""
    kind = spec["type"]
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{at}expected {_expected(spec)}, got {value!r}")
        low, high = spec.get("range", (None, None))
        if low is not None and not low <= value <= high:
            raise ValueError(f"{at}expected {_expected(spec)}, got {value!r}")
    elif kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{at}expected {_expected(spec)}, got {value!r}")
        if "values" in spec and value not in spec["values"]:
            raise ValueError(f"{at}expected {_expected(spec)}, got {value!r}")
        if "words" in spec and (not value.split() or not set(value.split()) <= set(spec["words"])):
            raise ValueError(f"{at}expected {_expected(spec)}, got {value!r}")
        if "max_length" in spec and len(value) > spec["max_length"]:
            raise ValueError(f"{at}expected {_expected(spec)}, got {len(value)} characters")
    elif kind in ("table", "object"):
        entries = value if kind == "table" else [value]
        if (kind == "table" and not isinstance(value, list)) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{at}expected {_expected(spec)} (each a mapping of "
                             f"{', '.join(sorted(spec.get('fields', {})))}), got {value!r}")
        sub = spec.get("fields", {})
        for index, entry in enumerate(entries):
            for key, item in entry.items():
                inner = f"{where}[{index}].{key}" if kind == "table" else f"{where}.{key}"
                if key not in sub:
                    raise ValueError(_unknown_field(inner, key, sub))
                shape(sub[key], item, inner, nested=True)


def _field(tbl: Table, key: str, value: Any) -> Any:
    """Normalise one field's value (the program's or the device's) to its comparable form."""
    value = plain(value)
    if is_unknown(value):
        return value
    if key in tbl.member_fields:
        value = members(value)
    elif key in tbl.subnet_fields:
        value = subnet(value)
    elif key in tbl.port_list_fields:
        value = port_list(value)
    elif key in tbl.port_range_fields:
        value = port_range(value)
    if key in tbl.fields:
        shape(tbl.fields[key], value, key)
    return value


def _vip_mappedip(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of {'range': 'a.b.c.d[-e.f.g.h]'}")
    out = []
    for item in value:
        text = item.get("range") if isinstance(item, dict) else item
        try:
            first, _, last = str(text).partition("-")
            lo, hi = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last or first)
        except ValueError:
            raise ValueError(f"expected an IPv4 address or range, got {text!r}") from None
        if hi < lo:
            raise ValueError(f"expected a range with low <= high, got {text!r}")
        out.append({"range": str(lo) if lo == hi else f"{lo}-{hi}"})
    return out


def _fqdn(value: Any) -> str:
    """A DNS name, `*` allowed as a whole label (`*.example.com`): FortiOS matches it against DNS answers."""
    text = str(value).strip()
    labels = text.split(".")
    if len(text) > 255 or len(labels) < 2 or not all(_FQDN_LABEL.match(x) for x in labels):
        raise ValueError(f"expected a DNS name such as www.example.com or *.example.com, got {value!r}")
    return text


def _ipv4(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise ValueError(f"expected an IPv4 address, got {value!r}") from None


_SPECIAL: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("firewall/vip", "mappedip"): _vip_mappedip,
    ("firewall/vip", "extip"): _ipv4,
    ("firewall/address", "fqdn"): _fqdn,
}


def normalise(tbl: Table, key: str, value: Any) -> Any:
    """The comparable form of `value` for field `key` of `tbl` (raises ValueError if invalid)."""
    special = _SPECIAL.get((tbl.path, key))
    if special is not None and not is_unknown(value):
        value = special(plain(value))
        shape(tbl.fields[key], value, key)
        return value
    return _field(tbl, key, value)


def check_payload(tbl: Table, payload: Any) -> tuple[dict[str, Any], list[CheckError]]:
    """Validate and normalise the managed fields of one object; every problem is returned."""
    if not isinstance(payload, dict):
        return {}, [CheckError("payload", f"{tbl.label}: expected the object's fields as a mapping")]
    problems: list[CheckError] = []
    out: dict[str, Any] = {}
    if tbl.mkey in payload:
        problems.append(CheckError(tbl.mkey, f"{tbl.label}: {tbl.mkey} is the object's key; set it as the resource's name (a policyid is assigned by the device)"))
    kind = payload.get("type", next(iter(tbl.required_by_type), None))
    for key in tbl.required + tbl.required_by_type.get(kind, ()):
        if key not in payload:
            problems.append(CheckError(key, f"{tbl.label}: {key} is required"))
    for key, value in payload.items():
        if key not in tbl.fields:
            problems.append(CheckError(key, _unknown_field(tbl.label, key, tbl.fields)))
            continue
        try:
            out[key] = normalise(tbl, key, value)
        except ValueError as err:
            problems.append(CheckError(key, f"{tbl.label} field {key}: {err}"))
    if tbl.path == "firewall.service/custom" and not {"tcp-portrange", "udp-portrange"} & payload.keys():
        problems.append(CheckError("tcp-portrange", f"{tbl.label}: set tcp-portrange and/or udp-portrange"))
    return out, problems


def _project(desired: Any, live: Any) -> Any:
    """The part of `live` that corresponds to what the program set in `desired`."""
    if isinstance(desired, dict):
        live = live if isinstance(live, dict) else {}
        return {k: _project(v, live.get(k)) for k, v in desired.items()}
    if isinstance(desired, list) and desired and all(isinstance(d, dict) for d in desired):
        keys = sorted({k for d in desired for k in d})
        if not isinstance(live, list):
            return live
        return [{k: _project(next(d[k] for d in desired if k in d), item.get(k)) for k in keys if k in item}
                if isinstance(item, dict) else item for item in live]
    return plain(live)


def managed_view(tbl: Table, desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The device's values of exactly the fields the program manages, in comparable form.

    A value the device returns that cannot be normalised is kept as it is, so it shows as drift
    instead of failing the refresh.
    """
    view: dict[str, Any] = {}
    for key, want in desired.items():
        if key not in live:
            continue
        got = _project(want, live[key])
        try:
            view[key] = normalise(tbl, key, got)
        except ValueError:
            view[key] = got
    return view


def changed_fields(tbl: Table, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
    """Managed fields whose normalised values differ (unknown new values count as changes)."""
    changed = []
    for key, want in news.items():
        if is_unknown(want):
            changed.append(key)
            continue
        try:
            a = normalise(tbl, key, want)
        except ValueError:
            a = want
        have = olds.get(key)
        try:
            b = normalise(tbl, key, _project(want, have))
        except ValueError:
            b = have
        if a != b:
            changed.append(key)
    return changed


@dataclass(frozen=True)
class Placement:
    """Where a policy sits: at the top, or directly before/after another policy.

    `ref` is a policy ID (digits) or, for the program's own chain, a policy name: names let a
    policy be placed after its predecessor before either has a device-assigned ID.
    """

    where: str
    ref: str | None = None

    def __str__(self) -> str:
        return self.where if self.ref is None else f"{self.where}:{self.ref}"


def placement(value: Any) -> Placement:
    """`top`, `before:<policy id or name>` or `after:<policy id or name>`."""
    text = str(value).strip()
    where, sep, ref = text.partition(":")
    if where == "top" and not sep:
        return Placement("top")
    if where in ("before", "after") and ref.strip():
        return Placement(where, ref.strip())
    raise CheckError("placement", f"expected top, before:<policy id or name> or after:<policy id or name>, got {value!r}")
