# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes (temp file in the same directory, fsync, rename, fsync the directory), and
who may read the files QEMU opens: the image cache ``_base`` and the instance directories.

Those hold guests' disks (and their secrets), so they are not world-readable. libvirt on
Debian runs QEMU as user ``libvirt-qemu``, group ``libvirt-qemu`` (qemu.conf's defaults;
``qemu``/``qemu`` on Fedora), with the user's own groups as supplementary groups. Files are
``0640`` and directories ``0750``, owned by root and by that group: QEMU reads a backing base
through the group, whatever libvirt's ``dynamic_ownership`` does to the overlay on top of it
(it hands the overlay and its backing chain to the QEMU user at start and gives back the
remembered owner, root and this group, when the last domain using them stops; it never
changes a mode). A host without such a user runs QEMU as root: ``0600``/``0700`` then.
"""
from __future__ import annotations

import functools
import grp
import json
import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional, Union

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

# Who libvirt runs QEMU as, in the order looked for: Debian/Ubuntu, then Fedora/RHEL/SUSE.
QEMU_USERS = ("libvirt-qemu", "qemu")


@dataclass(frozen=True)
class QemuAccess:
    """The owner group and modes of what QEMU reads: root plus ``group``, nobody else."""
    group: Optional[str]     # None: no QEMU user on this host, root only
    gid: int                 # -1: leave the group alone
    file_mode: int
    dir_mode: int


def qemu_access_for(users=QEMU_USERS) -> QemuAccess:
    """The first QEMU user that exists; its group is the one named like it (the group libvirt
    runs QEMU with by default) when the user is in it, else the user's primary group."""
    for user in users:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        try:
            named = grp.getgrnam(user)
            if named.gr_gid == entry.pw_gid or user in named.gr_mem:
                return QemuAccess(named.gr_name, named.gr_gid, 0o640, 0o750)
        except KeyError:
            pass
        return QemuAccess(grp.getgrgid(entry.pw_gid).gr_name, entry.pw_gid, 0o640, 0o750)
    return QemuAccess(None, -1, 0o600, 0o700)


@functools.lru_cache(maxsize=1)
def qemu_access() -> QemuAccess:
    """``qemu_access_for`` of this host, looked up once per run."""
    return qemu_access_for()


def _own(path_or_fd: Union[str, int], gid: int) -> None:
    if gid != -1 and os.geteuid() == 0:
        os.chown(path_or_fd, -1, gid)


def restrict_to_qemu(path: str) -> None:
    """Give a file (or a directory) of the cache or an instance the owner group and mode of
    ``qemu_access``. Never follows a symbolic link."""
    access = qemu_access()
    if os.path.islink(path):
        raise OSError(40, "refusing to change the mode of a symbolic link", path)
    _own(path, access.gid)
    os.chmod(path, access.dir_mode if os.path.isdir(path) else access.file_mode)


def qemu_directory(path: str) -> None:
    """Make ``path`` (and missing parents, with the default mode) a directory QEMU can reach
    and nobody else can list: root and the QEMU group, ``0750``."""
    os.makedirs(path, mode=qemu_access().dir_mode, exist_ok=True)
    restrict_to_qemu(path)


def qemu_file_options() -> dict:
    """The ``mode`` and ``group`` keywords of the atomic writers for a file QEMU may read."""
    access = qemu_access()
    return {"mode": access.file_mode, "group": access.gid}


def _replace_atomically(path: str, mode: int, fill: Callable[[BinaryIO], None],
                        group: int = -1) -> None:
    """``fill`` writes the content into a temporary file beside ``path``; it is flushed,
    renamed over ``path``, and the directory flushed. On failure nothing is left."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _own(tmp, group)
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


def atomic_write(path: str, data: Union[bytes, str], mode: int = 0o644, group: int = -1) -> None:
    content = data.encode("utf-8") if isinstance(data, str) else data
    _replace_atomically(path, mode, lambda handle: handle.write(content), group)


def atomic_copy(src: str, dst: str, mode: int = 0o644, group: int = -1) -> None:
    """Copy ``src`` to ``dst`` the same way: nobody ever sees a half-copied ``dst``."""
    with open(src, "rb") as source:
        _replace_atomically(dst, mode,
                            lambda handle: shutil.copyfileobj(source, handle, 1024 * 1024),
                            group)


def atomic_write_json(path: str, document, mode: int = 0o644, group: int = -1) -> None:
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True) + "\n", mode, group)


def read_text(path: str) -> Optional[str]:
    """A UTF-8 text file the collection wrote (``libvirt.xml``), or None when there is none;
    a file that cannot be read is an error naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise VirtopsError("cannot read %s: %s" % (path, exc))


def read_json(path: str, default=None):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
