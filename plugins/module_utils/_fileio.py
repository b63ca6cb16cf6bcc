# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the directory."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import BinaryIO, Callable, Union


def _replace_atomically(path: str, mode: int, fill: Callable[[BinaryIO], None]) -> None:
    """``fill`` writes the content into a temporary file beside ``path``; it is flushed,
    renamed over ``path``, and the directory flushed. On failure nothing is left."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: str, data: Union[bytes, str], mode: int = 0o644) -> None:
    content = data.encode("utf-8") if isinstance(data, str) else data
    _replace_atomically(path, mode, lambda handle: handle.write(content))


def atomic_copy(src: str, dst: str, mode: int = 0o644) -> None:
    """Copy ``src`` to ``dst`` the same way: nobody ever sees a half-copied ``dst``."""
    with open(src, "rb") as source:
        _replace_atomically(dst, mode,
                            lambda handle: shutil.copyfileobj(source, handle, 1024 * 1024))


def atomic_write_json(path: str, document, mode: int = 0o644) -> None:
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: str, default=None):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
