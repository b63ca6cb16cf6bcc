# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing (and reading back) the config drive image ``<instances_path>/<uuid>/disk.config``.

Formats, as Nova: ``iso9660`` (default; volume label ``config-2``, Rock Ridge + Joliet,
written in-process with pycdlib) and ``vfat`` (64 MiB, label ``config-2``, made with
``mkfs.vfat`` and filled with ``mcopy`` from mtools; no loop mount, so no root-only kernel
features are needed).

The image is written to ``<target>.tmp``, fsynced and renamed over the target, so readers
never see half an image and a failure leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    InstanceMetadata,
    config_drive_tree,
    tree_digest,
)
from ansible_collections.virtops.compute.plugins.module_utils._common.process import (
    find_binary,
    run,
)

try:
    import pycdlib
    HAS_PYCDLIB = True
    PYCDLIB_IMPORT_ERROR = None
except ImportError:
    HAS_PYCDLIB = False
    PYCDLIB_IMPORT_ERROR = traceback.format_exc()

FORMATS = ("iso9660", "vfat")
VOLUME_LABEL = "config-2"
VFAT_SIZE_BYTES = 64 * 1024 * 1024
# Room kept free on the vfat image for FAT tables, directories and rounding.
VFAT_RESERVE_BYTES = 2 * 1024 * 1024
VFAT_CLUSTER_BYTES = 2048
# The drive holds admin_pass and user_data: only root (and qemu, once libvirt's dynamic
# ownership hands the file to it at domain start) may read it.
IMAGE_MODE = 0o600
PUBLISHER = "virtops.compute"
# Fixed timestamp (2000-01-01) for files staged for mcopy, so vfat content does not carry
# the build time.
_STAGED_MTIME = 946684800
# mtools must never wait for an answer or read a user's ~/.mtoolsrc.
_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"}


@dataclass(frozen=True)
class ConfigDriveResult:
    path: str
    format: str
    size_bytes: int
    seconds: float
    content_digest: str

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "size_bytes": self.size_bytes,
                "seconds": round(self.seconds, 4), "content_digest": self.content_digest}


@dataclass(frozen=True)
class ConfigDriveInfo:
    """What an existing image holds, as far as a rebuild decision needs to know."""
    path: str
    format: str
    size_bytes: int
    content_digest: str


def _require_pycdlib() -> None:
    if not HAS_PYCDLIB:
        raise VirtopsError("the Python library 'pycdlib' is required to build or read an "
                           "iso9660 config drive; install it on the compute host "
                           "(see requirements.txt)")


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private_file(path: Path) -> int:
    """Open ``path`` freshly (never through a symlink left there) with mode 0600."""
    try:
        st = os.lstat(str(path))
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise VirtopsError("%s exists and is not a regular file; remove it" % path)
        os.unlink(str(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(str(path), flags, IMAGE_MODE)


# ---------------------------------------------------------------- iso9660 (pycdlib)

def _iso9660_component(name: str, is_dir: bool) -> str:
    """A level-3 ISO 9660 name for one component; Rock Ridge and Joliet carry the real one."""
    def clean(text: str) -> str:
        return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_"
                       for c in text.upper())
    if is_dir:
        return clean(name)[:31]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem, ext = clean(stem), clean(ext)
    stem = stem[:30 - len(ext[:8])]
    return "%s.%s;1" % (stem, ext[:8])


def _directories(tree: Mapping[str, bytes]):
    dirs = set()
    for path in tree:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add(tuple(parts[:depth]))
    return sorted(dirs, key=lambda d: (len(d), d))


def _write_iso9660(tree: Mapping[str, bytes], fd: int) -> None:
    _require_pycdlib()
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09",
            pub_ident_str=PUBLISHER, app_ident_str=PUBLISHER + " config drive")
    iso_names: Dict[Tuple[str, ...], str] = {(): ""}
    taken: Dict[str, set] = {}

    def unique(parent_iso: str, candidate: str) -> str:
        used = taken.setdefault(parent_iso, set())
        if candidate in used:
            raise VirtopsError("internal error: two config drive entries map to the ISO 9660 "
                               "name %s/%s" % (parent_iso, candidate))
        used.add(candidate)
        return candidate

    try:
        for directory in _directories(tree):
            parent = iso_names[directory[:-1]]
            iso_path = parent + "/" + unique(parent, _iso9660_component(directory[-1], True))
            iso_names[directory] = iso_path
            iso.add_directory(iso_path=iso_path, rr_name=directory[-1],
                              joliet_path="/" + "/".join(directory))
        for path, content in tree.items():
            parts = tuple(path.split("/"))
            parent = iso_names[parts[:-1]]
            iso_path = parent + "/" + unique(parent, _iso9660_component(parts[-1], False))
            iso.add_fp(io.BytesIO(content), len(content), iso_path, rr_name=parts[-1],
                       joliet_path="/" + path)
        with os.fdopen(os.dup(fd), "wb") as out:
            iso.write_fp(out)
            out.flush()
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise VirtopsError("could not write the ISO 9660 config drive: %s" % exc)
    finally:
        iso.close()


def _read_iso9660(path: Path) -> Dict[str, bytes]:
    _require_pycdlib()
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(path))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise VirtopsError("%s is not a readable ISO 9660 image: %s" % (path, exc))
    try:
        if not iso.has_rock_ridge():
            raise VirtopsError("%s has no Rock Ridge names; it was not built by virtops"
                               % path)
        tree = {}
        for dirpath, _dirs, files in iso.walk(rr_path="/"):
            for name in files:
                rr_path = (dirpath.rstrip("/") + "/" + name)
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=rr_path)
                tree[rr_path.lstrip("/")] = buf.getvalue()
        return tree
    finally:
        iso.close()


# ---------------------------------------------------------------- vfat (mkfs.vfat + mtools)

def _vfat_volume_id(tree: Mapping[str, bytes]) -> str:
    return hashlib.sha1(tree_digest(tree).encode()).hexdigest()[:8]


def _stage_tree(tree: Mapping[str, bytes], staging: Path) -> None:
    for path, content in tree.items():
        dest = staging.joinpath(*path.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(str(dest), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.utime(str(dest), (_STAGED_MTIME, _STAGED_MTIME))


def _write_vfat(tree: Mapping[str, bytes], fd: int, image: Path, staging: Path) -> None:
    needed = sum(-(-len(c) // VFAT_CLUSTER_BYTES) * VFAT_CLUSTER_BYTES or VFAT_CLUSTER_BYTES
                 for c in tree.values())
    if needed > VFAT_SIZE_BYTES - VFAT_RESERVE_BYTES:
        raise VirtopsError("config drive content needs about %d KiB, more than a %d MiB vfat "
                           "drive holds; use config_drive_format iso9660 or inject less"
                           % (needed // 1024, VFAT_SIZE_BYTES // (1024 * 1024)))
    mkfs = find_binary("mkfs.vfat")
    mcopy = find_binary("mcopy")
    os.ftruncate(fd, VFAT_SIZE_BYTES)
    run([mkfs, "-n", VOLUME_LABEL, "-i", _vfat_volume_id(tree), "--invariant", str(image)],
        input_text="")
    _stage_tree(tree, staging)
    tops = sorted({path.split("/")[0] for path in tree})
    run([mcopy, "-s", "-m", "-i", str(image)] + [str(staging / top) for top in tops] + ["::/"],
        env=_MTOOLS_ENV, input_text="")


def _read_vfat(path: Path) -> Dict[str, bytes]:
    mcopy = find_binary("mcopy")
    staging = Path(tempfile.mkdtemp(prefix=".config-drive-read-", dir=str(path.parent)))
    try:
        run([mcopy, "-s", "-n", "-i", str(path), "::/*", str(staging)],
            env=_MTOOLS_ENV, input_text="")
        tree = {}
        for dirpath, _dirs, files in os.walk(str(staging)):
            for name in files:
                full = Path(dirpath) / name
                rel = full.relative_to(staging).as_posix()
                tree[rel] = full.read_bytes()
        return tree
    finally:
        shutil.rmtree(str(staging), ignore_errors=True)


# ---------------------------------------------------------------- public API

def detect_format(path: Path) -> Optional[str]:
    """'iso9660', 'vfat' or None, from the image's own headers."""
    with open(str(path), "rb") as handle:
        head = handle.read(32774)
    if head[32769:32774] == b"CD001":
        return "iso9660"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa" and (
            head[54:57] == b"FAT" or head[82:85] == b"FAT"):
        return "vfat"
    return None


def read_config_drive(path: Path) -> Tuple[str, Dict[str, bytes]]:
    """(format, {path: content}) of a config drive image.

    Meant for images this collection built. A vfat drive is attached to the guest as a
    writable disk, so its content is whatever the guest left there: compare its digest,
    never trust it.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "iso9660":
        return fmt, _read_iso9660(path)
    if fmt == "vfat":
        return fmt, _read_vfat(path)
    raise VirtopsError("%s is neither an iso9660 nor a vfat image" % path)


def inspect_config_drive(path: Path) -> Optional[ConfigDriveInfo]:
    """Format and content digest of an existing drive, None if there is none.

    ``info.format == wanted_format and info.content_digest == content_digest(metadata)``
    means the drive is up to date.
    """
    path = Path(path)
    try:
        st = os.lstat(str(path))
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise VirtopsError("%s exists and is not a regular file" % path)
    fmt, tree = read_config_drive(path)
    return ConfigDriveInfo(str(path), fmt, st.st_size, tree_digest(tree))


def build_config_drive(target: Path, metadata: InstanceMetadata,
                       fmt: str = "iso9660") -> ConfigDriveResult:
    """Write the config drive for ``metadata`` to ``target`` (atomically).

    The parent directory (the instance directory) must exist. Returns the image's path,
    format, size, build time and content digest (equal for equal input; it ignores
    random_seed and the value of admin_pass).
    """
    started = time.monotonic()
    if fmt not in FORMATS:
        raise VirtopsError("config drive format must be one of %s, not %r"
                           % (", ".join(FORMATS), fmt))
    if not isinstance(metadata, InstanceMetadata):
        raise VirtopsError("build_config_drive needs an InstanceMetadata")
    target = Path(target)
    if not target.parent.is_dir():
        raise VirtopsError("instance directory %s does not exist" % target.parent)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise VirtopsError("%s exists and is not a regular file; remove it" % target)
    if fmt == "iso9660":
        _require_pycdlib()

    tree = config_drive_tree(metadata)
    digest = tree_digest(tree)
    tmp = target.with_name(target.name + ".tmp")
    staging = None
    fd = _create_private_file(tmp)
    try:
        if fmt == "iso9660":
            _write_iso9660(tree, fd)
        else:
            staging = Path(tempfile.mkdtemp(prefix=".config-drive-", dir=str(target.parent)))
            _write_vfat(tree, fd, tmp, staging)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(str(tmp), str(target))
        _fsync_dir(target.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(str(tmp))
        except FileNotFoundError:
            pass
        raise
    finally:
        if staging is not None:
            shutil.rmtree(str(staging), ignore_errors=True)
    return ConfigDriveResult(path=str(target), format=fmt, size_bytes=target.stat().st_size,
                             seconds=time.monotonic() - started, content_digest=digest)
