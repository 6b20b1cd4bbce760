"""A small FortiOS REST API v2 (CMDB) client: bearer token, verified TLS, typed errors, safe retries.

Why it is shaped this way:
- The token only ever travels in the `Authorization: Bearer` header (FortiOS ≥ 7.4.5 refuses
  `?access_token=`, and a token in a URL ends up in logs). Error messages carry the method, table
  and object name, never headers, so an exception can be shown or stored safely.
- TLS verification is on; a private CA is trusted through a CA bundle. Turning verification off
  needs the explicit `insecure` switch and warns every time a client is made.
- Every call names its VDOM, so nothing lands in whatever VDOM the token defaults to.
- Only idempotent requests (GET, PUT, DELETE) are retried, with bounded exponential backoff, on
  connection errors, timeouts and gateway errors. A POST is never repeated: a POST whose answer
  was lost may have created the object, and a blind retry would then report "already exists".
- A DELETE always names one object: a DELETE on a collection URL purges every unreferenced
  object of the table, so the client has no way to send one.

No import-time side effects: the dynamic provider imports this module in its own process.
"""

from __future__ import annotations

import re
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from components.fortigate import schema

_PATH = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)?/[a-z0-9-]+(?:\.[a-z0-9-]+)?$")
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
_RETRY_STATUS = frozenset({502, 503, 504})


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification of the FortiGate API is turned off."""


class FortiOSError(Exception):
    """A request the device refused or could not answer; says what was asked, never the token."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        mkey: str | None = None,
        vdom: str = "",
        http_status: int | None = None,
        error_code: int | None = None,
        name: str | None = None,
    ) -> None:
        self.method, self.path, self.mkey, self.vdom = method, path, mkey, vdom
        self.http_status, self.error_code = http_status, error_code
        # A POST has no key in its URL yet: name the object it was creating instead.
        target = f"{path}/{mkey}" if mkey is not None else f"{path} {name}" if name else path
        where = f"{method} {target} (vdom {vdom})" if method else target
        super().__init__(f"FortiOS {where}: {message}" if where else message)


class NotFound(FortiOSError):
    """HTTP 404 or error -3: the object does not exist."""


class AlreadyExists(FortiOSError):
    """Error -5: an object with this key already exists."""


class InUse(FortiOSError):
    """Error -23: the object is referenced by others; `references` is their count if known."""

    references: int | None = None


class InvalidValue(FortiOSError):
    """Error -651: a value is invalid or names an object that does not exist."""


class Unauthorized(FortiOSError):
    """HTTP 401: the token is wrong, expired, or used from a host outside its trusthosts."""


class Forbidden(FortiOSError):
    """HTTP 403: the token's admin profile lacks a permission (named in the message)."""


class LockedOut(FortiOSError):
    """HTTP 429: the device rate-limits or locked the API user out; retrying makes it worse."""


class ServerError(FortiOSError):
    """Any other failure the device reported."""


class TransportError(FortiOSError):
    """The device could not be reached or did not answer in time (after any retries)."""


class TLSVerificationError(TransportError):
    """The device's certificate is not trusted: set a CA bundle, or knowingly go insecure."""


@dataclass(frozen=True)
class Endpoint:
    """Where the FortiGate API is and how to trust it (no secret here: the token is separate)."""

    url: str
    ca_bundle: str | None = None
    insecure: bool = False
    timeout: float = 15.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"FortiGate URL: expected https://<host>[:<port>] with no path, got {self.url!r}")
        if self.ca_bundle and self.insecure:
            raise ValueError("FortiGate TLS: set either a CA bundle or insecure, not both")


def _errors_for(code: int | None, status: int) -> type[FortiOSError]:
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status == 429:
        return LockedOut
    if status == 404 or code == -3:
        return NotFound
    return {-5: AlreadyExists, -23: InUse, -651: InvalidValue}.get(code or 0, ServerError)


_HINTS: dict[type[FortiOSError], str] = {
    Unauthorized: "the API token was refused (401): check the token, its expiry and the API "
    "user's trusted hosts",
    LockedOut: "the device refused the API user for too many requests or failed logins (429); "
    "wait for the lockout to expire",
    NotFound: "no such object",
    AlreadyExists: "an object with this name already exists",
}


class FortiOSClient:
    """CMDB calls against one FortiGate: `get`, `create`, `update`, `move`, `delete`.

    `requests` counts the HTTP requests sent (retries included): the benchmark reads it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        token: str,
        *,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token or not isinstance(token, str):
            raise ValueError("FortiOS API token: expected a non-empty string")
        if endpoint.insecure:
            warnings.warn(
                f"TLS certificate verification of {endpoint.url} is OFF (insecure): anyone on the "
                "path can read the API token. Use a CA bundle instead.",
                InsecureTLSWarning,
                stacklevel=2,
            )
            verify: bool | ssl.SSLContext = False
        else:
            verify = ssl.create_default_context(cafile=endpoint.ca_bundle)
        self.endpoint = endpoint
        self.requests = 0
        self._retries, self._backoff, self._max_backoff, self._sleep = retries, backoff, max_backoff, sleep
        # trust_env=False: no proxy or CA settings from the environment silently change where
        # the token goes or which certificates are trusted.
        self._http = httpx.Client(
            base_url=endpoint.url.rstrip("/") + "/api/v2/cmdb/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=verify,
            timeout=endpoint.timeout,
            follow_redirects=False,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"FortiOSClient({self.endpoint.url!r})"

    def __enter__(self) -> FortiOSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the CMDB operations ------------------------------------------------------------------

    def get(self, path: str, mkey: str | int | None = None, *, vdom: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The `results` of a GET: one object (by mkey) or the whole table, in device order."""
        body = self._request("GET", path, mkey, vdom=vdom, params=params)
        results = body.get("results", [])
        return results if isinstance(results, list) else [results]

    def create(self, path: str, payload: dict[str, Any], *, vdom: str) -> str:
        """POST one object; returns its mkey as the device reports it (a policy's new ID)."""
        name = payload.get("name")
        body = self._request("POST", path, None, vdom=vdom, json=payload, name=str(name) if name else None)
        mkey = body.get("mkey", name)
        if mkey is None:
            raise ServerError("the device did not report the new object's key", method="POST", path=path, vdom=vdom)
        return str(mkey)

    def update(self, path: str, mkey: str | int, payload: dict[str, Any], *, vdom: str) -> None:
        """PUT the given fields of one object (fields not named are left as they are)."""
        self._request("PUT", path, self._require_mkey(mkey), vdom=vdom, json=payload)

    def move(self, path: str, mkey: str | int, where: str, ref: str | int, *, vdom: str) -> None:
        """Place a policy directly `before` or `after` policy `ref` (`action=move`)."""
        if where not in ("before", "after"):
            raise ValueError(f"move: expected before or after, got {where!r}")
        self._request("PUT", path, self._require_mkey(mkey), vdom=vdom, params={"action": "move", where: str(ref)})

    def delete(self, path: str, mkey: str | int, *, vdom: str) -> None:
        """DELETE one object. An in-use error reports how many objects reference it."""
        key = self._require_mkey(mkey)
        try:
            self._request("DELETE", path, key, vdom=vdom)
        except InUse as err:
            err.references = self._reference_count(path, key, vdom)
            raise

    def _reference_count(self, path: str, mkey: str, vdom: str) -> int | None:
        try:
            found = self.get(path, mkey, vdom=vdom, params={"with_meta": "1"})
        except FortiOSError:
            return None
        ref = found[0].get("q_ref") if found else None
        return int(ref) if isinstance(ref, (int, float)) else None

    # -- transport ----------------------------------------------------------------------------

    @staticmethod
    def _require_mkey(mkey: str | int | None) -> str:
        if mkey is None or not str(mkey).strip():
            raise ValueError("refusing a request without an object key: on a collection it would touch every object")
        return str(mkey)

    @staticmethod
    def _url(path: str, mkey: str | None) -> str:
        if not _PATH.match(path):
            raise ValueError(f"CMDB path: expected <section>/<table> such as firewall/address, got {path!r}")
        # safe="" encodes "/" too, so a name can never escape to another URL.
        return path if mkey is None else f"{path}/{quote(mkey, safe='')}"

    def _request(
        self,
        method: str,
        path: str,
        mkey: str | int | None,
        *,
        vdom: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        key = None if mkey is None else str(mkey)
        if method == "DELETE":
            key = self._require_mkey(key)
        url = self._url(path, key)
        query = {"vdom": schema.vdom(vdom), **(params or {})}
        attempts = 1 + (self._retries if method in _IDEMPOTENT else 0)
        context = {"method": method, "path": path, "mkey": key, "vdom": vdom, "name": name}
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            self.requests += 1
            try:
                response = self._http.request(method, url, params=query, json=json)
            except httpx.TransportError as err:
                if "CERTIFICATE_VERIFY_FAILED" in str(err):
                    raise TLSVerificationError(
                        "the device's TLS certificate is not trusted; give its CA as a CA bundle "
                        "(fortigateCaBundle)", **context) from None
                if last:
                    raise TransportError(f"{type(err).__name__} after {attempt + 1} attempt(s): {err}", **context) from None
                self._pause(attempt)
                continue
            if response.status_code in _RETRY_STATUS and not last:
                self._pause(attempt)
                continue
            return self._parse(response, context)
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _pause(self, attempt: int) -> None:
        self._sleep(min(self._max_backoff, self._backoff * 2**attempt))

    @staticmethod
    def _parse(response: httpx.Response, context: dict[str, Any]) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        status = response.status_code
        if 200 <= status < 300 and body.get("status", "success") == "success":
            return body
        code = body.get("error")
        code = int(code) if isinstance(code, (int, float)) else None
        kind = _errors_for(code, status)
        if kind is Forbidden:
            table = schema.TABLES.get(context["path"])
            need = table.permission if table else "the permission for this table"
            message = f"the API token's admin profile lacks {need} (403)"
        elif kind is InUse:
            message = "the object is still referenced by other objects; remove the references first"
        elif kind is InvalidValue:
            message = "a value is invalid or names an object that does not exist"
        else:
            message = _HINTS.get(kind, f"HTTP {status}")
        detail = body.get("cli_error")
        if isinstance(detail, str) and detail.strip():
            message += f" (device says: {detail.strip()})"
        if code is not None:
            message += f" [error {code}]"
        raise kind(message, http_status=status, error_code=code, **context)
