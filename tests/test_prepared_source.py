"""PreparedDataset and ShardExampleSource: deterministic epochs, every row once, down-sampling, the manifest."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.store.manifest import MANIFEST_FILE, PreparedDataError

READER = {"shuffle_rows": 64, "read_rows": 16, "cycle_length": 2}  # small, so the buffer carries rows over


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    schema_file = write_dataset(random_data(seed=11, num_rows=900), root / "source", schema_dict())
    prepare(str(schema_file), str(root / "out"), PrepareOptions(rows_per_shard=200, max_bucket_rows=100))
    return PreparedDataset.open(root / "out")


def _rows(batches) -> list[tuple]:
    """Every example of ``batches`` as a hashable tuple (all keys)."""
    rows = []
    for batch in batches:
        batch = {k: np.asarray(v) for k, v in batch.items()}
        size = len(batch["item_id"])
        rows += [tuple(tuple(np.atleast_1d(batch[k][i]).tolist()) for k in sorted(batch)) for i in range(size)]
    return rows


def _all_rows(prepared):
    rows = []
    for features, labels in prepared.exposure_chunks("train", chunk_size=10_000):
        reserved = {f"__label_{k}__": v for k, v in labels.items()}
        rows += _rows([{**features, **reserved, "__label__": labels["like"]}])
    return sorted(rows)


def test_every_row_exactly_once_per_epoch_and_batches_deterministic(prepared):
    source = prepared.example_source("train", **READER)
    assert source.num_rows == prepared.num_rows("train") and len(prepared.part_files("train")) >= 3
    first = _rows(source.dataset(batch_size=50, seed=3, epoch=0))
    assert sorted(first) == _all_rows(prepared)
    again = _rows(prepared.example_source("train", **READER).dataset(batch_size=50, seed=3, epoch=0))
    assert again == first                                       # same seed and epoch: same batches
    second_epoch = _rows(source.dataset(batch_size=50, seed=3, epoch=1))
    other_seed = _rows(source.dataset(batch_size=50, seed=4, epoch=0))
    assert second_epoch != first and other_seed != first
    assert sorted(second_epoch) == sorted(first)


def test_a_variable_epoch_is_read_when_each_epoch_starts(prepared):
    source = prepared.example_source("train", **READER)
    epoch = tf.Variable(0, dtype=tf.int64)
    dataset = source.dataset(batch_size=64, seed=1, epoch=epoch)
    epoch_0 = _rows(dataset)
    epoch.assign(1)
    epoch_1 = _rows(dataset)
    assert epoch_0 == _rows(source.dataset(batch_size=64, seed=1, epoch=0))
    assert epoch_1 == _rows(source.dataset(batch_size=64, seed=1, epoch=1))


def test_batch_sizes_and_drop_remainder(prepared):
    source = prepared.example_source("train", **READER)
    sizes = [len(b["item_id"]) for b in source.epoch_batches(0, 128, seed=0)]
    assert sizes[:-1] == [128] * (len(sizes) - 1) and sum(sizes) == source.num_rows
    dropped = [len(b["item_id"]) for b in source.epoch_batches(0, 128, seed=0, drop_remainder=True)]
    assert dropped == [128] * (source.num_rows // 128)
    static = source.dataset(batch_size=128, seed=0, epoch=0, drop_remainder=True)
    assert static.element_spec["history"].shape.as_list() == [128, 4]
    assert source.dataset(batch_size=128, seed=0, epoch=0).element_spec["item_id"].shape.as_list() == [None]
    unshuffled = _rows(source.epoch_batches(0, 128, seed=0, shuffle=False))
    assert unshuffled == _rows(source.epoch_batches(5, 128, seed=9, shuffle=False))


def test_down_sampling_by_item_keep_probability_is_stateless(prepared):
    source = prepared.example_source("train", **READER)
    vocab = prepared.feature_spec.item_id.vocab_size
    counts = source.item_counts()
    hot = int(np.argmax(counts))
    keep = np.ones(vocab, np.float32)
    keep[hot] = 0.0
    keep[hot - 1 if hot > 2 else hot + 1] = 0.5  # a warm item: some of its rows kept
    batches = list(source.epoch_batches(2, 32, seed=7, keep_probability=keep))
    items = np.concatenate([batch["item_id"] for batch in batches])
    marks = np.concatenate([batch["__keep__"] for batch in batches])
    assert len(items) == source.num_rows                    # dropped rows stay in their batch, marked 0
    half = hot - 1 if hot > 2 else hot + 1
    assert marks[items == hot].sum() == 0 and 0 < marks[items == half].sum() < counts[half]
    assert marks[(items != hot) & (items != half)].min() == 1.0
    kept = _rows(batches)
    # the draws depend on (seed, epoch, row), not on the order rows are read in
    reordered = prepared.example_source("train", shuffle_rows=8, read_rows=5, cycle_length=3)
    assert sorted(_rows(reordered.epoch_batches(2, 32, seed=7, keep_probability=keep))) == sorted(kept)
    assert sorted(_rows(source.epoch_batches(3, 32, seed=7, keep_probability=keep))) != sorted(kept)


def test_exposures_carry_labels_and_queries_stream_in_chunks(prepared):
    features, labels = next(prepared.exposure_chunks("test", chunk_size=10))
    assert set(labels) == {"like"} and labels["like"].dtype == np.float32 and len(labels["like"]) <= 10
    assert set(features) == set(prepared.feature_spec.names)
    sizes = [len(chunk[1]) for chunk in prepared.query_chunks("test", chunk_size=4)]
    assert max(sizes) <= 4 and sum(sizes) == prepared.num_rows("test_queries")
    with pytest.raises(ValueError, match="part 'valid_queries' is empty or absent"):
        next(prepared.query_chunks("valid"))


def _copy(prepared, tmp_path):
    import shutil
    target = tmp_path / "copy"
    shutil.copytree(prepared.path, target)
    return target


@pytest.mark.parametrize("damage,message", [
    ("truncate_shard", "truncated or modified"),
    ("edit_stats", "SHA-256 differs"),
    ("remove_items", "items.parquet is missing"),
    ("no_manifest", "no manifest.json"),
    ("future_version", "format_version 99 is not supported"),
])
def test_a_damaged_directory_is_refused(prepared, tmp_path, damage, message):
    target = _copy(prepared, tmp_path)
    shard = target / "train" / "part-00000.parquet"
    if damage == "truncate_shard":
        shard.write_bytes(shard.read_bytes()[:-10])
    elif damage == "edit_stats":
        text = (target / "stats.json").read_text()
        (target / "stats.json").write_text(text.replace('"name"', '"nome"'))
    elif damage == "remove_items":
        os.remove(target / "items.parquet")
    elif damage == "no_manifest":
        os.remove(target / MANIFEST_FILE)
    else:
        manifest = json.loads((target / MANIFEST_FILE).read_text())
        (target / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(PreparedDataError, match=message):
        PreparedDataset.open(target)


def test_a_modified_shard_of_the_same_size_is_caught_with_verify_shards(prepared, tmp_path):
    target = _copy(prepared, tmp_path)
    shard = target / "train" / "part-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    PreparedDataset.open(target)  # sizes only by default
    with pytest.raises(PreparedDataError, match="SHA-256 differs"):
        PreparedDataset.open(target, verify_shards=True)


def test_changed_sources_are_reported_as_stale(tmp_path):
    schema_file = write_dataset(random_data(seed=12, num_rows=100), tmp_path / "source", schema_dict())
    prepare(str(schema_file), str(tmp_path / "out"))
    prepared = PreparedDataset.open(tmp_path / "out")
    assert prepared.stale_sources() == []
    assert [os.path.basename(r["path"]) for r in prepared.manifest["sources"]] == \
        ["ratings.parquet", "users.parquet", "items.parquet"]
    ratings = tmp_path / "source" / "ratings.parquet"
    ratings.write_bytes(ratings.read_bytes() + b"\0")
    assert prepared.stale_sources() == [f"{ratings} (changed)"]
    os.remove(ratings)
    assert prepared.stale_sources() == [f"{ratings} (missing)"]
