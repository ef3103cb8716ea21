"""The training harness against TensorFlow Recommenders' own, on the same model and data.

    python -m benchmarks.harness [--seeds 3] [--epochs 4] [--vocab_sizes 10000,100000,1000000,5000000]

1. Same model, same batch (512), same data (MovieLens-100K leave-last-out), same epochs: our ``Trainer``
   (RowwiseAdam, ``steps_per_execution`` 32) against the very same model class trained by ``tfrs.tasks.Retrieval``
   through Keras ``fit`` with logQ and accidental-hit removal (``benchmarks/peer_tfrs.py``), with Adam and
   with the TFRS tutorial's Adagrad, for ``mf`` and ``dssm``: training examples/s after the first epoch and
   exact Recall@50; per seed, then mean ± 95% interval; the ratio ours / peer per seed.
2. Throughput against the id-vocabulary size: the same ML-100K interactions with the user, item and history
   tables padded to 10k .. 5M rows (ids never seen, as in a real catalogue's long tail), DSSM, each harness
   in a fresh process: examples/s after a warm-up epoch, and the process's peak memory above its state
   before the model was built (tables + optimizer slots + everything training allocates) against the
   tables' own size.

Writes harness.md, harness.json and harness.png (examples/s against vocabulary size) to ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from statistics import fmean

from absl import app, flags

from tower_zoo.fileio import write_json_atomic

flags.DEFINE_integer("seeds", 3, "Seeds for part 1.")
flags.DEFINE_integer("epochs", 4, "Epochs for part 1 (the first is warm-up for the speed figure).")
flags.DEFINE_list("models", ["mf", "dssm"], "Models for part 1.")
flags.DEFINE_list("vocab_sizes", ["10000", "100000", "1000000", "5000000"], "Table rows for part 2.")
flags.DEFINE_integer("peer_steps", 20, "Part 2: steps per timed epoch of the TFRS peer (dense Adam is slow "
                     "at large vocabularies).")
flags.DEFINE_integer("vocab_repeats", 3, "Part 2: fresh-process runs per (harness, rows), seeds 0.. (mean ± 95%).")
flags.DEFINE_list("parts", ["1", "2"], "Parts to run; a part not run is kept from the existing harness.json.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_string("worker", None, "Internal: run one part-2 configuration (harness:rows) and print JSON.")

FLAGS = flags.FLAGS
HARNESSES = ("ours", "tfrs+adam", "tfrs+adagrad")


def memory_kb(field: str) -> int:
    """VmRSS / VmHWM of this process from /proc, in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def padded_spec(spec, rows: int):
    """``spec`` with the user-id, item-id and history vocabularies padded to ``rows`` entries (unseen ids)."""
    from tower_zoo.data.schema.spec import FeatureSpec

    def pad(feature):
        if feature.name not in (spec.user_id_feature, spec.item_id_feature, "history"):
            return feature
        extra = tuple(range(10**12, 10**12 + max(0, rows - len(feature.vocabulary))))
        return dataclasses.replace(feature, vocabulary=feature.vocabulary + extra)

    return FeatureSpec(tuple(pad(f) for f in spec.features), spec.user_id_feature, spec.item_id_feature)


def train_once(harness: str, model, examples, epochs: int, seed: int, steps_per_epoch: int | None = None):
    """Trains ``model`` with ``harness``; returns seconds of each epoch and the examples each epoch read."""
    from benchmarks.peer_tfrs import train_same_model_peer
    from tower_zoo.training import Trainer

    rows = len(examples["item_id"])
    if harness == "ours":
        history = Trainer(model, epochs=epochs, seed=seed).fit(examples, verbose=False)
        return [h["seconds"] for h in history], rows
    optimizer = harness.split("+")[1]
    seconds = train_same_model_peer(model, examples, epochs, optimizer, seed=seed, steps_per_epoch=steps_per_epoch)
    return seconds, (steps_per_epoch * 512 if steps_per_epoch else rows)


def part_one(split) -> dict:
    """{model: {harness: {"examples_per_second": [...per seed], "recall@50": [...]}}}."""
    import tower_zoo
    from tower_zoo.runs import evaluate_split

    examples = split.examples("train")
    results = {}
    for name in FLAGS.models:
        results[name] = {h: {"examples_per_second": [], "recall@50": []} for h in HARNESSES}
        for seed in range(FLAGS.seeds):
            for harness in HARNESSES:
                model = tower_zoo.create_model(name, split.data.feature_spec)
                seconds, rows = train_once(harness, model, examples, FLAGS.epochs, seed)
                recall = evaluate_split(model, split, ks=(50,), use_scann=False,
                                        with_popularity=False)["model"].metrics["exact"]["recall@50"]
                speed = rows * (len(seconds) - 1) / sum(seconds[1:])
                results[name][harness]["examples_per_second"].append(speed)
                results[name][harness]["recall@50"].append(recall)
                print(f"{name:4s} seed {seed} {harness:13s} {speed:9,.0f} examples/s  Recall@50 {recall:.4f}",
                      flush=True)
    return results


def worker(spec_text: str) -> None:
    """Part 2, one (harness, rows) in this fresh process: prints {"examples_per_second", "memory_mb", "table_mb"}."""
    import tower_zoo
    from tower_zoo.data import leave_last_out, movielens_100k

    harness, rows, seed = spec_text.split(":")
    split = leave_last_out(movielens_100k())
    examples = split.examples("train")
    spec = padded_spec(split.data.feature_spec, int(rows))
    before = memory_kb("VmRSS")
    model = tower_zoo.create_model("dssm", spec)
    steps = None if harness == "ours" else FLAGS.peer_steps
    seconds, per_epoch = train_once(harness, model, examples, 3, seed=int(seed), steps_per_epoch=steps)
    table_bytes = sum(w.shape.num_elements() * w.dtype.size for w in model.weights)
    print(json.dumps({"examples_per_second": per_epoch * 2 / sum(seconds[1:]),
                      "memory_mb": (memory_kb("VmHWM") - before) / 1024, "table_mb": table_bytes / 2**20}))


def part_two() -> dict:
    """{harness: {rows: {"examples_per_second": [per seed], "memory_mb": [per seed], "table_mb"}}}, one fresh
    process per (harness, rows, seed)."""
    results = {h: {} for h in HARNESSES}
    for rows in FLAGS.vocab_sizes:
        for harness in HARNESSES:
            record = results[harness][rows] = {"examples_per_second": [], "memory_mb": []}
            for seed in range(FLAGS.vocab_repeats):
                started = time.perf_counter()
                run = subprocess.run([sys.executable, "-m", "benchmarks.harness", f"--worker={harness}:{rows}:{seed}",
                                      f"--peer_steps={FLAGS.peer_steps}"], capture_output=True, text=True,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                if run.returncode != 0:
                    raise RuntimeError(f"{harness} at {rows} rows failed: {run.stderr[-2000:]}")
                measured = json.loads(run.stdout.strip().splitlines()[-1])
                record["examples_per_second"].append(measured["examples_per_second"])
                record["memory_mb"].append(measured["memory_mb"])
                record["table_mb"] = measured["table_mb"]
                print(f"{int(rows):>9,} rows {harness:13s} seed {seed} {measured['examples_per_second']:9,.0f} "
                      f"examples/s  memory {measured['memory_mb']:7,.0f} MB  tables {measured['table_mb']:6,.0f} MB  "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def report(one: dict, two: dict) -> list[str]:
    from benchmarks.stats import mean_interval, ratio_interval

    lines = [f"### Same model, same data: MovieLens-100K leave-last-out, batch 512, {FLAGS.epochs} epochs, "
             f"{FLAGS.seeds} seeds (mean ± 95% interval)", "",
             "| model | harness | examples/s (after epoch 1) | Recall@50 | speed ratio ours / this |",
             "|---|---|---:|---:|---:|"]
    for name, rows in one.items():
        ours = rows["ours"]["examples_per_second"]
        for harness, values in rows.items():
            speed, recall = mean_interval(values["examples_per_second"]), mean_interval(values["recall@50"])
            ratio = "–" if harness == "ours" else ratio_interval(ours, values["examples_per_second"]).format(".2f", "×")
            lines.append(f"| {name} | {harness} | {speed.format(',.0f')} | {recall.format('.4f')} | {ratio} |")
    sizes = sorted(two["ours"], key=int)  # smallest first: the base (JSON keys come back sorted as text)
    base = two["ours"][sizes[0]]["examples_per_second"]
    lines += ["", "### Throughput against the id-vocabulary size (DSSM, same 99k interactions, fresh process each; "
                  f"mean ± 95% interval over {FLAGS.vocab_repeats} runs)",
              "", "| table rows | harness | examples/s | vs ours at " + f"{int(sizes[0]):,} rows (paired by seed) | "
              "memory above start (MB) | tables (MB) | memory / tables |", "|---:|---|---:|---:|---:|---:|---:|"]
    for rows in sizes:
        for harness in HARNESSES:
            r = two[harness][rows]
            speed = mean_interval(r["examples_per_second"])
            versus = ratio_interval(r["examples_per_second"], base).format(".2f", "×")
            memory = fmean(r["memory_mb"])
            lines.append(f"| {int(rows):,} | {harness} | {speed.format(',.0f')} | {versus} | {memory:,.0f} | "
                         f"{r['table_mb']:,.0f} | {memory / r['table_mb']:.2f} |")
    if len(sizes) >= 2:
        lines += ["", "Memory each harness adds per MB of tables, between the two largest vocabularies (the slope, "
                      "free of the runtime's fixed allocations): " + ", ".join(
                          f"{harness} {marginal_memory_ratio(two[harness], sizes[-2], sizes[-1]):.2f}×"
                          for harness in HARNESSES) + "."]
    return lines


def marginal_memory_ratio(by_rows: dict, smaller, larger) -> float:
    """(memory at ``larger`` − memory at ``smaller``) / (tables at ``larger`` − tables at ``smaller``)."""
    small, large = by_rows[smaller], by_rows[larger]
    return (fmean(large["memory_mb"]) - fmean(small["memory_mb"])) / (large["table_mb"] - small["table_mb"])


def plot(two: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for harness, rows in two.items():
        sizes = sorted(rows, key=int)
        axis.plot([int(r) for r in sizes], [fmean(rows[r]["examples_per_second"]) for r in sizes], marker="o",
                  label=harness)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("rows of the user, item and history tables")
    axis.set_ylabel("training examples/s (2-core CPU)")
    axis.set_title("DSSM training throughput against vocabulary size")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv):
    del argv
    if FLAGS.worker:
        worker(FLAGS.worker)
        return
    from tower_zoo.data import leave_last_out, movielens_100k

    started = time.perf_counter()
    previous = {}
    if set(FLAGS.parts) != {"1", "2"}:
        with open(os.path.join(FLAGS.out, "harness.json")) as handle:
            previous = json.load(handle)
    one = part_one(leave_last_out(movielens_100k())) if "1" in FLAGS.parts else previous["same_model"]
    two = part_two() if "2" in FLAGS.parts else previous["vocabulary"]
    lines = report(one, two) + ["", f"Measured by `python -m benchmarks.harness` (parts {', '.join(FLAGS.parts)} in this run) "
                                    f"({(time.perf_counter() - started) / 60:.0f} min on this 2-core machine)."]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "harness.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    # Atomic: with --parts the previous harness.json is also this run's input.
    write_json_atomic(os.path.join(FLAGS.out, "harness.json"),
                      {"same_model": one, "vocabulary": two, "epochs": FLAGS.epochs, "seeds": FLAGS.seeds,
                       "vocab_repeats": FLAGS.vocab_repeats})
    plot(two, os.path.join(FLAGS.out, "harness.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
