"""The rules of `rules.py` as CrossGuard policies (kept apart from `__main__.py`, which serves them)."""

from __future__ import annotations

from collections.abc import Sequence

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

try:  # run by the Pulumi CLI from this folder
    from rules import RULES, Res, Rule  # type: ignore[import-not-found]
except ImportError:  # imported by the tests from the project root
    from scripts.policy.rules import RULES, Res, Rule


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule.check([Res(args.resource_type, args.name, args.props)]):
            report(message)

    return ResourceValidationPolicy(rule.name, rule.description, validate, EnforcementLevel.MANDATORY)


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Res(r.resource_type, r.name, r.props) for r in args.resources]
        for message in rule.check(resources):
            report(message)

    return StackValidationPolicy(rule.name, rule.description, validate, EnforcementLevel.MANDATORY)


def policies(rules: Sequence[Rule] = RULES) -> list[Policy]:
    """One mandatory policy per rule, resource- or stack-scoped as the rule says."""
    return [_stack_policy(rule) if rule.stack else _resource_policy(rule) for rule in rules]
