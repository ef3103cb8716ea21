"""Datasets by name, for the CLI and benchmarks."""

from __future__ import annotations

from typing import Callable

from tower_zoo.data.memory.dataset import InteractionData


def _movielens_100k(data_dir: str | None, cache_dir: str | None) -> InteractionData:
    from tower_zoo.data.builtin.movielens import movielens_100k
    return movielens_100k(data_dir=data_dir, cache_dir=cache_dir)


def _movielens_1m(data_dir: str | None, cache_dir: str | None) -> InteractionData:
    from tower_zoo.data.builtin.movielens import movielens_1m
    if not data_dir:
        raise ValueError("dataset 'movielens-1m' needs --data_dir: a directory with ratings.dat, users.dat, movies.dat")
    return movielens_1m(data_dir)


def _synthetic(data_dir: str | None, cache_dir: str | None) -> InteractionData:
    from tower_zoo.data.builtin.synthetic import synthetic_interactions
    if data_dir:
        raise ValueError(f"dataset 'synthetic' is generated in memory and reads no --data_dir (got {data_dir!r})")
    return synthetic_interactions()


DATASETS: dict[str, Callable[[str | None, str | None], InteractionData]] = {
    "movielens-100k": _movielens_100k,
    "movielens-1m": _movielens_1m,
    "synthetic": _synthetic,
}


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def load_dataset(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> InteractionData:
    """Loads dataset ``name`` (see ``list_datasets()``); ``data_dir`` points at GroupLens files."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    return DATASETS[name](data_dir, cache_dir)
