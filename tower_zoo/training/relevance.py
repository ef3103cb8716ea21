"""Relevance-aware training for related-item retrieval (after Jaspal et al., Meta, "Balancing Semantic Relevance
and Engagement in Related Video Recommendations", arXiv 2507.09403): four switches over one two-tower model.

* ``relevant_positives`` (a): a positive must be engaged **and** satisfy the caller's relevance predicate
  (``predicate(seed_ids, target_ids) -> bool``; on MovieLens: the seed and target share a genre). The paper
  trains relevance as a second task (MTL) from topic labels; a predicate that filters positives is the
  single-model form the issue asks for.
* ``corpus_negatives`` (b): besides in-batch negatives (other positives, i.e. what was engaged with), each
  batch draws ``num_global_negatives`` items uniformly from the whole corpus, cold items included
  (``negatives="mixed"``, ``alpha=0``, ``sampler_floor=1``; log q corrected per source), so items nobody
  engaged with are negatives too (less sample-selection bias).
* ``popularity_ipw`` (c): inverse-propensity weighting of positives by popularity, weight ∝ count^(−power)
  (``TrainerConfig.popularity_ipw``), the paper's off-policy correction of popularity bias.
* ``content_features`` (d): the title's bag of words (``title_words``, learned embeddings) in both towers;
  the paper fuses pretrained text and visual embeddings, which we do not download.

``relevance_recipe(split, predicate, switches)`` returns the examples, model overrides and trainer options
for ``create_model`` / ``Trainer``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from tower_zoo.data.memory.item_to_item import SEED_PREFIX, TITLE_WORDS


@dataclasses.dataclass(frozen=True)
class RelevanceSwitches:
    """Which of the four changes are on (see the module docstring)."""

    relevant_positives: bool = False
    corpus_negatives: bool = False
    popularity_ipw: float = 0.0
    content_features: bool = False

    def __post_init__(self):
        for name in ("relevant_positives", "corpus_negatives", "content_features"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"relevance switch {name} must be True or False, got {getattr(self, name)!r}")
        if not (isinstance(self.popularity_ipw, (int, float)) and 0 <= self.popularity_ipw <= 4):
            raise ValueError(f"relevance switch popularity_ipw must be a number in [0, 4], got {self.popularity_ipw!r}")

    @property
    def label(self) -> str:
        on = [name for name, value in (("relevant positives", self.relevant_positives),
                                       ("corpus negatives", self.corpus_negatives),
                                       (f"IPW {self.popularity_ipw:g}", self.popularity_ipw),
                                       ("title words", self.content_features)) if value]
        return " + ".join(on) or "engagement only"


def relevance_recipe(split, predicate: Callable[[np.ndarray, np.ndarray], np.ndarray], switches: RelevanceSwitches,
                     num_global_negatives: int = 256) -> dict[str, Any]:
    """``{"examples", "model_overrides", "trainer_options", "kept_share"}`` for the switches."""
    examples = split.examples("train")
    kept = np.ones(len(split.train), bool)
    if switches.relevant_positives:
        kept = np.asarray(predicate(split.train["user_id"].to_numpy(), split.train["item_id"].to_numpy()), bool)
        if not kept.any():
            raise ValueError("the relevance predicate holds for no training pair")
        examples = {name: values[kept] for name, values in examples.items()}
    spec = split.data.feature_spec
    model_overrides: dict[str, Any] = {}
    if not switches.content_features:
        content = {TITLE_WORDS, SEED_PREFIX + TITLE_WORDS}
        model_overrides = {"user_features": tuple(f.name for f in spec.user_features if f.name not in content),
                           "item_features": tuple(f.name for f in spec.item_features if f.name not in content)}
    elif TITLE_WORDS not in spec.names:
        raise ValueError("content_features needs the title words (item_to_item_split(with_titles=True))")
    trainer_options: dict[str, Any] = {"popularity_ipw": float(switches.popularity_ipw)}
    if switches.corpus_negatives:
        trainer_options.update(negatives="mixed", alpha=0.0, sampler_floor=1.0,
                               num_global_negatives=num_global_negatives)
    return {"examples": examples, "model_overrides": model_overrides, "trainer_options": trainer_options,
            "kept_share": float(kept.mean())}
