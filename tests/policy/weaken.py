"""Weakening a plan for the policy tests: one resource's props changed, the rest as planned."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from scripts.policy.rules import Res


def mutate(resources: list[Res], pick: Callable[[Res], bool], change: Callable[[dict[str, Any]], None]) -> list[Res]:
    """`resources` with `change` applied to a copy of the first one `pick` selects (there must be one)."""
    out, hit = [], False
    for r in resources:
        if pick(r) and not hit:
            props = copy.deepcopy(dict(r.props))
            change(props)
            r, hit = Res(r.type, r.name, props), True
        out.append(r)
    assert hit, "nothing to mutate"
    return out
