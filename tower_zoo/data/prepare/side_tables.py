"""User and item feature tables: their FeatureSpec features and their rows encoded once.

A side table is read whole (it grows with the vocabulary, not with the interactions). Each feature
of the schema becomes one ``tower_zoo.data.schema.spec`` feature whose vocabulary / statistics come from
the table's rows, and the table is encoded into arrays with one row per table row plus a last
row of defaults for ids the table lacks: OOV for categorical and bucketized features, 0 (the mean)
for standardized ones, an empty (all padding) list for multi-valued ones. Prepare gathers these
rows for every interaction by the row of its raw id (``rows_of``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tower_zoo.data.prepare.vocab import ValueCounter, VocabularyEncoder, as_python_vocabulary, select_vocabulary
from tower_zoo.data.schema.dataset_schema import MAX_SEQUENCE_LENGTH, DatasetSchema, FeatureDef
from tower_zoo.data.schema.files import FileRows
from tower_zoo.data.schema.spec import (OOV_INDEX, PAD_INDEX, CategoricalFeature, NumericFeature, SequenceFeature,
                                        NUM_RESERVED)


@dataclasses.dataclass
class EncodedSideTable:
    """One side's table encoded: ``features[name]`` has T + 1 rows (row T: an id not in the table)."""

    side: str
    ids: pa.Array                       # raw ids [T], canonical type
    features: dict[str, np.ndarray]     # int32 [T+1] / float32 [T+1] / int32 [T+1, L]
    display: dict[str, pa.Array]        # display columns [T]
    oov_rates: dict[str, float]         # share of the table's values outside each vocabulary

    def __post_init__(self):
        self._lookup = pd.Index(self.ids.to_numpy(zero_copy_only=False))

    @property
    def num_rows(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: pa.Array | np.ndarray) -> np.ndarray:
        """int64 [N]: the table row of each raw id, ``num_rows`` (the defaults row) if absent."""
        raw = ids.to_numpy(zero_copy_only=False) if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids
        if len(raw) == 0:
            return np.zeros(0, np.int64)
        rows = self._lookup.get_indexer(raw)
        return np.where(rows < 0, self.num_rows, rows).astype(np.int64)

    def gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``{feature: values at rows}`` for table rows from ``rows_of``."""
        return {name: values[rows] for name, values in self.features.items()}


def _missing_mask(values: pa.Array, feature: FeatureDef, origins: FileRows) -> np.ndarray:
    """bool [T]: null / NaN values; a ValueError naming file, column and row unless allow_missing."""
    if not feature.allow_missing:
        nulls = values.is_null(nan_is_null=True).to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, bool)
        if nulls.any():
            row = int(np.flatnonzero(nulls)[0])
            raise ValueError(f"{origins.locate(row)}: column {feature.column!r} (feature {feature.name!r}) is "
                             "null/NaN; fill it, or set allow_missing: true")
    return values.is_null(nan_is_null=True).to_numpy(zero_copy_only=False)


def _check_finite(values: pa.Array, feature: FeatureDef, missing: np.ndarray, origins: FileRows) -> None:
    """A numeric feature's present values are finite (an ``inf`` would standardize every row to NaN)."""
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return  # reported by _numeric with the type
    numbers = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(numbers) & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{origins.locate(row)}: column {feature.column!r} (numeric feature {feature.name!r}) is "
                         f"{numbers[row]}; expected a finite number")


def _categorical(feature: FeatureDef, values: pa.Array, missing: np.ndarray):
    counter = ValueCounter()
    present = values.filter(pa.array(~missing))
    counter.add(present)
    vocabulary = select_vocabulary(counter.counts(), feature.vocab)
    encoder = VocabularyEncoder(vocabulary, feature.vocab.hash_buckets)
    codes, found = encoder.encode(values)
    codes[missing] = OOV_INDEX
    oov = float((~found & ~missing).sum() / max(1, (~missing).sum()))
    spec = CategoricalFeature(feature.name, feature.side, as_python_vocabulary(vocabulary),
                              feature.vocab.embedding_dim, feature.vocab.hash_buckets)
    return spec, np.append(codes, np.int32(OOV_INDEX)), oov


def _numeric(feature: FeatureDef, values: pa.Array, missing: np.ndarray, where: str):
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type)):
        raise ValueError(f"{where}: column {feature.column!r} (numeric feature {feature.name!r}) has type "
                         f"{values.type}; expected numbers")
    numbers = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    present = numbers[~missing]
    boundaries = feature.boundaries
    if feature.num_buckets and len(present):
        quantiles = np.quantile(present, np.arange(1, feature.num_buckets) / feature.num_buckets)
        boundaries = tuple(float(b) for b in np.unique(quantiles))
    if boundaries:
        spec = NumericFeature(feature.name, feature.side, boundaries=boundaries)
        codes = (np.searchsorted(np.asarray(boundaries), numbers, side="right") + NUM_RESERVED).astype(np.int32)
        codes[missing] = OOV_INDEX
        return spec, np.append(codes, np.int32(OOV_INDEX)), 0.0
    mean = float(present.mean()) if len(present) else 0.0
    std = float(present.std(ddof=1)) if len(present) > 1 else 1.0
    std = std if np.isfinite(std) and std > 0 else 1.0
    spec = NumericFeature(feature.name, feature.side, mean, std)
    standardized = np.where(missing, 0.0, (numbers - mean) / std).astype(np.float32)
    return spec, np.append(standardized, np.float32(0.0)), 0.0


def _lists(feature: FeatureDef, values: pa.Array, where: str, origins: FileRows) -> pa.ListArray:
    """The column as a list array without empty strings (a string column is split on the separator); a
    null inside a list is a ValueError naming file, column and row, or dropped with allow_missing."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        if feature.separator is None:
            raise ValueError(f"{where}: column {feature.column!r} (multi-valued feature {feature.name!r}) holds "
                             "strings: give a separator, or store lists")
        values = pc.split_pattern(values.cast(pa.string()), feature.separator)
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)
            or pa.types.is_fixed_size_list(values.type)):
        raise ValueError(f"{where}: column {feature.column!r} (multi-valued feature {feature.name!r}) has type "
                         f"{values.type}; expected lists or separated strings")
    values = values.cast(pa.list_(values.type.value_type))
    flat = pc.list_flatten(values)
    parents = pc.list_parent_indices(values).to_numpy()
    keep = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    if not feature.allow_missing and not keep.all():
        row = int(parents[np.flatnonzero(~keep)[0]])
        raise ValueError(f"{origins.locate(row)}: column {feature.column!r} (multi-valued feature {feature.name!r}) "
                         "holds a null inside its list; remove it, or set allow_missing: true")
    if pa.types.is_string(flat.type):
        keep &= pc.not_equal(flat, "").fill_null(False).to_numpy(zero_copy_only=False)
    lengths = np.bincount(parents[keep], minlength=len(values))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(pa.array(keep)))


def right_padded(codes: np.ndarray, lengths: np.ndarray, max_length: int) -> np.ndarray:
    """int32 [N, max_length]: each row's last ``max_length`` codes (of ``codes`` split by ``lengths``),
    in order, right-padded with PAD_INDEX."""
    out = np.full((len(lengths), max_length), PAD_INDEX, np.int32)
    if len(codes):
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = np.arange(len(codes)) - starts
        skipped = np.repeat(np.maximum(lengths - max_length, 0), lengths)
        kept = position >= skipped
        rows = np.repeat(np.arange(len(lengths)), lengths)
        out[rows[kept], (position - skipped)[kept]] = codes[kept]
    return out


def _multi_valued(feature: FeatureDef, values: pa.Array, where: str, origins: FileRows):
    lists = _lists(feature, values, where, origins)  # a missing (null) list comes out empty
    lengths = np.diff(lists.offsets.to_numpy()).astype(np.int64)
    flat = lists.values
    counter = ValueCounter()
    counter.add(flat)
    vocabulary = select_vocabulary(counter.counts(), feature.vocab)
    encoder = VocabularyEncoder(vocabulary, feature.vocab.hash_buckets)
    codes, found = encoder.encode(flat)
    max_length = feature.max_length or max(1, int(lengths.max(initial=0)))
    if max_length > MAX_SEQUENCE_LENGTH:  # the longest list decides when the schema gives no max_length
        row = int(np.argmax(lengths))
        raise ValueError(f"{origins.locate(row)}: column {feature.column!r} (multi-valued feature {feature.name!r}) "
                         f"holds {max_length:,} values, more than {MAX_SEQUENCE_LENGTH:,}; set max_length to keep "
                         "the last ones")
    spec = SequenceFeature(feature.name, feature.side, as_python_vocabulary(vocabulary), max_length,
                           feature.vocab.embedding_dim, feature.vocab.hash_buckets)
    matrix = right_padded(codes, lengths, max_length)
    oov = float((~found).sum() / max(1, len(found)))
    return spec, np.vstack([matrix, np.zeros((1, max_length), np.int32)]), oov


def encode_side_table(schema: DatasetSchema, side: str, table: pa.Table, origins: FileRows
                      ) -> tuple[list, EncodedSideTable]:
    """(spec features of ``side`` in schema order, the encoded table)."""
    table_spec = schema.table(side)
    where = f"{side}s table {origins.paths[0]!r}" if len(origins.paths) == 1 else f"{side}s table"
    specs, encoded, oov_rates = [], {}, {}
    for feature in schema.side_features(side):
        values = table.column(feature.column).combine_chunks()
        missing = _missing_mask(values, feature, origins)
        if feature.kind == "categorical":
            spec, codes, oov = _categorical(feature, values, missing)
        elif feature.kind == "numeric":
            _check_finite(values, feature, missing, origins)
            spec, codes, oov = _numeric(feature, values, missing, where)
        else:
            spec, codes, oov = _multi_valued(feature, values, where, origins)
        specs.append(spec)
        encoded[feature.name] = codes
        oov_rates[feature.name] = oov
    display = {column: table.column(column).combine_chunks() for column in table_spec.display}
    ids = table.column(table_spec.id).combine_chunks()
    return specs, EncodedSideTable(side, ids, encoded, display, oov_rates)


def empty_side_table(side: str, ids: pa.Array) -> EncodedSideTable:
    """A side without a table (id features only)."""
    return EncodedSideTable(side, ids.slice(0, 0), {}, {}, {})
