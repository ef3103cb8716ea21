"""SavedModels of a retrieval (dot-product) model: the user tower, and top-k search on stock TensorFlow.

* ``UserTowerModule`` -> ``user_tower/``; signatures ``serving_default`` (raw user features, see
  ``raw_features``) and ``encoded`` (the encoded features the model consumes), both ``{"embedding": [B, D]}``.
* ``ExactTopKModule`` -> ``retrieval/``: raw user features -> ``{"ids": int64 [B, k], "scores": float32 [B, k]}``
  by exact search over the item matrix held as a variable: blocks of ``block_size`` items, a matrix product
  and ``tf.math.top_k`` per block, merged into the running top k (ties keep corpus order, as
  ``ExactIndex``). ``serving_default`` takes the user features; ``exclude`` also takes ``exclude_ids`` int64
  [B, E] (raw item ids right-padded with the padding id), each row's ids masked out of its results. Rows with
  fewer than k eligible items end with id -1 and score -inf. Only stock ops: TensorFlow Serving loads it.
* ``ScannTopKModule`` -> ``retrieval_scann/`` (optional): the same inputs, approximate search by a ScaNN index
  inside the SavedModel (TFRS's layer). It needs ScaNN's custom ops in the server (``import scann`` in Python;
  a TensorFlow Serving build with ScaNN's ops linked in), which stock TensorFlow Serving lacks.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from tower_zoo.serving.raw_features import RawFeatureEncoder, graph_assert


def _encoded_signature(spec, names) -> dict[str, tf.TensorSpec]:
    signature = {}
    for name in names:
        feature = spec.get(name)
        if feature.kind == "sequence":
            signature[name] = tf.TensorSpec([None, feature.max_length], tf.int32, name=name)
        elif feature.kind == "numeric" and not feature.bucketized:
            signature[name] = tf.TensorSpec([None], tf.float32, name=name)
        else:
            signature[name] = tf.TensorSpec([None], tf.int32, name=name)
    return signature


class UserTowerModule(tf.Module):
    """``serve(**raw) -> {"embedding": [B, D]}`` and ``serve_encoded(**encoded) -> {"embedding": [B, D]}``."""

    def __init__(self, model, encoder: RawFeatureEncoder):
        super().__init__(name="user_tower")
        self.model, self.encoder = model, encoder
        names = [f.name for f in encoder.features]
        self.serve = tf.function(self._serve).get_concrete_function(**encoder.signature)
        self.serve_encoded = tf.function(self._serve_encoded).get_concrete_function(
            **_encoded_signature(model.feature_spec, names))

    def _serve(self, **raw):
        return {"embedding": self.model.user_embedding(self.encoder.encode(raw))}

    def _serve_encoded(self, **encoded):
        return {"embedding": self.model.user_embedding(encoded)}

    def signatures(self) -> dict:
        return {"serving_default": self.serve, "encoded": self.serve_encoded}


def id_rows_table(item_ids: np.ndarray, asset_dir: str, name: str) -> tf.lookup.StaticHashTable:
    """Raw int64 item id -> row in ``item_ids`` (-1 when absent), initialized from an asset file."""
    path = os.path.join(asset_dir, f"{name}.txt")
    with open(path, "w") as handle:
        handle.writelines(f"{int(i)}\n" for i in item_ids)
    initializer = tf.lookup.TextFileInitializer(path, tf.int64, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                                                tf.lookup.TextFileIndex.LINE_NUMBER, vocab_size=len(item_ids))
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def blocked_top_k(queries: tf.Tensor, blocks: tf.Tensor, num_items: int, k: int,
                  excluded_rows: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact top-k by dot product, one block of items at a time.

    queries [B, D]; blocks [num_blocks, S, D] (the item matrix zero-padded to num_blocks · S rows, padding rows
    never returned); excluded_rows int64 [B, E] (-1 = none). Returns (rows int64 [B, k], scores [B, k]); rows
    that are not found are -1 with score -inf.
    """
    batch, block_size = tf.shape(queries)[0], tf.shape(blocks)[1]
    best_scores = tf.fill([batch, k], tf.constant(-np.inf, queries.dtype))
    best_rows = tf.fill([batch, k], tf.constant(-1, tf.int64))
    for block in tf.range(tf.shape(blocks)[0]):
        tf.autograph.experimental.set_loop_options(
            shape_invariants=[(best_scores, tf.TensorShape([None, k])), (best_rows, tf.TensorShape([None, k]))])
        start = tf.cast(block * block_size, tf.int64)
        scores = tf.matmul(queries, blocks[block], transpose_b=True)  # [B, S]
        rows = start + tf.range(tf.cast(block_size, tf.int64))
        scores = tf.where((rows < num_items)[tf.newaxis], scores, -np.inf)
        if excluded_rows is not None:
            inside = (excluded_rows >= start) & (excluded_rows < start + tf.cast(block_size, tf.int64))
            positions = tf.where(inside)  # [M, 2]: (query, slot)
            columns = tf.gather_nd(excluded_rows, positions) - start
            indices = tf.stack([positions[:, 0], columns], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, indices, tf.fill([tf.shape(indices)[0]], -np.inf))
        block_scores, block_rows = tf.math.top_k(scores, k=tf.minimum(k, block_size))
        merged_scores = tf.concat([best_scores, block_scores], axis=1)  # earlier blocks first: ties keep order
        merged_rows = tf.concat([best_rows, start + tf.cast(block_rows, tf.int64)], axis=1)
        best_scores, order = tf.math.top_k(merged_scores, k=k)
        best_rows = tf.gather(merged_rows, order, batch_dims=1)
    return tf.where(tf.math.is_finite(best_scores), best_rows, -1), best_scores


class ExactTopKModule(tf.Module):
    """User features -> the top ``k`` items by exact search (see the module docstring)."""

    def __init__(self, model, encoder: RawFeatureEncoder, item_vectors: np.ndarray, item_ids: np.ndarray, k: int,
                 asset_dir: str, padding_id: int = -1, block_size: int = 65_536):
        super().__init__(name="exact_top_k")
        num_items, dim = item_vectors.shape
        if not 1 <= k <= num_items:
            raise ValueError(f"k must be in [1, {num_items}] (the number of items), got {k}")
        block = min(block_size, num_items)
        blocks = math.ceil(num_items / block)
        padded = np.zeros((blocks * block, dim), np.float32)
        padded[:num_items] = item_vectors
        self.model, self.encoder, self.k, self.num_items = model, encoder, k, num_items
        self.padding_id = padding_id
        self.item_blocks = tf.Variable(padded.reshape(blocks, block, dim), trainable=False, name="item_blocks")
        self.item_ids = tf.Variable(np.asarray(item_ids, np.int64), trainable=False, name="item_ids")
        self.item_rows = id_rows_table(item_ids, asset_dir, "item_ids")
        exclude = {"exclude_ids": tf.TensorSpec([None, None], tf.int64, name="exclude_ids")}
        self.serve = tf.function(self._serve).get_concrete_function(**encoder.signature)
        self.serve_excluding = tf.function(self._serve_excluding).get_concrete_function(
            **encoder.signature, **exclude)

    def _search(self, raw, excluded_rows=None):
        queries = self.model.user_embedding(self.encoder.encode(raw))
        rows, scores = blocked_top_k(queries, self.item_blocks, self.num_items, self.k, excluded_rows)
        return {"ids": tf.where(rows >= 0, tf.gather(self.item_ids, tf.maximum(rows, 0)), -1), "scores": scores}

    def _serve(self, **raw):
        return self._search(raw)

    def _serve_excluding(self, exclude_ids, **raw):
        exclude_ids = tf.ensure_shape(exclude_ids, [None, None], name="exclude_ids")
        batch = tf.shape(next(iter(raw.values())))[0]
        graph_assert(tf.equal(tf.shape(exclude_ids)[0], batch), "exclude_ids has a different number of rows than the "
                "user features:", tf.shape(exclude_ids)[0], batch)
        rows = self.item_rows.lookup(exclude_ids)  # unknown ids and padding: -1, nothing to exclude
        return self._search(raw, tf.where(tf.equal(exclude_ids, self.padding_id), tf.constant(-1, tf.int64), rows))

    def signatures(self) -> dict:
        return {"serving_default": self.serve, "exclude": self.serve_excluding}


class _QueryModel(tf.keras.Model):
    """Encoded user features -> user vectors, the query model TFRS's ScaNN layer calls. The raw features are
    encoded before the layer: a Keras layer casts float64 inputs to float32, which would move a number next to
    a bucket boundary."""

    def __init__(self, model):
        super().__init__(name="user_tower")
        self.model = model

    def call(self, features):
        return self.model.user_embedding(features)


class ScannTopKModule(tf.Module):
    """Raw user features -> approximate top ``k`` by a ScaNN index inside the SavedModel (needs ScaNN's ops)."""

    def __init__(self, model, encoder: RawFeatureEncoder, item_vectors: np.ndarray, item_ids: np.ndarray, k: int,
                 knobs: dict, dims_per_block: int):
        super().__init__(name="scann_top_k")
        import tensorflow_recommenders as tfrs

        self.layer = tfrs.layers.factorized_top_k.ScaNN(
            _QueryModel(model), k=k, num_leaves=knobs["num_leaves"],
            num_leaves_to_search=knobs["num_leaves_to_search"], num_reordering_candidates=knobs["reorder_k"],
            dimensions_per_block=dims_per_block)
        self.layer.index(tf.constant(item_vectors), tf.constant(np.asarray(item_ids, np.int64)))
        self.encoder = encoder
        self.serve = tf.function(self._serve).get_concrete_function(**encoder.signature)

    def _serve(self, **raw):
        scores, ids = self.layer(self.encoder.encode(raw))
        return {"ids": ids, "scores": scores}

    def signatures(self) -> dict:
        return {"serving_default": self.serve}
