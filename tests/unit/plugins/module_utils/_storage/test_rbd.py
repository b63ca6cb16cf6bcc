# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd backend's decisions and the argv it runs, with a scripted runner (the real cluster
is tests/integration/test_rbd_backend.py)."""
from __future__ import annotations

import json
from typing import Dict, List, Tuple

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import Result
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdSettings
from ansible_collections.virtops.compute.plugins.module_utils._storage.rbd import (
    RbdCli, RbdLocation, drop_resize_snapshot, ensure_root, import_config_drive, plan_root, remove_instance_images,
    roll_back_to_resize_snapshot, take_resize_snapshot)

FSID = "1ee20ded-caae-419d-9fe3-5919f129cf55"
OTHER_FSID = "0b4bc6ea-5e67-4a5b-9c1f-2d3c4e5f6a7b"
IMAGE_ID = "226bc6e5-60d7-4a2c-bf0d-a568a1e26e00"
URL = "rbd://%s/images/%s/snap" % (FSID, IMAGE_ID)
UUID = "9d2f8a4e-3c1b-4e6f-8a7d-1b2c3d4e5f60"
SETTINGS = RbdSettings(user="virtops", secret_uuid="5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10")
MiB = 1024 * 1024


class FakeCluster:
    """A scripted ``rbd``: a pool of images by name (size, parent), readable snapshots."""

    def __init__(self, images: Dict[str, int] = None, snapshots: Tuple[str, ...] = ()) -> None:
        self.images: Dict[str, dict] = {name: {"size": size} for name, size in (images or {}).items()}
        self.snapshots = set(snapshots)
        self.calls: List[List[str]] = []
        self.image_snaps: Dict[str, Dict[str, int]] = {}   # image name -> {snapshot: size}
        self.watchers: Dict[str, List[List[str]]] = {}     # image name -> watchers per status call

    def __call__(self, argv, check=True, timeout=None, env=None) -> Result:
        argv = list(argv)
        self.calls.append(argv)
        assert argv[:5] == ["/usr/bin/rbd", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops"] or argv[0] == "/usr/bin/ceph"
        verb, args = argv[5], argv[6:]
        if argv[0] == "/usr/bin/ceph":
            return Result(tuple(argv), 0, json.dumps({"fsid": FSID}), "")
        if verb == "info":
            spec = args[-1]
            if "@" in spec:
                # A snapshot has the size a clone of it starts with.
                return self._ok(json.dumps({"name": spec, "size": 4 * MiB})) if spec in self.snapshots else self._enoent()
            name = spec.split("/", 1)[1]
            if name not in self.images:
                return self._enoent()
            image = self.images[name]
            doc = {"name": name, "size": image["size"]}
            if image.get("parent"):
                pool, rest = image["parent"].split("/", 1)
                doc["parent"] = {"pool": pool, "image": rest.split("@")[0], "snapshot": rest.split("@")[1]}
            return self._ok(json.dumps(doc))
        if verb == "clone":
            self.images[args[1].split("/", 1)[1]] = {"size": 4 * MiB, "parent": args[0]}
        elif verb == "import":
            self.images[args[-1].split("/", 1)[1]] = {"size": 2 * MiB}
        elif verb == "resize":
            self.images[args[-1].split("/", 1)[1]]["size"] = int(args[args.index("--size") + 1].rstrip("B"))
        elif verb == "rm":
            name = args[-1].split("/", 1)[1]
            if self.image_snaps.get(name):
                return Result((), 39, "", "rbd: image has snapshots - these must be deleted with 'rbd snap purge'")
            if self.images.pop(name, None) is None:
                return self._enoent()
        elif verb == "snap":
            return self._snap(args[0], args[-1])
        elif verb == "status":
            name = args[-1].split("/", 1)[1]
            answers = self.watchers.get(name) or [[]]
            current = answers.pop(0) if len(answers) > 1 else answers[0]
            return self._ok(json.dumps({"watchers": [{"address": address} for address in current]}))
        elif verb == "ls":
            return self._ok(json.dumps(sorted(self.images)))
        return self._ok()

    def _snap(self, action: str, spec: str) -> Result:
        name = spec.split("/", 1)[1].split("@")[0]
        snaps = self.image_snaps.setdefault(name, {})
        if action == "ls":
            return self._ok(json.dumps([{"id": i, "name": snap, "size": size} for i, (snap, size) in enumerate(snaps.items())]))
        snap = spec.split("@", 1)[1]
        if action == "create":
            snaps[snap] = self.images[name]["size"]
        elif action == "rm":
            del snaps[snap]
        elif action == "rollback":
            self.images[name]["size"] = snaps[snap]
        return self._ok()

    @staticmethod
    def _ok(out: str = "") -> Result:
        return Result((), 0, out, "")

    @staticmethod
    def _enoent() -> Result:
        return Result((), 2, "", "rbd: error opening image: (2) No such file or directory")

    def verbs(self) -> List[str]:
        return [call[5] for call in self.calls if call[0] == "/usr/bin/rbd"]


def cli(cluster: FakeCluster) -> RbdCli:
    return RbdCli(SETTINGS, binary="/usr/bin/rbd", ceph_binary="/usr/bin/ceph", runner=cluster)


def test_an_rbd_url_parses_into_its_four_unquoted_parts_as_novas_parse_url():
    location = RbdLocation.parse("rbd://%s/images/my%%20image/snap" % FSID)
    assert location == RbdLocation(FSID, "images", "my image", "snap")
    assert location.snap_spec == "images/my image@snap"


@pytest.mark.parametrize("url", ["http://example.org/cirros.raw", "rbd://%s/images/x" % FSID,
                                 "rbd://%s/images//snap" % FSID, "rbd://%s/images/x/snap/extra" % FSID, None])
def test_anything_but_four_non_empty_parts_after_rbd_scheme_is_not_an_rbd_location(url):
    with pytest.raises(VirtopsError):
        RbdLocation.parse(url)


def test_a_raw_image_in_this_cluster_is_cloned_from_its_first_location_here():
    plan = plan_root("raw", ["http://example.org/x.raw", "rbd://%s/images/a/snap" % OTHER_FSID, URL], FSID)
    assert plan.clone and plan.source == RbdLocation(FSID, "images", IMAGE_ID, "snap")


def test_a_qcow2_image_is_imported_even_when_it_is_in_this_cluster_as_nova_refuses_to_clone_it():
    plan = plan_root("qcow2", [URL], FSID)
    assert not plan.clone and "not raw" in plan.reason


def test_a_raw_image_of_another_cluster_or_outside_ceph_is_imported_and_the_plan_says_why():
    plan = plan_root("raw", ["rbd://%s/images/a/snap" % OTHER_FSID, "https://example.org/a.raw"], FSID)
    assert not plan.clone
    assert "not this host's %s" % FSID in plan.reason and "not stored in rbd" in plan.reason
    assert plan_root("raw", [], FSID).reason == "the image has no rbd location"


def test_a_missing_root_disk_is_cloned_from_a_readable_snapshot_without_fetching_and_grown_to_the_flavor():
    cluster = FakeCluster(snapshots=("images/%s@snap" % IMAGE_ID,))
    outcome = ensure_root(cli(cluster), UUID, plan_root("raw", [URL], FSID), fetch_raw_base=pytest.fail, size_bytes=1024 * MiB)
    assert (outcome.made, outcome.resized, outcome.parent.image) == ("clone", True, IMAGE_ID)
    assert cluster.images["%s_disk" % UUID] == {"size": 1024 * MiB, "parent": "images/%s@snap" % IMAGE_ID}
    assert ["/usr/bin/rbd", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "clone", "images/%s@snap" % IMAGE_ID,
            "vms/%s_disk" % UUID] in cluster.calls
    assert ["/usr/bin/rbd", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "resize", "--no-progress", "--size",
            "%dB" % (1024 * MiB), "vms/%s_disk" % UUID] in cluster.calls


def test_an_unreadable_snapshot_falls_back_to_importing_the_fetched_raw_base_as_novas_clone_fallback_to_fetch():
    cluster = FakeCluster()
    fetched = []
    outcome = ensure_root(cli(cluster), UUID, plan_root("raw", [URL], FSID),
                          fetch_raw_base=lambda: fetched.append(1) or "/var/lib/virtops/instances/_base/abc", size_bytes=0)
    assert (outcome.made, outcome.resized, fetched) == ("import", False, [1])
    assert "cannot be read as virtops" in outcome.reason
    assert ["/usr/bin/rbd", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "import", "--no-progress", "--image-format", "2",
            "/var/lib/virtops/instances/_base/abc", "vms/%s_disk" % UUID] in cluster.calls


def test_an_existing_root_disk_is_kept_and_only_grown_never_cloned_again_nor_shrunk():
    cluster = FakeCluster(images={"%s_disk" % UUID: 2048 * MiB}, snapshots=("images/%s@snap" % IMAGE_ID,))
    outcome = ensure_root(cli(cluster), UUID, plan_root("raw", [URL], FSID), fetch_raw_base=pytest.fail, size_bytes=2048 * MiB)
    assert (outcome.made, outcome.resized) == ("existing", False)
    assert cluster.verbs() == ["info", "info"]
    with pytest.raises(VirtopsError, match="refusing to shrink"):
        ensure_root(cli(cluster), UUID, plan_root("raw", [URL], FSID), fetch_raw_base=pytest.fail, size_bytes=1024 * MiB)


def test_the_config_drive_replaces_its_rbd_image_and_the_local_copy_is_removed():
    cluster = FakeCluster(images={"%s_disk.config" % UUID: MiB})
    removed = []
    import_config_drive(cli(cluster), UUID, "/var/lib/virtops/instances/%s/disk.config" % UUID, removed.append)
    assert cluster.verbs() == ["rm", "import"]
    assert removed == ["/var/lib/virtops/instances/%s/disk.config" % UUID]
    assert "%s_disk.config" % UUID in cluster.images


def test_deleting_an_instance_removes_its_images_and_only_its_own():
    other = "9d2f8a4e-3c1b-4e6f-8a7d-1b2c3d4e5f61"
    cluster = FakeCluster(images={"%s_disk" % UUID: MiB, "%s_disk.config" % UUID: MiB, "%s_disk" % other: MiB, UUID: MiB})
    assert remove_instance_images(cli(cluster), UUID) == ["%s_disk" % UUID, "%s_disk.config" % UUID]
    assert sorted(cluster.images) == sorted(["%s_disk" % other, UUID])
    assert remove_instance_images(cli(cluster), UUID) == []


def test_the_resize_snapshot_is_taken_once_and_a_finish_run_again_keeps_it():
    cluster = FakeCluster(images={"%s_disk" % UUID: 1024 * MiB})
    taken = take_resize_snapshot(cli(cluster), UUID)
    assert (taken.done, taken.spec) == (True, "vms/%s_disk@nova-resize" % UUID)
    assert ["/usr/bin/rbd", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "snap", "create",
            "vms/%s_disk@nova-resize" % UUID] in cluster.calls
    cli(cluster).resize("%s_disk" % UUID, 2048 * MiB)
    assert not take_resize_snapshot(cli(cluster), UUID).done
    assert cluster.image_snaps["%s_disk" % UUID] == {"nova-resize": 1024 * MiB}   # still the disk before the grow


def test_check_mode_plans_the_snapshot_and_takes_none():
    cluster = FakeCluster(images={"%s_disk" % UUID: 1024 * MiB})
    assert take_resize_snapshot(cli(cluster), UUID, check_mode=True).done
    assert cluster.image_snaps["%s_disk" % UUID] == {}


def test_a_revert_rolls_the_root_disk_back_to_its_snapshot_size_included_and_removes_the_snapshot():
    cluster = FakeCluster(images={"%s_disk" % UUID: 1024 * MiB})
    take_resize_snapshot(cli(cluster), UUID)
    cli(cluster).resize("%s_disk" % UUID, 2048 * MiB)
    back = roll_back_to_resize_snapshot(cli(cluster), UUID)
    assert (back.done, back.size) == (True, 1024 * MiB)
    assert cluster.image_snaps["%s_disk" % UUID] == {}
    assert [call[5:7] for call in cluster.calls if call[5] in ("snap", "status")][-4:] == [
        ["status", "--format"], ["snap", "rollback"], ["snap", "ls"], ["snap", "rm"]]
    # Run again (a crash after the rollback): nothing left to do, the disk is not touched.
    assert not roll_back_to_resize_snapshot(cli(cluster), UUID).done


def test_a_rollback_waits_out_the_watch_of_a_client_that_went_away_and_refuses_one_that_stays():
    cluster = FakeCluster(images={"%s_disk" % UUID: 1024 * MiB})
    take_resize_snapshot(cli(cluster), UUID)
    cluster.watchers["%s_disk" % UUID] = [["10.77.0.12:0/1"], ["10.77.0.12:0/1"], []]
    slept = []
    back = roll_back_to_resize_snapshot(cli(cluster), UUID, sleep=slept.append)
    assert back.done and slept == [1.0, 1.0]
    take_resize_snapshot(cli(cluster), UUID)
    cluster.watchers["%s_disk" % UUID] = [["10.77.0.12:0/2"]]
    clock = iter(range(0, 1000, 10))
    with pytest.raises(VirtopsError, match="still open by 10.77.0.12:0/2.*revert_dest"):
        roll_back_to_resize_snapshot(cli(cluster), UUID, sleep=lambda _: None, clock=lambda: next(clock))
    assert cluster.image_snaps["%s_disk" % UUID] == {"nova-resize": 1024 * MiB}   # nothing rolled back


def test_confirm_drops_the_snapshot_and_does_nothing_when_there_is_none_or_no_disk():
    cluster = FakeCluster(images={"%s_disk" % UUID: 1024 * MiB})
    take_resize_snapshot(cli(cluster), UUID)
    assert drop_resize_snapshot(cli(cluster), UUID).done
    assert cluster.image_snaps["%s_disk" % UUID] == {}
    assert not drop_resize_snapshot(cli(cluster), UUID).done
    assert not drop_resize_snapshot(cli(FakeCluster()), UUID).done


def test_deleting_a_server_whose_resize_is_open_removes_the_snapshot_that_holds_its_disk_back():
    cluster = FakeCluster(images={"%s_disk" % UUID: MiB, "%s_disk.config" % UUID: MiB})
    take_resize_snapshot(cli(cluster), UUID)
    assert remove_instance_images(cli(cluster), UUID) == ["%s_disk" % UUID, "%s_disk.config" % UUID]
    assert cluster.images == {}
    # Any other snapshot is not ours to remove: the image stays and the error says why.
    cluster = FakeCluster(images={"%s_disk" % UUID: MiB})
    cluster.image_snaps["%s_disk" % UUID] = {"backup": MiB}
    with pytest.raises(VirtopsError, match="has snapshots"):
        remove_instance_images(cli(cluster), UUID)
    assert "%s_disk" % UUID in cluster.images


def test_the_cluster_fsid_comes_from_ceph_fsid_as_the_hosts_user():
    cluster = FakeCluster()
    assert cli(cluster).fsid() == FSID
    assert cluster.calls == [["/usr/bin/ceph", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "fsid", "--format", "json"]]


class CephAnswers:
    """A scripted ``ceph``/``rbd``: each verb's JSON answer."""

    def __init__(self, answers: Dict[str, object]) -> None:
        self.answers = answers
        self.calls: List[List[str]] = []

    def __call__(self, argv, check=True, timeout=None, env=None) -> Result:
        self.calls.append(list(argv))
        words = [word for word in argv[5:] if not word.startswith("-") and word not in ("json", "vms")]
        return Result(tuple(argv), 0, json.dumps(self.answers[" ".join(words)]), "")


MON_DUMP = {"mons": [{"name": "a", "addr": "192.0.2.2:36177/0", "public_addrs": {"addrvec": [
    {"type": "v2", "addr": "192.0.2.2:33013", "nonce": 0}, {"type": "v1", "addr": "192.0.2.2:36177", "nonce": 0}]}},
    {"name": "b", "addr": "192.0.2.3:6789/0"}]}


def test_the_monitors_are_the_legacy_addresses_of_mon_dump_as_novas_get_mon_addrs():
    answers = CephAnswers({"mon dump": MON_DUMP})
    assert cli(answers).monitors() == ["192.0.2.2:36177", "192.0.2.3:6789"]
    assert answers.calls[0][:7] == ["/usr/bin/ceph", "--conf", "/etc/ceph/ceph.conf", "--id", "virtops", "mon", "dump"]


def test_the_pools_room_is_ceph_dfs_max_avail_as_novas_get_pool_info():
    answers = CephAnswers({"df": {"stats": {"total_bytes": 100 * MiB}, "pools": [
        {"name": "images", "stats": {"max_avail": 1, "bytes_used": 1}},
        {"name": "vms", "stats": {"max_avail": 40 * MiB, "bytes_used": 8 * MiB}}]}})
    room = cli(answers).pool_capacity()
    assert (room.total_bytes, room.free_bytes, room.used_bytes, room.source) == (100 * MiB, 40 * MiB, 8 * MiB, "ceph df")


def test_without_a_manager_the_room_is_the_osds_bluestore_over_the_replicas_less_what_the_images_provision():
    answers = CephAnswers({
        "df": {"stats": {"total_bytes": 0}, "pools": []},
        "osd dump": {"full_ratio": 0.5, "pools": [{"pool_name": "vms", "size": 2}],
                     "osds": [{"osd": 0, "up": 1, "in": 1}, {"osd": 1, "up": 0, "in": 1}]},
        "osd metadata": [{"id": 0, "bluestore_bdev_size": str(400 * MiB)}, {"id": 1, "bluestore_bdev_size": str(400 * MiB)}],
        "ls": [{"image": "a_disk", "size": 30 * MiB}, {"image": "a_disk", "snapshot": "s", "size": 30 * MiB},
               {"image": "b_disk", "size": 10 * MiB}]})
    room = cli(answers).pool_capacity()
    assert (room.total_bytes, room.used_bytes, room.free_bytes) == (100 * MiB, 40 * MiB, 60 * MiB)
    assert "no ceph-mgr" in room.source
