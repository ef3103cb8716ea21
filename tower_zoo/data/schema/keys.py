"""Names of the non-feature entries of a training batch, and of the one feature every path builds itself.

A batch is a dict ``{feature name: encoded tensor}`` (see ``FeatureSpec.encode``) that may also hold
these entries. Their names start with ``"__"`` so they can never collide with a feature; towers ignore
them, tasks read them. ``HISTORY_FEATURE`` is the user-side sequence of the user's most recent items
before an interaction: built per example (by ``prepare``, or the in-memory splits), never read from a table.
"""

from __future__ import annotations

HISTORY_FEATURE = "history"
RESERVED_PREFIX = "__"
LABEL = "__label__"                      # float32 [B] 0/1 exposure label (ranking task)
SAMPLE_WEIGHT = "__sample_weight__"      # float32 [B] per-example weight
TEACHER_LOGIT = "__teacher_logit__"      # float32 [B] a ranker's logit to distil (ranking task)
HARD_NEGATIVES = "__hard_negatives__"    # int32 [B, H] rows of the item table (retrieval task)
KEEP = "__keep__"                        # float32 [B] 1 = kept, 0 = dropped by positive down-sampling


def objective_label(name: str) -> str:
    """Batch key of objective ``name``'s 0/1 labels (float32 [B]), e.g. ``__label_like__``."""
    return f"{RESERVED_PREFIX}label_{name}{RESERVED_PREFIX}"


def is_reserved(key: str) -> bool:
    """True for batch entries that are not features."""
    return key.startswith(RESERVED_PREFIX)


def features_only(batch: dict) -> dict:
    """The feature entries of ``batch``."""
    return {k: v for k, v in batch.items() if not is_reserved(k)}
