"""Type checks for model config dataclasses: every field is read as its annotation says, or refused.

A config field annotated ``int`` takes an integer (NumPy integers too, never a bool or a float such as 32.0),
``float`` a finite real number, ``bool`` True or False, ``str`` a string, ``dict`` a mapping, and
``tuple[T, ...]`` a list or tuple (never a string, whose characters would silently become the elements) of T.
``X | None`` also takes None. Values come back as plain Python types; anything else is one ValueError naming
the field and the value, so ``hidden_units="128"`` can never become (1, 2, 8). ``parse_text`` reads a
command-line string (``--set key=value``) as a field's annotation the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import types
import typing
from typing import Any, Mapping, Sequence

import numpy as np

_DESCRIPTIONS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def _fail(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _scalar(name: str, value: Any, kind: type) -> Any:
    if kind is bool and _is_bool(value):
        return bool(value)
    if kind is int and isinstance(value, numbers.Integral) and not _is_bool(value):
        return int(value)
    if kind is float and isinstance(value, numbers.Real) and not _is_bool(value):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {float(value)}")
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is dict and isinstance(value, Mapping):
        return dict(value)
    if kind not in _DESCRIPTIONS:
        return value  # an annotation this module does not check
    raise _fail(name, value, _DESCRIPTIONS[kind])


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(``X``, True) for ``X | None``; (annotation, False) otherwise."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return annotation, False


def _tuple_element(annotation: Any) -> tuple[bool, Any]:
    """(is a tuple annotation, its element type or None for a bare ``tuple``)."""
    is_tuple = annotation is tuple or typing.get_origin(annotation) is tuple
    args = typing.get_args(annotation)
    return is_tuple, (args[0] if args else None)


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` read as ``annotation`` (see the module docstring); ValueError naming ``name`` otherwise."""
    annotation, optional = _unwrap_optional(annotation)
    if value is None and optional:
        return None
    is_tuple, element = _tuple_element(annotation)
    if is_tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _fail(name, value, f"a list of {_PLURALS.get(element, 'values')}")
        return tuple(value if element is None else [coerce(f"{name}[{i}]", v, element) for i, v in enumerate(value)])
    return _scalar(name, value, annotation)


def _parse_scalar(text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "1")
    if kind in (int, float):
        return kind(text)
    if kind is dict:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(text)
        return value
    return text


def parse_text(name: str, text: str, annotation: Any) -> Any:
    """A command-line string read as a field annotated ``annotation``: ``none`` for an optional field,
    comma-separated elements for a tuple, a JSON object for a dict. ValueError naming the field and text."""
    annotation, optional = _unwrap_optional(annotation)
    if optional and text.strip().lower() in ("none", "null"):
        return None
    is_tuple, element = _tuple_element(annotation)
    try:
        if is_tuple:
            return tuple(_parse_scalar(p.strip(), element or str) for p in text.split(",") if p.strip())
        return _parse_scalar(text.strip(), annotation)
    except ValueError:
        expected = (f"{_PLURALS.get(element or str)} separated by commas" if is_tuple
                    else _DESCRIPTIONS.get(annotation, "a value"))
        raise ValueError(f"{name}={text}: expected {expected}") from None


def check_field_types(config: Any) -> None:
    """Replaces every field of the dataclass ``config`` by its value read as the field's annotation."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        setattr(config, field.name, coerce(field.name, getattr(config, field.name), hints[field.name]))


def check_positive_units(config: Any, *names: str, allow_empty: bool = False) -> None:
    """Each named tuple-of-int field holds positive integers (and at least one unless ``allow_empty``)."""
    for name in names:
        units: Sequence[int] = getattr(config, name)
        if (not units and not allow_empty) or any(u < 1 for u in units):
            raise ValueError(f"{name} must be positive integers{'' if allow_empty else ' (at least one)'}, "
                             f"got {units}")


def check_at_least(config: Any, bounds: dict[str, float]) -> None:
    """Each named numeric field is >= its bound."""
    for name, bound in bounds.items():
        if getattr(config, name) < bound:
            raise ValueError(f"{name} must be >= {bound:g}, got {getattr(config, name)}")


def check_activation(name: str) -> None:
    """ValueError unless ``name`` is a Keras activation (``activation`` config fields)."""
    import tensorflow as tf

    try:
        tf.keras.activations.get(name)
    except ValueError as err:
        raise ValueError(f"activation {name!r} is not a Keras activation (e.g. relu, gelu, tanh)") from err
