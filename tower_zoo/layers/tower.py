"""A feature tower: field embeddings -> flatten -> MLP -> optional L2 norm."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.features import FieldEmbedding
from tower_zoo.layers.mlp import MLP
from tower_zoo.layers.similarity import L2Normalize


class MLPTower(tf.keras.layers.Layer):
    """One side of a two-tower model.

    Input: ``{feature name: encoded tensor}``; output [B, hidden_units[-1]] (or [B, F * D] with no
    hidden units, e.g. matrix factorization over a single id field gives [B, D]).

    Args:
      feature_spec: the dataset's FeatureSpec.
      side: ``"user"`` or ``"item"``.
      embedding_dim: field width D.
      hidden_units: MLP widths; empty for none.
      feature_names: subset of the side's features (None: all).
      normalize: L2-normalize the output.
    """

    def __init__(self, feature_spec: FeatureSpec | dict, side: str, embedding_dim: int,
                 hidden_units: Sequence[int] = (), feature_names: Sequence[str] | None = None,
                 activation: str = "relu", dropout: float = 0.0, normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.fields = FieldEmbedding(feature_spec, side, embedding_dim, feature_names, name="fields")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.dropout = dropout
        self.normalize = normalize
        self.mlp = MLP(self.hidden_units, activation, dropout, name="mlp") if self.hidden_units else None
        self.l2_normalize = L2Normalize(name="l2_normalize") if normalize else None

    @property
    def output_dim(self) -> int:
        return self.hidden_units[-1] if self.hidden_units else self.fields.num_fields * self.fields.dim

    def call(self, features: dict[str, tf.Tensor], training: bool = False,
             extra_inputs: tf.Tensor | None = None) -> tf.Tensor:
        """``extra_inputs`` [B, E], if given, is concatenated to the flattened fields before the MLP
        (e.g. DAT's augmented vectors)."""
        fields = self.fields(features)  # [B, F, D]
        x = tf.reshape(fields, [-1, self.fields.num_fields * self.fields.dim])
        if extra_inputs is not None:
            x = tf.concat([x, extra_inputs], axis=-1)
        if self.mlp is not None:
            x = self.mlp(x, training=training)
        if self.l2_normalize is not None:
            x = self.l2_normalize(x)
        return x

    def get_config(self) -> dict[str, Any]:
        fields = self.fields
        return {**super().get_config(), "feature_spec": fields.feature_spec.to_dict(), "side": fields.side,
                "embedding_dim": fields.dim, "hidden_units": list(self.hidden_units),
                "feature_names": list(fields.feature_names), "activation": self.activation,
                "dropout": self.dropout, "normalize": self.normalize}
