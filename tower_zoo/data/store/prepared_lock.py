"""Locks on prepared directories: readers share, a writer is alone.

``train``, ``evaluate`` and ``export`` read a prepared directory under a shared lock (``PreparedDataset.open``
and ``PreparedDataset.locked``); ``prepare`` holds an exclusive one while it writes and replaces it. Either side
facing the other gets one clear error at once (after a short grace period, so a holder that is just leaving
does not cause one), never a wait without end.

The lock is an ``flock`` on the file ``<parent>/.<name>.lock`` beside the directory, not on the directory, so
it holds across the renames that replace the directory. The kernel releases it when the process exits, however
it ends. The last holder removes the file (a holder checks after locking that the file it locked is still the
one at the path, so a removal never lets two writers in). ``flock`` locks belong to an open file description:
two locks taken in one process conflict just as two processes' do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from typing import Iterator

GRACE_SECONDS = 0.5


class PreparedDataInUseError(OSError):
    """Another process writes (or reads, for a writer) the prepared directory."""


def lock_path(directory: str) -> str:
    """``<parent>/.<name>.lock`` of ``directory``."""
    parent, name = os.path.split(os.path.abspath(directory))
    return os.path.join(parent, f".{name}.lock")


def _open_lock_file(path: str) -> int | None:
    """A descriptor of the lock file (created if need be); None where it cannot exist: a missing parent (nothing
    to lock) or a read-only one (no one can replace the directory there either)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            raise
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _try_lock(path: str, mode: int) -> int | None:
    """A descriptor holding ``mode`` on the file now at ``path``, -1 when another holder is in the way, None
    when no lock file can be made."""
    fd = _open_lock_file(path)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return -1
        raise
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # the last holder removed it after we opened it: lock the new one
        os.close(fd)
        return _try_lock(path, mode)
    return fd


def _in_use(directory: str, exclusive: bool) -> PreparedDataInUseError:
    if exclusive:
        return PreparedDataInUseError(f"prepared directory {directory!r} is in use by another tower-zoo process (a "
                                      "train, evaluate or export reading it, or a prepare writing it); wait for it "
                                      "to finish or prepare into another --out")
    return PreparedDataInUseError(f"prepared directory {directory!r} is being written by a running `tower-zoo "
                                  "prepare`; wait for it to finish")


def _release(path: str, fd: int) -> None:
    """Unlocks ``fd``, removing the lock file if no one else holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass  # someone else holds it (or it is gone): they remove it
    finally:
        os.close(fd)


@contextlib.contextmanager
def prepared_lock(directory: str, exclusive: bool = False) -> Iterator[None]:
    """Holds the shared (or ``exclusive``) lock of prepared ``directory`` for the block; PreparedDataInUseError
    if another holder is in the way for longer than ``GRACE_SECONDS``."""
    directory = os.path.abspath(directory)
    path = lock_path(directory)
    if exclusive:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + GRACE_SECONDS
    fd = _try_lock(path, mode)
    while fd == -1 and time.monotonic() < deadline:
        time.sleep(0.02)
        fd = _try_lock(path, mode)
    if fd == -1:
        raise _in_use(directory, exclusive)
    try:
        yield
    finally:
        if fd is not None:
            _release(path, fd)
