"""``mvke``: Mixture of Virtual-Kernel Experts (Xu et al., KDD 2022, "Mixture of Virtual-Kernel Experts for
Multi-Objective User Profile Modeling"; arXiv 2106.07356).

User tower: K learned virtual kernels c_1..c_K [K, D]. Each kernel attends over the user's feature fields
e_1..e_F (query W_q c_k, keys W_k e_f, values W_v e_f, softmax over fields with 1/√D scaling), each field
keeps its own slot: x_{k,f} = LayerNorm(a_{k,f} W_v e_f + e_f); expert k's own MLP maps the K-th view
[x_{k,1} .. x_{k,F}] to E_k [D]. These are the virtual-kernel experts (VKE).

Item (tag) tower: a shared MLP with one linear head per objective t, v_t [D].

Gate (VKG), one per objective: g_t = softmax over the objective's kernels S_t of <v_t, c_k> (zero outside
S_t; objectives may share kernels, as the paper's CTR/CVR ranges do), and the user's vector for that
candidate and objective is u_t(v) = Σ_k g_{t,k} E_k. The score is <u_t(v), v_t> / T: the user side depends
on the candidate, but only through a gate the item side computes on its own, so it factorizes exactly:

    <Σ_k g_{t,k} E_k, v_t> = <[E_1, .., E_K], [g_{t,1} v_t, .., g_{t,K} v_t]>,

a dot product of K · D floats. ``objective_user_embedding`` / ``objective_item_embedding`` return these
[B, objectives, K · D] vectors (the multi-objective retrieval task trains one loss per objective on them);
``user_embedding`` is [E_1 .. E_K] and ``item_embedding`` Σ_t w_t [g_t ⊗ v_t] (fusion weights w_t).

Serving cost (measured in ``benchmarks/multifeedback.py``): per user, the K expert vectors (K · D floats,
the paper's "k·|U|" space); per item, the gated vector (K · D floats). Retrieval is exact with one
inner-product index over K · D dimensions (ANN works unchanged); the alternative the paper's deployment
implies, K searches of D-dimensional item vectors (one per expert, item vectors Σ_t w_t g_{t,k} v_t) merged
and re-scored exactly, is ``tower_zoo.evaluation.expert_search``.

Read from the paper and its released TF1 code (github motefly/MVKE, ``core/mvke_ops.py``: ``mvke_bottom_layer``,
``vcg_layer``; ``model_graph_type.py``: ``user_MVKE_and_tag_HS``). Deviations: the towers train with this
library's retrieval task (in-batch softmax with log q by default, positive pairs only) instead of the paper's
pointwise BCE on exposures (no exposures in a retrieval split; ``loss="bce"`` is closer); the tag tower is one
shared MLP with a head per objective instead of one tower per objective.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP, MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_activation, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class MVKEConfig(TwoTowerConfig):
    """num_kernels K; objective_kernels: per objective, the (first, last) kernel its gate mixes (inclusive);
    expert_units: each expert's MLP (ends at embedding_dim, the kernels' width); item_units: the tag tower."""

    embedding_dim: int = 32
    num_kernels: int = 4
    objectives: tuple[str, ...] = ("click", "like")
    objective_kernels: tuple[tuple[int, int], ...] = ((0, 2), (1, 3))
    fusion_weights: tuple[float, ...] = (1.0, 1.0)
    expert_units: tuple[int, ...] = (64, 32)
    item_units: tuple[int, ...] = (128, 32)
    activation: str = "relu"
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "expert_units", "item_units")
        check_activation(self.activation)
        if self.num_kernels < 1:
            raise ValueError(f"num_kernels must be >= 1, got {self.num_kernels}")
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives must be distinct names, got {self.objectives}")
        for name, values in (("objective_kernels", self.objective_kernels), ("fusion_weights", self.fusion_weights)):
            if len(values) != len(self.objectives):
                raise ValueError(f"{name} {values} must align with objectives {self.objectives}")
        for name, (first, last) in zip(self.objectives, self.objective_kernels):
            if not 0 <= first <= last < self.num_kernels:
                raise ValueError(f"objective_kernels for {name!r} must be 0 <= first <= last < num_kernels="
                                 f"{self.num_kernels}, got {(first, last)}")
        for name in ("expert_units", "item_units"):
            if getattr(self, name)[-1] != self.embedding_dim:
                raise ValueError(f"{name} must end at embedding_dim={self.embedding_dim} (the gate compares item "
                                 f"vectors with the kernels), got {getattr(self, name)}")


class VirtualKernelExperts(tf.keras.layers.Layer):
    """Fields [B, F, D] and kernels [K, D] -> expert vectors [B, K, D_out] (see the module docstring).

    ``attention(fields, kernels)`` -> [B, F, K] softmax over fields of each kernel's query against the keys.
    """

    def __init__(self, num_kernels: int, units: Sequence[int], activation: str = "relu", **kwargs: Any):
        super().__init__(**kwargs)
        self.num_kernels, self.units, self.activation = int(num_kernels), tuple(int(u) for u in units), activation
        self.experts = [MLP(self.units, activation, name=f"expert_{k}") for k in range(self.num_kernels)]
        self.layer_norm = tf.keras.layers.LayerNormalization(name="layer_norm")

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.query = tf.keras.layers.Dense(dim, use_bias=True, name="query")
        self.key = tf.keras.layers.Dense(dim, use_bias=True, name="key")
        self.value = tf.keras.layers.Dense(dim, use_bias=True, name="value")
        super().build(input_shape)

    def attention(self, fields: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
        scores = tf.einsum("bfd,kd->bfk", self.key(fields), self.query(kernels)) / math.sqrt(int(fields.shape[-1]))
        return tf.nn.softmax(scores, axis=1)

    def call(self, fields: tf.Tensor, kernels: tf.Tensor, training: bool = False) -> tf.Tensor:
        weights = self.attention(fields, kernels)                                   # [B, F, K]
        views = weights[..., tf.newaxis] * self.value(fields)[:, :, tf.newaxis]      # [B, F, K, D]
        views = self.layer_norm(views + fields[:, :, tf.newaxis])
        flat = tf.reshape(tf.transpose(views, [2, 0, 1, 3]), [self.num_kernels, -1, fields.shape[1] * fields.shape[2]])
        return tf.stack([expert(flat[k], training=training) for k, expert in enumerate(self.experts)], axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_kernels": self.num_kernels, "units": list(self.units),
                "activation": self.activation}


class VirtualKernelGate(tf.keras.layers.Layer):
    """One objective's gate: item vectors [N, D] and kernels [K, D] -> weights [N, K], a softmax of <v, c_k>
    over kernels ``first..last`` (inclusive), zero elsewhere."""

    def __init__(self, first: int, last: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.first, self.last = int(first), int(last)

    def call(self, items: tf.Tensor, kernels: tf.Tensor) -> tf.Tensor:
        selected = tf.nn.softmax(tf.matmul(items, kernels[self.first:self.last + 1], transpose_b=True), axis=-1)
        return tf.pad(selected, [[0, 0], [self.first, int(kernels.shape[0]) - 1 - self.last]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "first": self.first, "last": self.last}


@register_model("mvke", MVKEConfig)
class MVKE(TwoTowerModel):
    """Virtual-kernel experts gated per objective by the item. Users [B, K · D], items [B, K · D]."""

    config_class = MVKEConfig

    def __init__(self, feature_spec, config: MVKEConfig | None = None, **kwargs: Any):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.user_fields = FieldEmbedding(self.feature_spec, "user", c.embedding_dim, self.side_feature_names("user"),
                                          name="user_fields")
        self.kernels = self.add_weight("virtual_kernels", shape=(c.num_kernels, c.embedding_dim),
                                       initializer=tf.keras.initializers.RandomNormal(stddev=0.1))
        self.experts = VirtualKernelExperts(c.num_kernels, c.expert_units, c.activation, name="experts")
        self.item_tower = MLPTower(self.feature_spec, "item", c.embedding_dim, c.item_units[:-1],
                                   self.side_feature_names("item"), c.activation, name="item_tower")
        self.item_heads = [tf.keras.layers.Dense(c.embedding_dim, name=f"item_head_{o}") for o in c.objectives]
        self.gates = [VirtualKernelGate(first, last, name=f"gate_{o}")
                      for o, (first, last) in zip(c.objectives, c.objective_kernels)]
        self.fusion = tf.Variable(c.fusion_weights, trainable=False, dtype=tf.float32, name="fusion_weights")

    @property
    def objective_names(self) -> tuple[str, ...]:
        return self.config.objectives

    # ------------------------------------------------------------------ the two sides
    def expert_vectors(self, features, training=False) -> tf.Tensor:
        """[B, K, D]: the user's virtual-kernel expert outputs E_k (what serving caches per user)."""
        return self.experts(self.user_fields(features), self.kernels, training=training)

    def objective_item_vectors(self, features, training=False) -> tuple[tf.Tensor, tf.Tensor]:
        """(vectors [B, objectives, D], gates [B, objectives, K]): each objective's tag vector and its gate."""
        shared = self.item_tower(features, training=training)
        vectors = [head(shared) for head in self.item_heads]
        gates = [gate(v, self.kernels) for gate, v in zip(self.gates, vectors)]
        return tf.stack(vectors, axis=1), tf.stack(gates, axis=1)

    def _flat_user(self, features, training) -> tf.Tensor:
        return tf.reshape(self.expert_vectors(features, training), [-1, self.config.num_kernels * self.config.embedding_dim])

    def _gated(self, vectors: tf.Tensor, gates: tf.Tensor) -> tf.Tensor:
        """[B, T, D], [B, T, K] -> [B, T, K · D] of g_{t,k} v_t."""
        outer = gates[..., tf.newaxis] * vectors[:, :, tf.newaxis]
        return tf.reshape(outer, [-1, len(self.gates), self.config.num_kernels * self.config.embedding_dim])

    def objective_user_embedding(self, features, training=False) -> tf.Tensor:
        """[B, T, K · D]: [E_1 .. E_K] for every objective (the gate lives on the item side)."""
        flat = self._flat_user(features, training)
        return tf.tile(flat[:, tf.newaxis], [1, len(self.gates), 1])

    def objective_item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, T, K · D]: [g_{t,1} v_t .. g_{t,K} v_t] per objective t."""
        return self._gated(*self.objective_item_vectors(features, training))

    def user_embedding(self, features, training=False) -> tf.Tensor:
        return self._flat_user(features, training)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K · D]: Σ_t w_t [g_t ⊗ v_t], the fused objectives."""
        gated = self.objective_item_embedding(features, training)
        return tf.reduce_sum(gated * self.fusion[tf.newaxis, :, tf.newaxis], axis=1)

    def gated_user_vectors(self, user_features, item_features, training=False) -> tf.Tensor:
        """The paper's item-dependent user vectors, row-aligned pairs: [B, T, D] of Σ_k g_{t,k}(item) E_k(user)."""
        experts = self.expert_vectors(user_features, training)
        _, gates = self.objective_item_vectors(item_features, training)
        return tf.einsum("btk,bkd->btd", gates, experts)

    def set_fusion_weights(self, weights: Sequence[float]) -> None:
        """Changes the scoring-time fusion weights of the objectives."""
        if len(weights) != len(self.gates):
            raise ValueError(f"need {len(self.gates)} weights, got {list(weights)}")
        self.fusion.assign([float(w) for w in weights])
