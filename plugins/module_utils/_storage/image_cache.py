# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host image cache: ``<instances_path>/_base/<sha1(image id)>`` (Nova's imagecache).

fetch_to_raw, as Nova does it: under a lock named after the cache file, download to
``<base>.part``, inspect the header before qemu-img sees the file, convert to raw
(``<base>.converted``, re-checked) when ``force_raw``, verify the declared checksum, rename into
place. Waiters on the lock find the base present and reuse it. A base already cached is
re-inspected on every use. Nothing half-made survives a failure. A base obtained another way
(a cold migration's destination copying it from the source host) enters by the same path:
``adopt``.

The checksum is computed in a second thread while the download is inspected and converted (or
flushed): those steps wait on the disk, hashing waits on the CPU, so the checksum costs little
wall time even on two busy cores (measured in bench/bench_image.py). Nothing enters the cache
before it matches. Running the inspection and qemu-img on bytes not yet verified adds no risk:
a correct checksum says the bytes are the ones declared, not that they are harmless, so the
inspection is what guards qemu-img, checksum or not.

Where a source may be read from, the download size cap, whole downloads and the checksum rule
are ``_image_source``'s. Everything in ``_base`` is ``0640`` root and the QEMU group
(``_fileio.qemu_access``). Ageing also removes what crashed fetches left (``.part``,
``.converted``) and the lock files of bases that are gone.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write_json, qemu_directory, qemu_file_options, read_json, restrict_to_qemu)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_inspect import (
    DEFAULT_MAX_VIRTUAL_SIZE, inspect_image, verify_checksum)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    FetchPolicy, copy_whole)
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import (
    LockBusy, file_lock, unlink_held_lock)
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import QemuImg
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    InstanceLayout)

INFO_SUFFIX = ".info"
BOOT_FILE_MAX_BYTES = 1024 ** 3   # a kernel or ramdisk; real ones are tens of MiB at most
LEFTOVER_SUFFIXES = (".part", ".converted", ".info.part", ".tmp")
# Names of cache files, hence of their locks: an image's SHA-1, a formatted ephemeral or swap base.
BASE_NAME = re.compile(r"^([0-9a-f]{40}|ephemeral_[0-9]+_[a-z0-9]+|swap_[0-9]+)$")
LOCK_NAME = re.compile(r"^virtops-(.+)\.lock$")


@dataclass(frozen=True)
class CachedBase:
    path: str
    format: str
    virtual_size: int
    file_size: int
    fetched: bool
    timings: Dict[str, float]
    image_id: str

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "virtual_size": self.virtual_size,
                "file_size": self.file_size, "fetched": self.fetched, "image_id": self.image_id}


def download(url: str, dest: str, timeout: float = 60.0, fsync: bool = True,
             policy: Optional[FetchPolicy] = None, checksum: Optional[str] = None) -> int:
    """Stream ``url`` into the new file ``dest`` (``0600`` until it is kept). Returns bytes
    written.

    ``fsync=False`` leaves flushing to the caller: a file that is converted next is only a
    temporary, and the converted file is the one that must reach the disk. ``policy`` says
    which local files may be read and how large a download may be (``_image_source``).
    """
    policy = policy or FetchPolicy()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as out:
        written = copy_whole(url, out, timeout, policy, checksum, dest)
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    return written


class _ChecksumCheck:
    """``verify_checksum`` of a finished download, in a second thread."""

    def __init__(self, path: str, url: str, checksum: Optional[str]):
        self.url = url
        self.error: Optional[VirtopsError] = None
        self.thread = None
        if checksum:
            self.thread = threading.Thread(target=self._work, args=(path, checksum),
                                           name="virtops-checksum", daemon=True)
            self.thread.start()

    def _work(self, path: str, checksum: str) -> None:
        try:
            verify_checksum(path, checksum)
        except VirtopsError as exc:
            self.error = exc

    def result(self) -> None:
        """Wait for the check; raise when the download is not what was declared."""
        if self.thread is None:
            return
        self.thread.join()
        if self.error is not None:
            details = self.error.details
            if "expected" in details:
                raise VirtopsError("checksum mismatch for image %s: expected %s, got %s"
                                   % (self.url, details["expected"], details["actual"]),
                                   expected=details["expected"], actual=details["actual"])
            raise self.error


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class ImageCache:
    def __init__(self, instances_path: str, qemu_img: Optional[QemuImg] = None,
                 force_raw: bool = True, policy: Optional[FetchPolicy] = None):
        self.instances_path = instances_path
        self.layout = InstanceLayout(instances_path)
        self.base_dir = self.layout.base_dir
        self.lock_dir = self.layout.lock_dir
        self.qemu_img = qemu_img or QemuImg()
        self.force_raw = force_raw
        self.policy = policy or FetchPolicy()

    def base_path(self, source: ImageSource) -> str:
        return os.path.join(self.base_dir, source.base_name)

    def lock_path(self, name: str) -> str:
        return self.layout.lock_path(name)

    def is_cached(self, source: ImageSource) -> bool:
        return os.path.isfile(self.base_path(source))

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[Tuple[str, Outcome]]:
        """Hold the lock of the cache file ``name``: one fetch per file and host, waiters
        reuse it. Yields the file's path and an Outcome timing the steps, starting with how
        long the lock took."""
        base = os.path.join(self.base_dir, name)
        qemu_directory(self.base_dir)
        steps = Outcome()
        with file_lock(self.lock_path(name)) as waited:
            steps.add_time("lock_wait", waited)
            yield base, steps

    def ensure(self, source: ImageSource, max_virtual_size: Optional[int] = None,
               download_timeout: float = 60.0) -> CachedBase:
        """The cached base for ``source``, fetched once per host."""
        limit = max_virtual_size or DEFAULT_MAX_VIRTUAL_SIZE
        with self._locked(source.base_name) as (base, steps):
            if os.path.isfile(base):
                return self._reuse(source, base, limit, steps)
            source.require_verifiable()
            return self._fetch(source, base, limit, download_timeout, steps)

    def peek(self, source: ImageSource, max_virtual_size: Optional[int] = None
             ) -> Optional[CachedBase]:
        """The cached base, re-inspected but neither locked nor touched (for check mode).

        None when it is not cached. A concurrent fetch renames the base into place
        atomically, so no lock is needed to read it.
        """
        base = self.base_path(source)
        if not os.path.isfile(base):
            return None
        return self._reuse(source, base, max_virtual_size or DEFAULT_MAX_VIRTUAL_SIZE,
                           Outcome(), touch=False)

    def _reuse(self, source: ImageSource, base: str, limit: int,
               steps: Outcome, touch: bool = True) -> CachedBase:
        record = read_json(base + INFO_SUFFIX, default={}) or {}
        expected_format = record.get("format") or ("raw" if self.force_raw else source.disk_format)
        with steps.timed("inspect"):
            inspected = inspect_image(base, expected_format, max_virtual_size=limit,
                                      qemu_img=self.qemu_img)
        if touch:
            os.utime(base)  # in use: cache ageing keeps it
        return CachedBase(base, inspected.qemu_format, inspected.virtual_size,
                          inspected.file_size, False, steps.rounded_timings(), source.id)

    def _fetch(self, source: ImageSource, base: str, limit: int, download_timeout: float,
               steps: Outcome) -> CachedBase:
        part = base + ".part"
        converted = base + ".converted"
        _remove_quietly(part, converted)  # leftovers of a crashed run, under the lock
        try:
            with steps.timed("fetch"):
                size = download(source.url, part, timeout=download_timeout, fsync=False,
                                policy=self.policy, checksum=source.checksum)
            check = _ChecksumCheck(part, source.url, source.checksum)
            try:
                inspected, final = self._inspect_and_convert(part, converted, source, limit,
                                                             steps)
            except VirtopsError:
                check.result()  # a download that is not what was declared says so first
                raise
            with steps.timed("checksum_wait"):
                check.result()
            restrict_to_qemu(final)
            atomic_write_json(base + INFO_SUFFIX, {
                "image_id": source.id, "source": source.url, "format": inspected.qemu_format,
                "declared_format": source.disk_format, "checksum": source.checksum,
                "virtual_size": inspected.virtual_size, "downloaded_bytes": size},
                **qemu_file_options())
            os.replace(final, base)
        except BaseException:
            _remove_quietly(part, converted, base + INFO_SUFFIX)
            raise
        finally:
            _remove_quietly(part)
        return CachedBase(base, inspected.qemu_format, inspected.virtual_size,
                          os.stat(base).st_size, True, steps.rounded_timings(), source.id)

    def _inspect_and_convert(self, part: str, converted: str, source: ImageSource, limit: int,
                             steps: Outcome):
        """Inspect the download; convert it to raw when asked (else flush it). Returns the
        inspection of the file to keep and its path."""
        with steps.timed("inspect"):
            inspected = inspect_image(part, source.disk_format, max_virtual_size=limit,
                                      qemu_img=self.qemu_img)
        if not (self.force_raw and inspected.qemu_format != "raw"):
            _fsync_path(part)
            return inspected, part
        with steps.timed("convert"):
            self.qemu_img.convert(part, inspected.qemu_format, converted, "raw")
        inspected = inspect_image(converted, "raw", max_virtual_size=limit, qemu_img=self.qemu_img)
        return inspected, converted   # qemu-img flushed it before exiting

    # ------------------------------------------------------------------ kernel, ramdisk

    def ensure_boot_file(self, source: ImageSource,
                         download_timeout: float = 60.0) -> CachedBase:
        """A kernel or ramdisk (Glance's aki/ari) in the cache, fetched once per host.

        QEMU reads these itself for a direct kernel boot; qemu-img never opens them, so there
        is no header to inspect: the checksum (when declared) and a size limit are the checks.
        """
        with self._locked(source.base_name) as (base, steps):
            if os.path.isfile(base):
                os.utime(base)   # in use: cache ageing keeps it
                size = os.stat(base).st_size
                return CachedBase(base, "raw", size, size, False, steps.rounded_timings(),
                                  source.id)
            source.require_verifiable("ramdisk" if source.disk_format == "ari" else "kernel")
            part = base + ".part"
            _remove_quietly(part)
            try:
                with steps.timed("fetch"):
                    size = download(source.url, part, timeout=download_timeout,
                                    policy=self.policy.capped(BOOT_FILE_MAX_BYTES),
                                    checksum=source.checksum)
                if source.checksum:
                    _ChecksumCheck(part, source.url, source.checksum).result()
                restrict_to_qemu(part)
                atomic_write_json(base + INFO_SUFFIX, {
                    "image_id": source.id, "source": source.url, "format": "raw",
                    "declared_format": source.disk_format, "checksum": source.checksum,
                    "virtual_size": size, "downloaded_bytes": size}, **qemu_file_options())
                os.replace(part, base)
            except BaseException:
                _remove_quietly(part, base + INFO_SUFFIX)
                raise
        return CachedBase(base, "raw", size, size, True, steps.rounded_timings(), source.id)

    def peek_boot_file(self, source: ImageSource) -> Optional[CachedBase]:
        """The cached kernel or ramdisk, neither locked nor touched (check mode); None if absent."""
        base = self.base_path(source)
        if not os.path.isfile(base):
            return None
        size = os.stat(base).st_size
        return CachedBase(base, "raw", size, size, False, {}, source.id)

    # ------------------------------------------------------------------ adopted bases

    def recorded_format(self, name: str) -> Optional[str]:
        """The format the cache file ``name``'s ``.info`` record gives, if any."""
        record = read_json(os.path.join(self.base_dir, name) + INFO_SUFFIX, default={}) or {}
        return record.get("format") if isinstance(record, dict) else None

    def adopt(self, name: str, fill: Callable[[str, str], None],
              declared_format: Optional[str] = None,
              max_virtual_size: Optional[int] = None) -> CachedBase:
        """Bring a base obtained another way into the cache as ``_base/<name>``: the way a
        cold migration's destination gets a base whose image source is gone (Nova's
        ``finish_migration`` copies it from the source host).

        The same path as a download: under the base's lock (a waiter finds it present and
        reuses it), ``fill(part, info_part)`` writes the file to ``<name>.part`` and may write
        the source's ``.info`` record to ``<name>.info.part``; the file is inspected in the
        format that record (else ``declared_format``, else raw) names before anything trusts
        it, made ``0640`` root and the QEMU group, and renamed into place. Nothing half-made
        survives a failure.
        """
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise VirtopsError("a cache file name is one path component, not %r" % name)
        limit = max_virtual_size or DEFAULT_MAX_VIRTUAL_SIZE
        with self._locked(name) as (base, steps):
            if os.path.isfile(base):
                return self._inspected(name, base, self.recorded_format(name) or declared_format
                                       or "raw", limit, steps, fetched=False)
            part = base + ".part"
            info_part = base + INFO_SUFFIX + ".part"
            _remove_quietly(part, info_part)   # leftovers of a crashed run, under the lock
            try:
                with steps.timed("fetch"):
                    fill(part, info_part)
                described = read_json(info_part, default={}) or {}
                described = described if isinstance(described, dict) else {}
                fmt = described.get("format") or declared_format or "raw"
                with steps.timed("inspect"):
                    inspected = inspect_image(part, fmt, max_virtual_size=limit,
                                              qemu_img=self.qemu_img)
                restrict_to_qemu(part)
                if described:
                    restrict_to_qemu(info_part)
                    os.replace(info_part, base + INFO_SUFFIX)
                os.replace(part, base)
            except BaseException:
                _remove_quietly(part, info_part)
                raise
        return CachedBase(base, inspected.qemu_format, inspected.virtual_size,
                          inspected.file_size, True, steps.rounded_timings(),
                          str(described.get("image_id") or name))

    def _inspected(self, name: str, base: str, fmt: str, limit: int, steps: Outcome,
                   fetched: bool) -> CachedBase:
        with steps.timed("inspect"):
            inspected = inspect_image(base, fmt, max_virtual_size=limit, qemu_img=self.qemu_img)
        os.utime(base)   # in use: cache ageing keeps it
        record = read_json(base + INFO_SUFFIX, default={}) or {}
        image_id = record.get("image_id") if isinstance(record, dict) else None
        return CachedBase(base, inspected.qemu_format, inspected.virtual_size,
                          inspected.file_size, fetched, steps.rounded_timings(),
                          str(image_id or name))

    # ------------------------------------------------------------------ ageing

    def bases(self) -> List[str]:
        if not os.path.isdir(self.base_dir):
            return []
        return sorted(os.path.join(self.base_dir, name) for name in os.listdir(self.base_dir)
                      if not name.endswith((INFO_SUFFIX, ".part", ".converted", ".tmp"))
                      and not name.startswith("."))

    def clean(self, in_use: List[str], min_age_seconds: int = 86400,
              check_mode: bool = False) -> Dict[str, List[str]]:
        """Remove bases no instance uses and older than ``min_age_seconds`` (Nova's ageing).

        ``in_use`` holds absolute base paths (backing files and image-id bases of instances).
        Age is re-checked under each base's lock, so a base fetched meanwhile stays. What
        crashed fetches left (``.part``, ``.converted``) older than the same age goes too,
        under its base's lock, tried once: a fetch that holds it is running and keeps its
        files. Last, the lock files of bases that no longer exist are removed.
        """
        used = {os.path.realpath(p) for p in in_use}
        result: Dict[str, List[str]] = {"removed": [], "kept_in_use": [], "kept_young": [],
                                        "removed_leftovers": [], "removed_locks": []}
        for base in self.bases():
            if os.path.realpath(base) in used:
                if not check_mode:
                    os.utime(base)
                result["kept_in_use"].append(base)
                continue
            with file_lock(self.lock_path(os.path.basename(base))):
                try:
                    age = time.time() - os.stat(base).st_mtime
                except FileNotFoundError:
                    continue
                if age < min_age_seconds:
                    result["kept_young"].append(base)
                    continue
                if not check_mode:
                    _remove_quietly(base, base + INFO_SUFFIX)
                result["removed"].append(base)
        result["removed_leftovers"] = self._clean_leftovers(min_age_seconds, check_mode)
        result["removed_locks"] = self._clean_locks(check_mode)
        return result

    def _leftovers(self) -> Dict[str, List[str]]:
        """Leftover files in ``_base`` by the name of the base (and lock) they belong to."""
        found: Dict[str, List[str]] = {}
        if not os.path.isdir(self.base_dir):
            return found
        for name in sorted(os.listdir(self.base_dir)):
            for suffix in LEFTOVER_SUFFIXES:
                if name.endswith(suffix) and BASE_NAME.match(name[:-len(suffix)]):
                    found.setdefault(name[:-len(suffix)], []).append(
                        os.path.join(self.base_dir, name))
                    break
        return found

    def _clean_leftovers(self, min_age_seconds: int, check_mode: bool) -> List[str]:
        removed: List[str] = []
        for name, paths in sorted(self._leftovers().items()):
            try:
                with file_lock(self.lock_path(name), timeout=0):
                    for path in paths:
                        try:
                            info = os.lstat(path)
                        except FileNotFoundError:
                            continue
                        if time.time() - info.st_mtime < min_age_seconds:
                            continue
                        if not check_mode:
                            _remove_quietly(path)
                        removed.append(path)
            except LockBusy:
                continue   # a fetch of this base is running: its files are not leftovers
        return removed

    def _clean_locks(self, check_mode: bool) -> List[str]:
        """Remove ``locks/virtops-<base>.lock`` whose base is gone, holding it (and tried once:
        a lock somebody holds is in use). Only names of cache files are touched."""
        removed: List[str] = []
        if not os.path.isdir(self.lock_dir):
            return removed
        for entry in sorted(os.listdir(self.lock_dir)):
            match = LOCK_NAME.match(entry)
            if not match or not BASE_NAME.match(match.group(1)):
                continue
            name = match.group(1)
            base = os.path.join(self.base_dir, name)
            if os.path.lexists(base):
                continue
            path = os.path.join(self.lock_dir, entry)
            try:
                with file_lock(path, timeout=0):
                    if os.path.lexists(base) or any(os.path.lexists(p)
                                                    for p in self._leftovers().get(name, ())):
                        continue
                    if not check_mode:
                        unlink_held_lock(path)   # the last step of the locked section
                    removed.append(path)
            except LockBusy:
                continue
        return removed
