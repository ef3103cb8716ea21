"""Export directories on disk: what counts as a tower_zoo export, and how one is replaced without ever
leaving the served path empty, half-written, or pointing at someone else's files.

* An export is a directory whose ``manifest.json`` parses, has the fields every format version has, and
  lists with their SHA-256 exactly the files the directory holds (``read_manifest``, ``verify_files``); an
  export of an older format version is still one of ours (it may be replaced), but only the current version
  is served (``check_version``: an older or newer one is refused, saying what to do).
* ``check_target``: ``overwrite`` replaces only such a directory. Anything else (a directory with other
  files, the source run directory, the current directory or one that holds it) is refused, whatever the flags.
* A new export is written into a staging directory ``.NAME.tmp-*`` beside the target, which holds a marker
  file while it is being written. ``install`` swaps it with the old export in one ``renameat2(RENAME_EXCHANGE)``
  call where the file system supports it (the served path always holds a complete export); elsewhere the old
  one is renamed aside to ``.NAME.old-*`` and the new one renamed into place (a kill between the two renames is
  repaired by the next export or load). The old export is removed last.
* ``discard`` marks a directory before deleting it, so a kill at any point leaves a directory that is
  recognizably ours; ``clean_leftovers`` removes such leftovers (and only those) on the next export or load.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from typing import Any, Iterable

from absl import logging

from tower_zoo.fileio import apply_umask, file_sha256, managed_ancestor, read_json_record
from tower_zoo.fileio import exchange_paths as _exchange  # a module name, so that tests can fake its absence

MANIFEST = "manifest.json"
# 2: raw-feature signatures, exact top-k and candidate-scorer SavedModels, users.parquet (1: encoded features).
FORMAT_VERSION = 2
STAGING_MARKER = ".tower_zoo_staging"
LEFTOVER_KINDS = ("tmp", "old")
# Manifest fields every format version has, with their JSON types (``load`` checks the fields of its kind).
MANIFEST_FIELDS = {"format_version": int, "files": dict, "model_name": str, "feature_spec": dict}



def checksums(root: pathlib.Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path (the manifest and the staging marker excluded)."""
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in (MANIFEST, STAGING_MARKER)}


def check_version(root: pathlib.Path, version: int) -> None:
    """ValueError unless this tower_zoo reads exports of format ``version``, saying what to do instead."""
    if version > FORMAT_VERSION:
        raise ValueError(f"export {str(root)!r} has format_version {version}, newer than this tower_zoo reads "
                         f"({FORMAT_VERSION}): upgrade tower_zoo to serve it")
    if version != FORMAT_VERSION:
        raise ValueError(f"export {str(root)!r} has format_version {version}, this tower_zoo reads "
                         f"{FORMAT_VERSION} (raw-feature signatures): export the run again with tower-zoo export "
                         "--overwrite")


def read_manifest(root: pathlib.Path, any_version: bool = False) -> dict[str, Any]:
    """The parsed manifest of export ``root``; FileNotFoundError or ValueError naming the file and field.
    ``any_version``: an export of any format version (to recognize one of ours, e.g. before replacing it)."""
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a tower_zoo export: {MANIFEST} not found")
    manifest = read_json_record(str(path), MANIFEST_FIELDS, "export manifest")
    if not any_version:
        check_version(root, manifest["format_version"])
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest["files"].items()):
        raise ValueError(f"export manifest {str(path)!r}: field 'files' must map file names to SHA-256 strings")
    return manifest


def verify_files(root: pathlib.Path, manifest: dict[str, Any], exact: bool = False) -> None:
    """Every file the manifest lists exists with its checksum; with ``exact``, no other file is there."""
    actual = checksums(root)
    for name, digest in manifest["files"].items():
        if name not in actual:
            raise ValueError(f"export {str(root)!r} is missing {name}")
        if actual[name] != digest:
            raise ValueError(f"export file {str(root / name)!r} does not match its checksum (truncated or altered)")
    extra = sorted(set(actual) - set(manifest["files"]))
    if exact and extra:
        raise ValueError(f"{str(root)!r} holds files its {MANIFEST} does not list, e.g. {extra[0]!r}")


def is_complete_export(root: pathlib.Path) -> bool:
    """True when ``root`` is a tower_zoo export whose manifest lists exactly its files, all intact."""
    try:
        verify_files(root, read_manifest(root, any_version=True), exact=True)
    except (OSError, ValueError):
        return False
    return True


def _overlaps(a: pathlib.Path, b: pathlib.Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_target(target: pathlib.Path, overwrite: bool, protected: Iterable[pathlib.Path] = ()) -> None:
    """Raises unless an export may be written at ``target`` (absolute): it must not be, hold or lie inside a
    ``protected`` directory; an existing target needs ``overwrite``, must not be or hold the current
    directory, and must be a complete tower_zoo export."""
    for directory in protected:
        if _overlaps(target, directory):
            raise ValueError(f"refusing to export to {str(target)!r}: it is, holds or lies inside the run "
                             f"directory {str(directory)!r}; choose another --export_dir")
    owner = managed_ancestor(target)
    if owner is not None:
        raise ValueError(f"refusing to export to {str(target)!r}: it lies inside the {owner[0]} {owner[1]!r}, whose "
                         "files tower_zoo manages; choose another --export_dir")
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise FileExistsError(f"export directory {str(target)!r} exists; pass overwrite=True (--overwrite) "
                              "to replace it")
    cwd = pathlib.Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise ValueError(f"refusing to replace {str(target)!r}: it is or holds the current directory")
    try:
        verify_files(target, read_manifest(target, any_version=True), exact=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"refusing to replace {str(target)!r}: --overwrite replaces only a complete tower_zoo "
                         f"export, and {err}; remove it yourself or choose another --export_dir") from err


def make_staging(target: pathlib.Path) -> pathlib.Path:
    """A fresh, marked staging directory beside ``target`` (permissions as the umask allows)."""
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    apply_umask(str(staging), directory=True)
    (staging / STAGING_MARKER).touch()
    return staging


def install(staging: pathlib.Path, target: pathlib.Path) -> None:
    """Puts the complete export ``staging`` at ``target``, replacing the export there (see the module doc)."""
    (staging / STAGING_MARKER).unlink()
    if not os.path.lexists(target):
        os.replace(staging, target)
    elif _exchange(staging, target):
        discard(staging)  # it now holds the old export
    else:
        aside = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, aside)
        os.replace(staging, target)
        discard(aside)


def discard(path: pathlib.Path) -> None:
    """Deletes a directory of ours, marking it first so that a kill midway leaves it recognizable."""
    marker = path / STAGING_MARKER
    marker.touch()
    for entry in path.iterdir():
        if entry.name != STAGING_MARKER:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    marker.unlink()
    path.rmdir()


def leftovers(target: pathlib.Path, kind: str | None = None) -> list[pathlib.Path]:
    """Staging (``.NAME.tmp-*``) and set-aside (``.NAME.old-*``) directories of ``target``, oldest name first."""
    if not target.parent.is_dir():
        return []
    prefixes = tuple(f".{target.name}.{k}-" for k in ((kind,) if kind else LEFTOVER_KINDS))
    return sorted(p for p in target.parent.iterdir()
                  if p.name.startswith(prefixes) and p.is_dir() and not p.is_symlink())


def _is_ours(path: pathlib.Path) -> bool:
    return (path / STAGING_MARKER).exists() or not any(path.iterdir()) or is_complete_export(path)


def clean_leftovers(target: pathlib.Path) -> None:
    """Repairs a replace killed between its two renames (the target missing, the old export set aside: the
    new complete export, else the old one, goes back into place), then removes every leftover of ours.
    The caller holds the parent directory's lock, so no export into it is running."""
    if not os.path.lexists(target) and any(is_complete_export(p) for p in leftovers(target, "old")):
        candidates = [p for p in leftovers(target, "tmp") + leftovers(target, "old") if is_complete_export(p)]
        os.replace(candidates[0], target)
        logging.warning("finished an interrupted export replace: %s moved into %s", candidates[0], target)
    for path in leftovers(target):
        if _is_ours(path):
            discard(path)
        else:
            logging.warning("left %s alone: its name looks like a tower_zoo leftover but it is not one", path)
