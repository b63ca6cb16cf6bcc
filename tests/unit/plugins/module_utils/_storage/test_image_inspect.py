# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image safety inspector against the hostile-image corpus (tests/fixtures)."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_inspect import (
    DEFAULT_MAX_VIRTUAL_SIZE, check_flavor_fits, inspect_image, qemu_info_problems,
    verify_checksum,
)
from ansible_collections.virtops.compute.plugins.module_utils._storage.qemu_img import ImageInfo, QemuImg

from tests.fixtures.hostile_images import GOOD_NAMES, HOSTILE_NAMES, build_corpus

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("hostile-images"))


def admit(item, qemu_img=None):
    """What the fetch code does with a downloaded file: checksum, then inspection."""
    verify_checksum(str(item.path), item.declared_checksum)
    return inspect_image(str(item.path), item.declared_format, qemu_img=qemu_img)


@pytest.fixture
def qemu_img_tripwire(tmp_path):
    """A qemu-img stand-in that leaves a mark if anything runs it."""
    mark = tmp_path / "qemu-img-was-run"
    probe = tmp_path / "qemu-img"
    probe.write_text("#!/bin/sh\ntouch '%s'\nexit 1\n" % mark)
    probe.chmod(0o755)
    return QemuImg(binary=str(probe)), mark


def test_corpus_is_reused_when_intact_and_rebuilt_when_not(tmp_path):
    first = build_corpus(tmp_path)
    stamps = {name: item.path.stat().st_mtime_ns for name, item in first.items()}
    assert build_corpus(tmp_path) == first
    assert {n: i.path.stat().st_mtime_ns for n, i in first.items()} == stamps

    first["good_raw"].path.write_bytes(b"tampered")
    rebuilt = build_corpus(tmp_path)
    assert set(rebuilt) == set(HOSTILE_NAMES) | set(GOOD_NAMES)
    for name, item in rebuilt.items():
        if name != "qcow2_wrong_checksum":
            verify_checksum(str(item.path), item.declared_checksum)
    assert not (tmp_path / ("x" * len("/etc/shadow"))).exists()  # no scratch data file left


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_image_is_refused_with_its_reason(corpus, name):
    item = corpus[name]
    with pytest.raises(VirtopsError) as caught:
        admit(item)
    assert item.reason in caught.value.msg
    assert str(item.path) in caught.value.msg


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if n != "qcow2_wrong_checksum"])
def test_hostile_image_is_refused_before_qemu_img_runs(corpus, qemu_img_tripwire, name):
    tripwire, mark = qemu_img_tripwire
    with pytest.raises(VirtopsError) as caught:
        admit(corpus[name], qemu_img=tripwire)
    assert corpus[name].reason in caught.value.msg
    assert not mark.exists()


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_image_is_accepted(corpus, name):
    item = corpus[name]
    image = admit(item)
    assert image.declared_format == item.declared_format
    assert image.qemu_format == {"iso": "raw"}.get(item.declared_format, item.declared_format)
    assert image.info.format == image.qemu_format
    assert image.virtual_size == item.virtual_size > 0
    assert image.file_size == item.path.stat().st_size
    assert image.path == str(item.path)


def test_good_images_do_reach_qemu_img(corpus, qemu_img_tripwire):
    tripwire, mark = qemu_img_tripwire
    with pytest.raises(VirtopsError, match="qemu-img info failed"):
        admit(corpus["good_qcow2"], qemu_img=tripwire)
    assert mark.exists()


def test_declared_format_is_read_case_insensitively(corpus):
    item = corpus["good_qcow2"]
    assert inspect_image(str(item.path), " QCOW2 ").declared_format == "qcow2"


def test_huge_virtual_size_is_refused_only_by_the_guard(corpus):
    huge = corpus["qcow2_huge_virtual_size"]
    with pytest.raises(VirtopsError, match=r"1\.0 PiB, from the image header\) exceeds the "
                                           r"maximum of 17592186044416 bytes \(16\.0 TiB\)"):
        inspect_image(str(huge.path), "qcow2")
    assert inspect_image(str(huge.path), "qcow2", max_virtual_size=None).virtual_size == 1024 ** 5
    assert DEFAULT_MAX_VIRTUAL_SIZE == 16 * 1024 ** 4


def test_max_virtual_size_guard_is_adjustable(corpus):
    good = corpus["good_qcow2"]
    with pytest.raises(VirtopsError, match="virtual size 4194304 bytes .* exceeds the maximum"):
        inspect_image(str(good.path), "qcow2", max_virtual_size=MiB)
    assert inspect_image(str(good.path), "qcow2", max_virtual_size=4 * MiB).virtual_size == 4 * MiB


def test_symlink_and_missing_file_are_refused(corpus, tmp_path):
    link = tmp_path / "link.raw"
    link.symlink_to(corpus["good_raw"].path)
    with pytest.raises(VirtopsError, match="not a regular file"):
        inspect_image(str(link), "raw")
    with pytest.raises(VirtopsError, match="cannot be inspected: No such file"):
        inspect_image(str(tmp_path / "missing.raw"), "raw")


# -- the second line of defence: what qemu-img itself reports --------------------------------
def _qemu_img(*args, cwd=None):
    subprocess.run(["qemu-img", *args], check=True, stdout=subprocess.DEVNULL, cwd=cwd)


def test_qemu_info_problems_name_backing_file_and_data_file(tmp_path):
    # Both point at scratch files of this test, never at a host file.
    scratch = tmp_path / "scratch.raw"
    scratch.write_bytes(bytes(MiB))
    backed = tmp_path / "backed.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-b", str(scratch), "-F", "raw", str(backed))
    with_data_file = tmp_path / "external.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=external.data", str(with_data_file),
              "1M", cwd=tmp_path)
    qemu_img = QemuImg()

    problems = qemu_info_problems(qemu_img.info(str(backed), "qcow2"), str(backed), "qcow2")
    assert problems == ["image has a backing file %r (seen by qemu-img)" % str(scratch)]
    problems = qemu_info_problems(qemu_img.info(str(with_data_file), "qcow2"),
                                  str(with_data_file), "qcow2")
    assert problems == ["image has a qcow2 data-file 'external.data' (seen by qemu-img)"]


def test_qemu_info_problems_name_vmdk_create_type_and_outside_extents(tmp_path):
    split = tmp_path / "split.vmdk"
    _qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", str(split),
              "1M")
    problems = qemu_info_problems(QemuImg().info(str(split), "vmdk"), str(split), "vmdk")
    assert "VMDK create type 'twoGbMaxExtentSparse' not allowed (only monolithicSparse/" \
           "streamOptimized), says qemu-img" in problems
    assert any("split-s001.vmdk" in p and "outside the image" in p for p in problems)


def test_qemu_info_problems_accept_a_plain_image(corpus):
    good = corpus["good_vmdk_sparse"]
    info = QemuImg().info(str(good.path), "vmdk")
    assert qemu_info_problems(info, str(good.path), "vmdk") == []
    assert qemu_info_problems(info, str(good.path), "raw") == [
        "qemu-img reads the file as vmdk, expected raw"]


# -- checksums --------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "md5"])
def test_checksum_of_each_algorithm_is_verified(corpus, algorithm):
    path = corpus["good_raw"].path
    digest = hashlib.new(algorithm, path.read_bytes()).hexdigest()
    expected = "%s:%s" % (algorithm, digest)
    assert verify_checksum(str(path), expected) == expected
    assert verify_checksum(str(path), "%s:%s" % (algorithm.upper(), digest.upper())) == expected
    assert verify_checksum(str(path), digest) == expected  # bare hex: its length tells md5/sha
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(VirtopsError) as caught:
        verify_checksum(str(path), "%s:%s" % (algorithm, wrong))
    assert caught.value.msg == "checksum mismatch for %s: expected %s:%s, got %s:%s" % (
        path, algorithm, wrong, algorithm, digest)


def test_checksum_larger_than_one_chunk(tmp_path):
    path = tmp_path / "big"
    data = bytes(range(256)) * (5 * MiB // 256) + b"tail"
    path.write_bytes(data)
    assert verify_checksum(str(path), "sha256:" + hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("spec, message", [
    ("sha1:" + "0" * 40, "unsupported algorithm 'sha1'"),
    ("sha256:abc", "a sha256 digest is 64 hex digits"),
    ("sha256:" + "g" * 64, "a sha256 digest is 64 hex digits"),
    ("", "unsupported algorithm"),
    ("0" * 40, "unsupported algorithm"),
])
def test_malformed_checksum_is_refused(corpus, spec, message):
    with pytest.raises(VirtopsError, match=message):
        verify_checksum(str(corpus["good_raw"].path), spec)


def test_checksum_of_missing_file(tmp_path):
    with pytest.raises(VirtopsError, match="cannot checksum .*No such file"):
        verify_checksum(str(tmp_path / "missing"), "sha256:" + "0" * 64)


# -- flavor fit (Nova's rules) ------------------------------------------------------------------
def _info(virtual_size):
    return ImageInfo(filename="disk", format="raw", virtual_size=virtual_size)


@pytest.mark.parametrize("virtual_size, root_gb, min_disk, min_ram, ram_mb, refusal", [
    (GiB, 1, 0, 0, 128, None),                                    # exactly fits
    (GiB + 1, 1, 0, 0, 128, "FlavorDiskSmallerThanImage"),
    (100 * GiB, 0, 0, 0, 128, None),                              # root_gb 0: no size check
    (100 * GiB, 0, 50, 0, 128, None),                             # ... nor min_disk
    (GiB, 1, 2, 0, 128, "FlavorDiskSmallerThanMinDisk"),
    (GiB, 2, 2, 0, 128, None),
    (GiB, 1, 0, 256, 128, "FlavorMemoryTooSmall"),
    (GiB, 1, 0, 128, 128, None),
    (GiB, 0, 0, 512, 256, "FlavorMemoryTooSmall"),                # RAM checked with root_gb 0
    (2 * GiB, 1, 5, 512, 256, "FlavorMemoryTooSmall"),            # RAM first, as Nova
    (2 * GiB, 1, 5, 0, 256, "FlavorDiskSmallerThanImage"),        # then image size
])
def test_flavor_fit(virtual_size, root_gb, min_disk, min_ram, ram_mb, refusal):
    if refusal is None:
        assert check_flavor_fits(_info(virtual_size), root_gb, min_disk, min_ram, ram_mb) is None
        return
    with pytest.raises(VirtopsError) as caught:
        check_flavor_fits(_info(virtual_size), root_gb, min_disk, min_ram, ram_mb)
    assert caught.value.details["reason"] == refusal
    assert refusal in caught.value.msg


def test_flavor_fit_messages_say_what_is_too_small():
    with pytest.raises(VirtopsError, match=r"image virtual size 2147483648 bytes \(2\.0 GiB\) "
                                           r"exceeds flavor root disk 1 GiB"):
        check_flavor_fits(_info(2 * GiB), 1, 0, 0, 64)
    with pytest.raises(VirtopsError, match="flavor RAM 64 MiB is smaller than the image's "
                                           "min_ram 128 MiB"):
        check_flavor_fits(_info(GiB), 1, 0, 128, 64)
    with pytest.raises(VirtopsError, match="image min_disk 3 GiB exceeds flavor root disk 2 GiB"):
        check_flavor_fits(_info(GiB), 2, 3, 0, 64)


def test_flavor_fit_of_an_inspected_image(tmp_path):
    disk = tmp_path / "two-gib.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", str(disk), "2G")
    image = inspect_image(str(disk), "qcow2")
    check_flavor_fits(image, 2, 0, 0, 64)
    with pytest.raises(VirtopsError, match="FlavorDiskSmallerThanImage"):
        check_flavor_fits(image, 1, 0, 0, 64)


@pytest.mark.parametrize("bad", [-1, 1.5, "1", None, True])
def test_flavor_fit_wants_whole_numbers(bad):
    with pytest.raises(VirtopsError, match="root_gb (must be an integer|cannot be negative)"):
        check_flavor_fits(_info(GiB), bad, 0, 0, 64)


def test_the_format_inspector_is_imported_without_oslo_strutils_and_the_package_still_imports_whole():
    """A fresh interpreter, as a module run is: the inspector loads without oslo_utils.strutils
    (its import compiles the password-masking regular expressions, 75-85 ms of every build);
    a later import of the whole package still works and gives the same inspector."""
    probe = (
        "import sys\n"
        "from ansible_collections.virtops.compute.plugins.module_utils._storage import image_inspect\n"
        "assert image_inspect.HAS_FORMAT_INSPECTOR, image_inspect.FORMAT_INSPECTOR_IMPORT_ERROR\n"
        "assert 'oslo_utils.strutils' not in sys.modules\n"
        "assert 'oslo_utils.imageutils' not in sys.modules\n"
        "from oslo_utils.imageutils import QemuImgInfo, format_inspector\n"
        "assert format_inspector is image_inspect.format_inspector\n"
        "assert QemuImgInfo.__name__ == 'QemuImgInfo'\n")
    subprocess.run([sys.executable, "-c", probe], check=True)
