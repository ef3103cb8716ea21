"""Memory bounds checked before work: a setting whose tables or tensors cannot fit is refused up front.

``available_memory_bytes`` is the machine's physical memory (``os.sysconf``), or the cgroup limit of this
process when that is lower (a container). ``require_fits`` raises one ``ValueError`` naming the setting, the
estimate and the limit, so ``hash_buckets: 1000000000`` or ``embedding_dim=100000000`` fails in a second
instead of after writing gigabytes or dying in the allocator.

Optimizer slots per embedding table (copies of the table the optimizer keeps): ``OPTIMIZER_SLOTS``; a
table of ``rows`` x ``width`` float32 values then takes ``rows * width * 4 * (1 + slots)`` bytes.
"""

from __future__ import annotations

import os

FLOAT_BYTES = 4
# Full-size slot copies per table: Adam's two moments (rowwise_adam: one, plus a [rows, 1] second moment).
OPTIMIZER_SLOTS = {"rowwise_adam": 1, "lazy_adam": 2, "adam": 2, "adagrad": 1, "sgd": 0}
MAX_OPTIMIZER_SLOTS = max(OPTIMIZER_SLOTS.values())
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMITS:
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def available_memory_bytes() -> int:
    """Physical memory of this machine, or the process's cgroup limit when lower."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit()
    return min(physical, limit) if limit else physical


def table_bytes(rows: int, width: int, slots: int = MAX_OPTIMIZER_SLOTS) -> int:
    """Bytes of a float32 [rows, width] table with ``slots`` optimizer copies."""
    return int(rows) * int(width) * FLOAT_BYTES * (1 + int(slots))


def gigabytes(num_bytes: float) -> str:
    return f"{num_bytes / (1 << 30):,.1f} GB"


def require_fits(what: str, estimate: int, detail: str = "") -> None:
    """ValueError ``"{what}: ... about X GB (detail), more than the Y GB of memory ..."`` if it does not fit."""
    limit = available_memory_bytes()
    if estimate > limit:
        detail = f" ({detail})" if detail else ""
        raise ValueError(f"{what}: needs about {gigabytes(estimate)}{detail}, more than the {gigabytes(limit)} of "
                         "memory this machine has")
