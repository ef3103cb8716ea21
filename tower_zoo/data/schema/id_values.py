"""Raw ids -> canonical ids (int64 or string), or one ValueError naming the file, the column and the row.

Two ids are the same user exactly when their canonical values are equal, so nothing here may merge two
distinct raw ids: a float id must be a finite whole number below 2^63 (``inf`` or 1e19 would otherwise
become INT64_MIN), an unsigned id must fit int64, and an integer written as text with leading zeros
(``0377``) is refused unless the schema declares the column's type (``type: string`` keeps it verbatim,
``type: integer`` reads it as 377). Empty, blank and ``nan`` string ids are refused like nulls.

``family`` is "integer" or "string"; ``declared`` says the schema declared it (then an integer column
may hold string ids, as their decimal text, and a text column integer ids); ``text`` says the values
are a CSV file's text (read as strings so that nothing is lost before these checks).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

INT64_MAX = int(np.iinfo(np.int64).max)
_INTEGER_TEXT = r"^-?[0-9]+$"
_PADDED_TEXT = r"^[+-]?0[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?$"  # a number written with leading zeros


def _where(path: str, column: str, row_offset: int, position: int) -> str:
    return f"{path}: column {column!r} row {row_offset + int(position) + 1}"


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def id_family(kind: pa.DataType) -> str:
    """"string" or "integer": the type ids of this Arrow type are compared as."""
    return "string" if is_text(kind) else "integer"


def check_no_nulls(values: pa.Array, path: str, column: str, row_offset: int, what: str) -> None:
    """ValueError naming the file, column and row of the first null or NaN of ``values``."""
    nulls = values.is_null(nan_is_null=True).to_numpy(zero_copy_only=False) if len(values) else np.zeros(0, bool)
    if nulls.any():
        raise ValueError(f"{_where(path, column, row_offset, np.flatnonzero(nulls)[0])}: null/NaN {what}")


def _check_not_blank(values: pa.Array, path: str, column: str, row_offset: int) -> None:
    """Empty, whitespace-only and ``nan`` strings are missing ids written as text."""
    blank = pc.or_(pc.equal(pc.utf8_trim_whitespace(values), ""),
                   pc.equal(pc.utf8_lower(values), "nan")).to_numpy(zero_copy_only=False)
    if blank.any():
        position = int(np.flatnonzero(blank)[0])
        raise ValueError(f"{_where(path, column, row_offset, position)}: null/NaN id (the text "
                         f"{values[position].as_py()!r} is empty, blank or 'nan')")


def _whole_floats(numbers: np.ndarray, rows: np.ndarray, path: str, column: str, row_offset: int) -> np.ndarray:
    """int64 of float ids ``numbers`` (at batch positions ``rows``): finite whole numbers below 2^63."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers)) | (np.abs(numbers) >= 2.0 ** 63)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        value = numbers[index].item()
        reason = ("is outside the int64 range" if np.isfinite(value) and value == np.floor(value)
                  else "is not an integer or a string")
        raise ValueError(f"{_where(path, column, row_offset, rows[index])}: id {value!r} {reason}")
    return numbers.astype(np.int64)


def _from_integers(values: pa.Array, path: str, column: str, row_offset: int) -> pa.Array:
    if pa.types.is_unsigned_integer(values.type):
        numbers = values.to_numpy(zero_copy_only=False)
        outside = numbers > INT64_MAX
        if outside.any():
            position = int(np.flatnonzero(outside)[0])
            raise ValueError(f"{_where(path, column, row_offset, position)}: id {int(numbers[position])} is "
                             f"outside the int64 range ({values.type} column)")
    return values.cast(pa.int64())


def _from_text(values: pa.Array, path: str, column: str, row_offset: int, allow_padding: bool) -> np.ndarray:
    """Integer ids written as text (a CSV column, or a text column declared ``type: integer``)."""
    integer = pc.match_substring_regex(values, _INTEGER_TEXT).to_numpy(zero_copy_only=False)
    if not allow_padding:
        padded = pc.match_substring_regex(values, _PADDED_TEXT).to_numpy(zero_copy_only=False)
        if padded.any():
            position = int(np.flatnonzero(padded)[0])
            text = values[position].as_py()
            number = int(text) if text.lstrip("+-").isdigit() else float(text)
            raise ValueError(f"{_where(path, column, row_offset, position)}: id {text!r} has leading zeros: read "
                             f"as a number it would merge with {number}; declare the column's type in the schema "
                             "(type: string keeps it verbatim, type: integer reads it as a number)")
    out = np.zeros(len(values), np.int64)
    short = integer & (pc.utf8_length(values).to_numpy(zero_copy_only=False) <= 18)  # always within int64
    if short.any():
        out[short] = values.filter(pa.array(short)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    for position in np.flatnonzero(integer & ~short):  # long integers: exactly, or out of range
        out[position] = _one_text_id(values[int(position)].as_py(), _where(path, column, row_offset, position))
    decimal = np.flatnonzero(~integer)  # "1.0" or "1e3" (a CSV of float ids), or not a number at all
    if len(decimal):
        try:
            numbers = values.take(pa.array(decimal)).cast(pa.float64()).to_numpy(zero_copy_only=False)
            out[decimal] = _whole_floats(numbers, decimal, path, column, row_offset)
        except pa.ArrowInvalid:  # some text Arrow cannot read as a number: one by one, naming the first bad one
            for position in decimal:
                out[position] = _one_text_id(values[int(position)].as_py(), _where(path, column, row_offset, position))
    return out


def _one_text_id(text: str, where: str) -> int:
    """One text id that is not a short decimal integer: a long integer or a whole number such as ``1.0``
    (never Python's looser forms: surrounding spaces, ``1_000``)."""
    try:
        if text != text.strip() or "_" in text:
            raise ValueError(text)
        value = int(text)
    except ValueError:
        try:
            number = float(text) if text == text.strip() and "_" not in text else math.nan
        except ValueError:
            raise ValueError(f"{where}: id {text!r} is not an integer, but the column holds integer ids (declare "
                             "type: string in the schema to read every id as text)") from None
        if math.isnan(number):
            raise ValueError(f"{where}: id {text!r} is not an integer, but the column holds integer ids (declare "
                             "type: string in the schema to read every id as text)") from None
        if not np.isfinite(number) or number != np.floor(number):
            raise ValueError(f"{where}: id {text!r} is not an integer or a string") from None
        value = int(number)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(f"{where}: id {text!r} is outside the int64 range")
    return value


def canonical_ids(values: pa.Array, path: str, column: str, row_offset: int, family: str,
                  declared: bool = False, text: bool = False) -> pa.Array:
    """Ids as int64 (``family`` "integer") or string; ValueError naming file, column and row otherwise."""
    check_no_nulls(values, path, column, row_offset, "id")
    if is_text(values.type):
        values = values.cast(pa.string())
        _check_not_blank(values, path, column, row_offset)
    if family == "string":
        if is_text(values.type):
            return values
        if declared and pa.types.is_integer(values.type):  # declared text: an integer's decimal digits
            return _from_integers(values, path, column, row_offset).cast(pa.string())
    elif pa.types.is_floating(values.type):
        numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)
        return pa.array(_whole_floats(numbers, np.arange(len(numbers)), path, column, row_offset))
    elif pa.types.is_integer(values.type) or pa.types.is_null(values.type):
        return _from_integers(values, path, column, row_offset)
    elif is_text(values.type) and (text or declared):
        return pa.array(_from_text(values, path, column, row_offset, allow_padding=declared))
    raise ValueError(f"{path}: column {column!r} holds {values.type} ids, but other files or tables hold "
                     f"{family} ids: ids must have one type (declare the column's type: string in the schema to "
                     "compare every id as text)")
