"""The project's declarations agree with the code: Pulumi.yaml keys, settings reads, README."""

from __future__ import annotations

import yaml

from components.settings import MappingSource, load
from scripts import readme
from scripts.offline import PROJECT_DIR, StackConfig

from tests.support import KEY, TODAY


class _Recording(MappingSource):
    """A source that remembers every key the settings layer asks about."""

    asked: set[str]

    def raw(self, key: str) -> str | None:
        self.asked.add(key)
        return super().raw(key)


def test_settings_read_exactly_the_keys_pulumi_yaml_declares(dev_config: StackConfig) -> None:
    declared = set(yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"])
    source = _Recording(dev_config.with_values(vmSshPrivateKey=KEY).values, dev_config.secret_keys)
    object.__setattr__(source, "asked", set())
    load(source, today=TODAY)
    assert source.asked == declared


def test_every_declared_key_has_a_type_and_a_description() -> None:
    """Typed, except an optional secret: the CLI refuses a typed secret left at its (plain) default."""
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    for key, decl in declared.items():
        if decl.get("secret") and "default" in decl:
            assert "type" not in decl and decl["default"] == "", key
        else:
            assert decl.get("type") in ("string", "integer", "boolean", "array"), key
        assert len(decl.get("description", "")) > 20, key


def test_readme_generated_sections_are_current() -> None:
    text = (PROJECT_DIR / "README.md").read_text()
    assert readme.render(text) == text, "run: make readme"


def test_the_mutant_list_applies_to_the_code_as_it_is() -> None:
    """`make mutants` would error on a rotten line; this says so in the fast suite: every mutant's text
    occurs exactly once where it says, its tests exist, and the list covers the posture's layers."""
    from scripts import mutants

    found = mutants.parse(mutants.MUTANTS.read_text())
    assert len(found) >= 30
    assert [(m.line, problem) for m in found if (problem := mutants.check(m, PROJECT_DIR))] == []
    assert [t for m in found for t in m.tests if not (PROJECT_DIR / t.split("::")[0]).exists()] == []
    layers = {m.control.split(":")[0] for m in found}
    assert {"Network edge", "Transport", "Identity", "Host", "Detection", "Guardrails"} <= layers
