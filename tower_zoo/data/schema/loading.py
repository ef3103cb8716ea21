"""``load_schema``: a schema file parsed (``tower_zoo.data.schema.dataset_schema``) and, by default, checked
against the files it names (``tower_zoo.data.schema.files``). It sits above both so that neither imports the
other's user: the parser knows nothing of files, the file readers take a parsed schema."""

from __future__ import annotations

import os

from tower_zoo.data.schema.dataset_schema import DatasetSchema, parse_schema, read_schema_file
from tower_zoo.data.schema.files import check_schema_files


def load_schema(path: str | os.PathLike, base_dir: str | os.PathLike | None = None,
                check_files: bool = True) -> DatasetSchema:
    """Parses and validates the schema file ``path``; relative paths in it are resolved against
    ``base_dir`` (default: the schema file's directory). With ``check_files``, every file the globs
    match is opened and the columns the schema names are checked to exist (``tower_zoo.data.schema.files``)."""
    raw = read_schema_file(path)
    schema = parse_schema(raw, os.fspath(path), base_dir if base_dir is not None else os.path.dirname(
        os.path.abspath(path)))
    if check_files:
        check_schema_files(schema)
    return schema
