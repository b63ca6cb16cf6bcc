# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-local exclusive locks (flock on a file): one fetch per base, one claim at a time."""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from typing import Iterator

from ansible_collections.virtops.compute.plugins.module_utils._errors import VirtopsError


@contextmanager
def file_lock(path: str, timeout: float = 1800.0, poll: float = 0.1) -> Iterator[float]:
    """Hold an exclusive lock on ``path``; yields the seconds spent waiting for it.

    The lock dies with the process, so a crashed run never leaves a host locked.
    """
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout:
                    raise VirtopsError("timed out after %ds waiting for lock %s (another run "
                                       "holds it)" % (timeout, path))
                time.sleep(poll)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # closing releases the flock
