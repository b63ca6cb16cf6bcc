# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The qemu-img wrapper against the real qemu-img, on files in tmp_path."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import (
    INFO_ADDRESS_SPACE, INFO_CPU_SECONDS, INFO_LIMITS, QemuImg, ResourceLimits, run_limited,
)

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.fixture(scope="module")
def qemu_img():
    return QemuImg()


def _pattern(size: int) -> bytes:
    line = b"virtops qemu-img wrapper test data\n"
    return (line * (size // len(line) + 1))[:size]


def _script(path: Path, body: str) -> str:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _limits_of(proc_limits: str) -> dict:
    """/proc/<pid>/limits -> {"Max cpu time": ("30", "30"), ...}"""
    limits = {}
    for line in proc_limits.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].split(), line[47:68].split()
        limits[name] = (soft[0], hard[0])
    return limits


def test_info_reports_what_qemu_img_sees(qemu_img, tmp_path):
    disk = tmp_path / "disk.qcow2"
    qemu_img.create(str(disk), "qcow2", 8 * MiB)
    info = qemu_img.info(str(disk), "qcow2")
    assert (info.format, info.virtual_size, info.cluster_size) == ("qcow2", 8 * MiB, 65536)
    assert info.backing_filename is None and info.data_file is None and not info.encrypted
    assert info.format_specific["compat"] == "1.1"
    assert info.actual_size > 0


def test_info_runs_qemu_img_under_cpu_and_address_space_limits(tmp_path):
    # A stand-in for the qemu-img binary records the limits it was started with.
    probe = _script(tmp_path / "qemu-img-probe", (
        "#!/bin/sh\n"
        "for last; do :; done\n"
        'cat /proc/self/limits > "$last.limits"\n'
        'echo \'{"filename": "x", "format": "raw", "virtual-size": 512}\'\n'))
    image = tmp_path / "image.raw"
    image.write_bytes(bytes(512))

    info = QemuImg(binary=probe).info(str(image), "raw")

    assert info.virtual_size == 512
    limits = _limits_of((tmp_path / "image.raw.limits").read_text())
    assert limits["Max cpu time"] == (str(INFO_CPU_SECONDS),) * 2 == ("30", "30")
    assert limits["Max address space"] == (str(INFO_ADDRESS_SPACE),) * 2 == ("2147483648",) * 2


def test_info_limits_let_real_qemu_img_read_a_petabyte_qcow2(qemu_img, tmp_path):
    disk = tmp_path / "big.qcow2"
    subprocess.run([qemu_img.binary, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512K",
                    str(disk), str(1024 ** 5)], check=True)
    assert qemu_img.info(str(disk), "qcow2").virtual_size == 1024 ** 5


def test_address_space_limit_stops_a_greedy_child():
    greedy = [sys.executable, "-c", "b = bytearray(3 * 1024 ** 3); print('allocated')"]
    result = run_limited(greedy, INFO_LIMITS)
    assert result.rc != 0
    assert "MemoryError" in result.stderr and "allocated" not in result.stdout


def test_info_killed_by_cpu_limit_is_reported(tmp_path):
    spinner = _script(tmp_path / "spinning-qemu-img", "#!%s\nwhile True:\n    pass\n"
                      % sys.executable)
    image = tmp_path / "image.raw"
    image.write_bytes(bytes(512))
    one_second = QemuImg(binary=spinner, info_limits=ResourceLimits(1, INFO_ADDRESS_SPACE),
                         info_timeout=30)
    with pytest.raises(VirtopsError) as caught:
        one_second.info(str(image), "raw")
    # soft == hard (as prlimit sets it): the kernel goes straight to SIGKILL, as Nova expects
    assert caught.value.details["rc"] == -signal.SIGKILL
    assert "killed by SIGKILL" in caught.value.msg and "CPU 1 s" in caught.value.msg


def test_info_unparseable_output_is_an_error(tmp_path):
    liar = _script(tmp_path / "lying-qemu-img", "#!/bin/sh\necho 'not json'\n")
    with pytest.raises(VirtopsError, match="unparseable output"):
        QemuImg(binary=liar).info(str(tmp_path), "raw")


def test_info_of_missing_file_carries_qemu_img_message(qemu_img, tmp_path):
    with pytest.raises(VirtopsError) as caught:
        qemu_img.info(str(tmp_path / "missing.qcow2"), "qcow2")
    assert "qemu-img info failed" in caught.value.msg
    assert "No such file or directory" in caught.value.msg


def test_overlay_reads_through_to_its_base_and_is_bigger(qemu_img, tmp_path):
    base = tmp_path / "base.raw"
    base.write_bytes(_pattern(2 * MiB))
    overlay = tmp_path / "disk"
    qemu_img.create_overlay(str(overlay), str(base), "raw", 4 * MiB)

    info = qemu_img.info(str(overlay), "qcow2")
    assert (info.backing_filename, info.backing_format) == (str(base), "raw")
    assert info.virtual_size == 4 * MiB

    flat = tmp_path / "flat.raw"
    qemu_img.convert(str(overlay), "qcow2", str(flat), "raw")
    content = flat.read_bytes()
    assert content[:2 * MiB] == base.read_bytes() and content[2 * MiB:] == bytes(2 * MiB)


def test_overlay_without_size_takes_the_base_size(qemu_img, tmp_path):
    base = tmp_path / "base.qcow2"
    qemu_img.create(str(base), "qcow2", 3 * MiB)
    overlay = tmp_path / "disk"
    qemu_img.create_overlay(str(overlay), str(base), "qcow2")
    assert qemu_img.info(str(overlay), "qcow2").virtual_size == 3 * MiB


def test_overlay_needs_an_absolute_backing_path(qemu_img, tmp_path):
    with pytest.raises(VirtopsError, match="absolute path"):
        qemu_img.create_overlay(str(tmp_path / "disk"), "base.raw", "raw", MiB)
    assert not (tmp_path / "disk").exists()


def test_resize_grows_and_never_shrinks(qemu_img, tmp_path):
    disk = tmp_path / "disk.qcow2"
    qemu_img.create(str(disk), "qcow2", MiB)

    assert qemu_img.resize(str(disk), "qcow2", 2 * MiB) is True
    assert qemu_img.resize(str(disk), "qcow2", 2 * MiB) is False
    with pytest.raises(VirtopsError, match="refusing to shrink"):
        qemu_img.resize(str(disk), "qcow2", MiB)
    assert qemu_img.info(str(disk), "qcow2").virtual_size == 2 * MiB


def test_rebase_unsafe_repoints_the_backing_file_only(qemu_img, tmp_path):
    old_base, new_base = tmp_path / "old.raw", tmp_path / "new.raw"
    old_base.write_bytes(_pattern(MiB))
    new_base.write_bytes(_pattern(MiB))
    overlay = tmp_path / "disk"
    qemu_img.create_overlay(str(overlay), str(old_base), "raw", MiB)
    old_base.unlink()

    qemu_img.rebase_unsafe(str(overlay), str(new_base), "raw")

    assert qemu_img.info(str(overlay), "qcow2").backing_filename == str(new_base)
    flat = tmp_path / "flat.raw"
    qemu_img.convert(str(overlay), "qcow2", str(flat), "raw")
    assert flat.read_bytes() == new_base.read_bytes()


def test_convert_is_byte_identical_on_disk_and_on_tmpfs(qemu_img, tmp_path):
    # tmpfs refuses O_DIRECT (-t none); the wrapper falls back to writeback there.
    source = tmp_path / "source.raw"
    source.write_bytes(_pattern(3 * MiB))
    qcow2 = tmp_path / "image.qcow2"
    qemu_img.convert(str(source), "raw", str(qcow2), "qcow2")
    assert qemu_img.info(str(qcow2), "qcow2").format == "qcow2"

    on_disk = tmp_path / "back.raw"
    qemu_img.convert(str(qcow2), "qcow2", str(on_disk), "raw")
    assert on_disk.read_bytes() == source.read_bytes()

    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm tmpfs on this host")
    on_tmpfs = Path("/dev/shm") / ("virtops-test-%s.raw" % uuid.uuid4().hex)
    try:
        qemu_img.convert(str(qcow2), "qcow2", str(on_tmpfs), "raw")
        assert on_tmpfs.read_bytes() == source.read_bytes()
    finally:
        if on_tmpfs.exists():
            on_tmpfs.unlink()


def test_convert_with_the_wrong_source_format_fails_with_qemu_message(qemu_img, tmp_path):
    source = tmp_path / "source.raw"
    source.write_bytes(_pattern(MiB))
    with pytest.raises(VirtopsError) as caught:
        qemu_img.convert(str(source), "qcow2", str(tmp_path / "out.raw"), "raw")
    assert "qemu-img convert failed" in caught.value.msg
    assert "qcow2" in caught.value.msg and caught.value.details["rc"] == 1


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "1M"])
def test_create_wants_a_positive_byte_count(qemu_img, tmp_path, size):
    with pytest.raises(VirtopsError, match="positive number of bytes"):
        qemu_img.create(str(tmp_path / "disk"), "raw", size)
    assert not (tmp_path / "disk").exists()
