"""Synthetic interactions with planted structure, for unit tests only (results people read come
from real data).

Users and items each belong to one of ``num_clusters`` taste clusters; a user interacts with items
of its own cluster with probability ``signal`` (otherwise a uniformly random item), so a model that
learns the clusters beats popularity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tower_zoo.data.memory.dataset import InteractionData, build_interaction_data


def synthetic_interactions(num_users: int = 200, num_items: int = 100, interactions_per_user: int = 12,
                           num_clusters: int = 4, signal: float = 0.9, history_length: int = 10,
                           seed: int = 0) -> InteractionData:
    """A small InteractionData: users (user_id, segment), items (item_id, category, genres)."""
    if min(num_users, num_items, interactions_per_user, num_clusters) < 1:
        raise ValueError("synthetic_interactions needs positive sizes")
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(num_clusters, size=num_users)
    item_cluster = np.arange(num_items) % num_clusters
    rows = []
    for user in range(num_users):
        own = np.flatnonzero(item_cluster == user_cluster[user])
        for step in range(interactions_per_user):
            item = rng.choice(own) if rng.random() < signal else rng.integers(num_items)
            rows.append((user + 1, int(item) + 1, float(rng.integers(1, 6)), 1_000_000 + 60 * step + user))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    users = pd.DataFrame({"user_id": np.arange(1, num_users + 1),
                          "segment": [f"s{c}" for c in user_cluster]})
    items = pd.DataFrame({"item_id": np.arange(1, num_items + 1),
                          "category": [f"c{c}" for c in item_cluster],
                          "genres": [(f"g{c}", f"g{(c + 1) % num_clusters}") for c in item_cluster],
                          "title": [f"item {i}" for i in range(1, num_items + 1)]})
    return build_interaction_data("synthetic", ratings, users, items, source="synthetic",
                                  sequence_columns=("genres",), history_length=history_length)
