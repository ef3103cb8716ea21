"""Replacing a prepared directory: what ``--overwrite`` may replace, and how, so that no failure or kill loses
the data that was there.

* ``check_replaceable``: an existing target is replaced only with ``overwrite``, and only when it is an empty
  directory or a complete prepared dataset that is ours alone (``read_manifest(exact=True)``: the manifest's
  fields, every file it lists with its size and the SHA-256 of the non-shard files, and no file it does not
  list). Never, whatever the flags: the current directory or one that holds it, a directory that holds the
  schema file or a source file, a run directory (``run.json``), an export or another tool's folder.
* ``check_location``: a target inside a prepared dataset or an export is refused (it would break that one's
  exact file listing); inside a run directory is fine.
* ``staged_directory``: the new directory is written into a staging directory ``.NAME.partial-PID-*`` beside
  the target and swapped with the old one in one ``renameat2(RENAME_EXCHANGE)`` (``fileio.exchange_paths``),
  so the target path always holds a complete directory. Where the file system lacks the exchange, the old one
  is renamed aside (``STAGING-replaced``) and the new one into place: a failure between the two renames puts
  the old one back at once, and a kill there is repaired by the next prepare or open (``repair``).
* ``move_into_place``: the same install for a complete prepared directory written elsewhere on the file
  system (a candidate checked before it replaces the target).
* ``repair``: removes what dead prepares left beside the target; if the target is missing (a kill between the
  renames), first moves the complete new directory (else the complete old one) into place.

The caller holds the target's exclusive lock (``tower_zoo.data.store.prepared_lock``) around all of these but
``move_into_place``, which takes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Iterator, Sequence

from absl import logging

from tower_zoo import fileio
from tower_zoo.data.store.manifest import PreparedDataError, read_manifest
from tower_zoo.data.store.prepared_lock import prepared_lock

PARTIAL_MARKER = ".partial-"
RETIRED_SUFFIX = "-replaced"
RUN_FILE = "run.json"   # what makes a directory a run (tower_zoo.run_record.RUN_FILE)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_leftovers(target: str) -> list[str]:
    """Staging and set-aside directories of ``target`` whose prepare no longer runs, new before old."""
    parent, base = os.path.split(target)
    prefix = f".{base}{PARTIAL_MARKER}"
    if not os.path.isdir(parent):
        return []
    found = []
    for name in sorted(os.listdir(parent)):
        pid = name[len(prefix):].split("-")[0]
        if name.startswith(prefix) and pid.isdigit() and not _process_alive(int(pid)):
            found.append(os.path.join(parent, name))
    return sorted(found, key=lambda path: path.endswith(RETIRED_SUFFIX))


def _is_complete(directory: str) -> bool:
    try:
        read_manifest(directory)
    except PreparedDataError:
        return False
    return True


def interrupted(target: str) -> bool:
    """True when ``target`` is missing and a dead prepare left a complete directory beside it: a replace
    killed between its renames, which ``repair`` finishes."""
    target = os.path.abspath(target)
    return not os.path.lexists(target) and any(_is_complete(path) for path in _dead_leftovers(target))


def repair(target: str) -> None:
    """Finishes a replace killed between its renames, then removes dead prepares' leftovers (module doc)."""
    target = os.path.abspath(target)
    leftovers = _dead_leftovers(target)
    if not os.path.lexists(target):
        complete = [path for path in leftovers if _is_complete(path)]
        if complete:
            os.replace(complete[0], target)
            leftovers.remove(complete[0])
            logging.warning("finished an interrupted prepare: %s moved into %s", complete[0], target)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def _why_not(target: str, protected: Sequence[tuple[str, str]], require_manifest: bool) -> str | None:
    """Why the existing ``target`` may not be replaced, or None."""
    if not os.path.isdir(target):
        return "it is not a directory"
    if fileio.holds(target, os.getcwd()):
        return "it is or holds the current directory"
    for what, path in protected:
        if fileio.holds(target, path):
            return f"it holds {what} {path}"
    if not require_manifest or not os.listdir(target):
        return None
    if os.path.isfile(os.path.join(target, RUN_FILE)):
        return f"it is a tower_zoo run directory ({RUN_FILE})"
    try:
        read_manifest(target, exact=True)
    except PreparedDataError as err:
        return str(err)
    return None


def check_location(target: str) -> None:
    """ValueError when ``target`` lies inside a prepared dataset or an export (``fileio.managed_ancestor``): a new
    directory there would make that one fail its exact file listing. Inside a run directory is fine (a run
    prepares its own data into ``RUN/prepared``)."""
    owner = fileio.managed_ancestor(target)
    if owner is not None and owner[0] != "run directory":
        raise ValueError(f"refusing to prepare into {target!r}: it lies inside the {owner[0]} {owner[1]!r}, whose "
                         "files tower_zoo manages; choose another --out")


def check_replaceable(target: str, overwrite: bool, protected: Sequence[tuple[str, str]] = (),
                      require_manifest: bool = True) -> None:
    """Raises unless ``target`` is absent or, with ``overwrite``, may be replaced (see the module docstring).
    ``protected``: (what, path) of the files it must not hold (the schema file, the sources); without
    ``require_manifest`` any other directory may be replaced (a cache of ours)."""
    target = os.path.abspath(target)
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise FileExistsError(f"{target!r} exists; pass --overwrite (overwrite=True) to replace it")
    reason = _why_not(target, protected, require_manifest)
    if reason:
        raise ValueError(f"refusing to replace {target!r}: {reason}; --overwrite replaces only a complete prepared "
                         "dataset: remove it yourself or choose another --out")


def _install(staging: str, target: str) -> None:
    """Puts the complete ``staging`` at ``target``, replacing what is there (see the module docstring)."""
    if not os.path.lexists(target):
        os.replace(staging, target)
        return
    if fileio.exchange_paths(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old directory
        return
    retired = f"{staging}{RETIRED_SUFFIX}"
    os.replace(target, retired)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _staging_path(target: str) -> str:
    parent, base = os.path.split(target)
    return os.path.join(parent, f".{base}{PARTIAL_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def move_into_place(directory: str, target: str) -> None:
    """Replaces ``target`` (absent or replaceable, see ``check_replaceable``) by the complete prepared
    ``directory`` on the same file system, under ``target``'s exclusive lock."""
    target = os.path.abspath(target)
    read_manifest(directory)
    with prepared_lock(target, exclusive=True):
        repair(target)
        check_replaceable(target, overwrite=True)
        staging = _staging_path(target)
        os.replace(directory, staging)
        try:
            _install(staging, target)
        except BaseException:
            os.replace(staging, directory)
            raise


@contextlib.contextmanager
def staged_directory(target: str, overwrite: bool = False, require_manifest: bool = True,
                     protected: Sequence[tuple[str, str]] = ()) -> Iterator[str]:
    """Yields an empty staging directory beside ``target``; puts it at ``target`` when the block completes
    (replacing a previous directory if ``overwrite`` and ``check_replaceable`` allows it), deletes it if the
    block fails."""
    target = os.path.abspath(target)
    repair(target)
    check_replaceable(target, overwrite, protected, require_manifest)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = _staging_path(target)
    os.makedirs(staging)
    try:
        yield staging
        check_replaceable(target, overwrite, protected, require_manifest)
        _install(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
