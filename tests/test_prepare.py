"""`tower-zoo prepare` against references: the in-memory splits, a brute-force history, np.quantile."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prepared_helpers import HISTORY_LENGTH, decoder, example_rows, random_data, schema_dict, write_dataset
from tower_zoo.data.memory.splits import leave_last_out, time_split
from tower_zoo.data.prepare.external_sort import BucketPartitioner, sorted_buckets
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.prepare.split_assign import streamed_quantile
from tower_zoo.data.prepare.vocab import ValueCounter, select_vocabulary
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.schema.dataset_schema import VocabOptions
from tower_zoo.data.schema.spec import NUM_RESERVED, hash_bucket

MANY_BUCKETS = PrepareOptions(max_bucket_rows=60, rows_per_shard=150, batch_rows=97)  # 600 rows: >= 10 buckets


def _prepared(tmp_path, data, split=None, options=MANY_BUCKETS, **schema_overrides) -> PreparedDataset:
    schema_file = write_dataset(data, tmp_path / "source", schema_dict(split, **schema_overrides))
    prepare(str(schema_file), str(tmp_path / "prepared"), options)
    return PreparedDataset.open(tmp_path / "prepared")


def _part(prepared: PreparedDataset, part: str) -> dict:
    chunks = [features for features, _ in prepared.exposure_chunks(part, chunk_size=1_000_000)]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _brute_force_histories(data) -> list[tuple]:
    """(user, item, history) of every interaction with plain loops: the previous HISTORY_LENGTH items of the
    user by (timestamp, file row), oldest first."""
    rows = []
    frame = data.ratings.reset_index(drop=True)
    for user, group in frame.groupby("user_id"):
        ordered = sorted(zip(group["timestamp"], group.index, group["item_id"]))
        items = [item for _, _, item in ordered]
        for position, item in enumerate(items):
            rows.append(((user,), (item,), tuple(items[max(0, position - HISTORY_LENGTH):position])))
    return sorted(rows)


@pytest.mark.parametrize("num_valid", [0, 1])
def test_leave_last_out_parts_and_features_equal_the_in_memory_split(tmp_path, num_valid):
    data = random_data(seed=1)
    prepared = _prepared(tmp_path, data, {"method": "leave_last_out", "num_test": 1, "num_valid": num_valid})
    reference = leave_last_out(data, num_test=1, num_valid=num_valid)
    assert prepared.stats["buckets"] >= 10
    for part in ("train", "valid", "test"):
        expected = example_rows(reference.examples(part), data.feature_spec) if len(getattr(reference, part)) else []
        found = example_rows(_part(prepared, part), prepared.feature_spec) if part in prepared.parts else []
        assert found == expected, part
    sizes = {f.name: f.vocab_size for f in prepared.feature_spec.features}
    assert sizes == {f.name: f.vocab_size for f in data.feature_spec.features}


def test_histories_equal_a_brute_force_reference_whatever_the_split(tmp_path):
    data = random_data(seed=2)
    prepared = _prepared(tmp_path, data, {"method": "random", "test_fraction": 0.3, "seed": 5})
    every_row = {k: np.concatenate([_part(prepared, p)[k] for p in ("train", "test")])
                 for k in ("user_id", "item_id", "history")}
    found = example_rows(every_row, prepared.feature_spec, names=("user_id", "item_id", "history"))
    assert found == _brute_force_histories(data)


def test_time_split_equals_the_in_memory_time_split(tmp_path):
    data = random_data(seed=3)
    prepared = _prepared(tmp_path, data, {"method": "time", "test_fraction": 0.25, "valid_fraction": 0.1})
    reference = time_split(data, test_fraction=0.25, valid_fraction=0.1)
    times = data.ratings["timestamp"].to_numpy()
    assert prepared.stats["time"]["test_cut"] == np.quantile(times, 0.75)
    assert prepared.stats["time"]["valid_cut"] == np.quantile(times, 0.65)
    for part in ("train", "valid", "test"):
        assert example_rows(_part(prepared, part), prepared.feature_spec) == \
            example_rows(reference.examples(part), data.feature_spec), part


def test_random_split_depends_on_the_seed_only(tmp_path):
    data = random_data(seed=4)
    split = {"method": "random", "test_fraction": 0.2, "valid_fraction": 0.1, "seed": 3}
    few = _prepared(tmp_path / "a", data, split, options=PrepareOptions())
    many = _prepared(tmp_path / "b", data, split)
    other = _prepared(tmp_path / "c", data, {**split, "seed": 4})
    assert few.stats["buckets"] == 1 and many.stats["buckets"] >= 10
    for part in ("train", "valid", "test"):
        assert example_rows(_part(few, part), few.feature_spec) == example_rows(_part(many, part), many.feature_spec)
    assert example_rows(_part(few, "test"), few.feature_spec) != example_rows(_part(other, "test"),
                                                                             other.feature_spec)
    assert 0.12 < few.num_rows("test") / 600 < 0.28 and 0.05 < few.num_rows("valid") / 600 < 0.15


@pytest.mark.parametrize("part", ["test", "valid"])
def test_query_chunks_equal_retrieval_split_queries(tmp_path, part):
    data = random_data(seed=5)
    prepared = _prepared(tmp_path, data, {"method": "leave_last_out", "num_test": 2, "num_valid": 1})
    features, targets, exclude = leave_last_out(data, num_test=2, num_valid=1).queries(part)
    expected = {int(user): (example_rows({k: v[[q]] for k, v in features.items()}, data.feature_spec,
                                         ("user_id", "history", "age", "gender")), list(targets[q]), list(exclude[q]))
                for q, user in enumerate(features["user_id"] - NUM_RESERVED)}
    expected = {data.feature_spec.user_id.vocabulary[code]: value for code, value in expected.items()}
    found = {}
    for chunk_features, chunk_targets, chunk_exclude, users in prepared.query_chunks(part, chunk_size=7,
                                                                                     with_user_ids=True):
        for q, user in enumerate(users):
            found[int(user)] = (example_rows({k: v[[q]] for k, v in chunk_features.items()}, prepared.feature_spec,
                                             ("user_id", "history", "age", "gender")),
                                list(chunk_targets[q]), list(chunk_exclude[q]))
    assert found == expected


def test_item_counts_are_a_bincount_of_training_item_codes(tmp_path):
    prepared = _prepared(tmp_path, random_data(seed=6))
    codes = _part(prepared, "train")["item_id"]
    expected = np.bincount(codes, minlength=prepared.feature_spec.item_id.vocab_size)
    np.testing.assert_array_equal(prepared.item_counts(), expected)
    np.testing.assert_array_equal(prepared.example_source("train").item_counts(), expected)
    corpus, ids = prepared.item_corpus()
    assert list(ids) == list(prepared.feature_spec.item_id.vocabulary)
    np.testing.assert_array_equal(corpus["item_id"], np.arange(len(ids)) + NUM_RESERVED)


def test_vocabulary_min_count_max_size_and_hash_buckets(tmp_path):
    counter = ValueCounter(compact_rows=3)
    for chunk in (["a", "b", "a"], ["c", "a", "b"], ["d"]):
        counter.add(pa.array(chunk))
    counts = counter.counts()
    assert list(select_vocabulary(counts, VocabOptions(min_count=1)).to_pylist()) == ["a", "b", "c", "d"]
    assert list(select_vocabulary(counts, VocabOptions(min_count=2)).to_pylist()) == ["a", "b"]
    assert list(select_vocabulary(counts, VocabOptions(max_size=3)).to_pylist()) == ["a", "b", "c"]

    data = random_data(seed=7)
    columns = {"user_id": "user_id", "item_id": {"column": "item_id", "max_size": 10, "hash_buckets": 5},
               "timestamp": "timestamp", "rating": "rating"}
    prepared = _prepared(tmp_path, data, columns=columns, items=None, features={"user": {}})
    spec = prepared.feature_spec
    assert spec.item_id.vocab_size == NUM_RESERVED + 10 + 5 and spec.get("history").vocab_size == 17
    counts = data.ratings["item_id"].value_counts()
    top = sorted(counts.index, key=lambda i: (-counts[i], i))[:10]
    assert list(spec.item_id.vocabulary) == top
    train = _part(prepared, "train")
    codes = train["item_id"]
    hashed = codes >= NUM_RESERVED + 10
    assert hashed.any() and (codes >= NUM_RESERVED).all()
    rest = sorted(set(data.ratings["item_id"]) - set(top))
    expected_codes = NUM_RESERVED + 10 + hash_bucket(np.asarray(rest), 5)
    assert set(codes[hashed]) <= set(expected_codes.tolist())
    assert set(np.unique(train["history"])) <= {0} | set(codes.tolist()) | set(_part(prepared, "test")["item_id"])
    assert prepared.stats["items"]["coverage"] == pytest.approx(counts[top].sum() / len(data.ratings))


def test_out_of_core_sort_equals_an_in_memory_sort(tmp_path):
    rng = np.random.default_rng(0)
    keys = np.array([f"u{k}" for k in rng.zipf(1.3, size=5_000) % 400])
    table = pa.table({"user": keys, "time": rng.integers(0, 50, size=5_000), "row": np.arange(5_000)})
    partitioner = BucketPartitioner(str(tmp_path), table.schema, "user", num_buckets=3, flush_rows=100)
    for batch in table.to_batches(max_chunksize=333):
        partitioner.add(batch)
    buckets = partitioner.close()
    pieces = list(sorted_buckets(buckets, str(tmp_path), "user", ("user", "time", "row"), max_rows=600))
    assert len(pieces) > 3  # oversized buckets were split again
    seen_keys = [set(piece["user"].to_pylist()) for piece in pieces]
    assert sum(len(s) for s in seen_keys) == len(set().union(*seen_keys))  # every key in exactly one bucket
    merged = pa.concat_tables(pieces).to_pandas().sort_values(["user", "time", "row"]).reset_index(drop=True)
    expected = table.to_pandas().sort_values(["user", "time", "row"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, expected)
    for piece in pieces:
        frame = piece.to_pandas()
        pd.testing.assert_frame_equal(frame, frame.sort_values(["user", "time", "row"]))
    assert not list(tmp_path.iterdir())  # bucket files are deleted once read


@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 0.999])
def test_streamed_quantile_equals_np_quantile(q):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(-10**12, 10**12, size=3_000), np.full(500, 7)])
    batches = lambda: iter(np.array_split(values, 7))  # noqa: E731
    assert streamed_quantile(batches, len(values), int(values.min()), int(values.max()), q) == np.quantile(values, q)


def test_history_decoder_round_trip():
    data = random_data(seed=8)
    decode = decoder(data.feature_spec, "item_id")
    assert list(decode([0, 1, 2])) == ["<pad>", "<oov>", data.feature_spec.item_id.vocabulary[0]]


def test_movielens_100k_schema_gives_the_rows_and_vocabularies_of_leave_last_out(tmp_path):
    from tower_zoo.data import movielens_100k
    from tower_zoo.data.builtin.resolve import builtin_schema

    data = movielens_100k()
    reference = leave_last_out(data)
    prepare(builtin_schema("movielens-100k"), str(tmp_path / "ml"))
    prepared = PreparedDataset.open(tmp_path / "ml")
    assert (prepared.num_rows("train"), prepared.num_rows("test")) == (len(reference.train), len(reference.test))
    assert prepared.feature_spec.names == data.feature_spec.names
    assert {f.name: f.vocab_size for f in prepared.feature_spec.features} == \
        {f.name: f.vocab_size for f in data.feature_spec.features}
    names = ("user_id", "item_id", "history", "gender", "age", "occupation", "zip_prefix", "year", "genres")
    assert example_rows(_part(prepared, "test"), prepared.feature_spec, names) == \
        example_rows(reference.examples("test"), data.feature_spec, names)
    assert sorted(prepared.parts) == ["test", "test_queries", "train"]


def test_string_ids_give_the_same_examples_as_integer_ids(tmp_path):
    data = random_data(seed=9)
    numeric = _prepared(tmp_path / "int", data)
    for table, columns in (("ratings", ("user_id", "item_id")), ("users", ("user_id",)), ("items", ("item_id",))):
        frame = getattr(data, table)
        for column in columns:
            frame[column] = column[0] + frame[column].astype(str)
    textual = _prepared(tmp_path / "str", data)

    def as_text(row):
        user, item, history = row[:3]
        return (("u" + str(user[0]),), ("i" + str(item[0]),), tuple("i" + str(h) for h in history), *row[3:])

    for part in ("train", "test"):
        expected = sorted(as_text(row) for row in example_rows(_part(numeric, part), numeric.feature_spec))
        assert example_rows(_part(textual, part), textual.feature_spec) == expected
    _, targets, _, users = next(textual.query_chunks("test", chunk_size=1000, with_user_ids=True))
    assert users.dtype == object and str(users[0]).startswith("u") and str(targets[0][0]).startswith("i")


def test_movielens_1m_schema_reads_the_grouplens_files(tmp_path, monkeypatch):
    from test_movielens import _write_ml1m
    from tower_zoo.data import movielens_1m
    from tower_zoo.data.builtin.resolve import builtin_schema

    monkeypatch.setenv("TOWER_ZOO_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "ml-1m"
    source.mkdir()
    _write_ml1m(source)
    prepare(builtin_schema("movielens-1m", data_dir=str(source)), str(tmp_path / "out"))
    prepared = PreparedDataset.open(tmp_path / "out")
    reference = leave_last_out(movielens_1m(source))
    assert {f.name: f.vocab_size for f in prepared.feature_spec.features} == \
        {f.name: f.vocab_size for f in reference.data.feature_spec.features}
    assert prepared.num_rows("train") == len(reference.train)
    assert any((tmp_path / "cache" / "schema-sources").iterdir())
