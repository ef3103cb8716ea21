"""Files and directories written safely: atomic JSON writes, permissions that follow the umask, and
directory locks.

* ``write_json_atomic``: a reader sees the old file or the new one, never a partial one; ``read_json_record``
  reads one back, or says which file and which field is missing or malformed. ``is_regular_file`` tells a
  missing file from one that cannot be read or is a directory.
* ``apply_umask``: temporary files and directories (``mkstemp`` / ``mkdtemp``) are created 0600 / 0700
  whatever the umask; once renamed into place they get the permissions an ordinary ``open`` or ``mkdir``
  would have given them, so a teammate can read a run or serve an export when the umask allows it.
* ``exchange_paths``: swaps two paths in one ``renameat2(RENAME_EXCHANGE)`` call where the file system has it,
  so a directory is replaced without a moment in which its path is empty.
* ``directory_lock``: an exclusive (or, for readers, shared) ``flock`` on a directory, held for a block of
  code and released by the kernel when the process exits or dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import stat
import tempfile
from typing import Any, Iterator, Mapping

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_HELD_LOCKS: dict[str, list] = {}  # real path -> [file descriptor, nesting depth, shared]
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true or false"}


def current_umask() -> int:
    """The process umask, read from /proc where possible (``os.umask`` can only read it by changing it)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str, directory: bool = False) -> None:
    """Gives ``path`` the mode a plain ``open``/``mkdir`` would: 0666 / 0777 minus the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def write_json_atomic(path: str, payload: Mapping[str, Any]) -> None:
    """Writes JSON to a temp file in the same directory, then renames it over ``path``."""
    write_bytes_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to a temp file in the same directory, then renames it over ``path`` (exactly that name)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def permission_denied(path: str, what: str) -> PermissionError:
    """The error for a file this process may not read, naming ``what`` (e.g. "run file") and the path."""
    return PermissionError(f"{what} {path!r} cannot be read (permission denied)")


def is_regular_file(path: str, what: str) -> bool:
    """True when ``path`` is a regular file, False when nothing is there; PermissionError (a directory on the
    way may not be searched) or ValueError (a directory or another kind of file) naming ``what`` and the path."""
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        raise permission_denied(path, what) from None
    if not stat.S_ISREG(status.st_mode):
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise ValueError(f"{what} {path!r} is {kind}, not a file")
    return True


def read_json_record(path: str, fields: Mapping[str, type], what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (which must exist), with each of ``fields`` present and of its JSON type.

    ValueError naming ``what`` (e.g. "run file"), the path and the field otherwise; PermissionError naming them
    when the file may not be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except PermissionError:
        raise permission_denied(path, what) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path!r} is corrupt: {err}") from err
    if not isinstance(record, dict):
        raise ValueError(f"{what} {path!r} must hold a JSON object, got {type(record).__name__} {record!r:.40}")
    for key, kind in fields.items():
        if key not in record:
            raise ValueError(f"{what} {path!r} lacks the field {key!r}")
        value = record[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"{what} {path!r}: field {key!r} must be {_JSON_TYPES[kind]}, got {value!r}")
    return record


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Atomically swaps two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def holds(directory: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when ``path`` is ``directory`` or lies inside it (both resolved: links, ``..``)."""
    directory, path = os.path.realpath(directory), os.path.realpath(path)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's content, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def managed_ancestor(path: str | os.PathLike) -> tuple[str, str] | None:
    """(kind, directory) of the nearest directory above ``path`` whose files tower_zoo manages: a "run directory"
    (``run.json``) or a "prepared dataset or export" (a ``manifest.json`` of ours: a ``format_version``, the
    ``files`` it lists, which a stray file inside would fail, and a prepared dataset's ``parts`` or an export's
    ``model_name``); None when there is none. Another tool's manifest.json does not count."""
    for parent in pathlib.Path(os.path.abspath(path)).parents:
        if (parent / "run.json").is_file():
            return "run directory", str(parent)
        manifest = parent / "manifest.json"
        if manifest.is_file():
            try:
                with open(manifest) as handle:
                    content = json.load(handle)
                ours = (isinstance(content, dict) and "format_version" in content
                        and isinstance(content.get("files"), dict) and ("parts" in content or "model_name" in content))
            except (OSError, ValueError):
                ours = False
            if ours:
                return "prepared dataset or export", str(parent)
    return None


@contextlib.contextmanager
def directory_lock(directory: str, blocking: bool = True, shared: bool = False) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``directory`` (which must exist) for the ``with`` block; ``shared``: a
    shared one (readers), which any number of processes may hold at once but not beside an exclusive one.

    Re-entrant within one process (a shared request inside an exclusive hold gets the exclusive lock; an
    exclusive request inside a shared hold is a RuntimeError, as flock cannot upgrade atomically). Without
    ``blocking``, raises ``BlockingIOError`` at once when another process holds it. The kernel releases the
    lock when the process exits, however it ends."""
    key = os.path.realpath(directory)
    if key in _HELD_LOCKS:
        if _HELD_LOCKS[key][2] and not shared:
            raise RuntimeError(f"{directory!r}: an exclusive lock was requested while this process holds a shared one")
        _HELD_LOCKS[key][1] += 1
    else:
        fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise BlockingIOError(err.errno, f"{directory!r} is locked by another process") from err
            raise
        _HELD_LOCKS[key] = [fd, 1, shared]
    try:
        yield
    finally:
        _HELD_LOCKS[key][1] -= 1
        if not _HELD_LOCKS[key][1]:
            fd = _HELD_LOCKS.pop(key)[0]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
