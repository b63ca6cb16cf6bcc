# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image cache with real qemu-img on real files: fetch once, refuse hostile images cleanly."""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
import time

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import FetchPolicy
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_disks import (
    GIB, DiskBuilder, DiskPlan, in_use_bases, plan_root, remove_instance_disks,
    write_disk_info)
from tests.fixtures.hostile_images import build_corpus

# pytest's tmp_path and tmp_path_factory directories live under the temporary directory.
ROOTS = FetchPolicy.build([tempfile.gettempdir()])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def qcow2_image(path, size="64M"):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_image_id_defaults_to_a_stable_hash_of_the_source():
    one = ImageSource.from_dict({"url": "http://x/a.img", "disk_format": "raw"})
    again = ImageSource.from_dict({"url": "http://x/a.img", "disk_format": "raw"})
    other = ImageSource.from_dict({"url": "http://x/b.img", "disk_format": "raw"})
    assert one.id == again.id != other.id
    named = ImageSource.from_dict({"url": "http://x/a.img", "disk_format": "raw", "id": "cirros"})
    assert named.base_name == hashlib.sha1(b"cirros").hexdigest()


def test_source_without_format_or_url_is_refused():
    with pytest.raises(VirtopsError, match="disk_format"):
        ImageSource.from_dict({"url": "/x"})
    with pytest.raises(VirtopsError, match="url"):
        ImageSource.from_dict({"disk_format": "raw"})


def test_fetch_converts_to_raw_then_reuses(tmp_path):
    checksum = qcow2_image(tmp_path / "img.qcow2")
    source = ImageSource.from_dict({"url": "file://%s" % (tmp_path / "img.qcow2"),
                                    "disk_format": "qcow2", "checksum": checksum})
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    first = cache.ensure(source)
    assert first.fetched and first.format == "raw" and first.virtual_size == 64 * 1024 ** 2
    assert os.path.basename(first.path) == source.base_name
    second = cache.ensure(source)
    assert not second.fetched and second.path == first.path
    listing = sorted(os.listdir(tmp_path / "instances" / "_base"))
    assert listing == [source.base_name, source.base_name + ".info"]


def test_concurrent_fetches_of_one_image_download_once(tmp_path):
    checksum = qcow2_image(tmp_path / "img.qcow2")
    source = ImageSource.from_dict({"url": str(tmp_path / "img.qcow2"), "disk_format": "qcow2",
                                    "checksum": checksum})
    results = []

    def boot():
        results.append(ImageCache(str(tmp_path / "i"), policy=ROOTS).ensure(source))

    threads = [threading.Thread(target=boot) for _index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.fetched for r in results) == [False, False, False, True]


def test_checksum_mismatch_leaves_nothing(tmp_path):
    qcow2_image(tmp_path / "img.qcow2")
    source = ImageSource.from_dict({"url": str(tmp_path / "img.qcow2"), "disk_format": "qcow2",
                                    "checksum": "sha256:" + "0" * 64})
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    with pytest.raises(VirtopsError, match="checksum mismatch"):
        cache.ensure(source)
    assert os.listdir(tmp_path / "instances" / "_base") == []


def test_every_hostile_image_is_refused_and_nothing_is_left(corpus, tmp_path):
    hostile = {name: item for name, item in corpus.items() if not item.good}
    assert len(hostile) >= 8
    for name, item in hostile.items():
        cache = ImageCache(str(tmp_path / name), policy=ROOTS)
        source = ImageSource.from_dict({"url": str(item.path), "disk_format": item.declared_format,
                                        "checksum": item.declared_checksum})
        with pytest.raises(VirtopsError) as refused:
            cache.ensure(source)
        assert item.reason.lower() in refused.value.msg.lower(), (name, refused.value.msg)
        assert os.listdir(tmp_path / name / "_base") == [], name


def test_every_good_image_is_cached(corpus, tmp_path):
    for name, item in corpus.items():
        if not item.good:
            continue
        cache = ImageCache(str(tmp_path / name), policy=ROOTS)
        base = cache.ensure(ImageSource.from_dict({
            "url": str(item.path), "disk_format": item.declared_format,
            "checksum": item.declared_checksum}))
        assert base.format == "raw", name
        if item.virtual_size:
            assert base.virtual_size == item.virtual_size, name


def test_root_overlay_grows_to_flavor_never_shrinks_and_is_idempotent(tmp_path):
    qcow2_image(tmp_path / "img.qcow2")
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    base = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "img.qcow2"),
                                               "disk_format": "qcow2"}))
    builder = DiskBuilder(cache)
    inst = tmp_path / "instances" / "u1"
    inst.mkdir()
    small = Flavor.from_dict({"name": "s", "vcpus": 1, "ram_mb": 64, "root_gb": 1})
    big = Flavor.from_dict({"name": "b", "vcpus": 1, "ram_mb": 64, "root_gb": 2})
    check = builder.ensure(str(inst), plan_root(base, small, "qcow2"), check_mode=True)
    assert check.action == "would create" and not (inst / "disk").exists()
    created = builder.ensure(str(inst), plan_root(base, small, "qcow2"), check_mode=False)
    assert created.action == "created" and created.virtual_size == GIB
    assert created.backing_file == base.path
    assert builder.ensure(str(inst), plan_root(base, small, "qcow2"), False).action == "unchanged"
    assert builder.ensure(str(inst), plan_root(base, big, "qcow2"), False).action == "grown"
    # a smaller flavor never shrinks the disk
    state = builder.ensure(str(inst), plan_root(base, small, "qcow2"), False)
    assert state.action == "unchanged" and state.virtual_size == 2 * GIB


def test_flat_backend_is_a_sparse_raw_copy(tmp_path):
    qcow2_image(tmp_path / "img.qcow2", "256M")
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    base = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "img.qcow2"),
                                               "disk_format": "qcow2"}))
    inst = tmp_path / "instances" / "u1"
    inst.mkdir()
    flavor = Flavor.from_dict({"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1})
    state = DiskBuilder(cache).ensure(str(inst), plan_root(base, flavor, "flat"), False)
    assert state.format == "raw" and state.backing_file is None and state.virtual_size == GIB
    assert os.stat(inst / "disk").st_blocks * 512 < 16 * 1024 ** 2  # holes kept


def test_ephemeral_and_swap_bases_are_formatted_and_shared(tmp_path):
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    builder = DiskBuilder(cache)
    swap = builder.swap_base(16, check_mode=False)
    assert builder.swap_base(16, check_mode=False) == swap
    assert b"SWAPSPACE2" in open(swap, "rb").read(4096)
    eph = builder.ephemeral_base(1, check_mode=False)
    blkid = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", eph], capture_output=True,
                           text=True, check=False)
    assert blkid.stdout.strip() == "ext4"


def test_ageing_removes_only_old_unused_bases(tmp_path):
    qcow2_image(tmp_path / "a.qcow2")
    qcow2_image(tmp_path / "b.qcow2", "32M")
    qcow2_image(tmp_path / "c.qcow2", "16M")
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    used = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "a.qcow2"), "disk_format": "qcow2"}))
    old = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "b.qcow2"), "disk_format": "qcow2"}))
    young = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "c.qcow2"), "disk_format": "qcow2"}))
    inst = tmp_path / "instances" / "u1"
    inst.mkdir()
    flavor = Flavor.from_dict({"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1})
    DiskBuilder(cache).ensure(str(inst), plan_root(used, flavor, "qcow2"), False)
    write_disk_info(str(inst), {"disk": "qcow2"}, False)
    a_day_ago = time.time() - 2 * 86400
    for base in (used.path, old.path):
        os.utime(base, (a_day_ago, a_day_ago))
    in_use = in_use_bases(str(tmp_path / "instances"), cache.qemu_img)
    assert in_use == [used.path]
    preview = cache.clean(in_use, check_mode=True)
    assert preview["removed"] == [old.path] and os.path.exists(old.path)
    result = cache.clean(in_use)
    assert result["removed"] == [old.path]
    assert result["kept_in_use"] == [used.path] and result["kept_young"] == [young.path]
    assert not os.path.exists(old.path) and not os.path.exists(old.path + ".info")
    assert os.path.exists(used.path) and os.path.exists(young.path)


def test_removing_disks_never_touches_bases(tmp_path):
    qcow2_image(tmp_path / "a.qcow2")
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    base = cache.ensure(ImageSource.from_dict({"allow_unverified": True, "url": str(tmp_path / "a.qcow2"), "disk_format": "qcow2"}))
    inst = tmp_path / "instances" / "u1"
    inst.mkdir()
    flavor = Flavor.from_dict({"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1})
    DiskBuilder(cache).ensure(str(inst), DiskPlan("disk", "qcow2", GIB, base.path, "raw"), False)
    assert remove_instance_disks(str(inst), check_mode=True) == [str(inst / "disk")]
    assert (inst / "disk").exists()
    remove_instance_disks(str(inst), check_mode=False)
    assert not (inst / "disk").exists() and os.path.exists(base.path)
    assert flavor.root_gb == 1


def test_impossible_flavors_are_refused():
    with pytest.raises(VirtopsError, match="vcpus must be at least 1"):
        Flavor.from_dict({"name": "z", "vcpus": 0, "ram_mb": 64})
    with pytest.raises(VirtopsError, match="root_gb cannot be negative"):
        Flavor.from_dict({"name": "z", "vcpus": 1, "ram_mb": 64, "root_gb": -1})
    with pytest.raises(VirtopsError, match="vcpus must be an integer"):
        Flavor.from_dict({"name": "z", "vcpus": "many", "ram_mb": 64})


def test_a_download_that_is_not_what_was_declared_says_so_before_its_format_does(tmp_path):
    # Declared qcow2 with a checksum; the bytes are neither: the checksum is the first problem.
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"\x00not an image\x00" * 4096)
    source = ImageSource.from_dict({"url": str(junk), "disk_format": "qcow2",
                                    "checksum": "sha256:" + "1" * 64})
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    with pytest.raises(VirtopsError) as caught:
        cache.ensure(source)
    assert caught.value.msg.startswith("checksum mismatch for image %s: expected sha256:%s, got "
                                       "sha256:" % (junk, "1" * 64))
    assert os.listdir(tmp_path / "instances" / "_base") == []
    # With the right checksum the format is what is wrong.
    right = ImageSource.from_dict({"url": str(junk), "disk_format": "qcow2",
                                   "checksum": "sha256:" + hashlib.sha256(junk.read_bytes()).hexdigest()})
    with pytest.raises(VirtopsError) as caught:
        cache.ensure(right)
    assert "checksum" not in caught.value.msg
    assert os.listdir(tmp_path / "instances" / "_base") == []


def test_a_kernel_larger_than_the_limit_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    from ansible_collections.virtops.compute.plugins.module_utils._storage import image_cache as _image_cache
    monkeypatch.setattr(_image_cache, "BOOT_FILE_MAX_BYTES", 3 * 1024 * 1024)
    huge = tmp_path / "vmlinuz"
    huge.write_bytes(b"k" * (4 * 1024 * 1024))
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    source = ImageSource.from_dict({"allow_unverified": True, "url": str(huge), "disk_format": "aki"})
    with pytest.raises(VirtopsError, match="larger than 3145728 bytes"):
        cache.ensure_boot_file(source)
    assert os.listdir(tmp_path / "instances" / "_base") == []
    small = tmp_path / "small"
    small.write_bytes(b"k" * 1000)
    fetched = cache.ensure_boot_file(ImageSource.from_dict({"allow_unverified": True, "url": str(small), "disk_format": "aki"}))
    assert fetched.fetched and fetched.file_size == 1000
    assert not cache.ensure_boot_file(
        ImageSource.from_dict({"allow_unverified": True, "url": str(small), "disk_format": "aki"})).fetched


def test_ageing_keeps_the_base_of_a_disk_whose_record_is_broken(tmp_path):
    qcow2_image(tmp_path / "a.qcow2")
    cache = ImageCache(str(tmp_path / "instances"), policy=ROOTS)
    base = cache.ensure(ImageSource.from_dict({"allow_unverified": True,
                                               "url": str(tmp_path / "a.qcow2"),
                                               "disk_format": "qcow2"}))
    inst = tmp_path / "instances" / "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
    inst.mkdir()
    flavor = Flavor.from_dict({"name": "f", "vcpus": 1, "ram_mb": 64, "root_gb": 1})
    DiskBuilder(cache).ensure(str(inst), plan_root(base, flavor, "qcow2"), False)
    write_disk_info(str(inst), {"disk": "qcow2"}, False)
    (inst / "instance.json").write_text("{not json")
    (tmp_path / "instances" / "filler").write_text("")
    a_day_ago = time.time() - 2 * 86400
    os.utime(base.path, (a_day_ago, a_day_ago))
    in_use = in_use_bases(str(tmp_path / "instances"), cache.qemu_img)
    assert in_use == [base.path]
    assert cache.clean(in_use)["removed"] == []
    assert os.path.exists(base.path)


# --------------------------------------------------------------------------- adopted bases

def _copier(source_file, description=None):
    """A fill function as a migration's destination uses: copy the file (and its .info)."""
    calls = []

    def fill(part, info_part):
        calls.append(part)
        with open(source_file, "rb") as src, open(part, "wb") as dst:
            dst.write(src.read())
        if description is not None:
            with open(info_part, "w") as handle:
                handle.write(description)
    fill.calls = calls
    return fill


def test_an_adopted_base_is_inspected_restricted_and_renamed_into_the_cache(tmp_path):
    raw = tmp_path / "base.raw"
    raw.write_bytes(b"\0" * 1024 * 1024)
    cache = ImageCache(str(tmp_path / "instances"))
    name = "a" * 40
    fill = _copier(raw, '{"format": "raw", "image_id": "cirros"}')
    adopted = cache.adopt(name, fill)
    base = tmp_path / "instances" / "_base" / name
    assert adopted.fetched and adopted.path == str(base) and adopted.format == "raw"
    assert adopted.virtual_size == 1024 * 1024 and adopted.image_id == "cirros"
    assert oct(base.stat().st_mode & 0o777) == "0o640"
    assert cache.recorded_format(name) == "raw"
    assert sorted(os.listdir(base.parent)) == [name, name + ".info"]   # no .part left
    assert set(adopted.timings) >= {"lock_wait", "fetch", "inspect"}
    again = cache.adopt(name, fill)          # present: reused, not copied again
    assert not again.fetched and len(fill.calls) == 1


def test_an_adopted_base_that_fails_inspection_leaves_nothing(tmp_path):
    hostile = tmp_path / "hostile.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw",
                    str(hostile)], check=True)
    cache = ImageCache(str(tmp_path / "instances"))
    name = "b" * 40
    with pytest.raises(VirtopsError, match="backing"):
        cache.adopt(name, _copier(hostile, '{"format": "qcow2"}'))
    assert os.listdir(cache.base_dir) == []


def test_an_adopted_base_without_a_description_is_inspected_as_its_declared_format(tmp_path):
    image = tmp_path / "img.qcow2"
    qcow2_image(image, "8M")
    cache = ImageCache(str(tmp_path / "instances"))
    with pytest.raises(VirtopsError):
        cache.adopt("c" * 40, _copier(image))          # raw by default: a qcow2 is refused
    assert os.listdir(cache.base_dir) == []
    adopted = cache.adopt("c" * 40, _copier(image), declared_format="qcow2")
    assert adopted.format == "qcow2" and adopted.virtual_size == 8 * 1024 * 1024
    assert cache.recorded_format("c" * 40) is None


def test_an_adopted_base_name_is_one_path_component(tmp_path):
    cache = ImageCache(str(tmp_path / "instances"))
    for name in ("../escape", "a/b", ".."):
        with pytest.raises(VirtopsError, match="one path component"):
            cache.adopt(name, _copier(tmp_path))
