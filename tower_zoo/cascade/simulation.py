"""A cascade on real data: retrieval -> pre-ranking -> ranking, simulated from logged interactions.

For each request — a user at the moment of their first interaction in a split part (their history as it
was then) — the simulation

1. retrieves the top ``num_candidates`` items of the whole corpus with a retrieval model, the user's
   earlier items excluded (the candidate set, N items);
2. scores every candidate with the ranker (the full target-attention model, trained on exposures);
3. lets a pre-ranker keep its top m of the N, and the ranker pick its top k of those m.

The logged interactions are the exposures: a request's *engaged* items are its interactions in the part
with a positive label (like = rating >= 4 on MovieLens), its *exposed* items all its interactions there.
Metrics of a pre-ranker (``evaluate``):

* ``recall@m@k``: |pre-ranker's top m ∩ ranker's top k of the N| / k, mean over requests — how much of
  what the ranker would pick survives the pre-ranker (the metric of the cascade literature);
* ``end_to_end_recall@k``: |final top k ∩ engaged| / |engaged|, over requests with an engaged item — what
  the user actually engaged with that the whole cascade delivers (``oracle_end_to_end_recall@k``: the same
  with a pre-ranker that keeps everything, i.e. one that agrees with the ranker perfectly — not a ceiling: the
  ranker is imperfect too, so a pre-ranker that disagrees with it can deliver more engaged items);
* AUC, GAUC and logloss of the pre-ranker on every exposure of the part (``PreRankingEvaluator``).

``candidate_list_arrays(part)`` gives the list-wise training data of RankFlow and ARF
(``tower_zoo.tasks.cascade``): every request's N candidates as consecutive rows with the user's features,
the candidate's features, the label (1 = engaged; candidates never shown to the user are 0) and the
ranker's logit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from tower_zoo.data.memory.splits import RetrievalSplit
from tower_zoo.evaluation.index import ExactIndex
from tower_zoo.evaluation.preranking import PreRankingEvaluator
from tower_zoo.evaluation.retrieval import embed


@dataclasses.dataclass
class CandidateLists:
    """The requests of one part and their candidates.

    user_features: {user feature: [R, ...]}; user_ids: raw ids [R];
    candidate_rows: int [R, N] rows of the item corpus, in retrieval order;
    ranker_logits: float [R, N]; labels: float [R, N] 1 where the candidate is an engaged item;
    engaged: raw ids of each request's engaged items (in the candidates or not).
    """

    user_features: dict[str, np.ndarray]
    user_ids: np.ndarray
    candidate_rows: np.ndarray
    ranker_logits: np.ndarray
    labels: np.ndarray
    engaged: list[np.ndarray]

    @property
    def num_requests(self) -> int:
        return len(self.user_ids)


def pair_scores(model, user_features: dict[str, np.ndarray], item_features: dict[str, np.ndarray],
                rows: np.ndarray, batch_requests: int = 64) -> np.ndarray:
    """``model.score`` of every request × its candidate rows: float [R, N] (user features tiled per candidate)."""
    requests, width = rows.shape
    out = np.empty((requests, width), np.float32)
    for start in range(0, requests, batch_requests):
        block = rows[start:start + batch_requests]
        repeat = np.repeat(np.arange(start, start + len(block)), width)
        users = {k: v[repeat] for k, v in user_features.items()}
        items = {k: v[block.reshape(-1)] for k, v in item_features.items()}
        out[start:start + len(block)] = np.asarray(model.score(users, items)).reshape(len(block), width)
    return out


class CascadeSimulation:
    """See the module docstring.

    Args:
      split: a split whose parts hold exposures with ratings (e.g. ``time_split``).
      retrieval_model: any retrieval model (one dot product per item).
      ranker: the ranker (any model with ``score``; the target-attention model by default in benchmarks).
      num_candidates: N, the candidate set's size.
      like_threshold: the rating at and above which an interaction is engaged.
    """

    def __init__(self, split: RetrievalSplit, retrieval_model, ranker, num_candidates: int = 100,
                 like_threshold: float = 4.0):
        self.split, self.retrieval_model, self.ranker = split, retrieval_model, ranker
        self.num_candidates, self.like_threshold = int(num_candidates), like_threshold
        self.item_features, self.item_ids = split.candidates()
        if not 2 <= self.num_candidates <= len(self.item_ids):
            raise ValueError(f"num_candidates must be in [2, {len(self.item_ids)}], got {num_candidates}")
        self._index = ExactIndex(embed(retrieval_model.item_embedding, self.item_features, 2048), self.item_ids)
        self._lists: dict[str, CandidateLists] = {}

    # ------------------------------------------------------------------ building the candidate lists
    def _requests(self, part: str):
        """(user features [R], user ids [R], engaged ids per request, seen ids per request)."""
        if part == "train":
            return self._train_requests()
        frame = {"valid": self.split.valid, "test": self.split.test}[part]
        if len(frame) == 0:
            raise ValueError(f"split part {part!r} has no interactions")
        features, _, seen = self.split.queries(part)
        users = frame["user_id"].drop_duplicates().to_numpy()
        engaged = frame[frame["rating"] >= self.like_threshold].groupby("user_id")["item_id"].apply(np.asarray)
        return features, users, [np.asarray(engaged.get(u, np.zeros(0, np.int64)), np.int64) for u in users], seen

    def _train_requests(self):
        """One training request per user: their state at the middle of their training interactions; engaged =
        their liked training items from there on, seen = their items before it."""
        frame, examples = self.split.train.reset_index(drop=True), self.split.examples("train")
        position = frame.groupby("user_id").cumcount().to_numpy()
        count = frame.groupby("user_id")["item_id"].transform("size").to_numpy()
        middle = np.flatnonzero(position == count // 2)
        users = frame["user_id"].to_numpy()[middle]
        names = [f.name for f in self.split.data.feature_spec.user_features]
        features = {n: examples[n][middle] for n in names}
        liked = frame["rating"].to_numpy() >= self.like_threshold
        after = position >= (count // 2)
        engaged = frame[liked & after].groupby("user_id")["item_id"].apply(np.asarray)
        seen = frame[~after].groupby("user_id")["item_id"].apply(np.asarray)
        empty = np.zeros(0, np.int64)
        return (features, users, [np.asarray(engaged.get(u, empty), np.int64) for u in users],
                [np.asarray(seen.get(u, empty), np.int64) for u in users])

    def lists(self, part: str = "test") -> CandidateLists:
        """The requests of ``part`` with their N retrieved candidates, ranker logits and labels (cached)."""
        if part not in self._lists:
            features, users, engaged, seen = self._requests(part)
            vectors = embed(self.retrieval_model.user_embedding, features, 2048)
            ids, _ = self._index.search(vectors, self.num_candidates, seen)
            rows = self._index.rows_of(ids.reshape(-1)).reshape(ids.shape)
            if (rows < 0).any():
                raise ValueError(f"requests of {part!r} have fewer than {self.num_candidates} unseen items")
            ranker_logits = pair_scores(self.ranker, features, self.item_features, rows)
            labels = np.stack([np.isin(self.item_ids[r], e) for r, e in zip(rows, engaged)]).astype(np.float32)
            self._lists[part] = CandidateLists(features, users, rows, ranker_logits, labels, engaged)
        return self._lists[part]

    def candidate_list_arrays(self, part: str = "train") -> dict[str, np.ndarray]:
        """List-wise training rows: every request's N candidates consecutively, with ``labels`` [R · N] and
        ``teacher_logits`` [R · N] beside the features (``Trainer.fit(**arrays)`` with ``group_size=N``)."""
        lists = self.lists(part)
        width = self.num_candidates
        repeat = np.repeat(np.arange(lists.num_requests), width)
        examples = {k: v[repeat] for k, v in lists.user_features.items()}
        examples.update({k: v[lists.candidate_rows.reshape(-1)] for k, v in self.item_features.items()})
        return {"examples": examples, "labels": lists.labels.reshape(-1),
                "teacher_logits": lists.ranker_logits.reshape(-1)}

    # ------------------------------------------------------------------ judging a pre-ranker
    def evaluate(self, pre_ranker, m: int, k: int, part: str = "test") -> dict[str, float]:
        """The cascade metrics of ``pre_ranker`` on ``part`` (see the module docstring)."""
        if not 1 <= k <= m <= self.num_candidates:
            raise ValueError(f"need 1 <= k <= m <= num_candidates={self.num_candidates}, got k={k}, m={m}")
        lists = self.lists(part)
        scores = pair_scores(pre_ranker, lists.user_features, self.item_features, lists.candidate_rows)
        kept = np.argsort(-scores, axis=1, kind="stable")[:, :m]                         # [R, m] positions
        ranker_top_k = np.argsort(-lists.ranker_logits, axis=1, kind="stable")[:, :k]  # [R, k] positions
        recall = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(kept, ranker_top_k)])
        kept_logits = np.take_along_axis(lists.ranker_logits, kept, axis=1)
        final = np.take_along_axis(kept, np.argsort(-kept_logits, axis=1, kind="stable")[:, :k], axis=1)
        metrics = {f"recall@{m}@{k}": float(recall),
                   f"end_to_end_recall@{k}": self._engaged_recall(final, lists),
                   f"oracle_end_to_end_recall@{k}": self._engaged_recall(ranker_top_k, lists)}
        features, labels = self.split.examples(part), self.split.labels(part)
        report = PreRankingEvaluator().evaluate(pre_ranker, features, {"like": labels["like"]})
        metrics.update({f"{name}": report.metrics["like"][name] for name in ("auc", "gauc", "logloss")})
        return metrics

    def _engaged_recall(self, positions: np.ndarray, lists: CandidateLists) -> float:
        """Mean over requests with an engaged item of |items at ``positions`` ∩ engaged| / |engaged|."""
        values = []
        for request, chosen in enumerate(positions):
            engaged = lists.engaged[request]
            if len(engaged):
                delivered = self.item_ids[lists.candidate_rows[request, chosen]]
                values.append(len(np.intersect1d(delivered, engaged)) / len(engaged))
        return float(np.mean(values)) if values else float("nan")

    def summary(self, part: str = "test") -> dict[str, Any]:
        """Requests, candidates per request, and the share of engaged items retrieval put in the candidates."""
        lists = self.lists(part)
        with_engaged = [i for i, e in enumerate(lists.engaged) if len(e)]
        coverage = np.mean([lists.labels[i].sum() / len(lists.engaged[i]) for i in with_engaged])
        return {"requests": lists.num_requests, "candidates": self.num_candidates,
                "requests_with_engaged_items": len(with_engaged), "retrieval_recall_of_engaged": float(coverage)}


__all__ = ["CandidateLists", "CascadeSimulation", "pair_scores"]
