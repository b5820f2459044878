"""attrs validators shared by the scalers; each raises ConfigError naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from dynamo_planner.exceptions import ConfigError

__all__ = ["at_least", "in_modes", "non_negative", "positive", "share", "share_or_one"]

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


def _fail(attribute: attrs.Attribute[Any], value: object, message: str) -> None:
    raise ConfigError(message, field=attribute.name, value=value)


def positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """A finite number above 0."""
    if not (math.isfinite(value) and value > 0):
        _fail(attribute, value, f"must be a positive number, got {value!r}")


def non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """A finite number, 0 or more."""
    if not (math.isfinite(value) and value >= 0):
        _fail(attribute, value, f"must be a finite number >= 0, got {value!r}")


def share(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """A fraction strictly between 0 and 1."""
    if not (0 < value < 1):
        _fail(attribute, value, f"must be strictly between 0 and 1, got {value!r}")


def share_or_one(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """A fraction above 0 and at most 1."""
    if not (0 < value <= 1):
        _fail(attribute, value, f"must be above 0 and at most 1, got {value!r}")


def at_least(low: int) -> Validator:
    """An integer of at least ``low``."""

    def check(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < low:
            _fail(attribute, value, f"must be at least {low}, got {value!r}")

    return check


def in_modes(scaler: str, modes: Sequence[str]) -> Validator:
    """One of the planning ``modes`` the named scaler supports."""

    def check(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in modes:
            _fail(
                attribute,
                value,
                f"the {scaler} scaler plans modes {', '.join(modes)}, not {value!r}",
            )

    return check
