"""Client side of a raw-feature request: Python values (a DataFrame, or {name: list or array}) -> the numpy
arrays a serving signature takes, or one ValueError naming the feature and the value.

The SavedModels check their inputs themselves (``raw_features``); this module gives the same mistakes a
clearer message before they reach TensorFlow, and pads ragged sequences with the sentinel:

* unknown or missing features, an empty batch, different row counts;
* a wrong dtype: an int64 id that is not an integer (1.5, "2", 2**63), a string feature given numbers, a
  numeric feature given text or a non-finite value;
* a wrong rank: a list where one value per row is expected, or a scalar where a sequence is.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.spec import first_non_int64


def _shown(value: Any) -> Any:
    """A value as its user wrote it (numpy scalars as Python ones), for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _column(values: Any) -> list | np.ndarray:
    if hasattr(values, "to_numpy"):
        return values.to_numpy()
    if isinstance(values, (np.ndarray, list, tuple)):
        return values if isinstance(values, np.ndarray) else list(values)
    raise ValueError(f"expected one value per row (a list or array), got {type(values).__name__}")


def _scalars(name: str, values, dtype: tf.DType, rows: Any = None, first_row: int = 0) -> np.ndarray:
    """One flat array of ``dtype`` from ``values`` (already one level deep), or a ValueError naming them (rows
    numbered from ``first_row``; ``rows``: the row of each value, when they are a flattened sequence)."""
    where = ((lambda i: f" at row {rows[i] + first_row}") if rows is not None else
             (lambda i: f" at row {i + first_row}"))
    if not isinstance(values, np.ndarray) or values.dtype == object:
        nested = [i for i, v in enumerate(values) if isinstance(v, (list, tuple, np.ndarray))]
        if nested:
            raise ValueError(f"feature {name!r}: expected one value per row, got a list{where(nested[0])}: "
                             f"{_shown(values[nested[0]])!r}")
    array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object if any(
        isinstance(v, (str, bytes)) for v in values) else None)
    if array.ndim != 1:
        raise ValueError(f"feature {name!r}: expected one value per row (shape [rows]), got shape {array.shape}")
    if dtype == tf.string:
        bad = [i for i, v in enumerate(array) if not isinstance(v, (str, bytes))]
        if bad:
            value = _shown(array[bad[0]])
            raise ValueError(f"feature {name!r}: expected strings, got {value!r} ({type(value).__name__})"
                             f"{where(bad[0])}")
        return array.astype(object)
    if dtype == tf.int64:
        problem = first_non_int64(array)
        if problem is not None:
            raise ValueError(f"feature {name!r}: id {problem[1]!r}{where(problem[0])} {problem[2]}")
        return array.astype(np.int64)
    if array.dtype.kind not in "iuf":
        bad = next(i for i, v in enumerate(array) if isinstance(v, (str, bytes, bool, np.bool_)) or v is None
                   or not np.isscalar(v)) if array.dtype == object else 0
        raise ValueError(f"feature {name!r}: expected numbers, got {_shown(array[bad])!r}{where(bad)}")
    numbers = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise ValueError(f"feature {name!r}: non-finite value {numbers[bad[0]]}{where(bad[0])}")
    return numbers


def _sequence(name: str, values, dtype: tf.DType, padding, first_row: int = 0) -> np.ndarray:
    """A ragged list of rows (or a 2-D array) -> a right-padded [rows, T] matrix (T >= 1); errors number the
    rows from ``first_row``."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        values = list(values)
    lists = []
    for row, value in enumerate(values):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise ValueError(f"feature {name!r}: expected a list of values at row {row + first_row}, got "
                             f"{_shown(value)!r}")
        lists.append(list(value))
    width = max([len(v) for v in lists] + [1])
    flat = [x for v in lists for x in v]
    lengths = np.asarray([len(v) for v in lists])
    flat_rows = np.repeat(np.arange(len(lists)), lengths)
    codes = _scalars(name, np.asarray(flat, dtype=object) if flat else np.zeros(0, np.int64), dtype, flat_rows,
                     first_row)
    out = np.full((len(lists), width), padding, dtype=object if dtype == tf.string else np.int64)
    out[flat_rows, np.concatenate([np.arange(n) for n in lengths]) if flat else []] = codes
    return out


def request_arrays(signature: Mapping[str, tf.TensorSpec], values: Mapping[str, Any],
                   padding: Mapping[str, Any], first_row: int = 0) -> dict[str, np.ndarray]:
    """``values`` ({name: column} or a DataFrame) checked against ``signature`` (raw inputs by name).

    ``padding``: the sentinel of each sequence feature. Extra DataFrame columns that are not features are an
    error only for a mapping (a DataFrame may carry ids or display columns). Errors number the rows from
    ``first_row`` (0: the request's own rows; a file reader passes its rows' place in the file)."""
    columns = list(values.columns) if hasattr(values, "columns") else list(values)
    unknown = sorted(set(columns) - set(signature))
    if unknown and not hasattr(values, "columns"):
        raise ValueError(f"unknown feature {unknown[0]!r} in the request; this export takes: "
                         f"{', '.join(sorted(signature))}")
    missing = sorted(set(signature) - set(columns))
    if missing:
        raise ValueError(f"the request lacks feature(s) {missing}; this export takes: {', '.join(sorted(signature))}")
    arrays, reference = {}, None
    for name, spec in signature.items():
        try:
            column = _column(values[name])
        except ValueError as err:
            raise ValueError(f"feature {name!r}: {err}") from None
        if len(column) == 0:
            raise ValueError(f"empty batch: feature {name!r} has 0 rows")
        if spec.shape.rank == 2:
            arrays[name] = _sequence(name, column, spec.dtype, padding[name], first_row)
        else:
            arrays[name] = _scalars(name, column, spec.dtype, first_row=first_row)
        if reference is None:
            reference = (name, len(arrays[name]))
        elif len(arrays[name]) != reference[1]:
            raise ValueError(f"feature {name!r} has {len(arrays[name])} rows where {reference[0]!r} has "
                             f"{reference[1]}")
    return arrays


def id_matrix(lists, padding_id: int, name: str, first_row: int = 0) -> np.ndarray:
    """Ragged lists of raw int64 ids (candidates, excluded items) -> a right-padded int64 [rows, T] matrix."""
    return _sequence(name, lists, tf.int64, padding_id, first_row)


def _request_error(err: tf.errors.InvalidArgumentError) -> str:
    """The line of a serving graph's error that says what is wrong (an assertion or a shape check)."""
    for line in err.message.replace("\\'", "'").splitlines():
        line = line.strip()
        if line.startswith(("assertion failed:", "Shape of tensor", "cannot compute")):
            return line.replace("assertion failed: ", "")
    return " ".join(err.message.split())


def call_signature(function, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Calls a loaded signature with numpy ``inputs``; its in-graph request checks become one ValueError."""
    try:
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(f"the serving model refused the request: {_request_error(err)}") from None
    return {name: value.numpy() for name, value in outputs.items()}
