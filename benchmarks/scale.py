"""Data pipeline at the scale of a real catalogue: synthetic interactions -> `tower-zoo prepare` -> the shard reader.

    python -m benchmarks.scale [--sizes 1000000,10000000,30000000] [--users 1000000] [--items 1000000]
                               [--memory_budget_mb 1024] [--work /tmp/tower_zoo_scale] [--out benchmarks/results]

For each size, ``tower_zoo.data.synthetic_scale`` writes Parquet shards (Zipf item popularity, power-law user
activity, timestamps, side features incl. a multi-valued one, 2% cold items) once into --work; then, each in a
fresh process so that its peak RSS (VmHWM) is its own:

* prepare: the schema -> a prepared directory, with --memory_budget_mb; wall seconds and peak RSS;
* reader: one pass of the training shards through ``ShardExampleSource.dataset`` (tf.data, batch 512, shuffle
  buffer 65,536 rows) for up to --reader_rows rows: rows per wall second and per CPU second (this machine's 2
  cores are shared, so the CPU figure is the steadier one).

Writes scale.md and scale.json to --out. Training and evaluation on the prepared data are the trainer's part
of this benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list("sizes", ["1000000", "10000000", "30000000"], "Interaction counts to run.")
flags.DEFINE_integer("users", 1_000_000, "Users in the user table.")
flags.DEFINE_integer("items", 1_000_000, "Items in the item table.")
flags.DEFINE_integer("memory_budget_mb", 1024, "prepare's memory budget.")
flags.DEFINE_integer("reader_rows", 2_000_000, "Rows the reader benchmark reads (at most one epoch).")
flags.DEFINE_string("work", "/tmp/tower_zoo_scale", "Where the generated and prepared data go.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory for scale.md / scale.json.")

FLAGS = flags.FLAGS

_GENERATE = """
import sys, tower_zoo
from tower_zoo.data.synthetic_scale import ScaleConfig, write_scale_dataset
write_scale_dataset(sys.argv[1], ScaleConfig(num_interactions=int(sys.argv[2]), num_users=int(sys.argv[3]),
                                             num_items=int(sys.argv[4])))
"""

_PREPARE = """
import json, sys, time, tower_zoo
from tower_zoo.data.prepare import PrepareOptions, peak_rss_bytes, prepare
started = time.perf_counter()
stats = prepare(sys.argv[1], sys.argv[2], PrepareOptions(memory_budget_mb=int(sys.argv[3])), overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_gb": peak_rss_bytes() / 2**30,
                  "rows": stats["rows"], "buckets": stats["buckets"]}))
"""

_READ = """
import json, sys, time, tower_zoo
from tower_zoo.data.prepared import PreparedDataset
from tower_zoo.data.prepare import peak_rss_bytes
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


def _python(code: str, *args: str) -> dict:
    """Runs ``code`` in a fresh interpreter; its last stdout line parsed as JSON (or {})."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{result.stderr[-3000:]}")
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def run_size(size: int) -> dict:
    source = os.path.join(FLAGS.work, f"source-{size}-{FLAGS.users}-{FLAGS.items}")
    schema = os.path.join(source, "schema.yaml")
    if not os.path.isfile(schema):
        started = time.perf_counter()
        _python(_GENERATE, source, size, FLAGS.users, FLAGS.items)
        print(f"{size:,}: generated in {time.perf_counter() - started:.0f} s", flush=True)
    prepared = os.path.join(FLAGS.work, f"prepared-{size}")
    prepare = _python(_PREPARE, schema, prepared, FLAGS.memory_budget_mb)
    print(f"{size:,}: prepared in {prepare['seconds']:.0f} s, peak RSS {prepare['peak_rss_gb']:.2f} GB", flush=True)
    reader = _python(_READ, prepared, FLAGS.reader_rows)
    print(f"{size:,}: reader {reader['rows_per_second']:,.0f} rows/s ({reader['rows_per_cpu_second']:,.0f} per CPU s)",
          flush=True)
    return {"interactions": size, "users": FLAGS.users, "items": FLAGS.items, "prepare": prepare, "reader": reader}


def markdown(rows: list[dict]) -> str:
    lines = [f"Synthetic catalogue ({FLAGS.users:,} users, {FLAGS.items:,} items), `tower-zoo prepare` with "
             f"--memory_budget_mb {FLAGS.memory_budget_mb}, this 2-core machine (shared).", "",
             "| interactions | prepare s | prepare peak RSS GB | buckets | reader rows/s | reader rows/CPU s |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        prepare, reader = row["prepare"], row["reader"]
        lines.append(f"| {row['interactions']:,} | {prepare['seconds']:.0f} | {prepare['peak_rss_gb']:.2f} | "
                     f"{prepare['buckets']} | {reader['rows_per_second']:,.0f} | {reader['rows_per_cpu_second']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    os.makedirs(FLAGS.work, exist_ok=True)
    rows = [run_size(int(size)) for size in FLAGS.sizes]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "scale.json"), "w") as handle:
        json.dump(rows, handle, indent=2)
    table = markdown(rows)
    with open(os.path.join(FLAGS.out, "scale.md"), "w") as handle:
        handle.write(table)
    print(table)


if __name__ == "__main__":
    app.run(main)
