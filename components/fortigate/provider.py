"""The generic FortiOS CMDB dynamic provider, shared by every typed FortiGate resource.

Pulumi pickles this provider into the state with dill and runs it in its own process
(`python -m pulumi.dynamic`), so this module does nothing on import, and the provider object
holds only the *name* of the config key with the API token. The token itself is read in
`configure()` (the engine passes the stack config, secrets decrypted, to dynamic providers) or
from `FORTIOS_API_TOKEN` in that process's environment, is kept out of the pickle
(`__getstate__`), and never appears in inputs, outputs or error messages.

Resource inputs: `url`, `vdom`, `ca_bundle`, `insecure` (where the object lives, how to trust
the device), `path` (the CMDB table), `name`, `payload` (the managed fields, with the device's
field names), `adopt`, and for policies `placement`.
Outputs: the same, with `payload` replaced by the device's values of the managed fields, plus
`mkey`, `uuid` and, for policies, `policyid` (also the resource ID) and the observed `placement`.

Adopting objects that already exist: `create` never overwrites one; it fails with a message that
says how to adopt it. `pulumi import` cannot be used for dynamic resources (pulumi/pulumi#16175:
the engine's import path has no serialized provider), so adoption is the `adopt` input (the Edge
sets it for the names listed in `fortigateAdopt`): `create` then PUTs the managed fields onto
the existing object and owns it from then on (including deleting it on destroy). `read` works
from the program's inputs alone (the host's path for a resource with no prior state), which is
what the `import_` resource option needs; that option is untested here without the Pulumi CLI.

Request budget per operation (what the benchmark measures): create = POST + GET (+ a move for a
policy that did not land where it belongs), update = PUT + GET (+ move), diff = none,
refresh = one GET, delete = one DELETE.
"""

from __future__ import annotations

import os
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from pulumi.output import Unknown

from components.fortigate import schema
from components.fortigate.client import (
    AlreadyExists,
    Endpoint,
    FortiOSClient,
    FortiOSError,
    InUse,
    NotFound,
)

TOKEN_ENV = "FORTIOS_API_TOKEN"
_CONNECTION = ("url", "vdom", "ca_bundle", "insecure")
_IDENTITY = ("url", "vdom", "path")


class ProviderError(Exception):
    """A failure explained for the person running `pulumi up` (never holds the token)."""


class AdoptionRequired(ProviderError):
    """The object already exists on the device and this stack does not own it."""


def _wire_unknowns(value: Any) -> Any:
    """Preview values not known yet, as the wire's unknown marker (what the pure schema expects)."""
    if isinstance(value, Unknown):
        return schema.UNKNOWN
    if isinstance(value, dict):
        return {k: _wire_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire_unknowns(v) for v in value]
    return value


class CmdbProvider(ResourceProvider):
    """CRUD for one object of any table in `schema.TABLES`, through the FortiOS REST API."""

    def __init__(self, token_key: str) -> None:
        super().__init__()
        #: The fully qualified config key ("<project>:fortigateApiToken") — a name, not a value.
        self.token_key = token_key

    def __getstate__(self) -> dict[str, Any]:
        # Only the key name is ever pickled, even if this object was configured in this process.
        return {"token_key": self.token_key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.token_key = state["token_key"]

    def configure(self, req: ConfigureRequest) -> None:
        value = req.config.get(self.token_key)
        self._token: str | None = value if isinstance(value, str) and value else None

    # -- helpers ------------------------------------------------------------------------------

    def _client(self, props: dict[str, Any]) -> FortiOSClient:
        token = getattr(self, "_token", None) or os.environ.get(TOKEN_ENV)
        if not token:
            key = self.token_key.split(":", 1)[-1]
            raise ProviderError(
                f"no FortiOS API token: set it with `pulumi config set --secret {key}` "
                f"(or export {TOKEN_ENV} where pulumi runs)"
            )
        endpoint = Endpoint(props["url"], props.get("ca_bundle") or None, bool(props.get("insecure")))
        return FortiOSClient(endpoint, token)

    @staticmethod
    def _describe(tbl: schema.Table, props: dict[str, Any], mkey: str | None = None) -> str:
        ident = f"{props.get('name')!r}" + (f" (policyid {mkey})" if mkey and not tbl.keyed_by_name else "")
        return f"{tbl.label} {ident} in vdom {props.get('vdom')} of {props.get('url')}"

    @staticmethod
    def _body(props: dict[str, Any]) -> dict[str, Any]:
        return {**props["payload"], "name": props["name"]}

    def _outs(self, tbl: schema.Table, props: dict[str, Any], live: dict[str, Any], placement: str | None) -> dict[str, Any]:
        outs = {k: props.get(k) for k in (*_CONNECTION, "path", "adopt")}
        outs["name"] = live.get("name", props["name"])
        outs["payload"] = schema.managed_view(tbl, props["payload"], live)
        outs["mkey"] = str(live.get(tbl.mkey, props.get("mkey")))
        outs["uuid"] = live.get("uuid")
        if tbl.ordered:
            outs["policyid"] = int(live["policyid"])
            outs["placement"] = placement
        return outs

    # -- placement of policies ----------------------------------------------------------------

    @staticmethod
    def _ref_index(rows: list[dict[str, Any]], ref: str) -> int | None:
        for index, row in enumerate(rows):
            if (ref.isdigit() and int(row.get("policyid", -1)) == int(ref)) or (not ref.isdigit() and row.get("name") == ref):
                return index
        return None

    def _observed(self, rows: list[dict[str, Any]], index: int, want: schema.Placement) -> str:
        """`want` if the policy at `index` sits there, else where it actually is."""
        if want.where == "top" and index == 0:
            return str(want)
        if want.where in ("before", "after"):
            neighbour = index + 1 if want.where == "before" else index - 1
            if 0 <= neighbour < len(rows) and self._ref_index(rows[neighbour:neighbour + 1], want.ref or "") == 0:
                return str(want)
        if index == 0:
            return "top"
        return f"after:{int(rows[index - 1]['policyid'])}"

    def _place(self, client: FortiOSClient, props: dict[str, Any], mkey: str, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """Move the policy where `placement` says (one request, only if needed)."""
        want = schema.placement(props["placement"])
        index = self._ref_index(rows, mkey)
        if index is None:
            raise ProviderError(f"firewall policy {mkey} vanished from vdom {props['vdom']} while it was being placed")
        row = rows[index]
        if self._observed(rows, index, want) == str(want):
            return row, str(want)
        if want.where == "top":
            others = [r for r in rows if str(int(r["policyid"])) != mkey]
            client.move("firewall/policy", mkey, "before", int(others[0]["policyid"]), vdom=props["vdom"])
            return row, str(want)
        ref_index = self._ref_index(rows, want.ref or "")
        if ref_index is None:
            raise ProviderError(
                f"placement {want} of firewall policy {props['name']!r}: no policy {want.ref!r} in vdom {props['vdom']}"
            )
        client.move("firewall/policy", mkey, want.where, int(rows[ref_index]["policyid"]), vdom=props["vdom"])
        return row, str(want)

    def _settle(self, client: FortiOSClient, tbl: schema.Table, props: dict[str, Any], mkey: str) -> dict[str, Any]:
        """One GET for the authoritative state (and, for a policy, its place in the order)."""
        if tbl.ordered:
            rows = client.get(tbl.path, vdom=props["vdom"])
            row, placement = self._place(client, props, mkey, rows)
            return self._outs(tbl, props, row, placement)
        found = client.get(tbl.path, mkey, vdom=props["vdom"])
        if not found:
            raise ProviderError(f"{self._describe(tbl, props)} was written but the device does not return it")
        return self._outs(tbl, props, found[0], None)

    # -- the provider interface ---------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        news = _wire_unknowns(news)
        inputs = dict(news)
        try:
            tbl = schema.table(news.get("path", ""))
        except ValueError as err:
            return CheckResult(inputs, [CheckFailure("path", str(err))])
        url = news.get("url")
        if not schema.is_unknown(url):
            try:
                Endpoint(str(url), news.get("ca_bundle") or None, bool(news.get("insecure")))
            except ValueError as err:
                failures.append(CheckFailure("url", str(err)))
        if not schema.is_unknown(news.get("vdom")):
            try:
                schema.vdom(news.get("vdom"))
            except schema.CheckError as err:
                failures.append(CheckFailure("vdom", str(err)))
        if not schema.is_unknown(news.get("name")):
            try:
                schema.name(tbl, "name", news.get("name"))
            except schema.CheckError as err:
                failures.append(CheckFailure("name", str(err)))
        payload, problems = schema.check_payload(tbl, news.get("payload"))
        failures += [CheckFailure(f"payload.{p.field}", str(p)) for p in problems]
        inputs["payload"] = payload
        if tbl.ordered:
            if not schema.is_unknown(news.get("placement")):
                try:
                    inputs["placement"] = str(schema.placement(news.get("placement", "")))
                except schema.CheckError as err:
                    failures.append(CheckFailure("placement", str(err)))
        elif news.get("placement") is not None:
            failures.append(CheckFailure("placement", f"only firewall policies have a placement, not a {tbl.label}"))
        inputs["adopt"] = bool(news.get("adopt", False))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        news = _wire_unknowns(news)
        tbl = schema.table(news["path"])
        replaces = [k for k in _IDENTITY if news.get(k) != olds.get(k)]
        if tbl.keyed_by_name and news.get("name") != olds.get("name"):
            replaces.append("name")
        changed = list(replaces)
        if not tbl.keyed_by_name and news.get("name") != olds.get("name"):
            changed.append("name")
        if schema.changed_fields(tbl, olds.get("payload") or {}, news.get("payload") or {}):
            changed.append("payload")
        if tbl.ordered and news.get("placement") != olds.get("placement"):
            changed.append("placement")
        # Create-before-delete: a renamed object exists next to the old one, references move
        # to it, then the old one (no longer in use) is deleted.
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        tbl = schema.table(props["path"])
        vdom = props["vdom"]
        with self._client(props) as client:
            adopted = False
            try:
                mkey = client.create(tbl.path, self._body(props), vdom=vdom)
            except AlreadyExists:
                if not props.get("adopt"):
                    raise AdoptionRequired(
                        f"{self._describe(tbl, props)} already exists and is not managed by this stack; "
                        "it was not changed. To adopt it (this stack then owns its managed fields and "
                        "deletes it on destroy), list its name in the config key fortigateAdopt (or set "
                        "adopt=True on the resource) and run `pulumi up` again; otherwise pick another name."
                    ) from None
                mkey = self._adopt(client, tbl, props)
                adopted = True
            try:
                outs = self._settle(client, tbl, props, mkey)
            except Exception:
                if not adopted:  # create is transactional: do not leave an object Pulumi won't know
                    try:
                        client.delete(tbl.path, mkey, vdom=vdom)
                    except FortiOSError:
                        pass
                raise
        return CreateResult(outs["mkey"], outs)

    def _adopt(self, client: FortiOSClient, tbl: schema.Table, props: dict[str, Any]) -> str:
        """Take over an existing object: find its key, then PUT the managed fields."""
        mkey = props["name"]
        if not tbl.keyed_by_name:
            rows = client.get(tbl.path, vdom=props["vdom"], params={"filter": f"name=={props['name']}"})
            if len(rows) != 1:
                raise ProviderError(f"cannot adopt {self._describe(tbl, props)}: {len(rows)} policies have that name")
            mkey = str(int(rows[0]["policyid"]))
        client.update(tbl.path, mkey, self._body(props), vdom=props["vdom"])
        return mkey

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        tbl = schema.table(props["path"])
        with self._client(props) as client:
            if tbl.ordered:
                rows = client.get(tbl.path, vdom=props["vdom"])
                index = self._ref_index(rows, str(int(float(id_))))
                if index is None:
                    return ReadResult("", {})
                want = schema.placement(props.get("placement") or "top")
                return ReadResult(id_, self._outs(tbl, props, rows[index], self._observed(rows, index, want)))
            try:
                live = client.get(tbl.path, id_, vdom=props["vdom"])
            except NotFound:
                return ReadResult("", {})
        if not live:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(tbl, props, live[0], None))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        tbl = schema.table(news["path"])
        fields_changed = schema.changed_fields(tbl, olds.get("payload") or {}, news["payload"])
        with self._client(news) as client:
            if fields_changed or news.get("name") != olds.get("name"):
                client.update(tbl.path, id_, self._body(news), vdom=news["vdom"])
            return UpdateResult(self._settle(client, tbl, news, id_))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        tbl = schema.table(props["path"])
        with self._client(props) as client:
            try:
                client.delete(tbl.path, id_, vdom=props["vdom"])
            except NotFound:
                return  # already gone is what delete wants
            except InUse as err:
                count = f"{err.references} other object(s)" if err.references is not None else "other objects"
                raise ProviderError(
                    f"cannot delete {self._describe(tbl, props, id_)}: it is still referenced by {count} "
                    "on the device (policies or groups outside this stack?); remove those references first"
                ) from None
