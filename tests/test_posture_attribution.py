"""The posture's attribution rows, read from what the plan deploys: on for both example stacks, each
naming the resources that implement it."""

from __future__ import annotations

import pytest

from scripts.lab.example import TEST_SECRETS
from scripts.tools import posture
from scripts.tools.offline import load_stack_config, run_program


@pytest.mark.parametrize(("stack", "edge"), [("dev", "fortigate"), ("cloudflare", "cloudflare")])
def test_every_attribution_row_is_on_with_what_implements_it(stack: str, edge: str) -> None:
    rows = [r for r in posture.posture(run_program(load_stack_config(stack).with_values(**TEST_SECRETS)), edge)
            if r.control.startswith("Attribution: ")]
    assert [(r.status, r.resources) for r in rows] == [
        ("on", ("gateway-oauth2-proxy", "vm:/opt/code-server/docker/oauth2-proxy/oauth2-proxy.cfg")),
        ("on", ("vm:/opt/code-server/docker/caddy/Caddyfile",)),
        ("on", ("vm:/etc/code-server/hcs-terminal.bash", "vm-terminal-record")),
    ], rows
