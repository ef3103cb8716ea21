"""Serving latency through the exported SavedModels, each measured in a fresh process (``serving_probe.py``).

    python -m benchmarks.serving [--epochs 1] [--repeats 200] [--sizes 100000,1000000] [--out benchmarks/results]

* Retrieval: DSSM trained briefly on ML-100K and exported (``tower-zoo export``'s path); its raw-feature user
  tower then serves top-100 over synthetic item corpora of 100k and 1M vectors (clustered, unit length like
  DSSM's item tower; the SavedModels are built with the same modules as an export), by exact blocked search
  (``retrieval/``, stock TensorFlow) and by ScaNN inside the SavedModel (``retrieval_scann/``, default knobs:
  sqrt(N) leaves, a third searched). Request: one ML-100K user's raw features.
* Pre-ranking: every registered pre-ranking model trained briefly (``--epochs``) on ML-100K and exported as a
  candidate scorer; request: one user's raw features and C candidate ids (``serving_default``: user state once,
  then every candidate), C in ``--candidates``; ids drawn from the 1,682 items (with repetition above that).
* Throughput: the same SavedModels on 64 users per request (pre-ranking: each user with the row's candidates).

Latency is per request in milliseconds (p50 / p99 over ``--repeats`` calls after warm-up, one request at a
time). The machine has 2 cores shared with other work: treat differences under ~20% as noise.
Writes serving.md / .json / .png (p99 against candidates) to ``--out``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import tower_zoo  # noqa: F401,I001  (selects legacy Keras before TensorFlow loads)

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from tower_zoo.evaluation.index import ScannConfig
from tower_zoo.runs import export_run, raw_user_rows, train_run
from tower_zoo.serving.raw_features import RawFeatureEncoder
from tower_zoo.serving.requests import id_matrix, request_arrays
from tower_zoo.serving.retrieval_export import ExactTopKModule, ScannTopKModule

flags.DEFINE_integer("epochs", 1, "Training epochs per model (latency does not depend on training).")
flags.DEFINE_integer("repeats", 400, "Timed one-user requests per configuration.")
flags.DEFINE_list("sizes", ["100000", "1000000"], "Synthetic item corpus sizes for retrieval.")
flags.DEFINE_list("candidates", ["100", "300", "1000", "3000"], "Candidates per pre-ranking request.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS
K = 100
BATCH = 64
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_probe.py")


def probe(savedmodel: str, signature: str, requests: dict, repeats: int, scann: bool = False) -> dict:
    """Runs ``serving_probe.py`` in a fresh process without tower_zoo on PYTHONPATH; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as handle:
        np.savez(handle, **{k: v.astype(str) if v.dtype == object else v for k, v in requests.items()})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    try:
        result = subprocess.run([sys.executable, PROBE, savedmodel, signature, handle.name, str(repeats)]
                                + (["--scann"] if scann else []), capture_output=True, text=True, env=env,
                                cwd=tempfile.gettempdir(), timeout=3600)
    finally:
        os.unlink(handle.name)
    if result.returncode:
        raise RuntimeError(f"probe of {savedmodel} failed: {result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert not measured.pop("tower_zoo_imported")
    return measured


def raw_requests(signature_inputs: dict, rows, padding: dict) -> tuple[dict, dict]:
    """(one-user request, 64-user request) of raw feature arrays."""
    one = request_arrays(signature_inputs, rows[:1], padding)
    batch = request_arrays(signature_inputs, rows[:BATCH], padding)
    return {f"one_{k}": v for k, v in one.items()}, {f"batch_{k}": v for k, v in batch.items()}


def synthetic_items(num_items: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 2,000 random centres (item towers' outputs are clustered and L2-normalized)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    vectors = centres[rng.integers(2000, size=num_items)] + 0.7 * rng.normal(size=(num_items, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def retrieval_rows(model, rows, work: str) -> list[dict]:
    """Exact and ScaNN top-100 SavedModels over each synthetic corpus size, through the trained user tower."""
    results = []
    features = rows[[f.name for f in model.feature_spec.user_features]]
    dim = int(model.user_embedding(model.dummy_features(1)).shape[-1])
    for size in [int(s) for s in FLAGS.sizes]:
        vectors, ids = synthetic_items(size, dim), np.arange(1, size + 1, dtype=np.int64)
        with tempfile.TemporaryDirectory() as assets:
            encoder = RawFeatureEncoder(model.feature_spec, list(features.columns), assets)
            knobs = ScannConfig().resolved(size, K)
            modules = {"exact": ExactTopKModule(model, encoder, vectors, ids, K, assets),
                       "scann": ScannTopKModule(model, encoder, vectors, ids, K, knobs, 2)}
            for method, module in modules.items():
                started = time.perf_counter()
                path = os.path.join(work, f"{method}_{size}")
                tf.saved_model.save(module, path, signatures=module.signatures(),
                                    options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
                build = time.perf_counter() - started
                one, batch = raw_requests(dict(module.serve.structured_input_signature[1]), features, {"history": -1})
                measured = probe(path, "serving_default", {**one, **batch}, FLAGS.repeats, scann=method == "scann")
                results.append({"task": "retrieval", "model": "dssm", "method": method, "items": size, "k": K,
                                "candidates": size, "save_s": build, **measured})
                print(json.dumps(results[-1]), flush=True)
    return results


def preranking_rows(name: str, export_dir: str, rows, item_ids: np.ndarray) -> list[dict]:
    """Latency of one user × C candidates for each C, and 64 users × 1,000 candidates throughput."""
    with open(os.path.join(export_dir, "manifest.json")) as handle:
        padding = {n: e["padding"] for n, e in json.load(handle)["raw_inputs"].items() if "padding" in e}
    scorer = tf.saved_model.load(os.path.join(export_dir, "scorer")).signatures["serving_default"]
    inputs = {k: v for k, v in scorer.structured_input_signature[1].items() if k != "candidate_ids"}
    features = rows[list(inputs)]
    one, batch = raw_requests(inputs, features, padding)
    rng = np.random.default_rng(0)
    results = []
    for count in [int(c) for c in FLAGS.candidates]:
        draw = lambda users: id_matrix([rng.choice(item_ids, count, replace=count > len(item_ids))  # noqa: E731
                                        for _ in range(users)], -1, "candidates")
        requests = {**one, "one_candidate_ids": draw(1), **batch, "batch_candidate_ids": draw(BATCH)}
        repeats = FLAGS.repeats if count <= 1000 else max(20, FLAGS.repeats // 4)
        measured = probe(os.path.join(export_dir, "scorer"), "serving_default", requests, repeats)
        results.append({"task": "pre_ranking", "model": name, "method": "scorer", "items": len(item_ids),
                        "candidates": count, **measured})
        print(json.dumps(results[-1]), flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = ["| task | model | search | items | candidates / request | p50 ms | p99 ms | batch-64 users/s | load |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['task']} | {r['model']} | {r['method']} | {r['items']:,} | {r['candidates']:,} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['batch_rows_per_s']:,.0f} | "
                     f"{r['load_average']:.1f} |")
    return "\n".join(lines)


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    series = [(f"{m} (scorer)", [r for r in results if r["model"] == m and r["task"] == "pre_ranking"], "o")
              for m in sorted({r["model"] for r in results if r["task"] == "pre_ranking"})]
    series += [(f"dssm top-{K}, {m}", [r for r in results if r.get("method") == m], "s") for m in ("exact", "scann")]
    for label, rows, marker in series:
        if not rows:
            continue
        rows = sorted(rows, key=lambda r: r["candidates"])
        line, = axis.plot([r["candidates"] for r in rows], [r["p99_ms"] for r in rows], marker=marker, label=label)
        axis.plot([r["candidates"] for r in rows], [r["p50_ms"] for r in rows], marker=marker, linestyle=":",
                  color=line.get_color(), alpha=0.5)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("candidates scored per request (retrieval: items searched)")
    axis.set_ylabel("latency, one user (ms): p99 solid, p50 dotted")
    axis.set_title("Serving latency through the SavedModels (fresh process, 2 shared cores)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TensorFlow's savers log every SavedModel at INFO
    tf.get_logger().setLevel("WARNING")
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as work:
        names = ["dssm"] + tower_zoo.list_models(kind="pre_ranking")
        for name in names:
            run_dir, export_dir = os.path.join(work, f"run_{name}"), os.path.join(work, f"export_{name}")
            model, split, _ = train_run(run_dir, name, trainer_overrides={"epochs": FLAGS.epochs}, verbose=False)
            export_run(run_dir, export_dir, k=K)
            rows = raw_user_rows(split.data)
            if name == "dssm":
                results += retrieval_rows(model, rows, work)
            else:
                results += preranking_rows(name, export_dir, rows, split.data.items["item_id"].to_numpy(np.int64))
    os.makedirs(FLAGS.out, exist_ok=True)
    text = (f"# Serving latency\n\n`python -m benchmarks.serving` ({time.perf_counter() - started:.0f} s). One request "
            f"at a time, in a fresh process per row with plain `tf.saved_model.load`; p50/p99 over "
            f"{FLAGS.repeats} requests (3,000 candidates: {max(20, FLAGS.repeats // 4)}). Retrieval: DSSM's "
            "raw-feature user tower over synthetic unit item vectors. batch-64: 64 users per request (pre-ranking: "
            "× the row's candidates). load: the 1-minute load average of the 2-core machine when the row finished "
            "(other work shows up in p99).\n\n" + table(results) + "\n")
    with open(os.path.join(FLAGS.out, "serving.md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(FLAGS.out, "serving.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    plot(results, os.path.join(FLAGS.out, "serving.png"))
    print(text)


if __name__ == "__main__":
    app.run(main)
