"""CrossGuard policy pack: `pulumi preview --policy-pack scripts/policy` (every policy mandatory)."""

from pulumi_policy import EnforcementLevel, PolicyPack

from pack import policies

PolicyPack(name="hardened-code-server", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
