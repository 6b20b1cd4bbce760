"""Config sources: the live Pulumi runtime, or a plain mapping (unit tests of the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config


@dataclass(frozen=True)
class PulumiConfigSource:
    """Reads this project's namespace of the running stack's config.

    Values are read raw so secrets can be checked for shape before anything is registered; they
    leave here only as secret Outputs (`require_secret`).
    """

    project: str

    def _full(self, key: str) -> str:
        return f"{self.project}:{key}"

    def raw(self, key: str) -> str | None:
        value = pulumi.runtime.get_config(self._full(key))
        return None if value is None else str(value)

    def is_secret(self, key: str) -> bool:
        return pulumi.runtime.is_config_secret(self._full(key)) or self._full(key) in set(
            pulumi.runtime.get_config_secret_keys_env()
        )

    def secret(self, key: str) -> Any:
        return pulumi.Config(self.project).require_secret(key)

    def keys(self) -> set[str]:
        prefix = f"{self.project}:"
        every = set(runtime_config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
        return {k[len(prefix):] for k in every if k.startswith(prefix)}


@dataclass(frozen=True)
class MappingSource:
    """A stack config as a plain dict (keys without the project prefix), for pure unit tests."""

    values: dict[str, str]
    secret_keys: frozenset[str] = field(default_factory=frozenset)

    def raw(self, key: str) -> str | None:
        return self.values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in self.secret_keys

    def secret(self, key: str) -> Any:
        return pulumi.Output.secret(self.values[key])

    def keys(self) -> set[str]:
        return set(self.values)
