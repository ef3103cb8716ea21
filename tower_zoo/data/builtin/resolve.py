"""Built-in datasets as schemas: MovieLens-100K, MovieLens-1M and the small synthetic set.

Each has a schema file shipped with the package (``tower_zoo/data/builtin/schemas/<name>.yaml``) whose
paths are relative to a directory of Parquet files that its loader materializes once into the cache
(``<cache>/schema-sources/<name>``; ML-1M per ``data_dir``): ``ratings.parquet``,
``users.parquet`` and ``items.parquet``, the canonical tables of ``InteractionData`` (multi-valued
columns as lists). The directory is written under a temporary name and renamed when complete.

``resolve_schema(name_or_path)`` is what the command line calls with ``--data``: a built-in name or
a schema file.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tower_zoo.data.builtin.catalog import DATASETS, load_dataset
from tower_zoo.data.memory.dataset import InteractionData
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.schema.loading import load_schema
from tower_zoo.data.store.manifest import MANIFEST_FILE
from tower_zoo.data.store.replace import staged_directory

SCHEMA_DIR = pathlib.Path(__file__).parent / "schemas"
TABLE_FILES = {"ratings": "ratings.parquet", "users": "users.parquet", "items": "items.parquet"}


def builtin_schema_names() -> list[str]:
    return sorted(DATASETS)


def _as_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuple cells (genres) become lists, which Arrow stores as list columns."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object and len(frame) and isinstance(frame[column].iloc[0], tuple):
            frame[column] = frame[column].map(list)
    return frame


def write_interaction_data(data: InteractionData, directory: str | os.PathLike) -> pathlib.Path:
    """Writes ``data``'s ratings, users and items as Parquet into ``directory`` (atomically)."""
    with staged_directory(os.fspath(directory), overwrite=True, require_manifest=False) as staging:
        for table, name in TABLE_FILES.items():
            frame = _as_lists(getattr(data, table))
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), os.path.join(staging, name))
    return pathlib.Path(directory)


def materialized_dir(name: str, data_dir: str | None = None, cache_dir: str | None = None) -> pathlib.Path:
    """The Parquet directory of built-in dataset ``name``, written from its loader if absent."""
    from tower_zoo.data.builtin.movielens import default_cache_dir

    cache = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    folder = name
    if data_dir:  # e.g. movielens-1m: one materialization per source directory
        folder += "-" + hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:12]
    directory = cache / "schema-sources" / folder
    if not all((directory / file).is_file() for file in TABLE_FILES.values()):
        write_interaction_data(load_dataset(name, data_dir, cache_dir), directory)
    return directory


def builtin_schema(name: str, data_dir: str | None = None, cache_dir: str | None = None,
                   check_files: bool = True) -> DatasetSchema:
    """The schema of built-in dataset ``name`` (see ``builtin_schema_names()``), its files materialized."""
    if name not in DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; available: {', '.join(builtin_schema_names())}")
    return load_schema(SCHEMA_DIR / f"{name}.yaml", base_dir=materialized_dir(name, data_dir, cache_dir),
                       check_files=check_files)


def data_kind(name_or_path: str) -> str:
    """What ``--data name_or_path`` names: "built-in dataset", "prepared directory", "directory" (neither),
    "schema file" or "missing"."""
    if name_or_path in DATASETS:
        return "built-in dataset"
    if os.path.isdir(name_or_path):
        return "prepared directory" if os.path.isfile(os.path.join(name_or_path, MANIFEST_FILE)) else "directory"
    return "schema file" if os.path.exists(name_or_path) else "missing"


def check_data_dir(name_or_path: str, data_dir: str | None) -> None:
    """``data_dir`` is read for built-in datasets only: ValueError when it is given with a schema file or a
    prepared directory, which name their own files (rather than silently ignoring it)."""
    kind = data_kind(name_or_path)
    if data_dir and kind in ("schema file", "prepared directory"):
        raise ValueError(f"--data_dir {data_dir!r} is read only with a built-in --data name "
                         f"({', '.join(builtin_schema_names())}); --data {name_or_path!r} is a {kind}, which names "
                         "its own files: drop --data_dir")


def resolve_schema(name_or_path: str, data_dir: str | None = None, cache_dir: str | None = None) -> DatasetSchema:
    """A built-in dataset by name, or a schema file (YAML or JSON) by path. ValueError for a directory (a
    prepared one included: it holds encoded shards, not a schema) and for ``data_dir`` with a schema file."""
    kind = data_kind(name_or_path)
    if kind == "built-in dataset":
        return builtin_schema(name_or_path, data_dir, cache_dir)
    names = ", ".join(builtin_schema_names())
    accepted = f"--data takes a schema file (YAML or JSON) or a built-in dataset ({names})"
    if kind == "missing":
        raise FileNotFoundError(f"--data {name_or_path!r} is neither a schema file nor a built-in dataset ({names})")
    if kind == "directory":
        raise ValueError(f"--data {name_or_path!r} is a directory, but neither a prepared dataset (it has no "
                         f"{MANIFEST_FILE}) nor a schema file; {accepted}, or for train and describe a prepared "
                         "directory")
    if kind == "prepared directory":
        raise ValueError(f"--data {name_or_path!r} is a prepared directory, which holds encoded shards rather "
                         f"than a schema; {accepted}")
    check_data_dir(name_or_path, data_dir)
    return load_schema(name_or_path)
