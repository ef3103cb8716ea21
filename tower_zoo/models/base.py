"""The base every tower_zoo model subclasses: a user side, an item side, and a score.

The trainer and the evaluators use only this interface:

* ``user_embedding(features) -> [B, D]`` and ``item_embedding(features) -> [B, D]``, each computable
  on its own, so item vectors can be cached offline and indexed for ANN search;
* ``logits(user_embedding, item_embedding) -> [B, N]``: every user against every item of a batch
  (similarity divided by the temperature), what the training losses consume;
* ``score_matrix(user_features, item_features) -> [B, N]`` and ``score(...) -> [B]`` from raw features;
* ``auxiliary_loss(user_embedding, item_embedding, features)``: a model's own extra loss terms
  (zero by default).

Training is Keras-native: ``model.compile(optimizer, task=RetrievalTask(...) or RankingTask(...))`` and
``model.fit(dataset, callbacks=[...])``. ``train_step`` asks the task (``tower_zoo.tasks``) for the
batch's loss terms, adds the layers' regularization losses, and applies the gradients; every term the
task reports (``loss``, ``retrieval_loss`` / ``ranking_loss``, ``auxiliary_loss``) is a metric of
``fit``. A model never imports a task: the task is whatever ``compile`` was given.

Features are dicts ``{feature name: encoded tensor}`` as made by ``FeatureSpec.encode``; a dict may
hold both sides' features, each side reads only its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import tensorflow as tf

from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.layers import Temperature
from tower_zoo.models.config_checks import check_field_types


from tower_zoo.data.schema.keys import (LABEL as LABEL_FEATURE)  # the 0/1 exposure label, visible to ``auxiliary_loss``


@dataclasses.dataclass
class TwoTowerConfig:
    """Hyper-parameters every model has.

    embedding_dim: width of every feature field embedding.
    temperature: logits = similarity / temperature; learnable_temperature learns it (as log T).
    user_features / item_features: names of the features each tower reads (None: all of its side).

    ``validate`` first reads every field as its annotation says (``tower_zoo.models.config_checks``): a
    subclass annotates its fields precisely (``tuple[int, ...]``) and calls ``super().validate()`` first.
    """

    embedding_dim: int = 32
    temperature: float = 1.0
    learnable_temperature: bool = False
    user_features: tuple[str, ...] | None = None
    item_features: tuple[str, ...] | None = None

    def validate(self) -> None:
        check_field_types(self)
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


def _as_feature_spec(model_name: str, feature_spec: Any) -> FeatureSpec:
    """``feature_spec`` (a FeatureSpec, or the dict of its ``to_dict()``) as a FeatureSpec; TypeError /
    ValueError naming the model, the argument and the value otherwise."""
    if isinstance(feature_spec, dict):
        try:
            return FeatureSpec.from_dict(feature_spec)
        except (TypeError, ValueError) as err:
            raise type(err)(f"model {model_name!r}: feature_spec: {err}") from None
    if not isinstance(feature_spec, FeatureSpec):
        raise TypeError(f"model {model_name!r}: feature_spec must be a tower_zoo.data.FeatureSpec (or the dict of "
                        f"its to_dict()), got {feature_spec!r} ({type(feature_spec).__name__})")
    return feature_spec


class TwoTowerModel(tf.keras.Model):
    """Base class. A subclass either sets ``self.user_tower`` / ``self.item_tower`` (layers mapping
    features to [B, D]) or overrides ``user_embedding`` / ``item_embedding``."""

    model_name: ClassVar[str] = "two_tower"
    model_kind: ClassVar[str] = "retrieval"
    config_class: ClassVar[type] = TwoTowerConfig

    def __init__(self, feature_spec: FeatureSpec, config: TwoTowerConfig | None = None, **kwargs: Any):
        super().__init__(name=kwargs.pop("name", self.model_name), **kwargs)
        self.feature_spec = _as_feature_spec(self.model_name, feature_spec)
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = self.config_class(**config)
        config.validate()
        self.config = config
        self.temperature = Temperature(config.temperature, config.learnable_temperature, name="temperature")
        # Shifts every logit equally: no effect on rankings or on a softmax, calibrates pointwise (BCE) scores.
        self.score_bias = self.add_weight("score_bias", shape=(), initializer="zeros")

    # ------------------------------------------------------------------ the interface
    def user_embedding(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """[B, D] user vectors."""
        return self.user_tower(features, training=training)

    def item_embedding(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """[B, D] item vectors (cacheable: they depend on item features only)."""
        return self.item_tower(features, training=training)

    def similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """[B, D] x [N, D] -> [B, N] dot products (cosines when the towers L2-normalize)."""
        return tf.matmul(user_embedding, item_embedding, transpose_b=True)

    def paired_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """Each user against its own items: [B, D] x [B, H, D] -> [B, H]."""
        return tf.einsum("bd,bhd->bh", user_embedding, item_embedding)

    def logits(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """[B, D] x [N, D] -> [B, N] similarity / temperature."""
        return self.temperature(self.similarity(user_embedding, item_embedding)) + self.score_bias

    def score_matrix(self, user_features: dict[str, tf.Tensor], item_features: dict[str, tf.Tensor],
                     training: bool = False) -> tf.Tensor:
        """Every user of ``user_features`` [B] against every item of ``item_features`` [N]: [B, N]."""
        return self.logits(self.user_embedding(user_features, training=training),
                           self.item_embedding(item_features, training=training))

    def pair_logits(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """Row-aligned (user i, item i) logits from tower outputs: [B] (pointwise / pre-ranking)."""
        similarity = self.paired_similarity(user_embedding, item_embedding[:, tf.newaxis])[:, 0]
        return self.temperature(similarity) + self.score_bias

    def candidate_list_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """Each user against its own candidate list: user state (leaves [B, ...]) and candidate item states
        (leaves [B, C, ...]) -> [B, C] logits. Serving a pre-ranker calls this once per request batch. The
        default tiles every user's state to its C candidates and calls ``pair_logits``; a model whose user
        state is large (TARQ's attended codebook) overrides it to read the state without copying it."""
        candidates = tf.shape(tf.nest.flatten(item_embedding)[0])[1]
        users = tf.nest.map_structure(lambda t: tf.repeat(t, candidates, axis=0), user_embedding)
        items = tf.nest.map_structure(lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0)),
                                      item_embedding)
        return tf.reshape(self.pair_logits(users, items), [-1, candidates])

    def score(self, user_features: dict[str, tf.Tensor], item_features: dict[str, tf.Tensor],
              training: bool = False) -> tf.Tensor:
        """Row-aligned (user i, item i) pairs: [B] logits."""
        return self.pair_logits(self.user_embedding(user_features, training=training),
                                self.item_embedding(item_features, training=training))

    def auxiliary_loss(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor,
                       features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Model-specific extra loss for a batch of positive pairs (scalar); zero by default."""
        return tf.constant(0.0)

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """Both towers on a batch of (user, item) pairs: ``{"user": [B, D], "item": [B, D]}``."""
        return {"user": self.user_embedding(features, training=training),
                "item": self.item_embedding(features, training=training)}

    # ------------------------------------------------------------------ Keras training
    def compile(self, optimizer="adam", task=None, **kwargs: Any) -> None:
        """Keras ``compile`` with a ``task`` (a layer ``task(model, batch, training) -> {"loss": ..., ...}``
        whose ``term_names`` name those entries) in place of a loss."""
        if task is None:
            raise ValueError(f"{self.model_name}.compile needs task= (tower_zoo.tasks.RetrievalTask or RankingTask)")
        super().compile(optimizer=optimizer, **kwargs)
        self._attach_task(task)

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _attach_task(self, task) -> None:
        # Not tracked: the task holds no state, and checkpoints of the model must not depend on it.
        self._task = task
        with self.distribute_strategy.scope():
            self._term_trackers = {name: tf.keras.metrics.Mean(name=name) for name in task.term_names}

    @property
    def task(self):
        return getattr(self, "_task", None)

    @property
    def metrics(self) -> list:
        return list(getattr(self, "_term_trackers", {}).values()) + super().metrics

    def _task_terms(self, batch, training: bool) -> dict[str, tf.Tensor]:
        if self.task is None:
            raise ValueError(f"{self.model_name} is not compiled: call compile(optimizer, task=...) first")
        terms = dict(self.task(self, batch, training=training))
        if self.losses:
            terms["loss"] = terms["loss"] + tf.add_n(self.losses)
        return terms

    def _record(self, terms: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in terms.items():
            self._term_trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self._term_trackers.items()}

    def train_step(self, batch):
        """One optimizer step on ``batch`` with the compiled task; returns the running mean of each term."""
        with tf.GradientTape() as tape:
            terms = self._task_terms(batch, training=True)
            # Replica gradients are summed: scale so the update is that of the global mean loss.
            scaled = terms["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        # The task's own weights (e.g. ARF's learned loss weights) train with the model's.
        variables = self.trainable_variables + list(getattr(self.task, "trainable_variables", []))
        gradients = tape.gradient(scaled, variables)
        # Variables a loss does not reach (the score bias under a softmax) get None: skip them.
        self.optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        return self._record(terms)

    def test_step(self, batch):
        """The task's terms on ``batch`` without training (``model.evaluate`` / validation data)."""
        return self._record(self._task_terms(batch, training=False))

    # ------------------------------------------------------------------ helpers for subclasses
    def side_feature_names(self, side: str) -> tuple | None:
        return self.config.user_features if side == "user" else self.config.item_features

    def history_and_static_features(self, history_feature: str):
        """(the user-side sequence feature ``history_feature``, names of the other user features this model
        reads) for models that attend over a history; ValueError if it is not a user-side sequence."""
        history = self.feature_spec.get(history_feature)
        if history.kind != "sequence" or history.side != "user":
            raise ValueError(f"history_feature {history_feature!r} must be a user-side sequence feature")
        static = [f.name for f in self.feature_spec.user_features if f.name != history_feature]
        if self.config.user_features is not None:
            static = [n for n in static if n in self.config.user_features]
        return history, static

    def dummy_features(self, batch_size: int = 2) -> dict[str, tf.Tensor]:
        """A batch of OOV/zero inputs for every feature, used to build weights before restoring."""
        features = {}
        for feature in self.feature_spec.features:
            if feature.kind == "sequence":
                features[feature.name] = tf.ones([batch_size, feature.max_length], tf.int32)
            elif feature.kind == "numeric" and not feature.bucketized:
                features[feature.name] = tf.zeros([batch_size], tf.float32)
            else:
                features[feature.name] = tf.ones([batch_size], tf.int32)
        return features

    def build_weights(self) -> "TwoTowerModel":
        """Creates all variables by running both towers and the scoring once on dummy inputs."""
        towers = self(self.dummy_features(), training=False)
        self.logits(towers["user"], towers["item"])
        return self

    # ------------------------------------------------------------------ serialization
    def get_config(self) -> dict[str, Any]:
        return {"feature_spec": self.feature_spec.to_dict(), "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TwoTowerModel":
        return cls(FeatureSpec.from_dict(config["feature_spec"]), cls.config_class(**config["config"]))
