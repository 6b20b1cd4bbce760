"""Order drift of the dev stack's 14-policy block is repaired by one `pulumi up`, with the fewest moves.

The engine's part is played as in a real run: deploy, an admin reorders the table, then one
`pulumi up --refresh` (a new provider process: parallel reads, then diff and update of what
changed, in dependency order). The expected move counts are reasoned from the table, not taken
from the code: a policy that is never moved keeps its order relative to every other unmoved one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.lab.fortios.emulator import FortiOSEmulator, TokenScope
from scripts.lab.fortios.host import TOKEN_KEY, ProviderHost
from scripts.lab.fortios.stack import (
    DEV_POLICY_ORDER,
    POLICY_TYPE,
    SECRETS,
    Deployed,
    Registered,
    deploy_graph,
    dev_settings,
    refresh,
    register_edge,
    up,
)

pytestmark = pytest.mark.slow
TOKEN = SECRETS["fortigateApiToken"]


@pytest.fixture(scope="module")
def registered() -> list[Registered]:
    return register_edge(dev_settings())[0]


def _host() -> ProviderHost:
    host = ProviderHost()
    host.configure({TOKEN_KEY: TOKEN}, secret_keys=(TOKEN_KEY,))
    return host


def _names(emulator: FortiOSEmulator) -> list[str]:
    return [p["name"] for p in emulator.table("root", "firewall/policy")]


def _deployed(registered: list[Registered], emulator: FortiOSEmulator, ca: str) -> list[Deployed]:
    emulator.tokens[TOKEN] = TokenScope()
    emulator.seed_policy("root", "lan-out")
    with _host() as host:
        deployed = deploy_graph(host, registered, emulator.url, ca)
    assert _names(emulator) == [*DEV_POLICY_ORDER, "lan-out"]
    return deployed


def _one_up(deployed: list[Deployed], emulator: FortiOSEmulator) -> tuple[list[Deployed], list[Any]]:
    emulator.reset_counts()
    with _host() as host:
        after = up(host, refresh(host, deployed))
    moves = [entry for entry in emulator.log if entry[0] == "PUT" and entry[2].get("action") == "move"]
    return after, moves


def _settled(after: list[Deployed]) -> None:
    """A second refresh in a new process shows nothing left to change."""
    with _host() as host:
        again = refresh(host, after)
        assert [d.name for d in again if host.diff(d.id, d.state, d.inputs).some] == []


def test_worst_case_drift_is_fixed_in_one_up(registered: list[Registered], emulator: FortiOSEmulator,
                                             certificate: tuple[Path, Path]) -> None:
    deployed = _deployed(registered, emulator, str(certificate[0]))
    ids = {d.name: int(d.id) for d in deployed if d.type == POLICY_TYPE}
    # An admin reverses the block and puts their own policy on top, above the block's placement "top".
    for previous, name in zip(DEV_POLICY_ORDER, DEV_POLICY_ORDER[1:]):
        emulator.move("root", ids[name], "before", ids[previous])
    intruder = emulator.seed_policy("root", "admin-quick-fix")
    emulator.move("root", intruder, "before", ids[DEV_POLICY_ORDER[-1]])
    assert _names(emulator) == ["admin-quick-fix", *reversed(DEV_POLICY_ORDER), "lan-out"]

    after, moves = _one_up(deployed, emulator)
    assert _names(emulator) == [*DEV_POLICY_ORDER, "admin-quick-fix", "lan-out"]
    # Reversed, no two block policies are in order, and each is below the intruder that must end
    # up below all of them: every one of the 14 has to move, and none twice.
    assert len(moves) == 14
    _settled(after)


def test_a_policy_slipped_into_the_middle_costs_one_move(registered: list[Registered], emulator: FortiOSEmulator,
                                                         certificate: tuple[Path, Path]) -> None:
    deployed = _deployed(registered, emulator, str(certificate[0]))
    ids = {d.name: int(d.id) for d in deployed if d.type == POLICY_TYPE}
    intruder = emulator.seed_policy("root", "admin-quick-fix")
    emulator.move("root", intruder, "after", ids["hcs-out-backup"])

    after, moves = _one_up(deployed, emulator)
    assert _names(emulator) == [*DEV_POLICY_ORDER, "admin-quick-fix", "lan-out"]
    # The intruder moves out below the block (others keep their relative order: it stays above lan-out).
    assert [(e[1].rsplit("/", 1)[1], e[2]) for e in moves] == [(str(intruder), {"vdom": "root", "action": "move", "after": str(ids["hcs-out-deny"])})]
    _settled(after)
