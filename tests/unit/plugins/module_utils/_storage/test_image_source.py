# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where images may come from (issue 11): the hostile-catalog corpus through vm_image's driver
and the controller's catalog check, whole downloads, modes of what QEMU reads, cache ageing of
leftovers and lock files, and the lock protocol that makes removing a lock file safe."""
from __future__ import annotations

import os
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    QemuAccess, qemu_access, qemu_access_for)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES, FetchPolicy)
from ansible_collections.virtops.compute.plugins.module_utils._common.locks import (
    LockBusy, file_lock, unlink_held_lock)
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
    VmImageParams, clean_cache, ensure_present)
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import request as br
from tests.fixtures.hostile_catalog import CAP, ENTRIES, HostileServer, Layout, entry

FLAVOR = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1}


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Layout:
    return Layout(tmp_path_factory.mktemp("hostile-catalog"))


@pytest.fixture(scope="module")
def server(layout):
    served = HostileServer(layout.good)
    yield served
    served.close()


def params(tmp_path: Path, image: dict, roots, **over) -> VmImageParams:
    return VmImageParams(**dict(dict(
        instance={"uuid": str(uuid.uuid4()), "name": "hostile"}, image=image, flavor=FLAVOR,
        instances_path=str(tmp_path / "instances"), virt_type="qemu",
        libvirt_uri="test:///default", image_roots=[str(root) for root in roots],
        download_max_bytes=CAP), **over))


def base_listing(tmp_path: Path) -> list:
    base = tmp_path / "instances" / "_base"
    return sorted(os.listdir(base)) if base.exists() else []


@pytest.mark.parametrize("item", [e for e in ENTRIES if e.needs != "loop"], ids=lambda e: e.name)
def test_every_hostile_source_is_refused_with_its_reason_and_leaves_nothing(
        tmp_path, layout, server, item):
    image = entry(item, layout, server.base)
    with pytest.raises(VirtopsError) as refused:
        ensure_present(params(tmp_path, image, [layout.root]))
    assert item.refusal in refused.value.msg, refused.value.msg
    assert base_listing(tmp_path) == []           # no base, no .part, no .converted
    assert not any(p.name != "_base" for p in (tmp_path / "instances").glob("*")
                   if p.is_dir() and p.name not in ("locks",))


@pytest.mark.parametrize("item", [e for e in ENTRIES if e.catalog], ids=lambda e: e.name)
def test_the_controller_refuses_an_untrustworthy_catalog_entry_before_scheduling(
        layout, item):
    with pytest.raises(VirtopsError) as refused:
        br.boot_request({"name": "web", "flavor": "m1.tiny", "image": "hostile"},
                        {"m1.tiny": FLAVOR}, {"hostile": entry(item, layout, "http://x")},
                        {"private": {"cidr": "10.90.0.0/24"}}, {}, {})
    assert item.catalog in refused.value.msg, refused.value.msg


def test_a_source_without_a_root_is_refused_with_the_fix_named(tmp_path, layout):
    image = {"url": "file://%s/good.qcow2" % layout.root, "disk_format": "qcow2",
             "checksum": layout.checksum}
    with pytest.raises(VirtopsError) as refused:
        ensure_present(params(tmp_path, image, []))
    assert "no image root is configured: add the directory that holds it to image_roots " \
           "(the role variable virtops_image_roots)" in refused.value.msg
    assert base_listing(tmp_path) == []


def test_the_same_sources_are_read_when_honest(tmp_path, layout, server):
    for url in ("file://%s/good.qcow2" % layout.root, str(layout.root / "good.qcow2"),
                server.base + "/good"):
        instances = tmp_path / url.replace("/", "_")
        made = ensure_present(params(instances, {"url": url, "disk_format": "qcow2",
                                                 "checksum": layout.checksum}, [layout.root]))
        assert made.base["fetched"] is True
        assert [n for n in base_listing(instances) if n.endswith((".part", ".converted"))] == []


def test_a_server_without_a_length_is_accepted_only_with_a_checksum(tmp_path, layout):
    # the half body and no length: refused without a checksum (above); a whole body with
    # a checksum that proves it whole is fine
    class Whole(HostileServer):
        pass
    served = Whole(layout.good)
    try:
        made = ensure_present(params(tmp_path, {"url": served.base + "/good", "disk_format":
                                                "qcow2", "allow_unverified": True},
                                     [layout.root]))
        assert made.base["fetched"] is True   # Content-Length given and honoured
    finally:
        served.close()


def test_a_local_file_larger_than_the_cap_is_refused_before_it_is_read(tmp_path, layout):
    image = {"url": str(layout.root / "good.qcow2"), "disk_format": "qcow2",
             "checksum": layout.checksum}
    with pytest.raises(VirtopsError, match="is larger than 1024 bytes"):
        ensure_present(params(tmp_path, image, [layout.root], download_max_bytes=1024))
    assert base_listing(tmp_path) == []


def test_the_download_cap_has_a_documented_default_and_refuses_nonsense():
    assert FetchPolicy.build().max_bytes == DEFAULT_MAX_DOWNLOAD_BYTES == 64 * 1024 ** 3
    with pytest.raises(VirtopsError, match="download_max_bytes must be a positive"):
        FetchPolicy.build([], -1)
    with pytest.raises(VirtopsError, match="is not an absolute path"):
        FetchPolicy.build(["images"])


def test_kernel_and_ramdisk_follow_the_same_rules(tmp_path, layout):
    ami = {"url": str(layout.root / "good.qcow2"), "disk_format": "qcow2",
           "checksum": layout.checksum, "properties": {"kernel_id": "k"}}
    with pytest.raises(VirtopsError, match="kernel /etc/shadow|/etc/shadow is outside"):
        ensure_present(params(tmp_path, ami, [layout.root],
                              kernel={"url": "/etc/shadow", "allow_unverified": True}))
    with pytest.raises(VirtopsError, match="kernel %s has no checksum" % (layout.root / "good.qcow2")):
        ensure_present(params(tmp_path, ami, [layout.root],
                              kernel={"url": str(layout.root / "good.qcow2")}))
    assert base_listing(tmp_path) == []


# ----------------------------------------------------------------------------- modes

def test_the_qemu_group_is_the_one_libvirt_runs_qemu_with():
    found = qemu_access_for(("no-such-user-virtops",))
    assert found == QemuAccess(None, -1, 0o600, 0o700)
    access = qemu_access()
    if access.group is not None:
        assert (access.file_mode, access.dir_mode) == (0o640, 0o750)


def test_everything_in_the_cache_and_the_instance_directory_is_kept_from_other_users(
        tmp_path, layout):
    image = {"url": str(layout.root / "good.qcow2"), "disk_format": "qcow2",
             "checksum": layout.checksum}
    made = ensure_present(params(tmp_path, image, [layout.root], config_drive=True,
                                 flavor=dict(FLAVOR, ephemeral_gb=1, swap_mb=16)))
    access = qemu_access()
    instance_dir = Path(made.instance_dir)
    paths = [instance_dir, tmp_path / "instances" / "_base"]
    paths += list(instance_dir.iterdir()) + list((tmp_path / "instances" / "_base").iterdir())
    for path in paths:
        info = path.stat()
        assert info.st_mode & 0o007 == 0, path            # nothing for others
        if path.name == "disk.config":
            assert stat.S_IMODE(info.st_mode) == 0o600   # holds admin_pass: root only
            continue
        wanted = access.dir_mode if path.is_dir() else access.file_mode
        assert stat.S_IMODE(info.st_mode) == wanted, (path, oct(info.st_mode))
        if access.gid != -1:
            assert info.st_gid == access.gid, path


# ----------------------------------------------------------------------------- ageing

def test_ageing_removes_old_leftovers_and_the_locks_of_gone_bases_but_not_a_running_fetch(
        tmp_path, layout):
    cache = ImageCache(str(tmp_path / "instances"), policy=FetchPolicy.build([layout.root]))
    base = cache.ensure(ImageSource.from_dict({"url": str(layout.root / "good.qcow2"),
                                               "disk_format": "qcow2",
                                               "checksum": layout.checksum}))
    base_dir = Path(cache.base_dir)
    old = time.time() - 3 * 86400
    crashed = "a" * 40          # a fetch that crashed: its .part and .converted stay
    running = "b" * 40          # a fetch still running: holds its lock
    gone = "c" * 40             # a base removed long ago: only its lock file is left
    for name, suffix in ((crashed, ".part"), (crashed, ".converted"), (running, ".part")):
        path = base_dir / (name + suffix)
        path.write_bytes(b"half")
        os.utime(path, (old, old))
    for name in (crashed, running, gone):
        Path(cache.lock_path(name)).touch()
    other_lock = Path(cache.lock_dir) / "virtops-claims.lock"   # not a cache lock: untouched
    other_lock.touch()
    holding, release = threading.Event(), threading.Event()

    def fetch_in_progress():
        with file_lock(cache.lock_path(running)):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=fetch_in_progress)
    holder.start()
    holding.wait(10)
    try:
        ageing = VmImageParams(state="cache_cleaned", instances_path=str(tmp_path / "instances"),
                               remove_unused_original_minimum_age_seconds=86400)
        preview = clean_cache(ageing, check_mode=True)
        assert preview.changed and (base_dir / (crashed + ".part")).exists()
        result = clean_cache(ageing)
    finally:
        release.set()
        holder.join()
    assert sorted(result.cache["removed_leftovers"]) == sorted(
        str(base_dir / (crashed + s)) for s in (".part", ".converted"))
    # the crashed fetch's leftovers went first, so its lock goes in the same pass
    assert result.cache["removed_locks"] == [cache.lock_path(crashed), cache.lock_path(gone)]
    assert (base_dir / (running + ".part")).exists()          # its fetch holds the lock
    assert os.path.exists(cache.lock_path(running))
    assert os.path.exists(cache.lock_path(os.path.basename(base.path)))   # base still there
    assert other_lock.exists()
    assert not os.path.exists(cache.lock_path(gone))
    # the running fetch's files and lock go once it has finished and they are old
    again = clean_cache(ageing)
    assert again.cache["removed_leftovers"] == [str(base_dir / (running + ".part"))]
    assert again.cache["removed_locks"] == [cache.lock_path(running)]
    assert not clean_cache(ageing).changed


def test_a_young_leftover_is_kept(tmp_path):
    cache = ImageCache(str(tmp_path / "instances"))
    os.makedirs(cache.base_dir)
    part = Path(cache.base_dir) / ("d" * 40 + ".part")
    part.write_bytes(b"half")
    outcome = cache.clean([], min_age_seconds=3600)
    assert outcome["removed_leftovers"] == [] and part.exists()


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one_instead(tmp_path):
    """unlink under the lock, then release: the waiter that locked the unlinked inode must
    notice and lock the path's current file, or two runs would hold "the" lock at once."""
    path = str(tmp_path / "locks" / "virtops-x.lock")
    order = []
    first_holds, waiter_started = threading.Event(), threading.Event()

    def first():
        with file_lock(path, poll=0.01):
            first_holds.set()
            waiter_started.wait(5)
            time.sleep(0.2)              # the waiter is blocked on this inode now
            order.append("first done")
            unlink_held_lock(path)

    def waiter():
        first_holds.wait(5)
        waiter_started.set()
        with file_lock(path, poll=0.01):
            order.append("waiter in")
            assert os.path.exists(path)   # it holds the file the path names
            held = os.stat(path).st_ino
            # a third run cannot get in while the waiter holds it
            with pytest.raises(LockBusy):
                with file_lock(path, timeout=0):
                    pass
            assert os.stat(path).st_ino == held

    threads = [threading.Thread(target=first), threading.Thread(target=waiter)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["first done", "waiter in"]
