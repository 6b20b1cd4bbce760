"""The block repair against an exhaustive oracle: a breadth-first search over every sequence of
single moves finds the true minimum for small tables, independently of the planner's method."""

from __future__ import annotations

import random
from collections import deque

import pytest

from components.fortigate.ordering import OrderError, Row, plan_moves
from components.fortigate.schema import Placement


def _apply(rows: list[Row], moves) -> list[Row]:
    rows = list(rows)
    for move in moves:
        obj = next(r for r in rows if r.policyid == move.policyid)
        ref = next(r for r in rows if r.policyid == move.ref)
        assert obj is not ref
        rows.remove(obj)
        at = rows.index(ref)
        rows.insert(at if move.where == "before" else at + 1, obj)
    return rows


def _fewest_moves(start: list[Row], goal: list[Row]) -> int:
    """Breadth-first over single moves (take one row out, put it anywhere else)."""
    seen, queue = {tuple(start)}, deque([(tuple(start), 0)])
    while queue:
        state, depth = queue.popleft()
        if list(state) == goal:
            return depth
        for i in range(len(state)):
            rest = state[:i] + state[i + 1:]
            for j in range(len(rest) + 1):
                nxt = rest[:j] + (state[i],) + rest[j:]
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append((nxt, depth + 1))
    raise AssertionError("unreachable goal")


def _goal(rows: list[Row], block: list[str], anchor: Placement) -> list[Row]:
    """The order the block's placement asks for, written from the rule itself."""
    ours = [next(r for r in rows if r.name == n) for n in block if any(r.name == n for r in rows)]
    others = [r for r in rows if r.name not in block]
    if anchor.where == "top":
        return ours + others
    at = next(i for i, r in enumerate(others) if str(r.policyid) == anchor.ref or r.name == anchor.ref)
    at += anchor.where == "after"
    return others[:at] + ours + others[at:]


@pytest.mark.parametrize("seed", range(40))
def test_the_repair_reaches_the_declared_order_with_the_fewest_moves(seed: int) -> None:
    rng = random.Random(seed)
    n, foreign = rng.randint(1, 4), rng.randint(0, 3)
    rows = [Row(i + 1, f"hcs-{i}") for i in range(n)] + [Row(50 + j, f"lan-{j}") for j in range(foreign)]
    rng.shuffle(rows)
    block = [f"hcs-{i}" for i in range(n)]
    anchors = [Placement("top")]
    if foreign:
        anchors += [Placement("after", str(50 + rng.randrange(foreign))), Placement("before", f"lan-{rng.randrange(foreign)}")]
    for anchor in anchors:
        moves, _ = plan_moves(rows, block, anchor)
        goal = _goal(rows, block, anchor)
        assert _apply(rows, moves) == goal
        assert len(moves) == _fewest_moves(rows, goal), (rows, anchor)


def test_ties_move_the_blocks_own_policy_and_missing_members_are_skipped() -> None:
    rows = [Row(9, "lan-out"), Row(1, "hcs-a")]
    assert [m.policyid for m in plan_moves(rows, ["hcs-a", "hcs-b"], Placement("top"))[0]] == [1]


def test_an_unresolvable_anchor_or_a_doubled_name_is_an_error() -> None:
    with pytest.raises(OrderError, match="no policy '77'"):
        plan_moves([Row(1, "hcs-a")], ["hcs-a"], Placement("after", "77"))
    with pytest.raises(OrderError, match="hcs-a appear more than once"):
        plan_moves([Row(1, "hcs-a"), Row(2, "hcs-a")], ["hcs-a"], Placement("top"))
