# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding whether an untrusted image file may be used, before qemu-img parses it.

A disk image is a program for qemu's block layer: a qcow2 backing file or data-file, or a
VMDK extent, makes qemu open another file, possibly one of the host's (CVE-2022-47951,
CVE-2024-32498). ``inspect_image`` reads the headers in Python first (oslo.utils'
format_inspector plus stricter checks of our own), and only when they pass runs
``qemu-img info`` (with the declared format pinned, under resource limits) to cross-check.

Also here: ``verify_checksum`` (the image bytes are the ones the operator declared) and
``check_flavor_fits`` (Nova's flavor/image size and RAM rules). Nothing here downloads or
caches; the fetch code calls these functions in the order checksum, inspect, flavor.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import stat
import struct
import traceback
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import ImageInfo, QemuImg
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB as GiB, MIB as MiB


def _import_format_inspector():
    """oslo.utils' ``format_inspector`` without running the ``oslo_utils.imageutils`` package's
    ``__init__``, which imports ``QemuImgInfo`` and with it ``oslo_utils.strutils``: that
    compiles some 150 regular expressions for password masking when imported, 75-85 ms of every
    build on a small host (a nova-compute service pays it once, when it starts; a module run
    pays it every time, and every boot inspects the cached base again). The package is made
    without executing its ``__init__`` (only its ``__path__`` is needed for the submodule's own
    imports) and taken out of ``sys.modules`` again, so a later ``import oslo_utils.imageutils``
    runs its ``__init__`` as usual; the inspector stays the one module of that name."""
    import importlib  # pylint: disable=import-outside-toplevel
    import importlib.util  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    package_name = "oslo_utils.imageutils"
    if package_name in sys.modules:          # imported whole already: nothing to save
        return importlib.import_module(package_name + ".format_inspector")
    spec = importlib.util.find_spec(package_name)   # imports oslo_utils, not imageutils
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("No module named %r" % package_name)
    sys.modules[package_name] = importlib.util.module_from_spec(spec)
    try:
        return importlib.import_module(package_name + ".format_inspector")
    except ImportError:
        # A release whose inspector needs its package's __init__: import it whole below.
        sys.modules.pop(package_name + ".format_inspector", None)
    finally:
        del sys.modules[package_name]
    return importlib.import_module(package_name + ".format_inspector")


try:
    format_inspector = _import_format_inspector()
    HAS_FORMAT_INSPECTOR = True
    FORMAT_INSPECTOR_IMPORT_ERROR = None
    # format_inspector logs every refused check as a warning; our VirtopsError carries the
    # reason, so keep the module's stderr clean.
    logging.getLogger(format_inspector.__name__).addHandler(logging.NullHandler())
    logging.getLogger(format_inspector.__name__).propagate = False
except ImportError:
    format_inspector = None
    HAS_FORMAT_INSPECTOR = False
    FORMAT_INSPECTOR_IMPORT_ERROR = traceback.format_exc()

TiB = 1024 ** 4

# Glance disk_format values we accept, and the qemu-img format each is read as afterwards.
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "iso": "raw"}
SUPPORTED_FORMATS = tuple(QEMU_FORMATS)
ALLOWED_VMDK_CREATE_TYPES = ("monolithicSparse", "streamOptimized")
# No base image is this big: 16 TiB is also the largest file ext4 (4 KiB blocks) can hold,
# so a bigger image could not even be converted to a raw base there. The flavor check
# (root_gb) is tighter; this guard also holds when root_gb is 0 (no size check in Nova).
DEFAULT_MAX_VIRTUAL_SIZE = 16 * TiB

CHECKSUM_CHUNK = 1 * MiB
CHECKSUM_ALGORITHMS = {"md5": 32, "sha256": 64, "sha512": 128}
_DETECT_CHUNK = 64 * 1024
_HEAD_BYTES = 64 * 1024

QCOW2_MAGIC = b"QFI\xfb"
VMDK_SPARSE_MAGIC = b"KDMV"
_QCOW2_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")      # the 72-byte version 2 header
_QCOW2_V3_HEADER_LENGTH = 104
_VMDK_SPARSE_HEADER = struct.Struct("<4sIIQQQQIQQ")   # first 64 bytes of a hosted sparse extent
_VMDK_DESCRIPTOR_MAX = 1 * MiB                       # qemu reads at most this much
_VMDK_EXTENT = re.compile(r'^\s*(rw|rdonly|noaccess)\s+(\d+)\s+(\S+)(?:\s+"([^"]*)")?',
                          re.IGNORECASE)
_VMDK_CREATE_TYPE = re.compile(r'createtype\s*=\s*"([^"\r\n]*)"', re.IGNORECASE)

_SAFETY_EXPLANATIONS = {
    "backing_file": "image has a backing file (through it qemu would open another file, "
                    "possibly one of the host's)",
    "data_file": "image has a qcow2 data-file (an external data file lets an image read "
                 "host files, CVE-2024-32498)",
    "unknown_features": "qcow2 header is unparseable: {detail}",
    "descriptor": "VMDK descriptor refused: {detail} (only monolithicSparse/streamOptimized "
                  "images with no extent outside the image are allowed)",
    "footer": "VMDK footer is unparseable: {detail}",
    "mbr": "partition table is invalid: {detail}",
    "banned": "format {fmt} is not allowed",
}


@dataclass(frozen=True)
class InspectedImage:
    """An image that passed every check; use ``qemu_format`` with qemu-img from now on."""

    path: str
    declared_format: str
    detected_format: str
    qemu_format: str
    virtual_size: int
    file_size: int
    info: ImageInfo


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return "%d %s" % (value, unit) if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%d B" % size  # not reached


def _refuse(path: str, declared: str, problems: List[str]) -> VirtopsError:
    return VirtopsError("image %s (declared %s) refused: %s" % (path, declared, "; ".join(problems)),
                        path=path, declared_format=declared, problems=list(problems))


def _stat_regular_file(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise VirtopsError("image %s cannot be inspected: %s" % (path, exc.strerror), path=path)
    if not stat.S_ISREG(st.st_mode):
        raise VirtopsError("image %s refused: not a regular file (symlinks and devices are not "
                           "accepted)" % path, path=path)
    return st.st_size


def _read_at(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# -- our own header checks (stricter than format_inspector where it matters) --------------
def _qcow2_problems(head: bytes, file_size: int) -> List[str]:
    """Structural sanity of a qcow2 header: the file must hold what the header points at."""
    if file_size < _QCOW2_HEADER.size:
        return ["qcow2 header truncated: the file has %d bytes, a qcow2 header needs at least %d"
                % (file_size, _QCOW2_HEADER.size)]
    (_magic, version, _bf_offset, _bf_size, cluster_bits, _size, crypt_method, l1_size,
     l1_offset, refcount_offset, refcount_clusters, _nb_snapshots,
     _snapshots_offset) = _QCOW2_HEADER.unpack(head[:_QCOW2_HEADER.size])
    if version not in (2, 3):
        return ["qcow2 header is unparseable: unsupported version %d" % version]
    if not 9 <= cluster_bits <= 21:
        return ["qcow2 header is unparseable: cluster_bits %d out of range 9-21" % cluster_bits]
    cluster_size = 1 << cluster_bits
    if version == 3:
        if file_size < _QCOW2_V3_HEADER_LENGTH:
            return ["qcow2 header truncated: the file has %d bytes, a version 3 header needs %d"
                    % (file_size, _QCOW2_V3_HEADER_LENGTH)]
        (header_length,) = struct.unpack(">I", head[100:104])
        if not _QCOW2_V3_HEADER_LENGTH <= header_length <= cluster_size:
            return ["qcow2 header is unparseable: header length %d" % header_length]
    if crypt_method != 0:
        return ["image is encrypted (qcow2 encryption method %d): encrypted images are not "
                "supported" % crypt_method]
    l1_end = l1_offset + l1_size * 8
    if l1_end > file_size:
        return ["qcow2 image truncated: its L1 table ends at byte %d but the file has %d bytes"
                % (l1_end, file_size)]
    refcount_end = refcount_offset + refcount_clusters * cluster_size
    if refcount_end > file_size:
        return ["qcow2 image truncated: its refcount table ends at byte %d but the file has %d "
                "bytes" % (refcount_end, file_size)]
    return []


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c.isspace() for c in text)


def _vmdk_problems(path: str, head: bytes, file_size: int) -> List[str]:
    """A VMDK may only be one self-contained sparse file (monolithicSparse/streamOptimized).

    format_inspector alone is not enough: it takes the first ``createType`` it finds, case
    folded, even inside a comment, while qemu takes the first exact-case one; and it parses a
    text descriptor only from the first chunk it is given. So we refuse any text descriptor,
    any create type other than the two allowed ones anywhere in the descriptor, and any
    extent that is not the single SPARSE extent of the image itself.
    """
    if head[:4] == VMDK_SPARSE_MAGIC:
        if file_size < 512:
            return ["VMDK header truncated: the file has %d bytes, a sparse header needs 512"
                    % file_size]
        (_magic, version, _flags, _capacity, _grain, desc_sector, desc_sectors, _gtes, _rgd,
         _gd) = _VMDK_SPARSE_HEADER.unpack(head[:_VMDK_SPARSE_HEADER.size])
        if version not in (1, 2, 3):
            return ["VMDK header is unparseable: unsupported version %d" % version]
        if desc_sector != 1 or not 0 < desc_sectors * 512 <= _VMDK_DESCRIPTOR_MAX:
            return ["VMDK header is unparseable: embedded descriptor at sector %d, %d sectors"
                    % (desc_sector, desc_sectors)]
        desc_end = (desc_sector + desc_sectors) * 512
        if desc_end > file_size:
            return ["VMDK image truncated: its descriptor ends at byte %d but the file has %d "
                    "bytes" % (desc_end, file_size)]
        descriptor = _read_at(path, desc_sector * 512, desc_sectors * 512).split(b"\0", 1)[0]
        text_descriptor = False
    elif _looks_like_text(head[:512]):
        descriptor = _read_at(path, 0, _VMDK_DESCRIPTOR_MAX)
        text_descriptor = True
    else:
        return []  # not a VMDK at all: format detection says what it is
    try:
        text = descriptor.decode("ascii")
    except UnicodeDecodeError:
        return ["VMDK descriptor is unparseable: not ASCII text"]

    problems = []
    extents = [m.groups() for m in map(_VMDK_EXTENT.match, text.splitlines()) if m]
    if text_descriptor:
        problems.append("VMDK is a text descriptor file whose data lives in other files "
                        "(extents: %s)" % (", ".join(repr(e[3]) for e in extents) or "none"))
    create_types = []
    for found in _VMDK_CREATE_TYPE.findall(text):
        if found not in create_types:
            create_types.append(found)
    allowed = [t.lower() for t in ALLOWED_VMDK_CREATE_TYPES]
    if not create_types:
        problems.append("VMDK descriptor is unparseable: it names no createType")
    for create_type in create_types:
        if create_type.lower() not in allowed:
            problems.append("VMDK create type %r not allowed (only monolithicSparse/"
                            "streamOptimized)" % create_type)
    if len({t.lower() for t in create_types}) > 1:
        problems.append("VMDK descriptor names several create types (%s): qemu and the "
                        "inspector could read it differently" % ", ".join(create_types))
    for _access, _sectors, extent_type, filename in extents:
        if extent_type.upper() != "SPARSE":
            problems.append("VMDK extent type %s not allowed (only the single SPARSE extent of "
                            "a monolithicSparse/streamOptimized image)" % extent_type.upper())
        if filename and "/" in filename:
            problems.append("VMDK extent refers to %r, a file outside the image" % filename)
    if not text_descriptor and len(extents) != 1:
        problems.append("VMDK descriptor lists %d extents; a monolithicSparse/streamOptimized "
                        "image has exactly one, itself" % len(extents))
    return problems


# -- format_inspector ---------------------------------------------------------------------
def _detected_inspectors(path: str) -> list:
    """Run every format_inspector over the file, reading only as far as they need."""
    with open(path, "rb") as f:
        wrapper = format_inspector.InspectWrapper(f)
        try:
            while wrapper.read(_DETECT_CHUNK):
                if _matches(wrapper) is not None:
                    break
        finally:
            wrapper.close()
        return list(_matches(wrapper) or [])


def _matches(wrapper):
    """Every matching inspector; None while undecided. ``formats`` is newer than ``format``."""
    if hasattr(wrapper, "formats"):
        return wrapper.formats
    found = wrapper.format
    return None if found is None else [found]


def _choose_inspector(path: str, declared: str, head: bytes):
    try:
        inspectors = _detected_inspectors(path)
    except format_inspector.ImageFormatError as exc:
        raise _refuse(path, declared, ["image format is unparseable or ambiguous: %s" % exc])
    names = sorted(str(i) for i in inspectors)
    if names == ["gpt", "iso"]:
        # A hybrid (USB-bootable) ISO carries an MBR as well: it is an ISO.
        inspectors = [i for i in inspectors if str(i) == "iso"]
    elif len(inspectors) != 1:
        raise _refuse(path, declared, ["content matches several formats (%s): refusing an "
                                       "ambiguous image" % ", ".join(names)])
    inspector = inspectors[0]
    detected = str(inspector)
    if detected == declared or (declared == "raw" and detected == "gpt"):
        return inspector
    if detected == "raw":
        hint = ""
        if declared == "qcow2" and head[:4] == QCOW2_MAGIC:
            hint = " (it starts like a qcow2 file: truncated?)"
        raise _refuse(path, declared, [
            "detected format raw but declared %s: the file has no parseable %s header%s "
            "(unparseable, truncated, or not a %s image)" % (declared, declared, hint, declared)])
    raise _refuse(path, declared, ["detected format %s but declared %s" % (detected, declared)])


def _safety_problems(inspector) -> List[str]:
    fmt = str(inspector)
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        problems = []
        for name, failure in exc.failures.items():
            template = _SAFETY_EXPLANATIONS.get(name, "safety check %s failed: {detail}" % name)
            problems.append(template.format(detail=failure, fmt=fmt))
        return problems
    except format_inspector.ImageFormatError as exc:
        return ["%s image is unparseable: %s" % (fmt, exc)]
    return []


def _header_virtual_size(inspector) -> int:
    try:
        return int(inspector.virtual_size)
    except Exception:  # format_inspector computes this lazily from parsed regions
        return 0


def _size_problem(virtual_size: int, max_virtual_size: Optional[int], source: str) -> List[str]:
    if max_virtual_size and virtual_size > max_virtual_size:
        return ["virtual size %d bytes (%s, from the %s) exceeds the maximum of %d bytes (%s)"
                % (virtual_size, _human(virtual_size), source, max_virtual_size,
                   _human(max_virtual_size))]
    return []


def qemu_info_problems(info: ImageInfo, path: str, qemu_format: str) -> List[str]:
    """What qemu-img itself reports that we refuse (the second line of defence).

    ``path`` is the absolute path given to qemu-img; an empty list means no objection.
    """
    problems = []
    if info.format != qemu_format:
        problems.append("qemu-img reads the file as %s, expected %s" % (info.format, qemu_format))
    if info.backing_filename:
        problems.append("image has a backing file %r (seen by qemu-img)" % info.backing_filename)
    if info.data_file:
        problems.append("image has a qcow2 data-file %r (seen by qemu-img)" % info.data_file)
    if info.encrypted:
        problems.append("image is encrypted: encrypted images are not supported")
    if info.format_specific.get("corrupt"):
        problems.append("qcow2 image is marked corrupt")
    if info.format == "vmdk":
        create_type = info.format_specific.get("create-type")
        if create_type not in ALLOWED_VMDK_CREATE_TYPES:
            problems.append("VMDK create type %r not allowed (only monolithicSparse/"
                            "streamOptimized), says qemu-img" % create_type)
        for extent in info.format_specific.get("extents") or []:
            name = extent.get("filename", "")
            if os.path.abspath(name) != path:
                problems.append("VMDK extent refers to %r, a file outside the image "
                                "(seen by qemu-img)" % name)
    return problems


def inspect_image(path: str, declared_format: str,
                  max_virtual_size: Optional[int] = DEFAULT_MAX_VIRTUAL_SIZE,
                  qemu_img: Optional[QemuImg] = None) -> InspectedImage:
    """Refuse ``path`` unless it is a plain, self-contained image of ``declared_format``.

    Order matters: Python reads the headers first; qemu-img runs only on a file that passed.
    ``max_virtual_size`` (bytes, None or 0 for no limit) guards against a small file that
    claims a huge disk. Raises VirtopsError naming every reason found.
    """
    if not HAS_FORMAT_INSPECTOR:
        raise VirtopsError("inspecting images needs the Python library oslo.utils (its "
                           "oslo_utils.imageutils.format_inspector; tested with 10.2): %s"
                           % FORMAT_INSPECTOR_IMPORT_ERROR)
    declared = (declared_format or "").strip().lower()
    if declared not in QEMU_FORMATS:
        raise VirtopsError("image %s refused: declared disk format %r is not supported "
                           "(supported: %s)" % (path, declared_format, ", ".join(SUPPORTED_FORMATS)),
                           path=path, declared_format=declared_format)
    path = os.path.abspath(path)
    file_size = _stat_regular_file(path)
    if file_size == 0:
        raise _refuse(path, declared, ["the file is empty"])
    head = _read_at(path, 0, _HEAD_BYTES)

    if declared == "qcow2" and head[:4] == QCOW2_MAGIC:
        problems = _qcow2_problems(head, file_size)
        if problems:
            raise _refuse(path, declared, problems)
    if declared == "vmdk":
        problems = _vmdk_problems(path, head, file_size)
        if problems:
            raise _refuse(path, declared, problems)

    inspector = _choose_inspector(path, declared, head)
    problems = _safety_problems(inspector)
    header_size = _header_virtual_size(inspector)
    problems += _size_problem(header_size, max_virtual_size, "image header")
    if problems:
        raise _refuse(path, declared, problems)

    qemu_format = QEMU_FORMATS[declared]
    info = (qemu_img or QemuImg()).info(path, fmt=qemu_format)
    problems = qemu_info_problems(info, path, qemu_format)
    problems += _size_problem(info.virtual_size, max_virtual_size, "qemu-img info")
    if problems:
        raise _refuse(path, declared, problems)
    return InspectedImage(path=path, declared_format=declared, detected_format=str(inspector),
                          qemu_format=qemu_format, virtual_size=info.virtual_size,
                          file_size=file_size, info=info)


# -- checksum -------------------------------------------------------------------------------
def parse_checksum(spec: str) -> Tuple[str, str]:
    """``"sha256:<hex>"`` (or sha512/md5) -> (algorithm, lower-case hex).

    A bare hex digest is accepted too; its length tells the algorithm (32 md5, 64 sha256,
    128 sha512: Glance's legacy ``checksum`` field is a bare md5).
    """
    text = (spec or "").strip()
    if ":" in text:
        algorithm, digest = text.split(":", 1)
        algorithm = algorithm.strip().lower()
    else:
        digest = text
        algorithm = {v: k for k, v in CHECKSUM_ALGORITHMS.items()}.get(len(digest), "")
    digest = digest.strip().lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise VirtopsError("checksum %r: unsupported algorithm %r (use sha256:, sha512: or md5:)"
                           % (spec, algorithm))
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm] or not re.fullmatch(r"[0-9a-f]+", digest):
        raise VirtopsError("checksum %r: a %s digest is %d hex digits"
                           % (spec, algorithm, CHECKSUM_ALGORITHMS[algorithm]))
    return algorithm, digest


def file_checksum(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of ``path``, read in 1 MiB chunks."""
    try:
        # md5 serves integrity only (Glance's legacy checksum): allowed on FIPS hosts too
        digest = hashlib.new(algorithm, usedforsecurity=False)
    except TypeError:  # Python 3.8 has no usedforsecurity
        digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHECKSUM_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str, expected: str) -> str:
    """Raise unless ``path`` hashes to ``expected`` ("sha256:<hex>"); return "algo:hex"."""
    algorithm, want = parse_checksum(expected)
    try:
        got = file_checksum(path, algorithm)
    except OSError as exc:
        raise VirtopsError("cannot checksum %s: %s" % (path, exc.strerror), path=path)
    if not hmac.compare_digest(got, want):
        raise VirtopsError("checksum mismatch for %s: expected %s:%s, got %s:%s"
                           % (path, algorithm, want, algorithm, got),
                           path=path, expected="%s:%s" % (algorithm, want),
                           actual="%s:%s" % (algorithm, got))
    return "%s:%s" % (algorithm, got)


# -- flavor fit -------------------------------------------------------------------------------
def check_flavor_fits(info, root_gb: int, min_disk: int, min_ram: int, ram_mb: int) -> None:
    """Nova's rules for an image on a flavor; ``info`` is anything with ``virtual_size``.

    - flavor RAM below the image's ``min_ram`` (MiB): FlavorMemoryTooSmall;
    - ``root_gb`` 0 means "no disk size check" (libvirt legacy), else the image's virtual
      size above the root disk: FlavorDiskSmallerThanImage, and ``min_disk`` (GiB) above it:
      FlavorDiskSmallerThanMinDisk.
    """
    for name, value in (("root_gb", root_gb), ("min_disk", min_disk), ("min_ram", min_ram),
                        ("ram_mb", ram_mb)):
        strict_int(value, name, minimum=0, text=None)
    if ram_mb < min_ram:
        raise VirtopsError("flavor RAM %d MiB is smaller than the image's min_ram %d MiB "
                           "(FlavorMemoryTooSmall)" % (ram_mb, min_ram),
                           reason="FlavorMemoryTooSmall")
    if root_gb == 0:
        return
    root_bytes = root_gb * GiB
    virtual_size = int(info.virtual_size)
    if virtual_size > root_bytes:
        raise VirtopsError("image virtual size %d bytes (%s) exceeds flavor root disk %d GiB "
                           "(FlavorDiskSmallerThanImage)" % (virtual_size, _human(virtual_size),
                                                             root_gb),
                           reason="FlavorDiskSmallerThanImage")
    if min_disk > root_gb:
        raise VirtopsError("image min_disk %d GiB exceeds flavor root disk %d GiB "
                           "(FlavorDiskSmallerThanMinDisk)" % (min_disk, root_gb),
                           reason="FlavorDiskSmallerThanMinDisk")
