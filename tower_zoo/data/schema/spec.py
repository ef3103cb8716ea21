"""FeatureSpec: what each tower's features are, and how raw values become model inputs.

Raw feature values (ids, strings, numbers, lists of those) are encoded here, in the data layer,
into integer indices and floats that the model's embedding layers consume directly:

* index 0 is padding (only sequence features use it),
* index 1 is the out-of-vocabulary (OOV) bucket: an id never seen in training lands here,
* indices 2 .. 2+len(vocabulary)-1 are the vocabulary in order,
* with ``hash_buckets`` H > 0 (categorical and sequence features), a value outside the vocabulary
  goes to one of H extra rows after the vocabulary instead of the OOV bucket:
  ``2 + len(vocabulary) + Fingerprint64(str(value)) % H``, the same bucket as TensorFlow's
  ``tf.strings.to_hash_bucket_fast(tf.strings.as_string(value), H)``, so serving graphs can
  reproduce it. ``vocab_size`` counts those rows.

Keeping the vocabulary in the spec (not inside Keras lookup layers) makes the spec the one record
of "what the model was trained on": it is saved next to every checkpoint and export, and a model
can only be restored for the spec it was built with.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

PAD_INDEX = 0
OOV_INDEX = 1
NUM_RESERVED = 2
SIDES = ("user", "item")
INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)


def _check_side(name: str, side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"feature {name!r}: side must be one of {SIDES}, got {side!r}")


def _check_hash_buckets(name: str, hash_buckets: int) -> None:
    if int(hash_buckets) != hash_buckets or hash_buckets < 0:
        raise ValueError(f"feature {name!r}: hash_buckets must be an integer >= 0, got {hash_buckets!r}")


def _normalize_vocab(name: str, vocabulary: Iterable[Any]) -> tuple:
    vocab = tuple(v.item() if isinstance(v, np.generic) else v for v in vocabulary)
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"feature {name!r}: vocabulary has duplicate values")
    return vocab


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
    """One categorical value per example (an id, a gender, a bucketed age), embedded by index.

    Encoded as int32 ``[B]`` with values in ``[1, vocab_size)`` (1 = OOV, or one of the
    ``hash_buckets`` rows after the vocabulary, see the module docstring).
    """

    name: str
    side: str
    vocabulary: tuple
    embedding_dim: int | None = None  # None: the model's default dimension
    hash_buckets: int = 0

    kind = "categorical"

    def __post_init__(self):
        _check_side(self.name, self.side)
        _check_hash_buckets(self.name, self.hash_buckets)
        object.__setattr__(self, "vocabulary", _normalize_vocab(self.name, self.vocabulary))

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + NUM_RESERVED + self.hash_buckets


@dataclasses.dataclass(frozen=True)
class NumericFeature:
    """A real-valued feature. With ``boundaries`` it is bucketized and embedded like a categorical
    (encoded int32 ``[B]``, bucket ``i`` at index ``i + NUM_RESERVED``); without, it is standardized
    with ``mean``/``std`` (encoded float32 ``[B]``).
    """

    name: str
    side: str
    mean: float = 0.0
    std: float = 1.0
    boundaries: tuple = ()

    kind = "numeric"

    def __post_init__(self):
        _check_side(self.name, self.side)
        object.__setattr__(self, "boundaries", tuple(float(b) for b in self.boundaries))
        if list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError(f"feature {self.name!r}: boundaries must be strictly increasing")
        if not self.std > 0:
            raise ValueError(f"feature {self.name!r}: std must be > 0, got {self.std}")

    @property
    def bucketized(self) -> bool:
        return bool(self.boundaries)

    @property
    def vocab_size(self) -> int:
        return len(self.boundaries) + 1 + NUM_RESERVED


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A variable-length list of categorical values (genres, the user's recent items).

    Encoded as int32 ``[B, max_length]``, right-padded with ``PAD_INDEX``; the list keeps its
    order and, when longer than ``max_length``, its *last* ``max_length`` values.
    """

    name: str
    side: str
    vocabulary: tuple
    max_length: int
    embedding_dim: int | None = None
    hash_buckets: int = 0

    kind = "sequence"

    def __post_init__(self):
        _check_side(self.name, self.side)
        _check_hash_buckets(self.name, self.hash_buckets)
        object.__setattr__(self, "vocabulary", _normalize_vocab(self.name, self.vocabulary))
        if self.max_length < 1:
            raise ValueError(f"feature {self.name!r}: max_length must be >= 1, got {self.max_length}")

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary) + NUM_RESERVED + self.hash_buckets


Feature = CategoricalFeature | NumericFeature | SequenceFeature
_KINDS = {cls.kind: cls for cls in (CategoricalFeature, NumericFeature, SequenceFeature)}


def _index_lookup(name: str, vocabulary: tuple) -> pd.Index:
    try:
        return pd.Index(list(vocabulary))
    except TypeError as err:  # pragma: no cover - defensive
        raise ValueError(f"feature {name!r}: vocabulary is not hashable") from err


class OOVCounter:
    """Counts values that fell into the OOV bucket during encoding, per feature name."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def add(self, name: str, count: int) -> None:
        if count:
            self.counts[name] = self.counts.get(name, 0) + int(count)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The ordered set of features of a dataset. ``user_id_feature`` and ``item_id_feature`` name
    the id features (used for accidental-hit removal, frequency counts and evaluation)."""

    features: tuple
    user_id_feature: str = "user_id"
    item_id_feature: str = "item_id"

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"FeatureSpec: duplicate feature names {duplicates}")
        for id_name, side in ((self.user_id_feature, "user"), (self.item_id_feature, "item")):
            feature = self.get(id_name)
            if not isinstance(feature, CategoricalFeature) or feature.side != side:
                raise ValueError(
                    f"FeatureSpec: id feature {id_name!r} must be a categorical feature on the {side} side"
                )

    # ----------------------------------------------------------------------------- lookup
    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"unknown feature {name!r}; the spec has: {', '.join(self.names)}")

    def side(self, side: str) -> tuple:
        _check_side("<side>", side)
        return tuple(f for f in self.features if f.side == side)

    @property
    def user_features(self) -> tuple:
        return self.side("user")

    @property
    def item_features(self) -> tuple:
        return self.side("item")

    @property
    def user_id(self) -> CategoricalFeature:
        return self.get(self.user_id_feature)

    @property
    def item_id(self) -> CategoricalFeature:
        return self.get(self.item_id_feature)

    def select(self, names: Sequence[str]) -> "FeatureSpec":
        """A spec with only ``names`` (the id features are always kept)."""
        keep = set(names) | {self.user_id_feature, self.item_id_feature}
        for n in names:
            self.get(n)
        return dataclasses.replace(self, features=tuple(f for f in self.features if f.name in keep))

    # ----------------------------------------------------------------------------- encoding
    def encode(self, frame: pd.DataFrame, side: str | None = None, oov_counter: OOVCounter | None = None,
               names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Encodes the columns of ``frame`` for the features of ``side`` (both sides if None), or
        only the features ``names``.

        Returns ``{feature name: array}`` with int32 ``[N]`` / float32 ``[N]`` / int32 ``[N, L]``
        arrays. Raises ``ValueError`` naming the feature for a missing column, an empty frame,
        a NaN, or a value of the wrong type.
        """
        features = self.features if side is None else self.side(side)
        if names is not None:
            features = tuple(self.get(n) for n in names)
        if len(frame) == 0:
            raise ValueError(f"cannot encode an empty frame (features {[f.name for f in features]})")
        missing = [f.name for f in features if f.name not in frame.columns]
        if missing:
            raise ValueError(
                f"missing feature column(s) {missing}; the frame has columns {list(frame.columns)}"
            )
        return {f.name: encode_feature(f, frame[f.name], oov_counter) for f in features}

    def check_encoded(self, arrays: Mapping[str, Any], where: str = "inputs",
                      names: Sequence[str] | None = None) -> None:
        """Raises one ValueError naming the feature and the value when encoded ``arrays`` do not fit this spec.

        Checks the features ``names`` (each must be present; default: every spec feature in ``arrays``):
        categorical, bucketized and sequence features hold integer codes in ``[0, vocab_size)`` shaped [rows]
        or, for sequences, [rows, max_length]; numeric features finite numbers shaped [rows]; every array has
        the same number of rows. ``where`` says whose arrays they are ("training examples", ...)."""
        if names is None:
            names = [n for n in self.names if n in arrays]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"{where} lack feature(s) {missing}; expected {list(names)}, got {sorted(arrays)}")
        reference = None
        for name in names:
            values = np.asarray(arrays[name])
            check_encoded_feature(self.get(name), values, where)
            if reference is None:
                reference = (name, len(values))
            elif len(values) != reference[1]:
                raise ValueError(f"feature {name!r} in {where}: {len(values)} rows where {reference[0]!r} has "
                                 f"{reference[1]}")

    # ----------------------------------------------------------------------------- (de)serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id_feature": self.user_id_feature,
            "item_id_feature": self.item_id_feature,
            "features": [_feature_dict(f) for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        """The spec ``to_dict`` wrote; TypeError / ValueError naming what is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise TypeError(f"FeatureSpec.from_dict: expected the mapping FeatureSpec.to_dict() writes, got "
                            f"{data!r} ({type(data).__name__})")
        missing = [key for key in ("features", "user_id_feature", "item_id_feature") if key not in data]
        if missing:
            raise ValueError(f"FeatureSpec.from_dict: missing key(s) {missing}; got keys {sorted(data)}")
        if isinstance(data["features"], (str, bytes, Mapping)) or not isinstance(data["features"], Sequence):
            raise TypeError(f"FeatureSpec.from_dict: 'features' must be a list of feature mappings, got "
                            f"{data['features']!r}")
        return cls(tuple(_feature_from_dict(item, i) for i, item in enumerate(data["features"])),
                   data["user_id_feature"], data["item_id_feature"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        return cls.from_dict(json.loads(text))


def _python_scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _integer_problem(value: Any) -> str | None:
    """Why one raw id is not an int64 integer, or None."""
    value = _python_scalar(value)
    if isinstance(value, float) and np.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return "is not an integer"
    if not INT64_MIN <= value <= INT64_MAX:
        return "is outside the int64 range"
    return None


def first_non_int64(values: Any) -> tuple[int, Any, str] | None:
    """(position, value, reason) of the first value that is not an integer representable as int64 (integral
    floats are integers), or None when every value is one. Vectorized for numeric arrays."""
    array = np.asarray(values)
    if array.dtype.kind == "i":
        return None
    if array.dtype.kind == "u":
        suspects = np.flatnonzero(array > INT64_MAX)
    elif array.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            suspects = np.flatnonzero(~np.isfinite(array) | (array != np.floor(array)) | (np.abs(array) >= 2.0 ** 63))
    else:
        suspects = (i for i, v in enumerate(array.reshape(-1)) if _integer_problem(v))
    for position in suspects:
        value = _python_scalar(array.reshape(-1)[position])
        return int(position), value, _integer_problem(value) or "is outside the int64 range"
    return None


def _has_integer_vocabulary(feature) -> bool:
    return bool(feature.vocabulary) and all(type(v) is int for v in feature.vocabulary)


def _check_integer_ids(feature, values: np.ndarray, rows: Sequence[Any]) -> None:
    """Features whose vocabulary is integer ids take integer ids only: a float id is never truncated or
    silently sent to OOV, an id beyond int64 never wraps."""
    if not _has_integer_vocabulary(feature):
        return
    problem = first_non_int64(values)
    if problem is not None:
        position, value, reason = problem
        raise ValueError(f"feature {feature.name!r}: id {value!r} at row {_python_scalar(rows[position])!r} {reason}")


def check_encoded_feature(feature: Feature, values: np.ndarray, where: str) -> None:
    """One feature's encoded array; see ``FeatureSpec.check_encoded``."""
    prefix = f"feature {feature.name!r} in {where}"
    sequence = isinstance(feature, SequenceFeature)
    expected = 2 if sequence else 1
    if values.ndim != expected or (sequence and values.shape[1] != feature.max_length):
        shape = f"[rows, {feature.max_length}]" if sequence else "[rows]"
        raise ValueError(f"{prefix}: expected shape {shape}, got {values.shape}")
    if isinstance(feature, NumericFeature) and not feature.bucketized:
        if values.dtype.kind not in "iuf":
            raise ValueError(f"{prefix}: expected numbers, got {values.dtype}")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"{prefix}: non-finite value {values[bad[0]]} at row {bad[0]}")
        return
    if values.dtype.kind not in "iu":
        raise ValueError(f"{prefix}: expected integer codes, got {values.dtype}{_first_non_code(values)}")
    outside = np.flatnonzero(((values < 0) | (values >= feature.vocab_size)).reshape(len(values), -1).any(axis=1))
    if len(outside):
        row = values[outside[0]].reshape(-1)
        code = row[(row < 0) | (row >= feature.vocab_size)][0]
        raise ValueError(f"{prefix}: code {code} at row {outside[0]} is outside [0, {feature.vocab_size})")


def _first_non_code(values: np.ndarray) -> str:
    """`` (value V at row R)``: the first entry of ``values`` [rows, ...] that is not an integer (NaN, 2.5, "3"),
    or a hint to cast when every entry is an integral float."""
    rows = values.reshape(len(values), -1)
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero((~np.isfinite(rows) | (rows != np.round(rows))).any(axis=1))
        if not len(bad):
            return " (integral values: cast them to int32)"
        row = rows[bad[0]]
        value = row[~np.isfinite(row) | (row != np.round(row))][0]
        return f" (value {_python_scalar(value)!r} at row {int(bad[0])})"
    return f" (value {_python_scalar(rows.flat[0])!r} at row 0)" if rows.size else ""


def _feature_from_dict(item: Any, position: int) -> Feature:
    """One entry of ``FeatureSpec.to_dict()["features"]`` back as a feature."""
    if not isinstance(item, Mapping) or "kind" not in item:
        raise ValueError(f"FeatureSpec.from_dict: features[{position}] must be a mapping with a 'kind', got {item!r}")
    item = dict(item)
    kind = item.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown feature kind {kind!r} for feature {item.get('name')!r}")
    fields = {f.name for f in dataclasses.fields(_KINDS[kind])}
    unknown = sorted(set(item) - fields)
    if unknown:
        raise ValueError(f"FeatureSpec.from_dict: features[{position}] ({item.get('name')!r}, {kind}) has unknown "
                         f"field(s) {unknown}; {kind} fields are {sorted(fields)}")
    return _KINDS[kind](**item)


def _feature_dict(feature: Feature) -> dict[str, Any]:
    """``{"kind": ..., field: value}`` (no deep copy: a vocabulary is an immutable tuple, maybe of
    millions of ids); ``hash_buckets`` only when set, so specs written before it existed serialize
    (and hash) exactly as they did."""
    fields = {"kind": feature.kind, **{f.name: getattr(feature, f.name) for f in dataclasses.fields(feature)}}
    if not fields.get("hash_buckets", 1):
        del fields["hash_buckets"]
    return fields


def hash_bucket(values: np.ndarray, num_buckets: int) -> np.ndarray:
    """int64 [N]: ``Fingerprint64(str(value)) % num_buckets`` of each value, computed with
    ``tf.strings.to_hash_bucket_fast`` (ints are hashed as their decimal string)."""
    import pyarrow as pa
    import tensorflow as tf

    try:  # vectorized: Arrow's integer -> decimal string cast is str() of the int
        texts = pa.array(values).cast(pa.string()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        texts = np.asarray([str(v) for v in values], dtype=object)
    if len(texts) == 0:
        return np.zeros(0, np.int64)
    return tf.strings.to_hash_bucket_fast(tf.constant(texts, tf.string), num_buckets).numpy()


def _vocab_indices(feature, values: pd.Series | np.ndarray, oov_counter: OOVCounter | None) -> np.ndarray:
    index = _index_lookup(feature.name, feature.vocabulary)
    positions = index.get_indexer(pd.Index(values) if not isinstance(values, pd.Index) else values)
    missing = positions < 0
    if oov_counter is not None:
        oov_counter.add(feature.name, int(missing.sum()))
    codes = np.where(missing, OOV_INDEX, positions + NUM_RESERVED).astype(np.int32)
    if feature.hash_buckets and missing.any():
        buckets = hash_bucket(np.asarray(values, dtype=object)[missing], feature.hash_buckets)
        codes[missing] = (NUM_RESERVED + len(feature.vocabulary) + buckets).astype(np.int32)
    return codes


def _check_no_missing(feature, values: pd.Series) -> None:
    nulls = pd.isna(values)
    if nulls.any():
        row = values.index[np.flatnonzero(np.asarray(nulls))[0]]
        raise ValueError(f"feature {feature.name!r}: missing/NaN value at row {row!r}")


def encode_feature(feature: Feature, values: pd.Series, oov_counter: OOVCounter | None = None) -> np.ndarray:
    """Encodes one column; see ``FeatureSpec.encode``."""
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(feature, CategoricalFeature):
        _check_no_missing(feature, values)
        _check_integer_ids(feature, values.to_numpy(), values.index)
        return _vocab_indices(feature, values.to_numpy(), oov_counter)
    if isinstance(feature, NumericFeature):
        _check_no_missing(feature, values)
        try:
            numbers = values.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            bad = next(v for v in values if not _is_number(v))
            raise ValueError(
                f"feature {feature.name!r}: expected numbers, got {bad!r} ({type(bad).__name__})"
            ) from err
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            raise ValueError(f"feature {feature.name!r}: non-finite value {numbers[bad[0]]} at row "
                             f"{_python_scalar(values.index[bad[0]])!r}")
        if feature.bucketized:
            return (np.searchsorted(np.asarray(feature.boundaries), numbers, side="right")
                    + NUM_RESERVED).astype(np.int32)
        return ((numbers - feature.mean) / feature.std).astype(np.float32)
    if isinstance(feature, SequenceFeature):
        return _encode_sequence(feature, values, oov_counter)
    raise TypeError(f"unknown feature type {type(feature).__name__}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return not isinstance(value, (str, bytes))
    except (TypeError, ValueError):
        return False


def _encode_sequence(feature: SequenceFeature, values: pd.Series, oov_counter: OOVCounter | None) -> np.ndarray:
    out = np.full((len(values), feature.max_length), PAD_INDEX, dtype=np.int32)
    lists = []
    for row, value in zip(values.index, values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise ValueError(f"feature {feature.name!r}: missing value at row {row!r} (use an empty list)")
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise ValueError(
                f"feature {feature.name!r}: expected a list of values at row {row!r}, got {value!r}"
            )
        lists.append(list(value)[-feature.max_length:])
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    if lengths.sum():
        flat = [x for v in lists for x in v]
        flat_series = pd.Series(flat, dtype=object)
        _check_no_missing(feature, flat_series)
        _check_integer_ids(feature, np.asarray(flat, dtype=object), np.repeat(values.index, lengths))
        codes = _vocab_indices(feature, np.asarray(flat, dtype=object), oov_counter)
        rows = np.repeat(np.arange(len(lists)), lengths)
        cols = np.concatenate([np.arange(n) for n in lengths])
        out[rows, cols] = codes
    return out


def infer_categorical(name: str, side: str, values: Iterable[Any], embedding_dim: int | None = None,
                      min_count: int = 1) -> CategoricalFeature:
    """A categorical feature whose vocabulary is the values seen at least ``min_count`` times,
    most frequent first (ties by value), so rare values share the OOV bucket."""
    counts = pd.Series(list(values)).value_counts(sort=False)
    counts = counts[counts >= min_count]
    order = sorted(counts.index, key=lambda v: (-counts[v], str(v)))
    return CategoricalFeature(name, side, tuple(order), embedding_dim)


def infer_sequence(name: str, side: str, lists: Iterable[Iterable[Any]], max_length: int,
                   vocabulary: Iterable[Any] | None = None, embedding_dim: int | None = None) -> SequenceFeature:
    """A sequence feature; its vocabulary is ``vocabulary`` or every value that occurs in ``lists``."""
    if vocabulary is None:
        seen = pd.Series([x for values in lists for x in values]).value_counts(sort=False)
        vocabulary = sorted(seen.index, key=lambda v: (-seen[v], str(v)))
    return SequenceFeature(name, side, tuple(vocabulary), max_length, embedding_dim)
