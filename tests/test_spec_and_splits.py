import numpy as np
import pandas as pd
import pytest

from tower_zoo.data import (CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature,
                            build_interaction_data, leave_last_out)
from tower_zoo.data.memory.splits import history_matrix
from tower_zoo.data.schema.spec import OOVCounter


def _spec():
    return FeatureSpec((
        CategoricalFeature("user_id", "user", (10, 20)),
        CategoricalFeature("item_id", "item", (5, 6, 7)),
        NumericFeature("age", "user", boundaries=(18, 30)),
        NumericFeature("price", "item", mean=10.0, std=2.0),
        SequenceFeature("tags", "item", ("a", "b"), max_length=3),
    ))


def test_encode_indices_oov_buckets_and_padding():
    spec = _spec()
    frame = pd.DataFrame({"user_id": [20, 99], "age": [17, 30], "item_id": [7, 5], "price": [12.0, 8.0],
                          "tags": [["b", "z", "a", "a"], []]})
    counter = OOVCounter()
    out = spec.encode(frame, oov_counter=counter)
    assert out["user_id"].tolist() == [3, 1]          # 20 is vocab[1] -> 1 + 2; 99 is OOV -> 1
    assert out["age"].tolist() == [2, 4]              # 17 < 18 -> bucket 0; 30 >= 30 -> bucket 2
    np.testing.assert_allclose(out["price"], [1.0, -1.0])
    assert out["tags"].tolist() == [[1, 2, 2], [0, 0, 0]]  # keeps the last 3: z(OOV), a, a
    assert counter.counts == {"user_id": 1, "tags": 1}


@pytest.mark.parametrize("column,value,message", [
    ("price", float("nan"), "missing/NaN"),
    ("price", "cheap", "expected numbers"),
    ("tags", "ab", "expected a list"),
    ("user_id", None, "missing/NaN"),
])
def test_encode_rejects_bad_values_naming_the_feature(column, value, message):
    frame = pd.DataFrame({"user_id": [10], "age": [20], "item_id": [5], "price": [1.0], "tags": [["a"]]})
    frame[column] = pd.Series([value], dtype=object)
    with pytest.raises(ValueError, match=f"'{column}'.*{message}|{message}.*'{column}'"):
        _spec().encode(frame)


def test_encode_missing_column_and_empty_frame():
    with pytest.raises(ValueError, match=r"missing feature column\(s\) \['price', 'tags'\]"):
        _spec().encode(pd.DataFrame({"item_id": [5]}), side="item")
    with pytest.raises(ValueError, match="empty"):
        _spec().encode(pd.DataFrame({"item_id": []}), side="item")


def test_spec_round_trips_through_json_and_rejects_duplicates():
    spec = _spec()
    assert FeatureSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="duplicate feature names"):
        FeatureSpec(spec.features + (CategoricalFeature("age", "user", ("x",)),))
    with pytest.raises(KeyError, match="unknown feature 'nope'"):
        spec.get("nope")


def test_history_matrix_uses_only_previous_rows_of_the_same_user():
    positions = np.array([0, 1, 2, 3, 0, 1])
    codes = np.array([11, 12, 13, 14, 21, 22], np.int32)
    out = history_matrix(positions, codes, max_length=2)
    assert out.tolist() == [[0, 0], [11, 0], [11, 12], [12, 13], [0, 0], [21, 0]]


def _tiny_data():
    ratings = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3],
        "item_id": [100, 101, 102, 103, 101, 100, 102],
        "rating": [5, 4, 3, 2, 5, 1, 4],
        # user 1 rated out of time order in the file; the split must sort by timestamp
        "timestamp": [30, 10, 20, 40, 5, 6, 1],
    })
    users = pd.DataFrame({"user_id": [1, 2, 3], "gender": ["F", "M", "F"]})
    items = pd.DataFrame({"item_id": [100, 101, 102, 103], "title": ["a", "b", "c", "d"]})
    return build_interaction_data("tiny", ratings, users, items, history_length=3)


def test_leave_last_out_by_timestamp_with_valid_part():
    split = leave_last_out(_tiny_data(), num_test=1, num_valid=1)
    assert split.test[["user_id", "item_id"]].values.tolist() == [[1, 103]]
    assert split.valid[["user_id", "item_id"]].values.tolist() == [[1, 100]]
    # users 2 and 3 have too few interactions for a train + valid + test split: training only
    assert sorted(split.train["user_id"].tolist()) == [1, 1, 2, 2, 3]
    queries, targets, exclude = split.queries("test")
    assert [t.tolist() for t in targets] == [[103]]
    assert [sorted(e.tolist()) for e in exclude] == [[100, 101, 102]]
    _, valid_targets, valid_exclude = split.queries("valid")
    assert [t.tolist() for t in valid_targets] == [[100]]
    assert [sorted(e.tolist()) for e in valid_exclude] == [[101, 102]]
    spec = split.data.feature_spec
    code = {v: i + 2 for i, v in enumerate(spec.item_id.vocabulary)}
    # user 1's history at test time: 101 (t=10), 102 (t=20), 100 (t=30)
    assert queries["history"][0].tolist() == [code[101], code[102], code[100]]
    examples = split.examples("train")
    assert examples["history"][split.train.index[split.train["item_id"] == 102][0]].tolist() == [code[101], 0, 0]


def test_build_interaction_data_reports_bad_tables():
    data = _tiny_data()
    with pytest.raises(ValueError, match="unknown item_id"):
        build_interaction_data("x", data.ratings.assign(item_id=999), data.users, data.items)
    with pytest.raises(ValueError, match="table 'ratings' is empty"):
        build_interaction_data("x", data.ratings.iloc[:0], data.users, data.items)
    with pytest.raises(ValueError, match="duplicate user_id 1"):
        build_interaction_data("x", data.ratings, pd.concat([data.users, data.users.iloc[:1]]), data.items)


def test_time_split_is_global_by_timestamp_with_labels():
    from tower_zoo.data import time_split

    data = _tiny_data()   # timestamps 30, 10, 20, 40 (user 1), 5, 6 (user 2), 1 (user 3)
    split = time_split(data, test_fraction=0.3)
    assert split.test["timestamp"].min() >= split.train["timestamp"].max()
    assert sorted(split.test["timestamp"].tolist()) == [30, 40]
    assert split.labels("test")["like"].tolist() == [1.0, 0.0]      # ratings 5 (t=30), 2 (t=40)
    assert split.labels("test")["love"].tolist() == [1.0, 0.0]
    spec = split.data.feature_spec
    code = {v: i + 2 for i, v in enumerate(spec.item_id.vocabulary)}
    # The t=40 test impression's history holds all of user 1's earlier items, test-period ones included.
    assert split.test_history[1].tolist() == [code[101], code[102], code[100]]
    with pytest.raises(ValueError, match="test_fraction"):
        time_split(data, test_fraction=1.5)


def test_build_interaction_data_rejects_nan_feature_values():
    data = _tiny_data()
    users = data.users.copy()
    users.loc[1, "gender"] = None
    with pytest.raises(ValueError, match="user feature column 'gender' has a missing/NaN value at row 1"):
        build_interaction_data("x", data.ratings, users, data.items)


def test_pooled_sequence_embedding_equals_masked_mean_and_its_gradient_is_distinct_rows():
    import tensorflow as tf

    from tower_zoo.features import MaskedMeanPooling, PooledSequenceEmbedding

    ids = tf.constant([[3, 5, 3, 0], [0, 0, 0, 0], [7, 2, 0, 0]])
    pooled = PooledSequenceEmbedding(10, 4)
    with tf.GradientTape() as tape:
        got = pooled(ids)
        loss = tf.reduce_sum(got * tf.constant([[1.0], [2.0], [3.0]]))
    table = pooled.embedding.embeddings
    vectors = tf.gather(table, ids) * tf.cast(ids != 0, tf.float32)[..., None]
    np.testing.assert_allclose(got.numpy(), MaskedMeanPooling()(vectors, ids != 0).numpy(), rtol=1e-6)
    assert np.all(got.numpy()[1] == 0.0)                                    # padding only -> zeros
    gradient = tape.gradient(loss, table)
    assert sorted(gradient.indices.numpy().tolist()) == [2, 3, 5, 7]         # each distinct id once
    by_row = dict(zip(gradient.indices.numpy().tolist(), gradient.values.numpy()[:, 0].tolist()))
    # row 0: mean of [3, 5, 3] weighted 1 -> id 3 gets 2/3, id 5 1/3; row 2 weighted 3: ids 7, 2 get 3/2 each
    assert by_row == pytest.approx({3: 2 / 3, 5: 1 / 3, 7: 1.5, 2: 1.5})


def test_pooled_sequence_embedding_is_not_rewritten_into_a_whole_table_read():
    # Grappler's arithmetic optimizer turns Unique → Gather(table) → SparseSegmentMean into a SparseSegmentMean
    # over the whole table (a dense read of all N rows every step: 1M-row tables trained 3–4x slower). In the
    # graph Grappler hands to the runtime, the reduction must still read the gathered rows only.
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.grappler import tf_optimizer

    from tower_zoo.features import PooledSequenceEmbedding

    pooled = PooledSequenceEmbedding(1000, 4)
    pooled(tf.constant([[3, 5, 0]]))
    table = pooled.embedding.embeddings

    @tf.function
    def train_step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(pooled(ids))
        table.scatter_sub(tape.gradient(loss, table))
        return loss

    concrete = train_step.get_concrete_function(tf.TensorSpec([None, 3], tf.int32))
    graph = concrete.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    meta.collection_def["train_op"].node_list.value.extend(
        [op.name for op in graph.get_operations() if op.type == "ResourceScatterSub"]
        + [tensor.op.name for tensor in concrete.outputs])
    optimized = tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)
    nodes = {node.name: node for node in optimized.node}
    reductions = [node for node in optimized.node if node.op.startswith("SparseSegmentMean") and "Grad" not in node.op]
    assert reductions
    for node in reductions:
        assert nodes[node.input[0].split(":")[0]].op == "ResourceGather", nodes[node.input[0].split(":")[0]].op
