"""Pre-ranking metrics: AUC, GAUC and logloss over scored impressions.

* AUC: the probability that a random positive impression scores above a random negative one, ties
  counting one half (Mann–Whitney U from average ranks).
* GAUC: per-user AUC averaged with weights = the user's number of impressions; users whose
  impressions are all one class have no AUC and are skipped (their weight too).
* logloss: mean binary cross-entropy of sigmoid(logit) against the label.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np


def _validate(labels: np.ndarray, scores: np.ndarray, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels, np.float64).reshape(-1), np.asarray(scores, np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and {name} differ in length: {labels.shape[0]} vs {scores.shape[0]}")
    if labels.size == 0:
        raise ValueError("no impressions to evaluate")
    if not np.all(np.isin(labels, (0.0, 1.0))):
        raise ValueError(f"labels must be 0/1, got e.g. {labels[~np.isin(labels, (0.0, 1.0))][0]}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{name} contain NaN/inf")
    return labels, scores


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values))
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC with ties as one half; NaN when only one class is present."""
    labels, scores = _validate(labels, scores)
    positives = labels.sum()
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Impression-weighted mean of per-group AUC; returns (gauc, number of groups used)."""
    labels, scores = _validate(labels, scores)
    groups = np.asarray(groups).reshape(-1)
    if groups.shape != labels.shape:
        raise ValueError(f"groups has {groups.shape[0]} entries for {labels.shape[0]} impressions")
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    cuts = np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1
    total, weight, used = 0.0, 0.0, 0
    for rows in np.split(order, cuts):
        group_labels = labels[rows]
        if 0 < group_labels.sum() < len(rows):
            total += len(rows) * auc(group_labels, scores[rows])
            weight += len(rows)
            used += 1
    return (total / weight if weight else float("nan")), used


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits), computed stably from logits."""
    labels, logits = _validate(labels, logits, "logits")
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


@dataclasses.dataclass
class PreRankingReport:
    """AUC / GAUC / logloss per objective."""

    metrics: dict[str, dict[str, float]]
    num_impressions: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        lines = ["| objective | AUC | GAUC | logloss | users in GAUC |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['auc']:.4f} | {m['gauc']:.4f} | {m['logloss']:.4f} | {int(m['gauc_users'])} |"
                  for name, m in self.metrics.items()]
        return "\n".join(lines)


class PreRankingEvaluator:
    """Scores impressions with ``model.score(features, features)`` (logits [B]) and reports AUC, GAUC
    (grouped by the user id feature) and logloss for each objective's labels."""

    def __init__(self, batch_size: int = 2048):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"PreRankingEvaluator: batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)

    def predict(self, model, features: dict[str, np.ndarray]) -> np.ndarray:
        size = len(next(iter(features.values())))
        parts = [np.asarray(model.score({k: v[i:i + self.batch_size] for k, v in features.items()},
                                        {k: v[i:i + self.batch_size] for k, v in features.items()}))
                 for i in range(0, size, self.batch_size)]
        return np.concatenate(parts).astype(np.float64)

    def evaluate_chunks(self, model, chunks) -> PreRankingReport:
        """``evaluate`` over a stream of (features, labels) chunks of exposures (e.g.
        ``PreparedDataset.exposure_chunks``): each chunk is scored as it arrives and only its scores, labels
        and user ids are kept (13 bytes per exposure), so AUC and GAUC are computed exactly."""
        user_id = model.feature_spec.user_id_feature
        scores, labels, groups = [], {}, []
        for features, chunk_labels in chunks:
            scores.append(self.predict(model, features).astype(np.float32))
            groups.append(np.asarray(features[user_id], np.int32))
            for name, values in chunk_labels.items():
                labels.setdefault(name, []).append(np.asarray(values, np.int8))
        if not scores:
            raise ValueError("no impressions to evaluate")
        shared = np.concatenate(scores)
        return self.evaluate(None, {}, {name: np.concatenate(parts) for name, parts in labels.items()},
                             logits={name: shared for name in labels}, groups=np.concatenate(groups))

    def evaluate(self, model, features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 logits: dict[str, np.ndarray] | None = None, groups: np.ndarray | None = None) -> PreRankingReport:
        """``labels``: {objective: 0/1 [R]}. ``logits``: precomputed {objective: [R]} (default: the model's
        one score for every objective). ``groups``: the GAUC user of each row (default: the model's user id
        feature, or ``features["user_id"]`` without a model)."""
        if not labels:
            raise ValueError("no objective labels given")
        empty = [name for name, values in labels.items() if np.size(values) == 0]
        if empty:
            raise ValueError(f"PreRankingEvaluator.evaluate: no impressions to evaluate (labels {empty[0]!r} are "
                             "empty)")
        if groups is None:
            groups = features[model.feature_spec.user_id_feature] if model is not None else features["user_id"]
        shared = None
        metrics = {}
        for name, y in labels.items():
            if logits is not None and name in logits:
                scores = np.asarray(logits[name], np.float64)
            else:
                shared = self.predict(model, features) if shared is None else shared
                scores = shared
            value, used = gauc(y, scores, groups)
            metrics[name] = {"auc": auc(y, scores), "gauc": value, "logloss": logloss(y, scores),
                             "gauc_users": float(used)}
        return PreRankingReport(metrics, int(len(groups)))
