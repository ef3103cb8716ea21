"""DatasetSchema: a small YAML or JSON file that says where a dataset's files are and what their columns mean.

A worked example (paths are relative to the schema file)::

    name: my-shop
    interactions: data/interactions/*.parquet     # a glob of Parquet or CSV shards
    users: {path: data/users.parquet, id: user_id}
    items: {path: data/items.csv, id: item_id, display: [title]}
    columns:                                      # column roles in the interaction files
      user_id: {column: user_id, type: string}     # type: keep ids verbatim ("0377" is not 377)
      item_id: {column: item_id, max_size: 500000, hash_buckets: 1000}
      timestamp: ts                               # optional: file order when absent
      rating: stars                               # optional
      weight: dwell_weight                        # optional
    labels:                                       # optional; the first one is the primary label
      click: clicked                              # a 0/1 column
      like: stars >= 4                            # a threshold on a column
    features:
      user:
        age: {kind: numeric, boundaries: [18, 25, 35, 45, 55]}
        country: {kind: categorical, min_count: 5}
      item:
        price: {kind: numeric}                    # standardized
        popularity: {kind: numeric, num_buckets: 10, column: pop}
        tags: {kind: multi_valued, separator: "|", max_length: 8}
    history_length: 50
    split: {method: leave_last_out, num_test: 1, num_valid: 0}

Feature kinds (each feature reads the column of its name from its side's table, or ``column``):

* ``categorical``: ``min_count`` (default 1), ``max_size``, ``hash_buckets`` (out-of-vocabulary
  values hashed into that many extra rows instead of the OOV bucket), ``embedding_dim`` (the width of
  this feature's own embedding table, projected to the model's field width; default: the model's
  ``embedding_dim``).
* ``numeric``: standardized with the table's mean and std, or bucketized with ``boundaries`` or
  ``num_buckets`` (quantiles of the table).
* ``multi_valued``: a list column, or a string column split on ``separator``; ``max_length``
  (default: the longest list, at most 100000), ``min_count``, ``max_size``, ``hash_buckets``,
  ``embedding_dim``.

Every feature accepts ``allow_missing: true`` (a null becomes OOV, the mean or an empty list
instead of an error). The id roles accept the categorical options too (their ``min_count``
defaults to 0: every id of the interactions and of the side table gets a row), and ``type``:

* ``string``: ids are compared as text, verbatim: ``"0377"`` and ``"377"`` are two users (an integer
  column becomes its decimal text). CSV id columns are then read as text, never as numbers.
* ``integer``: ids are int64 (a text column is parsed; ``"0377"`` is 377).
* absent: the type of the first interaction file's column (integer or string); a CSV id written
  with leading zeros (``0377``) is then an error, since reading it as a number would merge it with
  ``377``: declare the type.

Integer ids must fit int64 (a float id must be a whole number below 2^63); an empty, blank or
``nan`` string id is an error, as is a null or NaN one. A schema's ``hash_buckets`` are bounded by
memory: the table they imply (at ``embedding_dim``, or 32 wide, with Adam's two slots) must fit in
this machine's memory. Split methods:
``leave_last_out`` (``num_test``, ``num_valid``), ``time`` (``test_fraction``, ``valid_fraction``:
a global cut by timestamp) and ``random`` (``test_fraction``, ``valid_fraction``, ``seed``: each
interaction independently). Every problem is a ``SchemaError`` naming the schema file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Mapping

from tower_zoo.data.schema.schema_reading import SchemaError, SchemaReader, read_schema_file
from tower_zoo.memory import require_fits, table_bytes

__all__ = ["DatasetSchema", "FeatureDef", "LabelDef", "SchemaError", "SplitDef", "TableSpec", "VocabOptions",
           "parse_schema", "read_schema_file"]

SCHEMA_FORMAT_KEYS = ("name", "interactions", "users", "items", "columns", "labels", "features",
                      "history_length", "split")
FILE_FORMATS = ("parquet", "csv")
FEATURE_KINDS = ("categorical", "numeric", "multi_valued")
SPLIT_METHODS = ("leave_last_out", "time", "random")
ROLES = ("user_id", "item_id", "timestamp", "rating", "weight")
ID_ROLES = {"user_id": "user", "item_id": "item"}
ID_TYPES = ("integer", "string")
MAX_SEQUENCE_LENGTH = 100_000       # history_length / max_length: int32 positions per example row
DEFAULT_TABLE_WIDTH = 32            # the width a table is estimated at when the schema gives none
LABEL_OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_LABEL_EXPRESSION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d*)?(?:[eE]-?\d+)?)\s*$")
_VOCAB_KEYS = ("min_count", "max_size", "hash_buckets", "embedding_dim")
_FEATURE_KEYS = {
    "categorical": ("kind", "column", "allow_missing", *_VOCAB_KEYS),
    "numeric": ("kind", "column", "allow_missing", "boundaries", "num_buckets"),
    "multi_valued": ("kind", "column", "allow_missing", "separator", "max_length", *_VOCAB_KEYS),
}
_SPLIT_KEYS = {"leave_last_out": ("method", "num_test", "num_valid"),
               "time": ("method", "test_fraction", "valid_fraction"),
               "random": ("method", "test_fraction", "valid_fraction", "seed")}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """Files of one table: ``path`` an absolute glob, ``format`` parquet or csv, ``id`` the id column
    of a user/item table, ``display`` columns kept for display (items), ``delimiter`` for CSV."""

    path: str
    format: str
    id: str | None = None
    display: tuple[str, ...] = ()
    delimiter: str = ","


@dataclasses.dataclass(frozen=True)
class VocabOptions:
    """How a categorical vocabulary is built: values seen at least ``min_count`` times, the
    ``max_size`` most frequent of them (ties by value), ``hash_buckets`` rows for the rest."""

    min_count: int = 1
    max_size: int | None = None
    hash_buckets: int = 0
    embedding_dim: int | None = None


@dataclasses.dataclass(frozen=True)
class FeatureDef:
    """One feature of a side table (see the module docstring for the kinds)."""

    name: str
    side: str
    kind: str
    column: str
    vocab: VocabOptions = VocabOptions()
    boundaries: tuple[float, ...] = ()
    num_buckets: int = 0
    separator: str | None = None
    max_length: int | None = None
    allow_missing: bool = False


@dataclasses.dataclass(frozen=True)
class LabelDef:
    """A 0/1 label: the column itself (``operator`` None) or ``column operator threshold``."""

    name: str
    column: str
    operator: str | None = None
    threshold: float | None = None


@dataclasses.dataclass(frozen=True)
class SplitDef:
    method: str = "leave_last_out"
    num_test: int = 1
    num_valid: int = 0
    test_fraction: float = 0.2
    valid_fraction: float = 0.0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class DatasetSchema:
    """A parsed, validated schema file; ``raw`` is the file's content (recorded in prepared data),
    ``base_dir`` the directory its relative paths are resolved against and ``id_types`` the declared
    ``type`` of each id role ("integer", "string" or None: the files decide)."""

    name: str
    path: str
    interactions: TableSpec
    users: TableSpec | None
    items: TableSpec | None
    columns: Mapping[str, str | None]
    id_vocab: Mapping[str, VocabOptions]
    labels: tuple[LabelDef, ...]
    features: tuple[FeatureDef, ...]
    history_length: int
    split: SplitDef
    raw: Mapping[str, Any]
    base_dir: str = ""
    id_types: Mapping[str, str | None] = dataclasses.field(default_factory=dict)

    def table(self, side: str) -> TableSpec | None:
        """The users (side "user") or items table, or None."""
        return self.users if side == "user" else self.items

    def side_features(self, side: str) -> tuple[FeatureDef, ...]:
        return tuple(f for f in self.features if f.side == side)

    def interaction_columns(self) -> list[str]:
        """Every column the interaction files must have."""
        needed = [c for c in self.columns.values() if c]
        needed += [label.column for label in self.labels]
        return list(dict.fromkeys(needed))


# ============================================================================= parsing
def _table(reader: SchemaReader, value: Any, key: str, base_dir: str, needs_id: bool) -> TableSpec:
    if isinstance(value, str):
        value = {"path": value}
    value = reader.mapping(value, key)
    valid = ("path", "format", "delimiter") + (("id", "display") if needs_id else ())
    reader.check_keys(value, key, valid)
    if "path" not in value:
        raise reader.fail(key, "needs 'path' (a file or a glob of Parquet or CSV files)")
    pattern = reader.text(value["path"], f"{key}.path")
    pattern = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    fmt = value.get("format") or _infer_format(reader, pattern, f"{key}.path")
    if fmt not in FILE_FORMATS:
        raise reader.fail(f"{key}.format", f"expected one of {', '.join(FILE_FORMATS)}, got {fmt!r}")
    display = reader.texts(value.get("display", ()), f"{key}.display")
    table_id = None
    if needs_id:
        if "id" not in value:
            raise reader.fail(key, "needs 'id': the column holding the user/item id")
        table_id = reader.text(value["id"], f"{key}.id")
    delimiter = reader.text(value.get("delimiter", ","), f"{key}.delimiter")
    if len(delimiter) != 1:
        raise reader.fail(f"{key}.delimiter", f"must be one character, got {delimiter!r}")
    return TableSpec(os.path.normpath(pattern), fmt, table_id, display, delimiter)


def _infer_format(reader: SchemaReader, pattern: str, key: str) -> str:
    for fmt, suffixes in (("parquet", (".parquet", ".pq", ".parquet.brotli")), ("csv", (".csv", ".csv.gz"))):
        if pattern.lower().endswith(suffixes):
            return fmt
    raise reader.fail(key, f"cannot infer the format of {pattern!r} from its extension; add format: parquet or csv")


def _vocab_options(reader: SchemaReader, value: Mapping[str, Any], key: str, min_count: int) -> VocabOptions:
    max_size = value.get("max_size")
    embedding_dim = value.get("embedding_dim")
    options = VocabOptions(
        min_count=reader.integer(value.get("min_count", min_count), f"{key}.min_count"),
        max_size=None if max_size is None else reader.integer(max_size, f"{key}.max_size", 1),
        hash_buckets=reader.integer(value.get("hash_buckets", 0), f"{key}.hash_buckets"),
        embedding_dim=None if embedding_dim is None else reader.integer(embedding_dim, f"{key}.embedding_dim", 1))
    _check_table_memory(reader, key, options)
    return options


def _check_table_memory(reader: SchemaReader, key: str, options: VocabOptions) -> None:
    """The rows the schema itself fixes (hash buckets) at the feature's width must fit in memory with the
    optimizer's slots; a SchemaError naming the key, the estimate and the limit otherwise."""
    width = options.embedding_dim or DEFAULT_TABLE_WIDTH
    rows = options.hash_buckets + 2
    try:
        require_fits(f"{key}: hash_buckets {options.hash_buckets} with embedding_dim {width}",
                     table_bytes(rows, width), f"{rows:,} rows x {width} x 4 bytes x 3 with Adam's slots")
    except ValueError as err:
        raise SchemaError(f"{reader.source}: {err}") from None


def _columns(reader: SchemaReader, value: Any):
    """(role -> column, id role -> VocabOptions, id role -> declared type or None)."""
    value = reader.mapping(value, "columns")
    reader.check_keys(value, "columns", ROLES)
    columns, vocab, types = {}, {}, {}
    for role in ROLES:
        entry = value.get(role)
        key = f"columns.{role}"
        if role in ID_ROLES:
            if entry is None:
                raise reader.fail(key, "is required (the column holding the id)")
            options = {"column": entry} if isinstance(entry, str) else reader.mapping(entry, key)
            reader.check_keys(options, key, ("column", "type", *_VOCAB_KEYS))
            vocab[role] = _vocab_options(reader, options, key, min_count=0)
            id_type = options.get("type")
            if id_type is not None and id_type not in ID_TYPES:
                raise reader.fail(f"{key}.type", f"expected one of {', '.join(ID_TYPES)}, got {id_type!r}")
            types[role] = id_type
            entry = options.get("column")
        columns[role] = None if entry is None else reader.text(entry, key)
    return columns, vocab, types


def _labels(reader: SchemaReader, value: Any) -> tuple[LabelDef, ...]:
    labels = []
    for name, expression in reader.mapping(value, "labels").items():
        key = f"labels.{name}"
        text = reader.text(expression, key)
        match = _LABEL_EXPRESSION.match(text)
        if match:
            labels.append(LabelDef(name, match.group(1), match.group(2), float(match.group(3))))
        elif re.fullmatch(r"[A-Za-z_][\w.]*", text):
            labels.append(LabelDef(name, text))
        else:
            raise reader.fail(key, f"expected a 0/1 column name or 'column OP number' (OP one of "
                                   f"{' '.join(LABEL_OPERATORS)}), got {text!r}")
    return tuple(labels)


def _feature(reader: SchemaReader, name: str, side: str, value: Any) -> FeatureDef:
    key = f"features.{side}.{name}"
    value = reader.mapping(value, key)
    kind = value.get("kind")
    if kind not in FEATURE_KINDS:
        raise reader.fail(f"{key}.kind", f"expected one of {', '.join(FEATURE_KINDS)}, got {kind!r}")
    reader.check_keys(value, key, _FEATURE_KEYS[kind])
    column = reader.text(value.get("column", name), f"{key}.column")
    allow_missing = reader.boolean(value.get("allow_missing", False), f"{key}.allow_missing")
    if kind == "numeric":
        boundaries = reader.numbers(value.get("boundaries", []), f"{key}.boundaries")
        if list(boundaries) != sorted(set(boundaries)):
            raise reader.fail(f"{key}.boundaries", f"expected strictly increasing numbers, got "
                                                   f"{value['boundaries']}")
        num_buckets = reader.integer(value.get("num_buckets", 0), f"{key}.num_buckets")
        if boundaries and num_buckets:
            raise reader.fail(key, "give either boundaries or num_buckets, not both")
        if num_buckets == 1:
            raise reader.fail(f"{key}.num_buckets", "must be >= 2 (or 0 for a standardized feature)")
        return FeatureDef(name, side, kind, column, boundaries=boundaries,
                          num_buckets=num_buckets, allow_missing=allow_missing)
    vocab = _vocab_options(reader, value, key, min_count=1)
    if kind == "categorical":
        return FeatureDef(name, side, kind, column, vocab, allow_missing=allow_missing)
    separator = value.get("separator")
    max_length = value.get("max_length")
    return FeatureDef(name, side, kind, column, vocab,
                      separator=None if separator is None else reader.text(separator, f"{key}.separator"),
                      max_length=None if max_length is None else reader.integer(max_length, f"{key}.max_length", 1,
                                                                                MAX_SEQUENCE_LENGTH),
                      allow_missing=allow_missing)


def _features(reader: SchemaReader, value: Any) -> tuple[FeatureDef, ...]:
    value = reader.mapping(value, "features")
    reader.check_keys(value, "features", ("user", "item"))
    features = []
    for side in ("user", "item"):
        for name, entry in reader.mapping(value.get(side) or {}, f"features.{side}").items():
            if not isinstance(name, str) or not name:
                raise reader.fail(f"features.{side}", f"feature names must be non-empty strings, got {name!r}")
            if name in ("user_id", "item_id", "history") or name.startswith("__"):
                raise reader.fail(f"features.{side}.{name}", "this name is reserved (ids are set in 'columns', "
                                                              "the history by 'history_length')")
            features.append(_feature(reader, name, side, entry))
    return tuple(features)


def _split(reader: SchemaReader, value: Any) -> SplitDef:
    value = reader.mapping(value, "split")
    method = value.get("method", "leave_last_out")
    if method not in SPLIT_METHODS:
        raise reader.fail("split.method", f"expected one of {', '.join(SPLIT_METHODS)}, got {method!r}")
    reader.check_keys(value, "split", _SPLIT_KEYS[method])
    if method == "leave_last_out":
        return SplitDef(method, num_test=reader.integer(value.get("num_test", 1), "split.num_test", 1),
                        num_valid=reader.integer(value.get("num_valid", 0), "split.num_valid"))
    test = reader.fraction(value.get("test_fraction", 0.2), "split.test_fraction")
    valid = reader.fraction(value.get("valid_fraction", 0.0), "split.valid_fraction")
    if test <= 0 or test + valid >= 1:
        raise reader.fail("split", f"need 0 < test_fraction and test_fraction + valid_fraction < 1, got "
                                   f"{test} and {valid}")
    return SplitDef(method, test_fraction=test, valid_fraction=valid,
                    seed=reader.integer(value.get("seed", 0), "split.seed") if method == "random" else 0)


def parse_schema(raw: Mapping[str, Any], source: str, base_dir: str) -> DatasetSchema:
    """A DatasetSchema from the mapping ``raw`` of schema file ``source`` (see the module docstring)."""
    reader = SchemaReader(source)
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    reader.check_keys(raw, "", SCHEMA_FORMAT_KEYS)
    for required in ("interactions", "columns"):
        if required not in raw:
            raise reader.fail(required, "is required")
    columns, id_vocab, id_types = _columns(reader, raw["columns"])
    features = _features(reader, raw.get("features") or {})
    users = None if raw.get("users") is None else _table(reader, raw["users"], "users", base_dir, True)
    items = None if raw.get("items") is None else _table(reader, raw["items"], "items", base_dir, True)
    for feature in features:
        if (users if feature.side == "user" else items) is None:
            raise reader.fail(f"features.{feature.side}.{feature.name}",
                              f"{feature.side} features need a '{feature.side}s' table")
    split = _split(reader, raw.get("split") or {})
    if split.method == "time" and not columns["timestamp"]:
        raise reader.fail("split.method", "a time split needs columns.timestamp")
    name = reader.text(raw.get("name", os.path.splitext(os.path.basename(source))[0]), "name")
    return DatasetSchema(
        name=name, path=source,
        interactions=_table(reader, raw["interactions"], "interactions", base_dir, False),
        users=users, items=items, columns=columns, id_vocab=id_vocab, id_types=id_types,
        labels=_labels(reader, raw.get("labels") or {}), features=features,
        history_length=reader.integer(raw.get("history_length", 0), "history_length", 0, MAX_SEQUENCE_LENGTH),
        split=split, raw=json.loads(json.dumps(raw, default=str)), base_dir=os.path.abspath(base_dir))
