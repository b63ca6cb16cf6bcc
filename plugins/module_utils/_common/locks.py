# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-local exclusive locks (flock on a file): one fetch per base, one claim at a time.

A lock file may be removed (``unlink_held_lock``) by the holder, as the very last step of its
locked section: cache ageing drops the locks of bases that are gone, so that ``locks/`` does
not keep one file per image ever fetched. A run that was waiting on the removed file then
holds a lock on an inode no path names any more, which excludes nobody. So every holder checks,
once it has the flock, that the path still names the inode it locked, and starts again on
the path's current file when not. Holders of the current inode exclude each other; a holder
of an unlinked one has finished its work before it unlinked it.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from typing import Iterator

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError


class LockBusy(VirtopsError):
    """Another run held the lock for longer than the caller would wait."""


def _still_named(fd: int, path: str) -> bool:
    """Whether ``path`` still names the inode open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextmanager
def file_lock(path: str, timeout: float = 1800.0, poll: float = 0.1) -> Iterator[float]:
    """Hold an exclusive lock on ``path``; yields the seconds spent waiting for it.

    The lock dies with the process, so a crashed run never leaves a host locked. Raises
    ``LockBusy`` after ``timeout`` seconds (``0``: a single try).
    """
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    started = time.monotonic()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - started >= timeout:
                        raise LockBusy("timed out after %ds waiting for lock %s (another run "
                                       "holds it)" % (timeout, path), lock=path)
                    time.sleep(poll)
        except BaseException:
            os.close(fd)
            raise
        if _still_named(fd, path):
            break
        os.close(fd)   # its holder removed it: lock the file the path names now
    try:
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing releases the flock


def unlink_held_lock(path: str) -> None:
    """Remove the lock file ``path``; only while holding it, as the last step of the locked
    section (see the module's docstring)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
