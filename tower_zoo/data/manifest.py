"""The manifest of a prepared directory, and writing that directory atomically.

``manifest.json`` is written last, into a staging directory beside the target that is renamed into
place only when complete (``staged_directory``), so an interrupted ``prepare`` leaves either the
previous directory or nothing under the target name: never a directory that ``read_manifest``
accepts. The manifest records the format version, the schema, the source files (size, mtime and a
fingerprint: SHA-256 of the size and the first and last MiB, cheap even for large shards), the
rows of every part, and the size and SHA-256 of every other file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, Iterator

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
_PARTIAL_MARKER = ".partial-"


class PreparedDataError(ValueError):
    """A prepared directory that is missing, incomplete, corrupt or of another format version."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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


def read_manifest(directory: str, verify_shards: bool = False) -> dict[str, Any]:
    """The manifest of a prepared directory, after checking it: format version, every file present with
    its recorded size, and the SHA-256 of every file (shards, the ``part-*.parquet`` files, only with
    ``verify_shards``: hashing gigabytes at every open is slow; their sizes are always checked)."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isdir(directory):
        raise PreparedDataError(f"{directory!r} does not exist or is not a directory")
    if not os.path.isfile(path):
        raise PreparedDataError(f"{directory!r} is not a prepared dataset: no {MANIFEST_FILE} (an interrupted "
                                "`tower-zoo prepare` leaves none; run prepare again)")
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as err:
        raise PreparedDataError(f"{path}: unreadable manifest ({err})") from err
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise PreparedDataError(f"{path}: format_version {version!r} is not supported (this tower_zoo reads "
                                f"version {FORMAT_VERSION}); prepare the data again with this version")
    for relative, record in manifest.get("files", {}).items():
        file_path = os.path.join(directory, relative)
        if not os.path.isfile(file_path):
            raise PreparedDataError(f"{directory!r}: {relative} is missing (listed in {MANIFEST_FILE})")
        size = os.path.getsize(file_path)
        if size != record["size"]:
            raise PreparedDataError(f"{file_path}: {size} bytes, the manifest says {record['size']} "
                                    "(truncated or modified)")
        if (verify_shards or not os.path.basename(relative).startswith("part-")) and \
                file_sha256(file_path) != record["sha256"]:
            raise PreparedDataError(f"{file_path}: SHA-256 differs from the manifest (corrupt or modified)")
    return manifest


# ============================================================================= staging
def _remove_stale_partials(target: str) -> None:
    """Deletes staging directories of ``target`` left by prepares whose process no longer runs."""
    parent, base = os.path.split(os.path.abspath(target))
    prefix = f".{base}{_PARTIAL_MARKER}"
    for name in os.listdir(parent):
        if name.startswith(prefix):
            pid = name[len(prefix):].split("-")[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_replaceable(target: str, overwrite: bool, require_manifest: bool = True) -> None:
    """FileExistsError unless ``target`` is absent, or ``overwrite`` and it is a directory that is
    prepared (has a manifest), empty, or ``require_manifest`` is False."""
    if not os.path.exists(target):
        return
    if not overwrite:
        raise FileExistsError(f"{target!r} exists; pass --overwrite (overwrite=True) to replace it")
    if not os.path.isdir(target) or (require_manifest and os.listdir(target)
                                     and not os.path.isfile(os.path.join(target, MANIFEST_FILE))):
        raise FileExistsError(f"{target!r} exists and is not a prepared dataset; refusing to replace it")


@contextlib.contextmanager
def staged_directory(target: str, overwrite: bool = False, require_manifest: bool = True) -> Iterator[str]:
    """Yields an empty staging directory beside ``target``; renames it to ``target`` when the block
    completes (replacing a previous directory if ``overwrite``, see ``check_replaceable``), deletes it
    if the block fails."""
    target = os.path.abspath(target)
    check_replaceable(target, overwrite, require_manifest)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_partials(target)
    staging = os.path.join(parent, f".{os.path.basename(target)}{_PARTIAL_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(staging)
    try:
        yield staging
        check_replaceable(target, overwrite, require_manifest)
        if os.path.exists(target):
            retired = f"{staging}-replaced"
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
