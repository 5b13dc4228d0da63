"""Value checks declared on schema fields, run over a typed config before any run exists.

A schema field declares its type (OmegaConf checks it while Hydra composes) and, through
these helpers, the values it accepts:

    dim: int = at_least(1)
    lr: float = above(0.0)
    val_frac: float = fraction()
    schedule: str = one_of("constant", "cosine")
    patience: Optional[int] = at_least(1, optional=True)

None of them gives the field a default: every default lives in the YAML files under
`conf/`. `validate(config)` walks a typed config (frozen dataclasses), checks every
field and every cross-field rule a schema states in an `invalid()` method, and raises
one `ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

CHECK = "mktlab.check"  # the field-metadata key holding a field's `Check`


class ConfigError(ValueError):
    """A config value outside what its key accepts; the message names the key and the range."""

    def __init__(self, key: str, value: Any, expected: str, *, message: str | None = None) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(message or f"{key}={_show(value)}: expected {expected}")


@dataclass(frozen=True)
class Check:
    """What a field accepts: `test(value)` and the words for it (`describe`)."""

    describe: str
    test: Callable[[Any], bool]
    optional: bool = False  # None is accepted too

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        try:
            return bool(self.test(value))
        except TypeError:
            return False

    @property
    def expected(self) -> str:
        return f"{self.describe}, or null" if self.optional else self.describe


def checked(check: Check) -> Any:
    """A schema field without a default that must pass `check`."""
    return dataclasses.field(default=MISSING, metadata={CHECK: check})


def nested(schema: type) -> Any:
    """A field holding another schema's node (its values come from the YAML like every other)."""
    return dataclasses.field(default_factory=schema)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def at_least(low: float, *, optional: bool = False) -> Any:
    return checked(Check(f"a number >= {low:g}", lambda v: _number(v) and v >= low, optional))


def above(low: float, *, optional: bool = False) -> Any:
    return checked(Check(f"a number > {low:g}", lambda v: _number(v) and v > low, optional))


def between(low: float, high: float, *, optional: bool = False) -> Any:
    return checked(Check(f"a number from {low:g} to {high:g}", lambda v: _number(v) and low <= v <= high, optional))


def fraction(*, optional: bool = False) -> Any:
    """A share in [0, 1)."""
    return checked(Check("a fraction in [0, 1)", lambda v: _number(v) and 0 <= v < 1, optional))


def share() -> Any:
    """A share in (0, 1]."""
    return checked(Check("a share in (0, 1]", lambda v: _number(v) and 0 < v <= 1))


def one_of(*choices: str) -> Any:
    return checked(Check(f"one of {', '.join(choices)}", lambda v: v in choices))


def each_at_least(low: float, *, min_items: int = 0) -> Any:
    """A list of numbers, each >= `low` (and at least `min_items` of them)."""
    words = f"a list of numbers >= {low:g}" + (f" with at least {min_items} item(s)" if min_items else "")
    return checked(Check(words, lambda v: len(v) >= min_items and all(_number(x) and x >= low for x in v)))


def each_above(low: float, *, min_items: int = 0) -> Any:
    words = f"a list of numbers > {low:g}" + (f" with at least {min_items} item(s)" if min_items else "")
    return checked(Check(words, lambda v: len(v) >= min_items and all(_number(x) and x > low for x in v)))


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def _problems(config: Any, prefix: str) -> Iterator[ConfigError]:
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        key = f"{prefix}{item.name}"
        check = item.metadata.get(CHECK)
        if check is not None and not check.accepts(value):
            integer = item.type in ("int", "Optional[int]", int)
            yield ConfigError(key, value, check.expected.replace("a number", "an integer") if integer else check.expected)
        if dataclasses.is_dataclass(value):
            yield from _problems(value, f"{key}.")
    invalid = getattr(config, "invalid", None)  # cross-field rules: [(relative key, value, expected)]
    if invalid is not None:
        for name, value, expected in invalid():
            yield ConfigError(f"{prefix}{name}", value, expected)


def problems(config: Any, prefix: str = "") -> list[ConfigError]:
    """Every value of a typed config that its schema does not accept (an empty list when all are)."""
    return list(_problems(config, prefix))


def validate(config: Any, prefix: str = "") -> Any:
    """Raise the first `ConfigError` of `problems(config)`; returns `config` when all values are accepted."""
    found = problems(config, prefix)
    if found:
        raise found[0]
    return config


Rule = tuple[str, Any, str]  # (key relative to the schema, its value, what is expected)


def require(condition: bool, key: str, value: Any, expected: str) -> list[Rule]:
    """`[]` when `condition` holds, else the one rule it breaks (for schemas' `invalid()`)."""
    return [] if condition else [(key, value, expected)]


def rules(*groups: Sequence[Rule]) -> list[Rule]:
    return [rule for group in groups for rule in group]
