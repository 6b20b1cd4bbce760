"""The fewest `move` calls that put the stack's policy block in its declared order, in one pass.

Pure (no pulumi, no httpx). FortiOS evaluates policies top-down and can only move one policy at
a time (`PUT …/policy/{id}?action=move&before|after={id}`), so order drift is repaired here as a
whole: from one read of the table, the *target* order is fixed — every other policy keeps its
relative order, and the block sits contiguously, in declared order, where its placement says —
and the policies already in target order relative to each other (a longest increasing
subsequence of target positions, O(n log n)) stay put; every other policy is moved once. No
sequence of single moves can do with fewer: a policy never moved keeps its order relative to
every other unmoved one, so the unmoved ones must already be in target order.

Which policies move is a choice only in count: the target is the same table either way. On a
tie the block's own policies move rather than others' (which then keep their positions); a
foreign policy is moved only when that saves moves (one moved out of the block's middle instead
of half the block around it), and never changes its order relative to other foreign policies.
Worst case for a block of n policies: n moves (each block policy once).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.fortigate.schema import Placement


@dataclass(frozen=True)
class Row:
    """A policy as the table lists it: its ID and its name."""

    policyid: int
    name: str


@dataclass(frozen=True)
class Move:
    """Move policy `policyid` directly `where` ("before"/"after") policy `ref`."""

    policyid: int
    where: str
    ref: int


class OrderError(ValueError):
    """The block's placement cannot be resolved against the table."""


def _resolve(rows: list[Row], ref: str) -> int:
    """The index of the policy `ref` names (an ID, or a name)."""
    for index, row in enumerate(rows):
        if (ref.isdigit() and row.policyid == int(ref)) or (not ref.isdigit() and row.name == ref):
            return index
    raise OrderError(f"no policy {ref!r} in the table to place the block relative to")


def target_order(rows: list[Row], block: list[str], anchor: Placement) -> list[Row]:
    """The table as it must be: others in their current order, the block's present members
    contiguous and in declared order at the anchor."""
    position = {name: i for i, name in enumerate(block)}
    members = sorted((r for r in rows if r.name in position), key=lambda r: position[r.name])
    if len({r.name for r in members}) != len(members):
        seen = [r.name for r in members]
        twice = sorted({n for n in seen if seen.count(n) > 1})
        raise OrderError(f"policy name(s) {', '.join(twice)} appear more than once in the table")
    others = [r for r in rows if r.name not in position]
    if anchor.where == "top":
        return members + others
    ref_index = _resolve(others, anchor.ref or "")
    cut = ref_index + 1 if anchor.where == "after" else ref_index
    return others[:cut] + members + others[cut:]


def _kept(rows: list[Row], target: list[Row], block: set[str]) -> set[int]:
    """Policy IDs that stay put: the heaviest chain of rows already in target order.

    Weight: every row counts `len(rows) + 1`, a foreign row one more, so the most rows stay
    and, among equally many, the most foreign ones (the block moves on ties).
    """
    where = {r.policyid: i for i, r in enumerate(target)}
    size = len(target)
    unit = len(rows) + 1
    tree: list[tuple[int, int]] = [(0, -1)] * (size + 1)  # Fenwick tree of (best weight, row index)

    def best_below(t: int) -> tuple[int, int]:
        found, i = (0, -1), t
        while i > 0:
            found = max(found, tree[i])
            i -= i & -i
        return found

    def offer(t: int, value: tuple[int, int]) -> None:
        i = t + 1
        while i <= size:
            tree[i] = max(tree[i], value)
            i += i & -i

    chain_before: list[int] = [-1] * len(rows)
    weight: list[int] = [0] * len(rows)
    for index, row in enumerate(rows):
        t = where[row.policyid]
        prior, prior_index = best_below(t)
        weight[index] = prior + unit + (0 if row.name in block else 1)
        chain_before[index] = prior_index
        offer(t, (weight[index], index))
    _, last = best_below(size)
    kept: set[int] = set()
    while last != -1:
        kept.add(rows[last].policyid)
        last = chain_before[last]
    return kept


def plan_moves(rows: list[Row], block: list[str], anchor: Placement) -> tuple[list[Move], list[Row]]:
    """The moves that turn `rows` (the table in device order) into the target, and the target.

    Each moved policy goes directly after its target predecessor (or, for the first row, before
    the first row that stays), which is already where it belongs when its turn comes.
    """
    target = target_order(rows, block, anchor)
    kept = _kept(rows, target, set(block))
    moves: list[Move] = []
    first_kept = next((r for r in target if r.policyid in kept), None)
    for index, row in enumerate(target):
        if row.policyid in kept:
            continue
        if index > 0:
            moves.append(Move(row.policyid, "after", target[index - 1].policyid))
        elif first_kept is not None:
            moves.append(Move(row.policyid, "before", first_kept.policyid))
    return moves, target
