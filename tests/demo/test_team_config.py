"""The team demo's stack, planned offline: what `demo.up(..., team=demo.TEAM)` converges (fast)."""

from __future__ import annotations

from scripts.lab.demo import demo
from scripts.lab.idp import setup
from scripts.tools.offline import StackConfig, run_program


def test_the_demo_team_is_a_valid_team_stack_granting_each_person_their_workspace(dev_config: StackConfig) -> None:
    plan = run_program(dev_config.with_values(**demo.TEAM.config_values()))
    assert plan.outputs["workspaces"] == {"team-a": "https://team-a.example.com", "team-b": "https://team-b.example.com"}
    assert plan.outputs["entraGroupObjectId"] is None
    registration = setup.app_registration(plan.resources, plan.outputs["entraClientId"])
    roles = dict(registration.app_roles)
    oids = dict(demo.TEAM.oids)
    assert sorted((roles[role], who) for role, who in registration.role_assignments) == [
        ("ws.team-a", oids["alice"]), ("ws.team-b", oids["bob"])]
    assert demo.TEAM.accounts() == ["ws-team-a", "ws-team-b"]
