# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rbd backend (plugins/module_utils/_storage/rbd.py) on the tests' real Ceph cluster."""
from __future__ import annotations

import json
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdSettings
from ansible_collections.virtops.compute.plugins.module_utils._storage.rbd import (
    RbdCli, ensure_root, import_config_drive, plan_root, remove_instance_images)

MiB = 1024 * 1024


@pytest.fixture
def glance_image(ceph_cluster, tmp_path):
    """A raw image as Glance's rbd store keeps it: ``images/<id>@snap``, protected; its
    location URL. Removed afterwards."""
    image_id = str(uuid.uuid4())
    raw = tmp_path / "image.raw"
    raw.write_bytes(b"GLANCE" * (MiB // 6 * 2))
    ceph_cluster.rbd(["import", "--no-progress", str(raw), "images/%s" % image_id])
    ceph_cluster.rbd(["snap", "create", "images/%s@snap" % image_id])
    ceph_cluster.rbd(["snap", "protect", "images/%s@snap" % image_id])
    try:
        yield image_id, "rbd://%s/images/%s/snap" % (ceph_cluster.fsid, image_id)
    finally:
        for child in ceph_cluster.rbd(["children", "images/%s@snap" % image_id]).split():
            ceph_cluster.rbd(["rm", "--no-progress", child])
        ceph_cluster.rbd(["snap", "unprotect", "images/%s@snap" % image_id])
        ceph_cluster.rbd(["snap", "purge", "--no-progress", "images/%s" % image_id])
        ceph_cluster.rbd(["rm", "--no-progress", "images/%s" % image_id])


@pytest.fixture
def rbd_cli(ceph_cluster):
    client = ceph_cluster.client
    settings = RbdSettings(user=client.user, secret_uuid=str(uuid.uuid4()), pool="vms", ceph_conf=str(client.conf))
    return RbdCli(settings, keyring=str(client.keyring))


def test_a_raw_glance_image_of_this_cluster_becomes_a_grown_clone_and_delete_leaves_only_other_instances(
        rbd_cli, ceph_cluster, glance_image, tmp_path):
    image_id, url = glance_image
    instance, neighbour = str(uuid.uuid4()), str(uuid.uuid4())
    assert rbd_cli.fsid() == ceph_cluster.fsid
    plan = plan_root("raw", [url], rbd_cli.fsid())
    assert plan.clone
    try:
        outcome = ensure_root(rbd_cli, instance, plan, fetch_raw_base=pytest.fail, size_bytes=16 * MiB)
        assert (outcome.made, outcome.resized) == ("clone", True)
        info = json.loads(ceph_cluster.rbd(["info", "--format", "json", "vms/%s_disk" % instance]))
        assert info["parent"]["image"] == image_id and info["size"] == 16 * MiB
        again = ensure_root(rbd_cli, instance, plan, fetch_raw_base=pytest.fail, size_bytes=16 * MiB)
        assert (again.made, again.resized) == ("existing", False)
        with pytest.raises(VirtopsError, match="refusing to shrink"):
            rbd_cli.resize("%s_disk" % instance, 8 * MiB)

        config = tmp_path / "disk.config"
        config.write_bytes(b"config-2" * 1024)
        import_config_drive(rbd_cli, instance, str(config), lambda path: config.unlink())
        assert not config.exists()
        ceph_cluster.rbd(["create", "--size", "4", "vms/%s_disk" % neighbour])
        assert rbd_cli.instance_images(instance) == ["%s_disk" % instance, "%s_disk.config" % instance]
    finally:
        removed = remove_instance_images(rbd_cli, instance)
    assert removed == ["%s_disk" % instance, "%s_disk.config" % instance]
    assert rbd_cli.list() == ["%s_disk" % neighbour]
    rbd_cli.remove("%s_disk" % neighbour)


def test_a_qcow2_image_is_imported_from_its_fetched_raw_base(rbd_cli, ceph_cluster, glance_image, tmp_path):
    _image_id, url = glance_image
    instance = str(uuid.uuid4())
    base = tmp_path / "base"
    base.write_bytes(b"RAWBASE" * MiB)
    plan = plan_root("qcow2", [url], ceph_cluster.fsid)
    try:
        outcome = ensure_root(rbd_cli, instance, plan, fetch_raw_base=lambda: str(base), size_bytes=None)
        assert outcome.made == "import" and "not raw" in outcome.reason
        info = rbd_cli.info("%s_disk" % instance)
        assert info is not None and info.parent is None and info.size == 7 * MiB
    finally:
        remove_instance_images(rbd_cli, instance)
