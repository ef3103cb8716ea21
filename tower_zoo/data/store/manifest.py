"""The manifest of a prepared directory: written, read and checked.

``manifest.json`` is written last, into a staging directory beside the target that is renamed into
place only when complete (``tower_zoo.data.store.replace``), so an interrupted ``prepare`` never leaves a
directory that ``read_manifest`` accepts under the target name. The manifest records the format
version, the schema, the source files (size, mtime and a fingerprint: SHA-256 of the size and the
first and last MiB, cheap even for large shards), the rows of every part, and the size and SHA-256
of every other file.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

from tower_zoo.fileio import file_sha256

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
# The files and reserved columns of a prepared directory (documented in tower_zoo.data.prepare).
FEATURE_SPEC_FILE = "feature_spec.json"
STATS_FILE = "stats.json"
ITEM_COUNTS_FILE = "item_counts.npy"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
RAW_ID_COLUMN = "__id__"            # raw id of a row of items.parquet / users.parquet / a query
TARGETS_COLUMN = "__targets__"      # list of raw held-out item ids of a query
EXCLUDE_COLUMN = "__exclude__"      # list of raw item ids a query's user interacted with before
FINGERPRINT_BYTES = 1 << 20
# Fields every prepared manifest has; those of an export's manifest (tower_zoo.serving.directory), to name one.
MANIFEST_FIELDS = ("format_version", "files", "schema", "sources", "parts")
EXPORT_FIELDS = ("format_version", "files", "model_name", "feature_spec")


class PreparedDataError(ValueError):
    """A prepared directory that is missing, incomplete, corrupt or of another format version."""



def source_record(path: str) -> dict[str, Any]:
    """``{path, size, mtime, fingerprint}`` of a source file (see the module docstring)."""
    stat = os.stat(path)
    digest = hashlib.sha256(str(stat.st_size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if stat.st_size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, stat.st_size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime": stat.st_mtime,
            "fingerprint": digest.hexdigest()}


def write_json_atomic(path: str, content: Any) -> None:
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(temporary, "w") as handle:
        json.dump(content, handle, indent=1, sort_keys=True, default=str)
    os.replace(temporary, path)


def write_manifest(directory: str, content: dict[str, Any]) -> dict[str, Any]:
    """Adds ``format_version`` and ``files`` (size and SHA-256 of every file under ``directory``) to
    ``content`` and writes it as the manifest; returns it."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory)
            if relative != MANIFEST_FILE:
                files[relative] = {"size": os.path.getsize(path), "sha256": file_sha256(path)}
    manifest = {**content, "format_version": FORMAT_VERSION, "files": dict(sorted(files.items()))}
    write_json_atomic(os.path.join(directory, MANIFEST_FILE), manifest)
    return manifest


def verify_file(path: str, record: dict[str, Any]) -> None:
    """PreparedDataError naming ``path`` unless its SHA-256 is the one ``record`` (its manifest entry) gives."""
    if file_sha256(path) != record["sha256"]:
        raise PreparedDataError(f"{path}: SHA-256 differs from the manifest (corrupt or modified since prepare); "
                                "prepare the data again")


def is_shard(relative: str) -> bool:
    """True for a ``part-*.parquet`` file of a part (checked by size at open, by SHA-256 when read)."""
    return os.path.basename(relative).startswith("part-")


def parse_manifest(path: str) -> dict[str, Any]:
    """The manifest at ``path`` with the fields of a prepared dataset of this format version, well formed."""
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise PreparedDataError(f"{path}: unreadable manifest ({err})") from err
    if not isinstance(manifest, dict):
        raise PreparedDataError(f"{path} is not the manifest of a prepared dataset (not a JSON object)")
    missing = [key for key in MANIFEST_FIELDS if key not in manifest]
    if missing and all(key in manifest for key in EXPORT_FIELDS):
        raise PreparedDataError(f"{os.path.dirname(path)!r} is a tower_zoo export (of model "
                                f"{manifest['model_name']!r}), not a prepared dataset")
    if missing:
        raise PreparedDataError(f"{path} is not the manifest of a prepared dataset (it lacks "
                                f"{', '.join(map(repr, missing))})")
    version = manifest["format_version"]
    if version != FORMAT_VERSION:
        raise PreparedDataError(f"{path}: format_version {version!r} is not supported (this tower_zoo reads "
                                f"version {FORMAT_VERSION}); prepare the data again with this version")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(isinstance(r, dict) and isinstance(r.get("size"), int)
                                               and isinstance(r.get("sha256"), str) for r in files.values()):
        raise PreparedDataError(f"{path}: field 'files' must map each file to its size and sha256")
    return manifest


def _unlisted_files(directory: str, listed: dict[str, Any]) -> list[str]:
    """Files under ``directory`` that are neither the manifest nor listed in it, sorted."""
    found = (os.path.relpath(os.path.join(root, name), directory) for root, _, names in os.walk(directory)
             for name in names)
    return sorted(name for name in found if name != MANIFEST_FILE and name not in listed)


def read_manifest(directory: str, verify_shards: bool = False, exact: bool = False) -> dict[str, Any]:
    """The manifest of a prepared directory, after checking it: its fields and format version, every file
    present with its recorded size, and the SHA-256 of every file (shards, the ``part-*.parquet`` files, only
    with ``verify_shards``: hashing gigabytes at every open is slow; their sizes are always checked). With
    ``exact``, the directory must hold no file the manifest does not list (it is ours alone)."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isdir(directory):
        raise PreparedDataError(f"{directory!r} does not exist or is not a directory")
    if not os.path.isfile(path):
        raise PreparedDataError(f"{directory!r} is not a prepared dataset: no {MANIFEST_FILE} (an interrupted "
                                "`tower-zoo prepare` leaves none; run prepare again)")
    manifest = parse_manifest(path)
    for relative, record in manifest["files"].items():
        file_path = os.path.join(directory, relative)
        if not os.path.isfile(file_path):
            raise PreparedDataError(f"{directory!r}: {relative} is missing (listed in {MANIFEST_FILE})")
        size = os.path.getsize(file_path)
        if size != record["size"]:
            raise PreparedDataError(f"{file_path}: {size} bytes, the manifest says {record['size']} "
                                    "(truncated or modified)")
        if verify_shards or not is_shard(relative):
            verify_file(file_path, record)
    unlisted = _unlisted_files(directory, manifest["files"]) if exact else []
    if unlisted:
        raise PreparedDataError(f"{directory!r} holds files its {MANIFEST_FILE} does not list, e.g. {unlisted[0]!r}")
    return manifest
