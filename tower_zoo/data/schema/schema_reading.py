"""Reading a schema file strictly, and typed access to its values: one ``SchemaError`` per problem.

YAML is read with PyYAML's safe loader made stricter: an alias (``*name``) is refused (a few lines of
nested aliases expand to billions of nodes, the "billion laughs"), and so is a key given twice in one
mapping (YAML and JSON would silently keep the last one). JSON files refuse duplicate keys the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import yaml


class SchemaError(ValueError):
    """A problem in a schema file: the message names the file and the key."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"aliases (*{event.anchor}) are not allowed in a schema file; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # unhashable keys: the base class reports them
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)



def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicated = next((key for key in keys if keys.count(key) > 1), None)
    if duplicated is not None:
        raise ValueError(f"duplicate key {duplicated!r}")
    return dict(pairs)


def read_schema_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML (.yaml/.yml) or JSON (.json) file; SchemaError naming the file otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"schema file {path!r} does not exist")
    try:
        with open(path) as handle:
            if path.endswith(".json"):
                content = json.load(handle, object_pairs_hook=_unique_pairs)
            else:
                content = yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except (ValueError, OSError) as err:  # json.JSONDecodeError is a ValueError
        raise SchemaError(f"{path}: cannot parse: {err}") from err
    except yaml.YAMLError as err:
        raise SchemaError(f"{path}: cannot parse YAML: {' '.join(str(err).split())}") from err
    if not isinstance(content, dict):
        raise SchemaError(f"{path}: expected a mapping at the top level, got {type(content).__name__}")
    return content


class SchemaReader:
    """Typed access to the schema mapping; every error names the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> SchemaError:
        return SchemaError(f"{self.source}: {key}: {message}")

    def check_keys(self, mapping: Mapping[str, Any], key: str, valid: tuple[str, ...]) -> None:
        unknown = [k for k in mapping if k not in valid]
        if unknown:
            where = f"in {key!r}" if key else "at the top level"
            raise SchemaError(f"{self.source}: unknown key {unknown[0]!r} {where}; valid keys: {', '.join(valid)}")

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def integer(self, value: Any, key: str, minimum: int = 0, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.fail(key, f"expected an integer <= {maximum}, got {value!r}")
        return value

    def fraction(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise self.fail(key, f"expected a number in [0, 1), got {value!r}")
        return float(value)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def texts(self, value: Any, key: str) -> tuple[str, ...]:
        """A string or a list of strings, as a tuple."""
        if isinstance(value, str):
            return (self.text(value, key),)
        if not isinstance(value, (list, tuple)):
            raise self.fail(key, f"expected a column name or a list of column names, got {value!r}")
        return tuple(self.text(item, key) for item in value)

    def numbers(self, value: Any, key: str) -> tuple[float, ...]:
        """A list of finite numbers, as floats."""
        if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), -float("inf"))
                for v in value):
            raise self.fail(key, f"expected a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value
