"""One serving measurement in a fresh process, as a server would run it: plain ``tf.saved_model.load`` (no
tower_zoo import; ``import scann`` only for a ScaNN SavedModel, whose ops it registers), then timed calls.

    python benchmarks/serving_probe.py SAVEDMODEL_DIR SIGNATURE REQUESTS.npz REPEATS [--scann]

REQUESTS.npz holds ``one_<input>`` (a one-user request) and ``batch_<input>`` (a batch request) arrays. Prints
one JSON line: p50/p99/mean milliseconds of the one-user request over REPEATS calls (after warm-up), and the
batch request's rows per second, and the machine's 1-minute load average at the end (other work on the
shared cores shows up in p99).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import tensorflow as tf


def timed(function, inputs: dict, repeats: int) -> np.ndarray:
    for _ in range(max(3, repeats // 10)):  # warm-up: graph optimization, first-call allocations
        function(**inputs)
    seconds = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        outputs = function(**inputs)
        next(iter(outputs.values())).numpy()
        seconds[i] = time.perf_counter() - started
    return seconds


def main(argv: list[str]) -> None:
    path, signature, requests, repeats = argv[1], argv[2], argv[3], int(argv[4])
    if "--scann" in argv:
        import scann  # noqa: F401  (registers the Scann ops the SavedModel uses)
    started = time.perf_counter()
    function = tf.saved_model.load(path).signatures[signature]
    load_seconds = time.perf_counter() - started
    arrays = np.load(requests)
    one = {k[4:]: tf.constant(arrays[k]) for k in arrays.files if k.startswith("one_")}
    batch = {k[6:]: tf.constant(arrays[k]) for k in arrays.files if k.startswith("batch_")}
    latency = timed(function, one, repeats) * 1000
    batch_seconds = timed(function, batch, max(3, repeats // 20))
    rows = len(next(iter(batch.values())))
    print(json.dumps({"p50_ms": float(np.percentile(latency, 50)), "p99_ms": float(np.percentile(latency, 99)),
                      "mean_ms": float(latency.mean()), "batch_rows": rows,
                      "batch_rows_per_s": float(rows / np.median(batch_seconds)), "load_s": load_seconds,
                      "load_average": os.getloadavg()[0],
                      "tower_zoo_imported": any(m.startswith("tower_zoo") for m in sys.modules)}))


if __name__ == "__main__":
    main(sys.argv)
