"""The TARQ training recipe: codebooks from k-means, then teacher and student co-trained in one fit.

``fit_tarq(model, examples, labels, item_corpus, validate)`` for an ``rq_target_attention`` model:

1. builds the model and sets each level's codebook by k-means on the item tower's outputs for the item
   corpus (``initialize_codebooks``: without it most codewords start unused);
2. trains with the ranking task: the student's BCE plus ``auxiliary_loss`` (the co-trained teacher's BCE,
   representation distillation from the teacher under stop-gradient, per-level codebook alignment);
3. with ``validate`` (model -> a number, higher is better, e.g. the student's validation AUC), keeps the
   best epoch (Keras EarlyStopping with ``patience``); the student is what ``model.score`` serves, the
   teacher head is ``model.teacher``.

The teacher needs no separate pre-training and no stored predictions: its distillation targets are
computed on each batch before its own update on that batch (see ``tower_zoo.models.rq_target_attention``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from tower_zoo.training.trainer import Trainer


def fit_tarq(model, examples: Mapping[str, np.ndarray], labels: np.ndarray, item_corpus: Mapping[str, np.ndarray],
             validate: Callable[[Any], float] | None = None, patience: int = 2, verbose: bool = False,
             **trainer_options: Any) -> dict[str, Any]:
    """Trains ``model`` (``rq_target_attention``) by the recipe above. ``trainer_options`` go to ``Trainer``
    (epochs, seed, batch_size, learning_rate, ...). Returns ``{"best_epoch", "best_value", "values",
    "history"}`` with ``validate``, else ``{"history"}`` (one record per epoch)."""
    if getattr(model, "model_name", None) != "rq_target_attention":
        raise ValueError(f"fit_tarq trains an rq_target_attention model, got {getattr(model, 'model_name', model)!r}")
    model.build_weights()
    model.initialize_codebooks(item_corpus, seed=trainer_options.get("seed", 0))
    trainer = Trainer(model, task="ranking", **trainer_options)
    if validate is None:
        return {"history": trainer.fit(examples, labels=labels, verbose=verbose)}
    return trainer.fit_with_early_stopping(examples, validate, patience=patience, labels=labels, verbose=verbose)
