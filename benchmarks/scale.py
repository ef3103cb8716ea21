"""Data pipeline at the scale of a real catalogue: synthetic interactions -> `tower-zoo prepare` -> the shard reader.

    python -m benchmarks.scale [--sizes 1000000,10000000,30000000] [--users 1000000] [--items 1000000]
                               [--memory_budget_mb 1024] [--work /tmp/tower_zoo_scale] [--out benchmarks/results]

For each size, ``tower_zoo.data.builtin.synthetic_scale`` writes Parquet shards (Zipf item popularity, power-law user
activity, timestamps, side features incl. a multi-valued one, 2% cold items) once into --work; then, each in a
fresh process so that its peak RSS (VmHWM) is its own:

* prepare: the schema -> a prepared directory, with --memory_budget_mb; wall seconds and peak RSS;
* reader: one pass of the training shards through ``ShardExampleSource.dataset`` (tf.data, batch 512, shuffle
  buffer 65,536 rows) for up to --reader_rows rows: rows per wall second and per CPU second (this machine's 2
  cores are shared, so the CPU figure is the steadier one).

* train: DSSM, one epoch, batch 1024, streamed from the shards (``Trainer.fit(prepared.example_source())``):
  examples/s and peak RSS; and the TFRS tutorial model (id embeddings, ``tfrs.tasks.Retrieval``, Adagrad 0.1 —
  a smaller model, a reference for the harness and the reader) on the same shards and batch, for the ratio;
* evaluate: --eval_users test users (leave-last-out, seen items excluded) ranked over the whole item corpus,
  exact in blocks and with ScaNN (--scann_leaves, --scann_leaves_to_search, --scann_reorder; default 2,000
  leaves, 100 searched, 1,000 re-ordered), with the ANN recall@100 of ScaNN against exact, search seconds of
  each, ScaNN's one-off build seconds (partitioning and quantizer training) on their own, and peak RSS. The
  speed-up is given for the search alone and with the build included.

* scann_sweep (not run by default): on the trained model, --sweep_users test users searched exactly once, then
  with each ScaNN setting of --sweep (leaves/searched/re-ordered, ';'-separated): build and search seconds,
  speed-up over exact and ANN recall@100, the sweep that chose the evaluation's knobs
  (``python -m benchmarks.scale --sizes 10000000 --steps scann_sweep``).

Steps not run in an invocation (--steps) keep their earlier results in scale.json for the same size, so one
step can be rerun without the others.

Writes scale.md, scale.json and scale.png (cost against size) to --out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags

from tower_zoo.fileio import write_json_atomic

flags.DEFINE_list("sizes", ["1000000", "10000000", "30000000"], "Interaction counts to run.")
flags.DEFINE_integer("users", 1_000_000, "Users in the user table.")
flags.DEFINE_integer("items", 1_000_000, "Items in the item table.")
flags.DEFINE_integer("memory_budget_mb", 1024, "prepare's memory budget.")
flags.DEFINE_integer("reader_rows", 2_000_000, "Rows the reader benchmark reads (at most one epoch).")
flags.DEFINE_string("work", "/tmp/tower_zoo_scale", "Where the generated and prepared data go.")
flags.DEFINE_integer("eval_users", 100_000, "Test users ranked over the corpus in the evaluation step.")
flags.DEFINE_list("steps", ["prepare", "reader", "train", "peer", "evaluate"], "Steps to run per size.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory for scale.md / scale.json.")
flags.DEFINE_integer("scann_leaves", 2000, "ScaNN partitions.")
flags.DEFINE_integer("scann_leaves_to_search", 100, "ScaNN partitions probed per query.")
flags.DEFINE_integer("scann_reorder", 1000, "ScaNN candidates re-scored exactly.")
flags.DEFINE_integer("sweep_users", 5000, "scann_sweep: test users searched per setting.")
flags.DEFINE_string("sweep", "1000/100/400;1000/50/400;1000/100/1000;1000/150/1000;2000/100/1000;2000/200/1000;"
                    "1000/200/2000", "scann_sweep: leaves/searched/re-ordered settings, ';'-separated.")

FLAGS = flags.FLAGS

_GENERATE = """
import sys, tower_zoo
from tower_zoo.data.builtin.synthetic_scale import ScaleConfig, write_scale_dataset
write_scale_dataset(sys.argv[1], ScaleConfig(num_interactions=int(sys.argv[2]), num_users=int(sys.argv[3]),
                                             num_items=int(sys.argv[4])))
"""

_PREPARE = """
import json, sys, time, tower_zoo
from tower_zoo.data.prepare.run import PrepareOptions, peak_rss_bytes, prepare
started = time.perf_counter()
stats = prepare(sys.argv[1], sys.argv[2], PrepareOptions(memory_budget_mb=int(sys.argv[3])), overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_gb": peak_rss_bytes() / 2**30,
                  "rows": stats["rows"], "buckets": stats["buckets"]}))
"""

_READ = """
import json, sys, time, tower_zoo
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.prepare.run import peak_rss_bytes
source = PreparedDataset.open(sys.argv[1]).example_source("train")
limit = min(int(sys.argv[2]), source.num_rows)
wall, cpu, rows = time.perf_counter(), time.process_time(), 0
for batch in source.dataset(batch_size=512, seed=0, epoch=0):
    rows += int(batch["item_id"].shape[0])
    if rows >= limit:
        break
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"rows": rows, "rows_per_second": rows / wall, "rows_per_cpu_second": rows / cpu,
                  "peak_rss_gb": peak_rss_bytes() / 2**30}))
"""


_TRAIN = """
import json, sys, time, tower_zoo
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.prepare.run import peak_rss_bytes
from tower_zoo.training import Trainer
prepared = PreparedDataset.open(sys.argv[1])
model = tower_zoo.create_model("dssm", prepared.feature_spec)
started = time.perf_counter()
history = Trainer(model, epochs=1, batch_size=1024, seed=0, checkpoint_dir=sys.argv[2]).fit(
    prepared.example_source("train"), verbose=False)
print(json.dumps({"seconds": time.perf_counter() - started, "examples_per_second": history[0]["examples_per_second"],
                  "rows": prepared.num_rows("train"), "peak_rss_gb": peak_rss_bytes() / 2**30}))
"""

_PEER = """
import json, sys, time, tower_zoo
import tensorflow as tf
from benchmarks.peer_tfrs import EpochTimer, TutorialModel
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.prepare.run import peak_rss_bytes
prepared = PreparedDataset.open(sys.argv[1])
spec = prepared.feature_spec
tf.keras.utils.set_random_seed(0)
model = TutorialModel(spec.user_id.vocab_size, spec.item_id.vocab_size)
model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=0.1))
data = prepared.example_source("train").dataset(1024, seed=0, epoch=0).map(
    lambda batch: {"user_id": batch["user_id"], "item_id": batch["item_id"]})
timer = EpochTimer()
model.fit(data, epochs=1, verbose=0, callbacks=[timer])
rows = prepared.num_rows("train")
print(json.dumps({"seconds": timer.seconds[0], "examples_per_second": rows / timer.seconds[0],
                  "peak_rss_gb": peak_rss_bytes() / 2**30}))
"""

# The trained DSSM of a prepared directory (argv 1) and its checkpoints (argv 2), and the test users' query
# chunks cut at a limit, for the evaluation steps.
_LOAD_TRAINED = """
import json, sys, time, tower_zoo
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.training.checkpoints import restore_latest_weights
prepared = PreparedDataset.open(sys.argv[1])
model = tower_zoo.create_model("dssm", prepared.feature_spec)
model.build_weights()
restore_latest_weights(model, sys.argv[2])

def first_users(chunks, limit):
    seen = 0
    for features, targets, exclude in chunks:
        take = min(limit - seen, len(targets))
        yield {k: v[:take] for k, v in features.items()}, targets[:take], exclude[:take]
        seen += take
        if seen >= limit:
            return
"""

_EVALUATE = _LOAD_TRAINED + """
from tower_zoo.data.prepare.run import peak_rss_bytes
from tower_zoo.evaluation import RetrievalEvaluator, ScannConfig
users = int(sys.argv[3])
leaves, leaves_to_search, reorder = map(int, sys.argv[4:7])
items, ids = prepared.item_corpus()
config = ScannConfig(num_leaves=leaves, num_leaves_to_search=leaves_to_search, reorder_k=reorder)
started = time.perf_counter()
report = RetrievalEvaluator(ks=(10, 100), scann_config=config, batch_size=4096).evaluate_chunks(
    model, first_users(prepared.query_chunks("test", chunk_size=4096), users), items, ids)
print(json.dumps({"seconds": time.perf_counter() - started, "users": report.num_queries, "items": len(ids),
                  "exact_seconds": report.num_queries / report.timings["exact_qps"],
                  "scann_seconds": report.num_queries / report.timings["scann_qps"],
                  "scann_build_seconds": report.timings["scann_build_seconds"],
                  "scann_knobs": {"num_leaves": leaves, "num_leaves_to_search": leaves_to_search,
                                  "reorder_k": reorder},
                  "ann_recall@100": report.ann_recall["ann_recall@100"],
                  "recall@100_exact": report.metrics["exact"]["recall@100"],
                  "recall@100_scann": report.metrics["scann"]["recall@100"],
                  "peak_rss_gb": peak_rss_bytes() / 2**30}))
"""

_SCANN_SWEEP = _LOAD_TRAINED + """
import numpy as np
from tower_zoo.evaluation import ExactIndex, ScannConfig, ScannIndex
from tower_zoo.evaluation.retrieval import ann_overlap, embed
users = int(sys.argv[3])
items, ids = prepared.item_corpus()
item_vectors = embed(model.item_embedding, items, 8192)
queries, exclude = [], []
for features, _, seen in first_users(prepared.query_chunks("test", chunk_size=4096), users):
    queries.append(embed(model.user_embedding, features, 4096))
    exclude.extend(seen)
queries = np.concatenate(queries)
started = time.perf_counter()
exact, _ = ExactIndex(item_vectors, ids).search(queries, 100, exclude)
exact_seconds = time.perf_counter() - started
settings = []
for setting in sys.argv[4].split(";"):
    leaves, searched, reorder = map(int, setting.split("/"))
    index = ScannIndex(item_vectors, ids, ScannConfig(num_leaves=leaves, num_leaves_to_search=searched,
                                                      reorder_k=reorder))
    index.build(100)
    started = time.perf_counter()
    found, _ = index.search(queries, 100, exclude)
    seconds = time.perf_counter() - started
    recall = float(ann_overlap(found, exact, 100).mean())
    settings.append({"num_leaves": leaves, "num_leaves_to_search": searched, "reorder_k": reorder,
                     "build_seconds": index.build_seconds, "search_seconds": seconds,
                     "speedup": exact_seconds / seconds, "ann_recall@100": recall})
print(json.dumps({"users": len(queries), "exact_seconds": exact_seconds, "settings": settings}))
"""


def _python(code: str, *args: str) -> dict:
    """Runs ``code`` in a fresh interpreter; its last stdout line parsed as JSON (or {})."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{result.stderr[-3000:]}")
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def run_size(size: int, earlier: dict) -> dict:
    """Runs --steps for one size; ``earlier`` (this size's row of the last scale.json, or {}) supplies the
    steps not run, except an evaluation of a model that this run retrains."""
    source = os.path.join(FLAGS.work, f"source-{size}-{FLAGS.users}-{FLAGS.items}")
    schema = os.path.join(source, "schema.yaml")
    if not os.path.isfile(schema):
        started = time.perf_counter()
        _python(_GENERATE, source, size, FLAGS.users, FLAGS.items)
        print(f"{size:,}: generated in {time.perf_counter() - started:.0f} s", flush=True)
    prepared = os.path.join(FLAGS.work, f"prepared-{size}")
    checkpoints = os.path.join(FLAGS.work, f"dssm-{size}")
    row = {"interactions": size, "users": FLAGS.users, "items": FLAGS.items}
    if (earlier.get("users"), earlier.get("items")) == (FLAGS.users, FLAGS.items):
        stale = set(FLAGS.steps) | ({"evaluate", "scann_sweep"} if "train" in FLAGS.steps else set())
        row.update({step: result for step, result in earlier.items() if step in _STEPS and step not in stale})
    steps = {"prepare": (_PREPARE, schema, prepared, FLAGS.memory_budget_mb),
             "reader": (_READ, prepared, FLAGS.reader_rows),
             "train": (_TRAIN, prepared, checkpoints),
             "peer": (_PEER, prepared),
             "evaluate": (_EVALUATE, prepared, checkpoints, FLAGS.eval_users, FLAGS.scann_leaves,
                          FLAGS.scann_leaves_to_search, FLAGS.scann_reorder),
             "scann_sweep": (_SCANN_SWEEP, prepared, checkpoints, FLAGS.sweep_users, FLAGS.sweep)}
    if "train" in FLAGS.steps and os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)
    for step in FLAGS.steps:
        row[step] = _python(*steps[step])
        print(f"{size:,} {step}: " + ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in row[step].items()), flush=True)
    return row


_STEPS = ("prepare", "reader", "train", "peer", "evaluate", "scann_sweep")


def _cell(row: dict, step: str, key: str, spec: str) -> str:
    return f"{row[step][key]:{spec}}" if step in row else "–"


def _knobs_sentence(rows: list[dict]) -> str:
    knobs = {json.dumps(row["evaluate"].get("scann_knobs")) for row in rows if "evaluate" in row}
    knobs.discard("null")
    return f" ScaNN knobs: {', '.join(sorted(knobs))}." if knobs else ""


def markdown(rows: list[dict]) -> str:
    lines = [f"Synthetic catalogue ({FLAGS.users:,} users, {FLAGS.items:,} items), `tower-zoo prepare` with "
             f"--memory_budget_mb {FLAGS.memory_budget_mb}, this 2-core machine (shared). Peak RSS of each step's "
             "own process." + _knobs_sentence(rows), "",
             "| interactions | prepare s | prepare GB | reader rows/s | train examples/s (DSSM) | train GB | "
             "TFRS tutorial examples/s | ours / tutorial | eval users | exact s | ScaNN search s | ScaNN build s | "
             "ScaNN speed-up (search) | (with build) | ANN recall@100 | eval GB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ratio = (f"{row['train']['examples_per_second'] / row['peer']['examples_per_second']:.2f}"
                 if "train" in row and "peer" in row else "–")
        speedups = ["–", "–"]
        if "evaluate" in row:
            evaluate = row["evaluate"]
            with_build = evaluate["scann_seconds"] + evaluate["scann_build_seconds"]
            speedups = [f"{evaluate['exact_seconds'] / evaluate['scann_seconds']:.1f}×",
                        f"{evaluate['exact_seconds'] / with_build:.1f}×"]
        lines.append(" | ".join([
            f"| {row['interactions']:,}", _cell(row, "prepare", "seconds", ".0f"),
            _cell(row, "prepare", "peak_rss_gb", ".2f"),
            _cell(row, "reader", "rows_per_second", ",.0f"), _cell(row, "train", "examples_per_second", ",.0f"),
            _cell(row, "train", "peak_rss_gb", ".2f"), _cell(row, "peer", "examples_per_second", ",.0f"), ratio,
            _cell(row, "evaluate", "users", ",d"), _cell(row, "evaluate", "exact_seconds", ".0f"),
            _cell(row, "evaluate", "scann_seconds", ".1f"), _cell(row, "evaluate", "scann_build_seconds", ".1f"),
            *speedups, _cell(row, "evaluate", "ann_recall@100", ".3f"),
            _cell(row, "evaluate", "peak_rss_gb", ".2f")]) + " |")
    for row in rows:
        if "scann_sweep" in row:
            sweep = row["scann_sweep"]
            lines += ["", f"ScaNN settings on the {row['interactions']:,}-interaction model, {sweep['users']:,} "
                      f"test users (exact search {sweep['exact_seconds']:.1f} s):", "",
                      "| leaves | searched | re-ordered | build s | search s | speed-up | ANN recall@100 |",
                      "|---:|---:|---:|---:|---:|---:|---:|"]
            lines += [f"| {s['num_leaves']:,} | {s['num_leaves_to_search']} | {s['reorder_k']:,} | "
                      f"{s['build_seconds']:.1f} | {s['search_seconds']:.2f} | {s['speedup']:.1f}× | "
                      f"{s['ann_recall@100']:.4f} |" for s in sweep["settings"]]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
    """Seconds of each step and peak RSS against the number of interactions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["interactions"] for row in rows]
    figure, (seconds_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for step, label in (("prepare", "prepare"), ("train", "train 1 epoch (DSSM)"), ("peer", "TFRS tutorial 1 epoch"),
                        ("evaluate", "evaluate (exact + ScaNN)")):
        if all(step in row for row in rows):
            seconds_axis.plot(sizes, [row[step]["seconds"] for row in rows], marker="o", label=label)
            memory_axis.plot(sizes, [row[step]["peak_rss_gb"] for row in rows], marker="o", label=label)
    memory_axis.axhline(6.0, color="grey", linestyle="--", label="6 GB target")
    for axis, title in ((seconds_axis, "seconds"), (memory_axis, "peak RSS (GB)")):
        axis.set_xscale("log")
        axis.set_xlabel("interactions (1M users, 1M items)")
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv):
    del argv
    os.makedirs(FLAGS.work, exist_ok=True)
    os.makedirs(FLAGS.out, exist_ok=True)
    results = os.path.join(FLAGS.out, "scale.json")
    earlier = {}
    if os.path.isfile(results):
        with open(results) as handle:
            earlier = {row["interactions"]: row for row in json.load(handle)}
    for size in FLAGS.sizes:
        earlier[int(size)] = run_size(int(size), earlier.get(int(size), {}))
    rows = [earlier[size] for size in sorted(earlier)]  # sizes not run this time keep their earlier rows
    write_json_atomic(results, rows)
    table = markdown(rows)
    with open(os.path.join(FLAGS.out, "scale.md"), "w") as handle:
        handle.write(table)
    plot(rows, os.path.join(FLAGS.out, "scale.png"))
    print(table)


if __name__ == "__main__":
    app.run(main)
