"""The generic FortiOS CMDB dynamic provider, shared by every typed FortiGate resource.

Pulumi pickles this provider into the state with dill and runs it in its own process
(`python -m pulumi.dynamic`), so this module does nothing on import, and the provider object
holds only the *name* of the config key with the API token. The token itself is read in
`configure()` (the engine passes the stack config, secrets decrypted, to dynamic providers) or
from `FORTIOS_API_TOKEN` in that process's environment, is kept out of the pickle
(`__getstate__`), and never appears in inputs, outputs or error messages.

Resource inputs: `url`, `vdom`, `ca_bundle`, `insecure` (where the object lives, how to trust
the device), `path` (the CMDB table), `name`, `payload` (the managed fields, with the device's
field names), `adopt`, and for policies `placement` and `block` (`{"names": [...], "placement": …}`:
the ordered block the policy belongs to, in declared order, and where the block goes).
Outputs: the same, with `payload` replaced by the device's values of the managed fields, plus
`mkey`, `uuid` and, for policies, `policyid` (also the resource ID) and the observed `placement`.

Adopting objects that already exist: `create` never overwrites one; it fails with a message that
says how to adopt it. Policies are keyed by the ID the device assigns, so a device may accept a
second policy of the same name: `create` looks the name up in the policy table it reads after
the POST anyway, and if another policy already has it, deletes what it just created and refuses
in the same words (an adopted policy is looked up by name before anything is written). `pulumi import` cannot be used for dynamic resources (pulumi/pulumi#16175:
the engine's import path has no serialized provider), so adoption is the `adopt` input (the Edge
sets it for the names listed in `fortigateAdopt`): `create` then PUTs the managed fields onto
the existing object and owns it from then on (including deleting it on destroy). `read` works
from the program's inputs alone (the host's path for a resource with no prior state), which is
what the `import_` resource option needs; that option is untested here without the Pulumi CLI.

Order in one pass: whichever policy's create or update runs reads the whole table once and, if
the block is out of order, repairs all of it with the fewest moves (`ordering.plan_moves`), under
a per-table lock of this process; the block's other policies then find it in order (0 moves).

Request budget per operation (what the benchmark measures): create = POST + GET (+ moves if the
block is not in order; a new policy lands at the bottom, so usually one), update = PUT + GET
(+ moves), diff = none, delete = one DELETE, refresh = one GET per *table* (reads share a
snapshot, `snapshots.TableSnapshots`).
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

from components.fortigate import ordering, schema
from components.fortigate.client import (
    AlreadyExists,
    Endpoint,
    FortiOSClient,
    FortiOSError,
    InUse,
    NotFound,
)
from components.fortigate.snapshots import Key, TableSnapshots

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
        self._tables = TableSnapshots()

    def __getstate__(self) -> dict[str, Any]:
        # Only the key name is ever pickled, even if this object was configured in this process.
        return {"token_key": self.token_key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.token_key = state["token_key"]
        self._tables = TableSnapshots()  # per process: the host keeps one provider object per pickle

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
    def _key(props: dict[str, Any], tbl: schema.Table) -> Key:
        return (str(props["url"]), str(props["vdom"]), tbl.path)

    def _table_rows(self, props: dict[str, Any], tbl: schema.Table) -> list[dict[str, Any]]:
        """The whole table from the refresh's shared snapshot (one GET per table)."""
        def fetch() -> list[dict[str, Any]]:
            with self._client(props) as client:
                return client.get(tbl.path, vdom=props["vdom"])
        return self._tables.rows(self._key(props, tbl), fetch)

    def _adoption_required(self, tbl: schema.Table, props: dict[str, Any]) -> AdoptionRequired:
        return AdoptionRequired(
            f"{self._describe(tbl, props)} already exists and is not managed by this stack; "
            "it was not changed. To adopt it (this stack then owns its managed fields and "
            "deletes it on destroy), list its name in the config key fortigateAdopt (or set "
            "adopt=True on the resource) and run `pulumi up` again; otherwise pick another name."
        )

    @staticmethod
    def _describe(tbl: schema.Table, props: dict[str, Any], mkey: str | None = None) -> str:
        ident = f"{props.get('name')!r}" + (f" (policyid {mkey})" if mkey and not tbl.keyed_by_name else "")
        return f"{tbl.label} {ident} in vdom {props.get('vdom')} of {props.get('url')}"

    @staticmethod
    def _body(props: dict[str, Any]) -> dict[str, Any]:
        # gRPC delivers every number as a float; FortiOS integer fields want integers (1, not 1.0).
        return {**schema.plain(props["payload"]), "name": props["name"]}

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

    @staticmethod
    def _block(props: dict[str, Any]) -> tuple[list[str], schema.Placement]:
        """The block this policy belongs to (declared order) and where it goes; alone, itself."""
        block = props.get("block")
        if block:
            return list(block["names"]), schema.placement(block["placement"])
        return [props["name"]], schema.placement(props["placement"])

    def _place(self, client: FortiOSClient, props: dict[str, Any], mkey: str, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """Put the whole block in order with the fewest moves; this policy's row and placement."""
        names, anchor = self._block(props)
        table = [ordering.Row(int(r["policyid"]), str(r.get("name", ""))) for r in rows]
        try:
            moves, target = ordering.plan_moves(table, names, anchor)
        except ordering.OrderError as err:
            raise ProviderError(f"placement {anchor} of the block of firewall policy {props['name']!r} "
                                f"in vdom {props['vdom']}: {err}") from None
        for move in moves:
            client.move("firewall/policy", move.policyid, move.where, move.ref, vdom=props["vdom"])
        by_id = {int(r["policyid"]): r for r in rows}
        final = [by_id[t.policyid] for t in target]
        index = self._ref_index(final, mkey)
        if index is None:
            raise ProviderError(f"firewall policy {mkey} vanished from vdom {props['vdom']} while it was being placed")
        want = schema.placement(props["placement"])
        return final[index], self._observed(final, index, want)

    def _settle(self, client: FortiOSClient, tbl: schema.Table, props: dict[str, Any], mkey: str,
                refuse_duplicate: bool = False) -> dict[str, Any]:
        """One fresh GET for the authoritative state (and, for a policy, the block's order)."""
        key = self._key(props, tbl)
        if not tbl.ordered:
            found = client.get(tbl.path, mkey, vdom=props["vdom"])
            if not found:
                raise ProviderError(f"{self._describe(tbl, props)} was written but the device does not return it")
            return self._outs(tbl, props, found[0], None)
        with self._tables.exclusive(key):
            try:
                rows = client.get(tbl.path, vdom=props["vdom"])
                if refuse_duplicate and any(
                    r.get("name") == props["name"] and str(int(r["policyid"])) != mkey for r in rows
                ):
                    raise self._adoption_required(tbl, props)
                row, placement = self._place(client, props, mkey, rows)
            finally:
                self._tables.invalidate(key)
        return self._outs(tbl, props, row, placement)

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
            if news.get("block") is not None and not schema.is_unknown(news.get("block")):
                try:
                    inputs["block"] = self._check_block(tbl, news)
                except schema.CheckError as err:
                    failures.append(CheckFailure("block", str(err)))
        else:
            for key in ("placement", "block"):
                if news.get(key) is not None:
                    failures.append(CheckFailure(key, f"only firewall policies have a {key}, not a {tbl.label}"))
        inputs["adopt"] = bool(news.get("adopt", False))
        return CheckResult(inputs, failures)

    @staticmethod
    def _check_block(tbl: schema.Table, news: dict[str, Any]) -> dict[str, Any]:
        """`{"names": [...], "placement": …}`: unique policy names including this one, whose
        first carries the block's placement and each later one `after:` its predecessor."""
        block = news["block"]
        names = block.get("names") if isinstance(block, dict) else None
        if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
            raise schema.CheckError("block", f"block: expected {{'names': [unique policy names], 'placement': …}}, got {block!r}")
        for item in names:
            schema.name(tbl, "block", item)
        anchor = schema.placement(block.get("placement", ""))
        own = news.get("name")
        if own not in names:
            raise schema.CheckError("block", f"block: policy {own!r} is not among its names {names}")
        index = names.index(own)
        expected = str(anchor) if index == 0 else f"after:{names[index - 1]}"
        placement = news.get("placement")
        if not schema.is_unknown(placement) and str(schema.placement(placement or "")) != expected:
            raise schema.CheckError("block", f"block: policy {own!r} at position {index + 1} must have placement {expected}, got {placement!r}")
        return {"names": list(names), "placement": str(anchor)}

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
            mkey: str | None = None
            if tbl.ordered and props.get("adopt"):
                mkey = self._adopt_policy(client, tbl, props)
                adopted = mkey is not None
            if mkey is None:
                try:
                    mkey = client.create(tbl.path, self._body(props), vdom=vdom)
                except AlreadyExists:
                    if not props.get("adopt"):
                        raise self._adoption_required(tbl, props) from None
                    mkey = self._adopt(client, tbl, props)
                    adopted = True
            self._tables.invalidate(self._key(props, tbl))
            try:
                outs = self._settle(client, tbl, props, mkey, refuse_duplicate=not adopted)
            except Exception:
                if not adopted:  # create is transactional: do not leave an object Pulumi won't know
                    try:
                        client.delete(tbl.path, mkey, vdom=vdom)
                    except FortiOSError:
                        pass
                raise
        return CreateResult(outs["mkey"], outs)

    def _adopt_policy(self, client: FortiOSClient, tbl: schema.Table, props: dict[str, Any]) -> str | None:
        """An adopted policy is found by name before anything is written (PUT onto it), else None."""
        rows = [r for r in client.get(tbl.path, vdom=props["vdom"]) if r.get("name") == props["name"]]
        if len(rows) > 1:
            raise ProviderError(f"cannot adopt {self._describe(tbl, props)}: {len(rows)} policies have that name")
        if not rows:
            return None
        mkey = str(int(rows[0]["policyid"]))
        client.update(tbl.path, mkey, self._body(props), vdom=props["vdom"])
        return mkey

    def _adopt(self, client: FortiOSClient, tbl: schema.Table, props: dict[str, Any]) -> str:
        """Take over an existing object the device refused to duplicate: find its key, PUT the fields."""
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
        rows = self._table_rows(props, tbl)
        if tbl.ordered:
            index = self._ref_index(rows, str(int(float(id_))))
            if index is None:
                return ReadResult("", {})
            want = schema.placement(props.get("placement") or "top")
            return ReadResult(id_, self._outs(tbl, props, rows[index], self._observed(rows, index, want)))
        live = next((r for r in rows if str(r.get(tbl.mkey)) == id_), None)
        if live is None:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(tbl, props, live, None))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        tbl = schema.table(news["path"])
        fields_changed = schema.changed_fields(tbl, olds.get("payload") or {}, news["payload"])
        with self._client(news) as client:
            if fields_changed or news.get("name") != olds.get("name"):
                client.update(tbl.path, id_, self._body(news), vdom=news["vdom"])
                self._tables.invalidate(self._key(news, tbl))
            return UpdateResult(self._settle(client, tbl, news, id_))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        tbl = schema.table(props["path"])
        with self._client(props) as client:
            try:
                client.delete(tbl.path, id_, vdom=props["vdom"])
                self._tables.invalidate(self._key(props, tbl))
            except NotFound:
                return  # already gone is what delete wants
            except InUse as err:
                count = f"{err.references} other object(s)" if err.references is not None else "other objects"
                raise ProviderError(
                    f"cannot delete {self._describe(tbl, props, id_)}: it is still referenced by {count} "
                    "on the device (policies or groups outside this stack?); remove those references first"
                ) from None
