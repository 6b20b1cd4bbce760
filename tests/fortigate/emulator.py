"""A stateful FortiOS CMDB API (REST v2) on 127.0.0.1, over real HTTPS, for provider tests.

It behaves like the device where the provider depends on it, and is written independently of
the provider's own normalisation (tests must not restate the code under test):
- the full response envelope (`http_method`, `revision`, `results` list, `vdom`, `path`, `name`,
  `mkey`, `status`, `http_status`, `serial`, `version`, `build`);
- bearer-token auth only (a token in the query string gets 401, as FortiOS ≥ 7.4.5), a per-token
  VDOM scope and per-table permission (403), a lockout (429) after repeated bad tokens;
- VDOM isolation (each VDOM has its own tables);
- duplicates → 500/-5, unknown references or invalid values → 500/-651, delete of a referenced
  object → 500/-23, missing objects → 404 (-3 on writes);
- policy IDs assigned by the device, policies appended at the bottom, `PUT ?action=move`;
- read-time normalisation and defaults: subnets as "ip mask", member tables with `q_origin_key`
  and returned sorted by name (a re-ordering the provider must not mistake for a change), a
  `uuid`, `status: enable`, `mappedport` defaulting to `extport`, and other defaults;
- `with_meta=1` (q_ref counts) and `filter=field==value`;
- a collection DELETE purges every unreferenced object, as on the device (the client must
  never be able to send one);
- injectable faults: latency, a connection dropped before or after the request is applied,
  and bare 5xx answers;
- it counts and logs every request.

Assumption (unverified on hardware): duplicate policy names are refused with -5, like
duplicate object names.
"""

from __future__ import annotations

import copy
import ipaddress
import json
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
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SERIAL, VERSION, BUILD = "FGVM02TM24000001", "v7.4.5", 2702
PREFIX = "/api/v2/cmdb/"

#: table -> (mkey field, permission group, name length limit)
TABLES: dict[str, tuple[str, str, int]] = {
    "firewall/address": ("name", "address", 79),
    "firewall/addrgrp": ("name", "address", 79),
    "firewall.service/custom": ("name", "service", 79),
    "firewall/vip": ("name", "others", 79),
    "firewall/policy": ("policyid", "policy", 35),
    "ips/sensor": ("name", "ips", 35),
    "system/interface": ("name", "sysgrp", 35),
    "firewall/ssl-ssl-profile": ("name", "others", 35),
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
    ("firewall/policy", "ssl-ssl-profile"): ("firewall/ssl-ssl-profile",),
    ("firewall/policy", "schedule"): ("firewall.schedule/recurring",),
    ("firewall/vip", "extintf"): ("system/interface",),
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "firewall/address": {"type": "ipmask", "comment": "", "color": 0, "allow-routing": "disable"},
    "firewall/addrgrp": {"comment": "", "color": 0, "exclude": "disable"},
    "firewall.service/custom": {"protocol": "TCP/UDP/SCTP", "tcp-portrange": "", "udp-portrange": "", "comment": "", "category": ""},
    "firewall/vip": {"type": "static-nat", "portforward": "disable", "protocol": "tcp", "comment": "", "extport": "0-65535", "arp-reply": "enable"},
    "firewall/policy": {
        "status": "enable", "action": "deny", "schedule": "always", "logtraffic": "utm", "nat": "disable",
        "utm-status": "disable", "inspection-mode": "flow", "ips-sensor": "", "ssl-ssl-profile": "no-inspection",
        "comments": "", "logtraffic-start": "disable",
    },
    "ips/sensor": {"comment": "", "block-malicious-url": "disable", "entries": []},
}


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


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.split() if v]
    if not isinstance(value, list):
        raise ApiError(500, -651, "invalid member table")
    return [item["name"] if isinstance(item, dict) else str(item) for item in value]


class FortiOSEmulator:
    """The device. `start()` serves it on 127.0.0.1; `url`, `requests`, `log`, `inject()`."""

    def __init__(self, cert: Path, key: Path, tokens: dict[str, TokenScope], vdoms: tuple[str, ...] = ("root", "dmz-lab"),
                 lockout_after: int = 5) -> None:
        self._cert, self._key = cert, key
        self.tokens = tokens
        self.lockout_after = lockout_after
        self.failed_logins = 0
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
            tables["firewall/ssl-ssl-profile"].append({"name": name, "q_origin_key": name})
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

    def start(self) -> FortiOSEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = _Server(("127.0.0.1", 0), handler)
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
        return f"https://127.0.0.1:{self._server.server_address[1]}"

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
        obj = {**copy.deepcopy(DEFAULTS.get(path, {})), **copy.deepcopy(body)}
        if path in ("firewall/address", "firewall/addrgrp", "firewall/vip", "firewall/policy"):
            obj.setdefault("uuid", str(uuid.uuid4()))
        if path == "firewall/address" and "subnet" in obj:
            try:
                obj["subnet"] = _mask(obj["subnet"])
            except ValueError:
                raise ApiError(500, -651, f"invalid subnet {obj['subnet']!r}") from None
        if path == "firewall/vip":
            obj.setdefault("mappedport", obj.get("extport"))
        for (table, fld), _ in REFERENCES.items():
            if table == path and fld in obj and isinstance(obj[fld], list):
                obj[fld] = [{"name": n, "q_origin_key": n} for n in _names(obj[fld])]
        return obj

    def _view(self, path: str, obj: dict[str, Any], meta: bool, vdom: str | None = None) -> dict[str, Any]:
        """Read-time view: member tables sorted by name, origin key, optional meta."""
        out = copy.deepcopy(obj)
        out["q_origin_key"] = out.get(TABLES[path][0])
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

    def _create(self, vdom: str, path: str, body: dict[str, Any]) -> str:
        key, _, limit = TABLES[path]
        rows = self.db[vdom][path]
        if path == "firewall/policy":
            if body.get("name") and any(r.get("name") == body["name"] for r in rows):
                raise ApiError(500, -5, "duplicate policy name")
            body = {**body, "policyid": int(body.get("policyid") or max([int(r["policyid"]) for r in rows] + [0]) + 1)}
        name = str(body.get(key, ""))
        if not name:
            raise ApiError(500, -651, f"{key} is required")
        if len(str(body.get("name", ""))) > limit:
            raise ApiError(500, -651, "name too long")
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
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
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
                result = self._dispatch(method, path, mkey, vdom, query, headers, body)
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

    def _dispatch(self, method: str, path: str, mkey: str | None, vdom: str, query: dict[str, str],
                  headers: dict[str, str], body: bytes) -> dict[str, Any]:
        if self.failed_logins >= self.lockout_after:
            raise ApiError(429)
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if "access_token" in query or token not in self.tokens:
            self.failed_logins += 1
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
            if "filter" in query:
                fld, _, value = query["filter"].partition("==")
                rows = [o for o in rows if str(o.get(fld)) == value]
            meta = query.get("with_meta") == "1"
            return {"results": [self._view(path, o, meta, vdom) for o in rows], "matched_count": len(rows)}
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            raise ApiError(400, -651, "body is not JSON") from None
        if method == "POST":
            if mkey is not None:
                raise ApiError(405)
            return {"mkey": self._create(vdom, path, payload)}
        if method == "PUT":
            if mkey is None:
                raise ApiError(405)
            if query.get("action") == "move":
                where = "before" if "before" in query else "after"
                self._move(vdom, mkey, where, query.get(where, ""))
                return {"mkey": mkey}
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
