"""No secret reaches the engine unmarked: every input that carries a secret value is a secret.

An unmarked input is stored in plaintext in the state and shown in previews and diffs, so this
walks every registration of the whole program (both edges) with known test secrets and looks for
them, and for the secrets the providers generate, in every input not marked secret.
"""

from __future__ import annotations

import json

import pytest

from scripts.offline import PlanResult, StackConfig, run_program
from tests.support import TEST_SECRETS

#: What PlanMocks returns for generated secrets (Entra client secret, tunnel token).
GENERATED = "mock-secret-"


#: Read by the FortiOS provider from the stack config itself: in no resource input at all.
PROVIDER_ONLY = {"fortigateApiToken"}


def _needles(keys: set[str] | None = None) -> list[str]:
    """The secrets as they appear inside JSON text (escaped), plus the generated-secret marker."""
    values = [v for k, v in TEST_SECRETS.items() if keys is None or k in keys]
    return [json.dumps(v)[1:-1] for v in values] + [GENERATED]


@pytest.fixture(scope="module", params=["fortigate", "cloudflare"])
def plan(request: pytest.FixtureRequest, dev_config: StackConfig) -> PlanResult:
    return run_program(dev_config.with_values(edge=request.param, **TEST_SECRETS))


def test_every_input_holding_a_secret_is_marked_secret(plan: PlanResult) -> None:
    leaks = []
    for r in plan.resources:
        for key, value in r.values.items():
            if key in r.secret_inputs or key == "__provider":
                continue
            text = json.dumps(value)
            leaks += [f"{r.type} {r.name}: input {key!r} holds {n[:12]}…" for n in _needles() if n in text]
    assert not leaks, "\n".join(leaks)


def test_the_secrets_do_reach_the_resources_that_need_them(plan: PlanResult) -> None:
    """The check above is only meaningful if the secrets are really there, marked."""
    marked = json.dumps([{k: r.values[k] for k in r.secret_inputs} for r in plan.resources])
    for needle in _needles(set(TEST_SECRETS) - PROVIDER_ONLY):
        assert needle in marked, f"{needle[:12]}… is not used by any resource"
    everything = json.dumps([r.values for r in plan.resources])
    assert TEST_SECRETS["fortigateApiToken"] not in everything


def test_no_secret_is_exported(plan: PlanResult) -> None:
    exported = json.dumps(plan.outputs)
    assert not [n for n in _needles() if n in exported]
