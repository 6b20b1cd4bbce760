"""Typed, problem-collecting access to stack config.

Every layer's settings parser reads its keys through a `Reader`, which records each problem
instead of raising at the first one, so a user sees every bad key of a stack in one run. A
problem names the key and what is expected; a secret's value is never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pulumi

T = TypeVar("T")

#: A parser takes the raw (already type-checked) value and returns the typed value, or raises
#: ValueError whose message says what is expected (it must not repeat a secret value).
Parser = Callable[[Any], T]


@dataclass(frozen=True)
class Problem:
    """One bad config key: which key, and what a good value looks like."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"config error: {self.key}: {self.message}"


class ConfigError(pulumi.RunError):
    """Raised once, before any resource exists, with every problem of the stack config.

    A `RunError`, so the Pulumi CLI prints the problem lines without a Python traceback.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigSource(Protocol):
    """Where raw values come from: the Pulumi runtime, or a plain mapping in tests."""

    def raw(self, key: str) -> str | None:
        """The value as the engine passes it (strings; arrays as JSON), or None if absent."""

    def is_secret(self, key: str) -> bool:
        """Whether the stack stores this key encrypted (`pulumi config set --secret`)."""

    def secret(self, key: str) -> Any:
        """The value as a Pulumi secret Output (only called for keys that are set)."""

    def keys(self) -> set[str]:
        """Every key the stack sets in this project's namespace (for typo detection)."""


_MISSING = object()


def _unset(raw: str | None) -> bool:
    """Absent, or the empty string: the default Pulumi.yaml gives an optional key that means "not set"
    (the CLI requires every declared key without a default, so "unset" has to be a value)."""
    return raw is None or raw == ""


@dataclass
class Reader:
    """Reads keys of one project namespace, collecting problems for a single `ConfigError`."""

    source: ConfigSource
    problems: list[Problem] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def problem(self, key: str, message: str) -> None:
        """Record a problem found by cross-key validation in a layer parser."""
        self.problems.append(Problem(key, message))

    def is_set(self, key: str) -> bool:
        """Whether the stack sets `key` to a non-empty value (marks the key as known)."""
        self._seen.add(key)
        return not _unset(self.source.raw(key))

    def _typed(self, key: str, kind: str, default: Any) -> Any:
        self._seen.add(key)
        raw = self.source.raw(key)
        if _unset(raw):
            if default is _MISSING:
                self.problem(key, f"is required ({kind})")
            return default
        if self.source.is_secret(key):
            self.problem(key, "is stored as a secret but is not a secret setting; set it in plain text")
            return default
        if kind == "a string":
            return raw
        if kind == "an integer":
            try:
                return int(str(raw).strip())
            except ValueError:
                self.problem(key, f"expected an integer, got {raw!r}")
                return _MISSING
        if kind == "a boolean":
            text = str(raw).strip().lower()
            if text in ("true", "false"):
                return text == "true"
            self.problem(key, f"expected true or false, got {raw!r}")
            return _MISSING
        # a list: the engine passes YAML arrays (and the objects in them) as JSON
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            value = None
        item = dict if kind == "a list of objects" else str
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            self.problem(key, f"expected {kind}, got {raw!r}")
            return _MISSING
        return value

    def _parsed(self, key: str, value: Any, parse: Parser[T] | None) -> Any:
        if value is _MISSING or value is None or parse is None:
            return None if value is _MISSING else value
        try:
            return parse(value)
        except ValueError as err:
            self.problem(key, f"{err}, got {value!r}")
            return None

    def string(self, key: str, parse: Parser[T] | None = None, *, default: Any = _MISSING) -> Any:
        """A plain string key, optionally parsed/validated; `default` makes it optional."""
        return self._parsed(key, self._typed(key, "a string", default), parse)

    def integer(
        self, key: str, *, lo: int, hi: int, default: Any = _MISSING
    ) -> Any:
        """An integer key within [lo, hi]."""
        value = self._typed(key, "an integer", default)
        if isinstance(value, int) and not lo <= value <= hi:
            self.problem(key, f"expected an integer from {lo} to {hi}, got {value}")
            return None
        return None if value is _MISSING else value

    def boolean(self, key: str, *, default: Any = _MISSING) -> Any:
        """A boolean key."""
        value = self._typed(key, "a boolean", default)
        return None if value is _MISSING else value

    def strings(
        self,
        key: str,
        parse: Parser[T] | None = None,
        *,
        default: Any = _MISSING,
        non_empty: bool = False,
    ) -> tuple[Any, ...] | None:
        """A list-of-strings key; each item parsed, every bad item reported with its index."""
        value = self._typed(key, "a list of strings", default)
        if value is _MISSING or value is None:
            return None
        if non_empty and not value:
            self.problem(key, "expected a non-empty list")
            return None
        return self.items(key, value, parse)

    def items(self, key: str, value: Sequence[Any], parse: Parser[T] | None = None) -> tuple[Any, ...] | None:
        """Each item of the list `value` (found at `key`, a stack key or a field such as
        `workspaces[0].users`) parsed, a bad one reported as `key[index]`; duplicates refused."""
        items: list[Any] = []
        ok = True
        for index, item in enumerate(value):
            if parse is None:
                items.append(item)
                continue
            try:
                items.append(parse(item))
            except ValueError as err:
                self.problem(f"{key}[{index}]", f"{err}, got {item!r}")
                ok = False
        if len(set(map(str, items))) != len(items):
            self.problem(key, "expected no duplicate entries")
            ok = False
        return tuple(items) if ok else None

    def objects(self, key: str) -> tuple[dict[str, Any], ...] | None:
        """A list-of-objects key (default: empty); the caller checks each object's fields, naming
        them `key[index].field`."""
        value = self._typed(key, "a list of objects", [])
        return None if value is _MISSING else tuple(value)

    def secret(
        self, key: str, check: Callable[[str], None] | None = None, *, required: bool = True
    ) -> Any:
        """A secret key: must be stored encrypted; checked without ever echoing its value."""
        self._seen.add(key)
        raw = self.source.raw(key)
        if _unset(raw):
            if required:
                self.problem(key, f"is required (a secret: pulumi config set --secret {key})")
            return None
        if not self.source.is_secret(key):
            self.problem(
                key, f"must be stored encrypted: pulumi config set --secret {key} (value not shown)"
            )
            return None
        if check is not None:
            try:
                check(raw)
            except ValueError as err:
                self.problem(key, f"{err} (value not shown)")
                return None
        return self.source.secret(key)

    def finish(self) -> None:
        """Report unknown keys (typos) and raise `ConfigError` if anything is wrong."""
        for key in sorted(self.source.keys() - self._seen):
            self.problem(key, "is not a setting of this project (typo?); see Pulumi.yaml")
        if self.problems:
            raise ConfigError(self.problems)
