"""prepare's peak memory does not grow with the number of interactions (at a fixed vocabulary)."""

import os
import subprocess
import sys

import pytest

from tower_zoo.data.builtin.synthetic_scale import ScaleConfig, write_scale_dataset

# Runs prepare in a fresh process and prints its peak RSS in KiB (VmHWM: ru_maxrss would still hold the size of
# the pytest process it was forked from). The tower_zoo packages are stubbed so that
# their __init__ (which loads TensorFlow, ~0.5 GB) does not run: prepare itself never needs TensorFlow
# without hash buckets, and without that noise a few MB of growth are visible.
_PROBE = """
import os, sys, types
root = sys.argv[1]
for name, path in (("tower_zoo", root), ("tower_zoo.data", os.path.join(root, "data"))):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from tower_zoo.data.prepare.run import PrepareOptions, peak_rss_bytes, prepare
stats = prepare(sys.argv[2], sys.argv[3], PrepareOptions(memory_budget_mb=32, rows_per_shard=50_000, max_open_shards=4))
assert "tensorflow" not in sys.modules
print(peak_rss_bytes() // 1024, stats["buckets"])
"""


def _peak_rss_kib(tmp_path, num_interactions):
    config = ScaleConfig(num_interactions=num_interactions, num_users=5_000, num_items=5_000, rows_per_file=100_000,
                         chunk_rows=100_000, history_length=50)
    schema = write_scale_dataset(tmp_path / f"source-{num_interactions}", config)
    package = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["tower_zoo.data"].__file__)))
    # Arrow's default allocator (mimalloc) keeps freed pages for reuse, which adds 10-50 MB of noise to the
    # peak; the system allocator shows what prepare itself holds.
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    result = subprocess.run([sys.executable, "-c", _PROBE, package, schema, str(tmp_path / f"out-{num_interactions}")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    peak, buckets = result.stdout.split()
    return int(peak), int(buckets)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc/self/status (VmHWM)")
def test_peak_rss_does_not_grow_from_n_to_4n_interactions(tmp_path):
    small, small_buckets = _peak_rss_kib(tmp_path, 250_000)
    large, large_buckets = _peak_rss_kib(tmp_path, 1_000_000)
    assert large_buckets >= 3 * small_buckets  # more interactions: more buckets, not bigger ones
    # Holding the 750,000 extra rows' histories alone (50 int32 each) would take 150 MB more; measured: ~20 MB
    # (the allocator's fragmentation over 4x more buckets), with a 32 MB budget.
    assert large - small < 40 * 1024, (small, large)
