"""``rq_target_attention``: TARQ (Li et al., arXiv 2509.16931), target attention made cacheable by
residual quantization of the items, co-trained with its multi-head target-attention teacher.

Item side (offline, cached per item): the item tower's vector e [D] and its residual-quantization codes
(k_1..k_L), e ≈ Σ_l C_l[k_l] over L codebooks of K codewords (``ResidualQuantizer``).

User side (once per request): the *attended codebook*, target attention over the user's history with
every codeword as the query,

    A[l, k] = MHA(C_l[k], X, X)        for l < L, k < K:  L·K vectors of D   (``attended_codebook``)

with the same multi-head attention form as the teacher (H heads of D/H). Cost: L·K·T·D per request.

Per candidate: gather its L codes' rows and add them, then a dot product:

    h = Σ_l A[l, k_l]          logit = <s + h, e> / T + b

O(L·D + D) multiply-adds, independent of the history length T (``candidate_logits`` reads only the
[B, L, K, D] table, the static vector s and the item's codes and vector).

Training (one Keras fit, ``RankingTask``): the student's BCE on the exposure labels plus
``auxiliary_loss``:

* teacher co-training: a ``target_attention`` teacher (``self.teacher``) learns from the same batch with its
  own BCE (``teacher_weight``); nothing of the student moves it;
* representation-level distillation (``distill_weight``): mean_b ||h_b - sg(h_teacher,b)||², the student's
  code-gathered vector against the teacher's attention output for the same (user, candidate) pair, under
  stop-gradient so only the student moves;
* per-level codebook alignment (``alignment_weight``): Σ_l ||sg(r_l) - C_l[k_l]||² + β·||r_l - sg(C_l[k_l])||²,
  each level's codebook pulled to the residual r_l of the item vector it quantizes and the item tower
  committed to the codewords (``ResidualQuantizer.quantize``).

Why co-training and not a pre-trained teacher's predictions: the teacher's target for a batch comes from
the teacher's weights *before* its update on that batch, so in the first epoch every distillation target
is an out-of-sample (progressive) prediction; a pre-trained teacher's predictions on its own training
rows would be in-sample. Cross-fitting (K teachers, each predicting its held-out fold) works for logits
but not for representations: K teachers have K unrelated representation spaces, and the student can
match only one. In later epochs the co-trained teacher has seen the rows in earlier epochs, as in any
co-training; ``tower_zoo.training.tarq.fit_tarq`` stops on the validation AUC (ML-100K: epoch 1–3).
The teacher is used only in training; serving runs the student path alone.

Reading of the paper. Neither the paper's method section nor its code (github.com/zyody/tarq_sigir2026)
was in our stores; this follows the issue / DESIGN description (attended codebook, gather-and-sum,
representation distillation, per-level codebook alignment) and published summaries (two-tower backbone,
offline target-attention teacher, online RQ-attention student). Our choices where the text we had is
silent: the alignment loss is the per-level RQ codebook + commitment loss above; the score is
<s + h, e> with the unquantized cached item vector e; the history is attended directly (the paper's
backbone first runs self-attention over it); codebooks start from k-means on the item tower's outputs
(``initialize_codebooks``). ``codebook_usage`` reports codewords used per level and their perplexity.

Measured (``benchmarks/tarq_cost.md``, ML-100K time split, 3 seeds): the student costs ~0.5 µs per
candidate at T = 10, 50 and 200 against the teacher's 4.8 to 50 µs; test AUC of teacher, student and
co-trained student all lie within noise of one another (≈ 0.69): on this data the teacher is not yet
measurably stronger than the student.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from tower_zoo.layers import ResidualQuantizer
from tower_zoo.models.base import LABEL_FEATURE
from tower_zoo.models.config_checks import check_at_least
from tower_zoo.models.target_attention import (HistoryTowersModel, TargetAttentionConfig, TargetAttentionTeacher,
                                               history_attention)
from tower_zoo.registry import register_model


@dataclasses.dataclass
class RQTargetAttentionConfig(TargetAttentionConfig):
    """Student: L levels of K codewords, the commitment β, the loss weights, and the co-trained teacher
    (``use_teacher=False``: no teacher, no distillation)."""

    num_levels: int = 3
    codebook_size: int = 64
    commitment: float = 0.25
    alignment_weight: float = 1.0
    use_teacher: bool = True
    teacher_weight: float = 1.0
    distill_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_at_least(self, {"num_levels": 1, "codebook_size": 2, "commitment": 0, "alignment_weight": 0,
                              "teacher_weight": 0, "distill_weight": 0})

    def teacher_config(self) -> TargetAttentionConfig:
        """The teacher's config: every field the two share."""
        return TargetAttentionConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TargetAttentionConfig)})


def gather_attended(attended_codebook: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
    """Σ_l A[b, l, codes[b, l]]: attended codebook [B, L, K, D] and codes [B, L] -> [B, D]."""
    rows = tf.gather(attended_codebook, codes[..., tf.newaxis], axis=2, batch_dims=2)  # [B, L, 1, D]
    return tf.reduce_sum(rows[:, :, 0], axis=1)


def gather_attended_all_pairs(attended_codebook: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
    """Every user against every item: A [B, L, K, D] and codes [N, L] -> [B, N, D]."""
    levels = attended_codebook.shape[1]
    return tf.add_n([tf.gather(attended_codebook[:, level], codes[:, level], axis=1) for level in range(levels)])


@register_model("rq_target_attention", RQTargetAttentionConfig)
class RQTargetAttention(HistoryTowersModel):
    """Per-user attended codebook, per-candidate gather-and-sum (the student), co-trained with a teacher."""

    config_class = RQTargetAttentionConfig

    def __init__(self, feature_spec, config: RQTargetAttentionConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.attention = history_attention(c, "codebook_attention")
        self.quantizer = ResidualQuantizer(c.num_levels, c.codebook_size, c.commitment, name="quantizer")
        self.quantizer.build(tf.TensorShape([None, c.embedding_dim]))
        self.teacher = (TargetAttentionTeacher(self.feature_spec, c.teacher_config(), name="teacher")
                        if c.use_teacher else None)

    # ------------------------------------------------------------------ the two sides
    def item_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        """{"vector": e [B, D], "codes": int32 [B, L]}: what is cached per item."""
        vector = self.item_tower(features, training=training)
        _, codes, _ = self.quantizer.quantize(vector)
        return {"vector": vector, "codes": codes}

    def attended_codebook(self, features) -> tf.Tensor:
        """A [B, L, K, D]: the user's history attended with every codeword as the query."""
        c = self.config
        state = self.history_state(features)
        queries = tf.reshape(self.quantizer.codebooks, [c.num_levels * c.codebook_size, c.embedding_dim])
        attended = self.attention(queries, state["history"], state["mask"])   # [B, L·K, D]
        return tf.reshape(attended, [-1, c.num_levels, c.codebook_size, c.embedding_dim])

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        """{"attended_codebook": [B, L, K, D], "static": [B, D]}: computed once per request."""
        return {"attended_codebook": self.attended_codebook(features), "static": self.static_vector(features, training)}

    def call(self, features, training=False) -> dict[str, Any]:
        """The training path: {"user": history state + static vector, "item": codes + vector}. ``pair_logits``
        then attends with each row's own L codewords only, the same values as gathering from the full
        attended codebook at L/(L·K) of its cost (a test checks the two agree)."""
        user = {**self.history_state(features), "static": self.static_vector(features, training)}
        return {"user": user, "item": self.item_embedding(features, training=training)}

    # ------------------------------------------------------------------ per candidate: O(L·D)
    def interest(self, user_embedding, codes) -> tf.Tensor:
        """h = Σ_l A[l, k_l] [B, D]: gathered from the attended codebook when the user state has one (serving),
        else attended directly with the row's own codewords C_l[k_l] (training)."""
        if "attended_codebook" in user_embedding:
            return gather_attended(user_embedding["attended_codebook"], codes)
        queries = tf.stack([tf.gather(self.quantizer.codebooks[level], codes[:, level])
                            for level in range(self.config.num_levels)], axis=1)       # [B, L, D]
        attended = self.attention(queries, user_embedding["history"], user_embedding["mask"])
        return tf.reduce_sum(attended, axis=1)

    def candidate_logits(self, attended_codebook, static, codes, vector) -> tf.Tensor:
        """Row-aligned logits [B] from the table [B, L, K, D], s [B, D] and the item's codes [B, L] and e [B, D]."""
        return self._logit(static, gather_attended(attended_codebook, codes), vector)

    def _logit(self, static, interest, vector) -> tf.Tensor:
        return self.temperature(tf.reduce_sum((static + interest) * vector, axis=-1)) + self.score_bias

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        return self._logit(user_embedding["static"], self.interest(user_embedding, item_embedding["codes"]),
                           item_embedding["vector"])

    def candidate_list_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """[B, C] for each user's own C candidates (codes [B, C, L], vectors [B, C, D]) without copying the
        [L, K, D] table per candidate: a gather of C code rows per level from the user's own table."""
        codes, table = item_embedding["codes"], user_embedding["attended_codebook"]
        interest = tf.add_n([tf.gather(table[:, level], codes[:, :, level], axis=1, batch_dims=1)
                             for level in range(self.config.num_levels)])                   # [B, C, D]
        user = user_embedding["static"][:, tf.newaxis] + interest
        return self.temperature(tf.reduce_sum(user * item_embedding["vector"], axis=-1)) + self.score_bias

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """All pairs [B, N] without tiling the users' tables: a gather of N code rows per level."""
        interest = gather_attended_all_pairs(user_embedding["attended_codebook"], item_embedding["codes"])
        user = user_embedding["static"][:, tf.newaxis] + interest                          # [B, N, D]
        return self.temperature(tf.einsum("bnd,nd->bn", user, item_embedding["vector"])) + self.score_bias

    # ------------------------------------------------------------------ training
    def alignment_losses(self, item_embedding) -> tf.Tensor:
        """[L] per-level codebook alignment losses of the batch's item vectors."""
        return self.quantizer.quantize(item_embedding["vector"])[2]

    def distillation_loss(self, features, user_embedding, item_embedding, training=False) -> tf.Tensor:
        """mean_b ||h_b - sg(h_teacher,b)||²: the student's code-gathered vector against the teacher's attention
        output for the same pair."""
        teacher_towers = self.teacher(features, training=training)
        target = tf.stop_gradient(self.teacher.interest(teacher_towers["user"], teacher_towers["item"]))
        student = self.interest(user_embedding, item_embedding["codes"])
        return tf.reduce_mean(tf.reduce_sum(tf.square(student - target), axis=-1))

    def teacher_loss(self, features, training=False) -> tf.Tensor:
        """The co-trained teacher's BCE on the batch's labels (0 without labels)."""
        if LABEL_FEATURE not in features:
            return tf.constant(0.0)
        logits = self.teacher.score(features, features, training=training)
        labels = tf.cast(features[LABEL_FEATURE], logits.dtype)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        c = self.config
        loss = c.alignment_weight * tf.reduce_sum(self.alignment_losses(item_embedding))
        if self.teacher is not None:
            loss += c.teacher_weight * self.teacher_loss(features, training)
            loss += c.distill_weight * self.distillation_loss(features, user_embedding, item_embedding, training)
        return loss

    def build_weights(self) -> "RQTargetAttention":
        features = self.dummy_features()
        self.logits(self.user_embedding(features), self.item_embedding(features))
        self.pair_logits(*self(features).values())
        if self.teacher is not None:
            self.teacher.build_weights()
        return self

    # ------------------------------------------------------------------ codebooks
    def initialize_codebooks(self, item_features: dict[str, Any], seed: int = 0) -> None:
        """k-means initialization of the codebooks on the item tower's current outputs for a corpus."""
        self.quantizer.initialize_from(self.item_tower(item_features).numpy(), seed=seed)

    def codebook_usage(self, item_features: dict[str, Any], batch_size: int = 2048) -> dict[str, Any]:
        """Over an item corpus: codewords used per level (count, fraction), code perplexity per level,
        and the relative reconstruction error ||e - e_q||² / ||e||²."""
        size = len(next(iter(item_features.values())))
        codes, errors, norms = [], 0.0, 0.0
        for start in range(0, size, batch_size):
            vector = self.item_tower({k: v[start:start + batch_size] for k, v in item_features.items()})
            quantized, chunk_codes, _ = self.quantizer(vector)
            codes.append(chunk_codes.numpy())
            errors += float(tf.reduce_sum(tf.square(vector - quantized)))
            norms += float(tf.reduce_sum(tf.square(vector)))
        codes = np.concatenate(codes)
        used, perplexity = [], []
        for level in range(codes.shape[1]):
            counts = np.bincount(codes[:, level], minlength=self.config.codebook_size)
            p = counts[counts > 0] / counts.sum()
            used.append(int((counts > 0).sum()))
            perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
        return {"used": used, "used_fraction": [u / self.config.codebook_size for u in used],
                "perplexity": perplexity, "relative_reconstruction_error": errors / max(norms, 1e-12)}
