"""Multi-feedback and long-history retrieval on MovieLens-100K: each system against its closest baseline.

    python -m benchmarks.multifeedback [--seeds 3] [--systems gnolr,mvke,long,relevance]

* gnolr: leave-last-out with 5 held-out items per user, each at a level (rated; liked, rating >= 4; loved,
  5). ``gnolr`` vs ``multi_objective`` (one head per level: rated, like, love, fused 1:1:1), label-weight
  fusion (DSSM with sample weight 1 + like + love) and plain DSSM: Recall@50 and AUC of every level (AUC:
  held-out pairs against 20 unseen items per user, each model's own level-t score).
* mvke: the same split; ``mvke`` vs ``multi_objective`` on two objectives (click = rated, like); Recall@50
  per level and the serving cost: floats per user and per item, exact K·D search, ScaNN over K·D, and K
  per-expert searches merged and re-scored (recall against the exact top 50, queries/s).
* long: leave-last-out (1 held-out item), histories of up to 500 items with each item's category (its
  rarest genre). ``long_retriever`` on the full history vs the same model on the last 50, and DSSM (last-50
  history) as the existing baseline; multi-context retrieval with the user's top 3 categories (quota merge,
  and score merge) and all categories (exhaustive); Recall@10/50, user vectors and items scored per request.
* relevance: item-to-item (seed = a user's engaged item, target = the next engaged one; relevance predicate =
  genre overlap); DSSM trained with each switch of ``tower_zoo.training.relevance`` alone and all together;
  relevance@10 (share of the top 10 sharing a genre with the seed), Recall@10/50 and mean popularity@10.

Mean ± 95% interval over the seeds; "vs" columns say whether a row differs from its baseline beyond noise
(paired by seed). Writes multifeedback.md, multifeedback.json and multifeedback.png to --out.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags

from benchmarks.stats import mean_interval, noise_label

flags.DEFINE_integer("seeds", 3, "Seeds per row.")
flags.DEFINE_list("systems", ["gnolr", "mvke", "long", "relevance"], "Sections to run.")
flags.DEFINE_integer("epochs", 8, "Epochs (long-history models: half).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_boolean("update", False, "Keep the other sections of an existing multifeedback.json; rerun --systems.")
FLAGS = flags.FLAGS

LEVELS = ("rated", "like", "love")


# ============================================================================= shared
def _train(model, examples, seed, epochs, **fit_kwargs):
    from tower_zoo.training import Trainer

    options = fit_kwargs.pop("trainer_options", {})
    started = time.perf_counter()
    Trainer(model, epochs=epochs, seed=seed, **options).fit(examples, verbose=False, **fit_kwargs)
    return (time.perf_counter() - started) / epochs


def _rows_table(rows: dict, metrics: list, baseline: str, extra: dict | None = None) -> list[str]:
    """Mean ± interval per metric; the last column names every metric that differs from ``baseline`` beyond
    noise (paired by seed)."""
    head = "| row | " + " | ".join(metrics) + f" | vs {baseline}, beyond noise |" + (" cost |" if extra else "")
    lines = [head, "|---|" + "---:|" * len(metrics) + "---|" + ("---|" if extra else "")]
    for label, values in rows.items():
        cells = [mean_interval(values[m]).format() for m in metrics]
        versus = "–"
        if label != baseline:
            labels = {m: noise_label(values[m], rows[baseline][m]) for m in metrics if m != "seconds_per_epoch"
                      and m in rows[baseline] and len(set(values[m]) | set(rows[baseline][m])) > 1}
            parts = [f"{word}: {', '.join(m for m, v in labels.items() if v == word)}" for word in ("higher", "lower")
                     if word in labels.values()]
            versus = "; ".join(parts) or "all within noise"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {versus} |" + (f" {extra[label]} |" if extra else ""))
    return lines


def _add(rows: dict, label: str, values: dict) -> None:
    for key, value in values.items():
        rows.setdefault(label, {}).setdefault(key, []).append(float(value))


# ============================================================================= gnolr and mvke
def _level_split():
    from tower_zoo.data import leave_last_out, movielens_100k

    split = leave_last_out(movielens_100k(), num_test=5)
    levels = {part: 1 + (frame["rating"].to_numpy() >= 4) + (frame["rating"].to_numpy() >= 5)
              for part, frame in (("train", split.train), ("test", split.test))}
    return split, levels


def _head_scores(model):
    def scores(users, items):
        return np.einsum("bkd,bkd->bk", model.objective_user_embedding(users), model.objective_item_embedding(items))
    return scores


def _single_scores(model, levels):
    def scores(users, items):
        return np.repeat(np.asarray(model.score(users, items))[:, np.newaxis], levels, axis=1)
    return scores


def run_gnolr(split, levels, seed, epochs) -> dict:
    import tower_zoo
    from tower_zoo.evaluation.levels import level_report

    spec, examples = split.data.feature_spec, split.examples("train")
    labels = split.labels("train")
    out = {}
    model = tower_zoo.create_model("gnolr", spec)
    seconds = _train(model, examples, seed, epochs, objective_labels={"like": labels["like"], "love": labels["love"]})
    out["gnolr"] = (model, lambda u, i: model.level_probabilities(u, i), seconds, "one index, 3·32 = 96 dims")
    heads = tower_zoo.create_model("multi_objective", spec, objectives=LEVELS, fusion_weights=(1.0, 1.0, 1.0))
    rated = np.ones(len(split.train), np.float32)
    seconds = _train(heads, examples, seed, epochs, objective_labels={"rated": rated, **labels})
    out["multi_objective (3 heads)"] = (heads, _head_scores(heads), seconds, "one index, 3·32 = 96 dims")
    fused = tower_zoo.create_model("dssm", spec)
    seconds = _train(fused, examples, seed, epochs, sample_weight=1.0 + labels["like"] + labels["love"])
    out["label-weight fusion (DSSM)"] = (fused, _single_scores(fused, 3), seconds, "one index, 64 dims")
    plain = tower_zoo.create_model("dssm", spec)
    seconds = _train(plain, examples, seed, epochs)
    out["DSSM (rated only)"] = (plain, _single_scores(plain, 3), seconds, "one index, 64 dims")
    return {label: {**level_report(m, split, levels["test"], LEVELS, f, ks=(50,), seed=seed), "seconds_per_epoch": s}
            for label, (m, f, s, _) in out.items()}, {label: v[3] for label, v in out.items()}


def _mvke_serving(model, split) -> dict:
    """Recall of each search against the exact K·D top 50, and queries/s."""
    from tower_zoo.evaluation import ExactIndex, RetrievalEvaluator
    from tower_zoo.evaluation.expert_search import per_expert_top_k
    from tower_zoo.evaluation.retrieval import ann_overlap, embed

    queries, targets, exclude = split.queries("test")
    items, ids = split.candidates()
    users, item_vectors = embed(model.user_embedding, queries, 1024), embed(model.item_embedding, items, 1024)
    started = time.perf_counter()
    exact, _ = ExactIndex(item_vectors, ids).search(users, 50, exclude)
    exact_qps = len(users) / (time.perf_counter() - started)
    scann = RetrievalEvaluator(ks=(50,)).evaluate_embeddings(users, item_vectors, ids, targets, exclude)
    k, d = model.config.num_kernels, model.config.embedding_dim
    started = time.perf_counter()
    merged = per_expert_top_k(users.reshape(-1, k, d), item_vectors.reshape(-1, k, d), ids, 50, 50, exclude)
    merged_qps = len(users) / (time.perf_counter() - started)
    overlap = float(ann_overlap(merged, exact, 50).mean())
    return {"exact_qps": exact_qps, "scann_ann_recall@50": scann.ann_recall.get("ann_recall@50", float("nan")),
            "scann_qps": scann.timings.get("scann_qps", float("nan")), "per_expert_ann_recall@50": overlap,
            "per_expert_qps": merged_qps}


def run_mvke(split, levels, seed, epochs) -> dict:
    import tower_zoo
    from tower_zoo.evaluation.levels import level_report

    spec, examples = split.data.feature_spec, split.examples("train")
    labels = {"click": np.ones(len(split.train), np.float32), "like": split.labels("train")["like"]}
    two_levels = np.minimum(levels["test"], 2)
    model = tower_zoo.create_model("mvke", spec)
    seconds = _train(model, examples, seed, epochs, objective_labels=labels)

    def mvke_scores(users, items):
        vectors, _ = model.objective_item_vectors(items)
        return np.einsum("btd,btd->bt", model.gated_user_vectors(users, items), vectors)

    heads = tower_zoo.create_model("multi_objective", spec)
    head_seconds = _train(heads, examples, seed, epochs, objective_labels=labels)
    rows = {"mvke (K=4, click 0-2, like 1-3)": {**level_report(model, split, two_levels, ("click", "like"),
                                                               mvke_scores, ks=(50,), seed=seed),
                                                 "seconds_per_epoch": seconds, **_mvke_serving(model, split)},
            "multi_objective (click, like)": {**level_report(heads, split, two_levels, ("click", "like"),
                                                             _head_scores(heads), ks=(50,), seed=seed),
                                              "seconds_per_epoch": head_seconds}}
    return rows


# ============================================================================= long histories
def run_long(seed, epochs, state: dict) -> dict:
    import tower_zoo
    from tower_zoo.data import leave_last_out, movielens_100k
    from tower_zoo.data.memory.categories import (long_history_examples, long_history_queries, rarest_labels,
                                                  with_item_categories)
    from tower_zoo.evaluation.metrics import per_query_metrics
    from tower_zoo.evaluation.multi_context import multi_context_top_k, top_contexts
    from tower_zoo.runs import evaluate_split

    if "long_split" not in state:
        data = movielens_100k(history_length=500)
        state["long_split"] = leave_last_out(with_item_categories(data, rarest_labels(data.items["genres"])))
        state["short_split"] = leave_last_out(movielens_100k())
    split = state["long_split"]
    items, ids = split.candidates()
    rows = {}
    for keep, name in ((None, "full history (<= 500)"), (50, "last 50")):
        model = tower_zoo.create_model("long_retriever", split.data.feature_spec)
        seconds = _train(model, long_history_examples(split, keep=keep), seed, epochs)
        queries, targets, exclude = long_history_queries(split, keep=keep)
        category_of = dict(zip(ids.tolist(), np.asarray(items["category"]).tolist()))
        for contexts, merge in ((3, "quota"), (3, "score"), (5, "quota"), (100, "score")):
            top, cost = multi_context_top_k(model, queries, items, ids, 50, contexts, exclude, merge)
            metrics = per_query_metrics(top, targets, (10, 50))
            chosen, _ = top_contexts(queries["history_category"], contexts)
            reachable = np.mean([np.mean([category_of[int(t)] in set(c) for t in target])
                                 for target, c in zip(targets, chosen)])
            where = "every history category" if contexts == 100 else f"top {contexts} categories, {merge} merge"
            _add(rows, f"long_retriever, {name}; {where}",
                 {"recall@10": metrics["recall@10"].mean(), "recall@50": metrics["recall@50"].mean(),
                  "target_in_contexts": reachable, "seconds_per_epoch": seconds, **cost})
    short = state["short_split"]
    dssm = tower_zoo.create_model("dssm", short.data.feature_spec)
    seconds = _train(dssm, short.examples("train"), seed, epochs)
    exact = evaluate_split(dssm, short, ks=(10, 50), use_scann=False, with_popularity=False)["model"].metrics["exact"]
    _add(rows, "DSSM, last 50 (mean-pooled history)",
         {"recall@10": exact["recall@10"], "recall@50": exact["recall@50"], "seconds_per_epoch": seconds,
          "target_in_contexts": 1.0, "user_vectors_per_request": 1.0, "items_scored_per_request": float(len(ids))})
    return rows


# ============================================================================= relevance-aware training
SWITCHES = None


def run_relevance(seed, epochs, state: dict) -> dict:
    import tower_zoo
    from tower_zoo.data import movielens_100k
    from tower_zoo.data.memory.item_to_item import genre_overlap, item_to_item_split
    from tower_zoo.evaluation.relevance import relevance_engagement_report
    from tower_zoo.training.relevance import RelevanceSwitches, relevance_recipe

    if "i2i" not in state:
        data = movielens_100k()
        state["i2i"], state["predicate"] = item_to_item_split(data), genre_overlap(data)
    split, predicate = state["i2i"], state["predicate"]
    items, _ = split.candidates()
    rows = {}
    for switches in (RelevanceSwitches(), RelevanceSwitches(relevant_positives=True),
                     RelevanceSwitches(corpus_negatives=True), RelevanceSwitches(popularity_ipw=0.5),
                     RelevanceSwitches(content_features=True), RelevanceSwitches(True, True, 0.5, True)):
        recipe = relevance_recipe(split, predicate, switches)
        model = tower_zoo.create_model("dssm", split.data.feature_spec, **recipe["model_overrides"])
        seconds = _train(model, recipe["examples"], seed, epochs, item_table=items,
                         trainer_options=recipe["trainer_options"])
        report = relevance_engagement_report(model, split, predicate, ks=(10, 50))
        _add(rows, switches.label, {**report, "seconds_per_epoch": seconds, "kept_share": recipe["kept_share"]})
    return rows


# ============================================================================= report
def _plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, m) for k, m in (("gnolr", "love/recall@50"), ("mvke", "like/recall@50"), ("long", "recall@50"),
                                  ("relevance", "relevance@10")) if k in results]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for axis, (section, metric) in zip(axes[0], panels):
        rows = results[section]
        labels = list(rows)
        intervals = [mean_interval(rows[label][metric]) for label in labels]
        axis.barh(range(len(labels)), [i.mean for i in intervals],
                  xerr=[0 if np.isnan(i.half_width) else i.half_width for i in intervals])
        axis.set_yticks(range(len(labels)), [label[:38] for label in labels], fontsize=6)
        axis.set_title(f"{section}: {metric}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv):
    del argv
    import tower_zoo  # noqa: F401  (legacy Keras before TensorFlow)

    results, costs, state, timing = {}, {}, {}, {}
    previous = os.path.join(FLAGS.out, "multifeedback.json")
    if FLAGS.update and os.path.exists(previous):
        with open(previous) as handle:
            saved = json.load(handle)
        results = {k: v for k, v in saved["results"].items() if k not in FLAGS.systems}
        costs = {k: v for k, v in saved.get("costs", {}).items() if k not in FLAGS.systems}
        timing = {k: v for k, v in saved["seconds"].items() if k not in FLAGS.systems}
    if {"gnolr", "mvke"} & set(FLAGS.systems):  # --update with --systems= re-renders the saved results
        split, levels = _level_split()
    for section in FLAGS.systems:
        begun = time.perf_counter()
        for seed in range(FLAGS.seeds):
            if section == "gnolr":
                rows, costs["gnolr"] = run_gnolr(split, levels, seed, FLAGS.epochs)
            elif section == "mvke":
                rows = run_mvke(split, levels, seed, FLAGS.epochs)
            elif section == "long":
                rows = run_long(seed, max(FLAGS.epochs // 2, 1), state)
                rows = {k: {m: v[0] for m, v in r.items()} for k, r in rows.items()}
            elif section == "relevance":
                rows = run_relevance(seed, FLAGS.epochs, state)
                rows = {k: {m: v[0] for m, v in r.items()} for k, r in rows.items()}
            else:
                raise SystemExit(f"unknown system {section!r}")
            for label, values in rows.items():
                _add(results.setdefault(section, {}), label, values)
            print(f"{section} seed {seed}: {time.perf_counter() - begun:.0f} s", flush=True)
        timing[section] = time.perf_counter() - begun
    lines = [f"MovieLens-100K, {FLAGS.seeds} seeds, mean ± 95% interval; `vs` = paired by seed against the "
             "section's baseline (\"within noise\" when the interval of the differences holds 0).", ""]
    if "gnolr" in results:
        metrics = [f"{lv}/recall@50" for lv in LEVELS] + [f"{lv}/auc" for lv in LEVELS] + ["seconds_per_epoch"]
        lines += ["### GNOLR vs one head per objective vs label-weight fusion", "",
                  "Leave-last-out, 5 held-out items per user; a level's Recall@50 counts that user's held-out "
                  "items at that level or above.", ""]
        lines += _rows_table(results["gnolr"], metrics, "gnolr", costs["gnolr"]) + [""]
    if "mvke" in results:
        rows = results["mvke"]
        metrics = ["click/recall@50", "like/recall@50", "click/auc", "like/auc", "seconds_per_epoch"]
        lines += ["### MVKE vs one head per objective", ""]
        lines += _rows_table(rows, metrics, "multi_objective (click, like)") + [""]
        serving = next(v for k, v in rows.items() if k.startswith("mvke"))
        lines += ["MVKE serving (user vectors are candidate-dependent; the score factorizes into one K·D = 4·32 = "
                  "128-dim dot product: 128 floats cached per user (the K expert vectors) and per item):", "",
                  f"- exact search over the 128-dim vectors: {mean_interval(serving['exact_qps']).format('.0f')} "
                  "queries/s (1,682 items)",
                  f"- ScaNN over the 128-dim vectors: ANN recall@50 {mean_interval(serving['scann_ann_recall@50']).format()}, "
                  f"{mean_interval(serving['scann_qps']).format('.0f')} queries/s",
                  f"- 4 per-expert 32-dim searches (top 50 each), merged and re-scored exactly: ANN recall@50 "
                  f"{mean_interval(serving['per_expert_ann_recall@50']).format()}, "
                  f"{mean_interval(serving['per_expert_qps']).format('.0f')} queries/s", ""]
    if "long" in results:
        metrics = ["recall@10", "recall@50", "target_in_contexts", "user_vectors_per_request",
                   "items_scored_per_request", "seconds_per_epoch"]
        base = "long_retriever, last 50; top 3 categories, quota merge"
        lines += ["### LongRetriever-style long histories", "",
                  "Leave-last-out, 1 held-out item per user; categories = each movie's rarest genre (19). "
                  "`target_in_contexts`: share of held-out items whose category is among the searched contexts "
                  "(the recall ceiling of multi-context retrieval).", ""]
        lines += _rows_table(results["long"], metrics, base) + [""]
    if "relevance" in results:
        metrics = ["relevance@10", "recall@10", "recall@50", "mean_popularity@10", "kept_share", "seconds_per_epoch"]
        lines += ["### Relevance-aware related-item training (DSSM, item-to-item)", ""]
        lines += _rows_table(results["relevance"], metrics, "engagement only") + [""]
    total = sum(timing.values())
    lines += [f"`python -m benchmarks.multifeedback --seeds {FLAGS.seeds}`: {total / 60:.0f} min on this 2-core "
              "machine (" + ", ".join(f"{k} {v / 60:.0f} min" for k, v in timing.items()) + ")."]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "multifeedback.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "multifeedback.json"), "w") as handle:
        json.dump({"seeds": FLAGS.seeds, "epochs": FLAGS.epochs, "results": results, "costs": costs,
                   "seconds": timing}, handle, indent=2)
    _plot(results, os.path.join(FLAGS.out, "multifeedback.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
