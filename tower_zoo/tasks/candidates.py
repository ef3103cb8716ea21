"""Candidate sources: where the columns of a retrieval batch's candidate matrix come from.

A retrieval batch holds B (user, positive item) rows. Each source contributes candidate columns and,
for each column, the log of the *expected number of times* that source puts the column's item into a
row, ``log q`` (see ``tower_zoo.tasks.losses`` for why the count, not a probability):

* ``InBatchCandidates``: the positives of the (global) batch. Item j is expected B · c_j · P_j / N
  times among B rows, with c_j its training count, N the number of training rows and P_j its
  down-sampling keep probability (1 without down-sampling). Rows dropped by down-sampling are not
  candidates.
* ``SampledCandidates``: M items drawn with replacement from the corpus with p_j ∝ max(c_j, floor)^α,
  shared by every row: log q = log(M · p_j). Draws are stateless, seeded by (seed, training step).
* ``HardNegativeCandidates``: K items per row, drawn uniformly from a band of W ranks of a previous
  model (``tower_zoo.training.hard_negatives``): each item of the band is expected K / W times,
  log q = log(K / W).

Every source returns ``CandidateColumns``; the retrieval task concatenates them. Sources hold
constants only (no variables), so they add nothing to a model's checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.keys import HARD_NEGATIVES, KEEP
from tower_zoo.tasks.samplers import AliasSampler


@dataclasses.dataclass
class CandidateColumns:
    """Columns one source adds for B rows.

    similarities: float [B, C] raw similarities (before the temperature).
    log_q: float [B, C], or [1, C] when shared by every row: log of each column's expected count under its
      source.
    codes: int [B, C] or [1, C]: item codes (accidental hits are found by code).
    usable: bool [B, C] or [1, C] or None (all usable): False where a column must not serve as a negative.
    positive_columns: int [B] or None: the column of each row's positive, for a source that holds them.
    """

    similarities: tf.Tensor
    log_q: tf.Tensor
    codes: tf.Tensor
    usable: tf.Tensor | None = None
    positive_columns: tf.Tensor | None = None


@dataclasses.dataclass
class Scorer:
    """What a source needs from the model (or from one of its objective heads).

    embed_items(features) -> item vectors [M, ...]; similarity(users [B, ...], items [N, ...]) -> [B, N];
    paired_similarity(users [B, ...], items [B, M, ...]) -> [B, M].
    """

    embed_items: Callable[[Mapping[str, tf.Tensor]], tf.Tensor]
    similarity: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    paired_similarity: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def gather_item_rows(table: Mapping[str, tf.Tensor], rows: tf.Tensor) -> dict[str, tf.Tensor]:
    """``{feature: [I, ...]}`` item table, int rows [M] -> ``{feature: [M, ...]}``."""
    return {name: tf.gather(values, rows) for name, values in table.items()}


def all_gather_rows(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Concatenates ``values`` [b, ...] over every replica of the global batch; also returns where
    this replica's rows start. Without distribution: (values, 0)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values, tf.constant(0, tf.int32)
    if values.dtype.is_integer:  # cross-worker collectives reject int32 (host-memory) tensors
        gathered = tf.cast(context.all_gather(tf.cast(values, tf.int64), axis=0), values.dtype)
    else:
        gathered = context.all_gather(values, axis=0)
    sizes = context.all_gather(tf.cast(tf.shape(values)[:1], tf.int64), axis=0)
    return gathered, tf.cast(tf.reduce_sum(sizes[:context.replica_id_in_sync_group]), tf.int32)


class InBatchCandidates(tf.keras.layers.Layer):
    """The global batch's positives as candidates; query i's positive is its own column.

    Args:
      log_rate: float [item vocab]: log(c_j · P_j / N), the expected share of rows holding item j.
    """

    def __init__(self, log_rate: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.log_rate = tf.constant(np.asarray(log_rate, np.float32))

    def columns(self, scorer: Scorer, queries: tf.Tensor, positives: tf.Tensor, codes: tf.Tensor,
                batch: Mapping[str, tf.Tensor]) -> CandidateColumns:
        rows = tf.shape(codes)[0]
        all_items, offset = all_gather_rows(positives)
        all_codes, _ = all_gather_rows(codes)
        global_rows = tf.cast(tf.shape(all_codes)[0], tf.float32)
        log_q = tf.gather(self.log_rate, all_codes) + tf.math.log(global_rows)
        usable = None
        if KEEP in batch:
            kept, _ = all_gather_rows(batch[KEEP])
            usable = (kept > 0.5)[tf.newaxis, :]
        return CandidateColumns(scorer.similarity(queries, all_items), log_q[tf.newaxis, :],
                                all_codes[tf.newaxis, :], usable, offset + tf.range(rows))


class SampledCandidates(tf.keras.layers.Layer):
    """``num_samples`` items drawn from the corpus with ``probabilities``, shared by the batch.

    Args:
      item_table: the encoded item corpus ``{item feature: [I, ...]}``.
      item_codes: int [I] the item-id code of each corpus row.
      probabilities: float [I] draw probability of each corpus row (``unigram_probabilities``).
      num_samples: M draws per batch.
      vocab_size: the item-id vocabulary size (codes index ``positive_log_q``).
      seed: the sampler's seed; a batch's draws are a function of (seed, training step).
    """

    def __init__(self, item_table: Mapping[str, np.ndarray], item_codes: np.ndarray, probabilities: np.ndarray,
                 num_samples: int, vocab_size: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.item_table = {name: tf.constant(values) for name, values in item_table.items()}
        self.sampler = AliasSampler(probabilities)
        code_p = np.zeros(vocab_size)
        code_p[np.asarray(item_codes, np.int64)] = probabilities
        self.code_log_q = tf.constant(np.log(np.maximum(code_p * num_samples, 1e-30)), tf.float32)

    def positive_log_q(self, codes: tf.Tensor) -> tf.Tensor:
        """log(M · p) of the given items [B]: the positive's correction when it is not an in-batch column."""
        return tf.gather(self.code_log_q, codes)

    def columns(self, scorer: Scorer, queries: tf.Tensor, step: tf.Tensor, item_id_feature: str) -> CandidateColumns:
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        sampled_rows, log_q = self.sampler.sample(self.num_samples, seed)
        sampled = gather_item_rows(self.item_table, sampled_rows)
        similarities = scorer.similarity(queries, scorer.embed_items(sampled))
        return CandidateColumns(similarities, log_q[tf.newaxis, :], sampled[item_id_feature][tf.newaxis, :])


class HardNegativeCandidates(tf.keras.layers.Layer):
    """Per-row item-table rows in ``batch[HARD_NEGATIVES]`` [B, K], drawn from a band of ``band_width`` ranks.

    Args:
      item_table: the encoded item corpus ``{item feature: [I, ...]}``.
      num_negatives: K per row.
      band_width: W, the number of ranks each row's K negatives were drawn from.
    """

    def __init__(self, item_table: Mapping[str, np.ndarray], num_negatives: int, band_width: int, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= num_negatives <= band_width:
            raise ValueError(f"need 1 <= hard negatives <= rank band width, got {num_negatives} and {band_width}")
        self.num_negatives, self.band_width = int(num_negatives), int(band_width)
        self.item_table = {name: tf.constant(values) for name, values in item_table.items()}

    def columns(self, scorer: Scorer, queries: tf.Tensor, batch: Mapping[str, tf.Tensor],
                item_id_feature: str) -> CandidateColumns:
        table_rows = batch[HARD_NEGATIVES]
        rows, k = tf.shape(table_rows)[0], self.num_negatives
        hard = gather_item_rows(self.item_table, tf.reshape(table_rows, [-1]))
        vectors = scorer.embed_items(hard)  # [B·K, ...]
        vectors = tf.reshape(vectors, tf.concat([[rows, k], tf.shape(vectors)[1:]], 0))
        log_q = tf.fill([rows, k], math.log(k / self.band_width))
        return CandidateColumns(scorer.paired_similarity(queries, vectors), log_q,
                                tf.reshape(hard[item_id_feature], [rows, k]))
