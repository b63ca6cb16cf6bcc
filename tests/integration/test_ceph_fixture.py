# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tests' Ceph cluster (tests/fixtures/ceph.py, fixture ``ceph_cluster``) itself: RBD as
Glance and Nova use it, with the client key Nova would have."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.fixtures.ceph import CephCluster, CephError, CephUnavailable
from tests.fixtures.daemons import gone, under_ci


def _name(prefix: str) -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def test_the_cluster_has_cephx_its_own_fsid_one_osd_and_single_replica_rbd_pools(ceph_cluster):
    assert json.loads(ceph_cluster.ceph(["fsid", "--format", "json"]))["fsid"] == ceph_cluster.fsid
    stat = json.loads(ceph_cluster.ceph(["osd", "stat", "--format", "json"]))
    assert (stat["num_osds"], stat["num_up_osds"], stat["num_in_osds"]) == (1, 1, 1)
    for pool in ("images", "vms"):
        assert json.loads(ceph_cluster.ceph(["osd", "pool", "get", pool, "size", "--format", "json"]))["size"] == 1
        assert "rbd" in json.loads(ceph_cluster.ceph(["osd", "pool", "application", "get", pool, "--format", "json"]))
    caps = json.loads(ceph_cluster.ceph(["auth", "get", "client.virtops", "--format", "json"]))[0]["caps"]
    assert caps == {"mon": "profile rbd", "osd": "profile rbd pool=images, profile rbd pool=vms"}
    assert ceph_cluster.directory is not None and str(ceph_cluster.directory).startswith("/var/tmp/virtops-ceph-")
    assert os.stat(ceph_cluster.directory / "osd.0.block").st_size == ceph_cluster.block_size


def test_the_client_key_creates_lists_and_removes_images_and_nothing_gets_in_without_it(ceph_cluster):
    name = _name("t")
    ceph_cluster.rbd(["create", "--size", "16", "vms/%s" % name])
    try:
        assert name in ceph_cluster.rbd(["ls", "vms"]).split()
        info = json.loads(ceph_cluster.rbd(["info", "--format", "json", "vms/%s" % name]))
        assert info["size"] == 16 * 1024 ** 2
    finally:
        ceph_cluster.rbd(["rm", "--no-progress", "vms/%s" % name])
    assert name not in ceph_cluster.rbd(["ls", "vms"]).split()
    # cephx: a wrong key is refused; the client's caps do not reach the monitor's admin commands.
    wrong = ceph_cluster.directory / "wrong.keyring"
    wrong.write_text("[client.virtops]\n\tkey = AQBvqjBnAAAAABAAdEf9nLgjPcKfOHbQJuoLfw==\n")
    try:
        with pytest.raises(CephError):
            ceph_cluster.run(["rbd", "--conf", str(ceph_cluster.client.conf), "--id", "virtops", "--keyring", str(wrong),
                              "ls", "vms"], 60)
    finally:
        wrong.unlink()
    with pytest.raises(CephError, match="EACCES|denied"):
        ceph_cluster.run(["ceph", "--conf", str(ceph_cluster.client.conf), "--id", "virtops",
                         "--keyring", str(ceph_cluster.client.keyring), "osd", "pool", "create", "stolen"], 60)


def test_a_raw_image_imported_into_the_images_pool_reads_back_byte_for_byte(ceph_cluster, tmp_path):
    raw = tmp_path / "disk.raw"
    data = os.urandom(1024 * 1024) + b"\0" * (3 * 1024 * 1024) + b"VIRTOPS-RBD-END"
    raw.write_bytes(data)
    name = _name("img")
    ceph_cluster.rbd(["import", "--no-progress", str(raw), "images/%s" % name])
    try:
        exported = tmp_path / "exported.raw"
        ceph_cluster.rbd(["export", "--no-progress", "images/%s" % name, str(exported)])
        assert exported.read_bytes() == data
    finally:
        ceph_cluster.rbd(["rm", "--no-progress", "images/%s" % name])


def test_a_protected_snapshot_in_images_clones_into_vms_with_its_parent_in_rbd_info(ceph_cluster, tmp_path):
    """Glance's rbd store keeps each image as ``images/<id>@snap``, protected; Nova's
    ``RBDDriver.clone`` makes ``vms/<uuid>_disk`` a copy-on-write child of it."""
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"BOOT" * 1024 * 256)
    image_id, instance = str(uuid.uuid4()), str(uuid.uuid4())
    parent, child = "images/%s" % image_id, "vms/%s_disk" % instance
    ceph_cluster.rbd(["import", "--no-progress", str(raw), parent])
    ceph_cluster.rbd(["snap", "create", "%s@snap" % parent])
    ceph_cluster.rbd(["snap", "protect", "%s@snap" % parent])
    try:
        ceph_cluster.rbd(["clone", "%s@snap" % parent, child])
        try:
            info = json.loads(ceph_cluster.rbd(["info", "--format", "json", child]))
            assert info["parent"]["pool"] == "images"
            assert info["parent"]["image"] == image_id
            assert info["parent"]["snapshot"] == "snap"
            assert ceph_cluster.rbd(["children", "%s@snap" % parent]).split() == [child]
            ceph_cluster.rbd(["resize", "--no-progress", "--size", "8", child])
            assert json.loads(ceph_cluster.rbd(["info", "--format", "json", child]))["size"] == 8 * 1024 ** 2
            with pytest.raises(CephError):
                ceph_cluster.rbd(["snap", "unprotect", "%s@snap" % parent])
        finally:
            ceph_cluster.rbd(["rm", "--no-progress", child])
    finally:
        ceph_cluster.rbd(["snap", "unprotect", "%s@snap" % parent])
        ceph_cluster.rbd(["snap", "purge", "--no-progress", parent])
        ceph_cluster.rbd(["rm", "--no-progress", parent])
    assert image_id not in ceph_cluster.rbd(["ls", "images"])


def test_stopping_a_cluster_ends_its_daemons_and_removes_its_directory():
    try:
        cluster = CephCluster(address="127.0.0.1")
    except CephUnavailable as exc:
        if under_ci():
            raise
        pytest.skip(str(exc))
    with cluster:
        pids, directory = cluster.pids, cluster.directory
        assert set(pids) == {"mon.a", "osd.0"}
        assert all(not gone(pid) for pid in pids.values())
        assert cluster.monitors[0].startswith("127.0.0.1:")
        assert cluster.rbd(["ls", "vms"]) == ""
    assert all(gone(pid) for pid in pids.values())
    assert directory is not None and not directory.exists()
    assert cluster.directory is None
    cluster.stop()  # idempotent
