# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moves of a server whose disks are rbd images (shared block storage) without libvirt: what
prep records, what migrate refuses before anything changes and what it copies, what finish
does to the image, confirm and revert around the snapshot nova-resize. The ``rbd`` command is
the scripted cluster of the rbd backend's tests; the real one is in
tests/integration/test_boot_rbd.py."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)
from ansible_collections.virtops.compute.plugins.module_utils._migration.migrate import (
    FinishPhase, Migration, MigrateParams, recorded_config_drive_format, run_phase, transfer_groups)
from tests.unit.plugins.module_utils._storage.test_rbd import FSID, OTHER_FSID, SETTINGS, FakeCluster, cli

GIB = 1024 ** 3
NANO = Flavor.from_dict({"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1})
BIGGER = Flavor.from_dict({"name": "m1.rbd2", "vcpus": 1, "ram_mb": 128, "root_gb": 2})
WITH_SWAP = Flavor.from_dict({"name": "m1.swap", "vcpus": 1, "ram_mb": 128, "root_gb": 2, "swap_mb": 64})
RBD = {"backend": "rbd", "rbd": SETTINGS.to_dict()}


def record(flavor=NANO, host="c1"):
    rec = InstanceRecord(uuid=str(uuid.uuid4()), name="rr1", flavor=flavor, host=host,
                         image={"id": "img", "url": "file:///nonexistent", "disk_format": "raw"})
    rec.set_state("active", None)
    return rec


def params(tmp_path, phase, **over) -> MigrateParams:
    values = {"phase": phase, "host": "c2", "address": "10.0.0.2", "instances_path": str(tmp_path),
              "source_address": "10.0.0.1"}
    values.update(RBD)
    values.update(over)
    return MigrateParams(**values)


def cluster_with(rec, size=GIB):
    return FakeCluster(images={"%s_disk" % rec.uuid: size, "%s_disk.config" % rec.uuid: 512 * 1024})


def migration(rec, new=NANO, rbd=None, shared=True, dest="c2", status="pre-migrating") -> Migration:
    return Migration(id="m1", instance_uuid=rec.uuid, migration_type="migration" if new == rec.flavor else "resize",
                     source_host="c1", dest_host=dest, source_address="10.0.0.1", dest_address="10.0.0.2",
                     source_instances_path="/unused", dest_instances_path="/unused",
                     old_flavor=rec.flavor.to_dict(), new_flavor=new.to_dict(), old_vm_state="active",
                     status=status, shared_block_storage=shared,
                     rbd=rbd if rbd is not None else ({"fsid": FSID, "pool": "vms"} if shared else None))


def test_with_disks_in_ceph_only_disk_info_and_libvirt_xml_are_copied_whatever_lies_in_the_directory(tmp_path):
    for name in ("disk.info", "libvirt.xml", "console.log", "disk", "disk.config", "kernel"):
        (tmp_path / name).write_bytes(b"x" * 100)
    groups = transfer_groups(str(tmp_path), {"disk": "raw", "disk.config": "raw"}, disks=False)
    assert groups == [([str(tmp_path / "disk.info"), str(tmp_path / "libvirt.xml")], False)]
    assert transfer_groups(str(tmp_path / "none"), {}, disks=False) == []


def test_prep_on_an_rbd_host_records_shared_block_storage_with_the_cluster_and_pool(tmp_path):
    src = record()
    cluster = cluster_with(src)
    done = run_phase(params(tmp_path, "prep", instance=src.to_dict(), new_flavor=BIGGER.to_dict()), rbd_cli=cli(cluster))
    mig = done.migration
    assert (mig["shared_block_storage"], mig["rbd"], mig["claim_in_place"]) == (True, {"fsid": FSID, "pool": "vms"}, False)
    assert any("the disks stay in Ceph" in action for action in done.actions)
    assert RecordStore(str(tmp_path)).load(src.uuid).new_flavor == BIGGER
    # Local disks here: nothing asked of Ceph, nothing shared.
    local = run_phase(params(tmp_path / "local", "prep", instance=record().to_dict(), backend="qcow2", rbd=None))
    assert (local.migration["shared_block_storage"], local.migration["rbd"]) == (False, None)


def test_prep_refuses_a_destination_whose_pool_lacks_the_root_disk_before_claiming(tmp_path):
    src = record()
    with pytest.raises(VirtopsError, match="is not in this host's pool.*same Ceph cluster and pool|source's Ceph"):
        run_phase(params(tmp_path, "prep", instance=src.to_dict()), rbd_cli=cli(FakeCluster()))
    assert not os.path.exists(tmp_path / src.uuid)


def test_prep_refuses_a_resize_that_would_shrink_the_image_or_bring_a_swap_disk(tmp_path):
    src = record()
    with pytest.raises(VirtopsError, match="^Unable to resize disk down.*holds 3221225472"):
        run_phase(params(tmp_path, "prep", instance=src.to_dict(), new_flavor=BIGGER.to_dict()),
                  rbd_cli=cli(cluster_with(src, size=3 * GIB)))
    with pytest.raises(VirtopsError, match="ephemeral or swap disk"):
        run_phase(params(tmp_path, "prep", instance=src.to_dict(), new_flavor=WITH_SWAP.to_dict()),
                  rbd_cli=cli(cluster_with(src)))
    assert not os.path.exists(tmp_path / src.uuid)


def _source(tmp_path):
    store = RecordStore(str(tmp_path))
    src = record()
    store.save(src)
    (tmp_path / src.uuid / "disk.info").write_text(json.dumps({str(tmp_path / src.uuid / "disk"): "raw"}))
    return src, (tmp_path / src.uuid / "instance.json").read_text()


@pytest.mark.parametrize("here, mig_shared, says", [
    ("rbd", False, "keeps its disks in Ceph .* but the destination c2 keeps them locally"),
    ("qcow2", True, "the disks of migration m1 are rbd images in Ceph, but this host's backend is qcow2"),
])
def test_migrate_refuses_a_move_between_rbd_and_local_disks_before_anything_changes(tmp_path, here, mig_shared, says):
    src, before = _source(tmp_path)
    over = RBD if here == "rbd" else {"backend": "qcow2", "rbd": None}
    with pytest.raises(VirtopsError, match=says):
        run_phase(params(tmp_path, "migrate", host="c1", migration=migration(src, shared=mig_shared).to_dict(), **over),
                  rbd_cli=cli(cluster_with(src)))
    assert (tmp_path / src.uuid / "instance.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == sorted([src.uuid, "locks"])


def test_migrate_refuses_another_cluster_or_pool_and_a_nova_resize_snapshot_left_from_an_earlier_move(tmp_path):
    src, before = _source(tmp_path)
    elsewhere = migration(src, rbd={"fsid": OTHER_FSID, "pool": "vms"}).to_dict()
    with pytest.raises(VirtopsError, match="uses pool vms of cluster %s" % OTHER_FSID):
        run_phase(params(tmp_path, "migrate", host="c1", migration=elsewhere), rbd_cli=cli(cluster_with(src)))
    cluster = cluster_with(src)
    cluster.image_snaps["%s_disk" % src.uuid] = {"nova-resize": GIB}
    with pytest.raises(VirtopsError, match=r"snapshot nova-resize left from a move .*\(rbd snap rm vms/%s_disk@nova-resize\)"
                       % src.uuid):
        run_phase(params(tmp_path, "migrate", host="c1", migration=migration(src).to_dict()), rbd_cli=cli(cluster))
    assert (tmp_path / src.uuid / "instance.json").read_text() == before


def test_migrate_in_check_mode_plans_no_disk_copy(tmp_path):
    src, before = _source(tmp_path)
    (tmp_path / src.uuid / "libvirt.xml").write_text("<domain/>")
    planned = run_phase(params(tmp_path, "migrate", host="c1", migration=migration(src).to_dict()), check_mode=True,
                        rbd_cli=cli(cluster_with(src)))
    assert "leave the disks in Ceph pool vms (shared block storage): no disk is copied" in planned.actions
    assert [a for a in planned.actions if a.startswith("copy ")] == ["copy disk.info, libvirt.xml to c2"]
    assert (tmp_path / src.uuid / "instance.json").read_text() == before


def test_finish_snapshots_the_root_disk_before_growing_it_and_a_rerun_changes_nothing(tmp_path):
    rec = record(host="c2")
    inst = tmp_path / rec.uuid
    inst.mkdir()
    (inst / "disk.info").write_text(json.dumps({"/elsewhere/%s/disk" % rec.uuid: "raw",
                                                "/elsewhere/%s/disk.config" % rec.uuid: "raw"}))
    cluster = cluster_with(rec)
    phase = FinishPhase(params(tmp_path, "finish", migration={}), False, cli(cluster))
    formats = phase._shared_disks(rec, migration(rec, new=BIGGER), BIGGER, str(inst))   # pylint: disable=protected-access
    assert formats == {"disk": "raw", "disk.config": "raw"}
    assert cluster.image_snaps["%s_disk" % rec.uuid] == {"nova-resize": GIB}
    assert cluster.images["%s_disk" % rec.uuid]["size"] == 2 * GIB
    verbs = [call[5:7] for call in cluster.calls if call[5] in ("snap", "resize")]
    assert verbs.index(["snap", "create"]) < verbs.index(["resize", "--no-progress"])
    assert json.loads((inst / "disk.info").read_text()) == {str(inst / "disk"): "raw", str(inst / "disk.config"): "raw"}
    again = FinishPhase(params(tmp_path, "finish", migration={}), False, cli(cluster))
    again._shared_disks(rec, migration(rec, new=BIGGER), BIGGER, str(inst))   # pylint: disable=protected-access
    assert not again.result.changed
    assert cluster.image_snaps["%s_disk" % rec.uuid] == {"nova-resize": GIB}


def test_finish_refuses_a_host_that_does_not_see_the_root_disk(tmp_path):
    rec = record(host="c2")
    (tmp_path / rec.uuid).mkdir()
    phase = FinishPhase(params(tmp_path, "finish", migration={}), False, cli(FakeCluster()))
    with pytest.raises(VirtopsError, match="not in this host's pool"):
        phase._shared_disks(rec, migration(rec), NANO, str(tmp_path / rec.uuid))   # pylint: disable=protected-access


def _open_resize(tmp_path, cluster, rec, status="finished"):
    """A same-host resize that finished: the source copy in <uuid>_resize, the live record on
    the instance's own directory, the snapshot taken and the image grown."""
    store = RecordStore(str(tmp_path))
    mig = migration(rec, new=BIGGER, dest="c1", status="post-migrating")
    source_copy = InstanceRecord.from_dict(rec.to_dict())
    source_copy.migration = mig.to_dict()
    store.save(source_copy, resize=True)
    mig.set_status(status)
    live = InstanceRecord.from_dict(rec.to_dict())
    live.flavor = BIGGER
    live.migration = mig.to_dict()
    live.set_state("resized", None)
    store.save(live)
    cluster.image_snaps["%s_disk" % rec.uuid] = {"nova-resize": GIB}
    cluster.images["%s_disk" % rec.uuid]["size"] = 2 * GIB
    return store, mig


def test_confirm_drops_the_snapshot_before_the_resize_directory_that_allows_a_revert(tmp_path):
    rec = record(host="c1")
    cluster = cluster_with(rec)
    store, mig = _open_resize(tmp_path, cluster, rec)
    # libvirt's test driver has no such domain: the confirmed server is recorded stopped.
    done = run_phase(params(tmp_path, "confirm", host="c1", migration=mig.to_dict(), libvirt_uri="test:///default"),
                     rbd_cli=cli(cluster))
    assert done.changed and done.migration["status"] == "confirmed"
    snap_rm = next(i for i, a in enumerate(done.actions) if a.startswith("removed snapshot"))
    dir_rm = next(i for i, a in enumerate(done.actions) if a.endswith("(the source's claim)"))
    assert snap_rm < dir_rm
    assert cluster.image_snaps["%s_disk" % rec.uuid] == {}
    assert cluster.images["%s_disk" % rec.uuid]["size"] == 2 * GIB
    assert store.load(rec.uuid, resize=True) is None and store.load(rec.uuid).vm_state == "stopped"


def test_revert_in_check_mode_plans_the_rollback_and_changes_nothing(tmp_path):
    rec = record(host="c1")
    cluster = cluster_with(rec)
    store, mig = _open_resize(tmp_path, cluster, rec)
    os.unlink(store.path(rec.uuid))                  # revert_dest ran: only <uuid>_resize is left
    os.rmdir(os.path.dirname(store.path(rec.uuid)))
    planned = run_phase(params(tmp_path, "revert_source", host="c1", migration=mig.to_dict()), check_mode=True,
                        rbd_cli=cli(cluster))
    assert "would roll back to and remove snapshot vms/%s_disk@nova-resize" % rec.uuid in planned.actions
    assert cluster.image_snaps["%s_disk" % rec.uuid] == {"nova-resize": GIB}
    assert cluster.images["%s_disk" % rec.uuid]["size"] == 2 * GIB


def test_the_config_drive_format_is_read_from_how_the_copied_definition_attached_it(tmp_path):
    def domain(device):
        return ("<domain type='qemu'><name>rr1</name><uuid>%s</uuid><memory>131072</memory><devices>"
                "<disk type='network' device='%s'><source protocol='rbd' name='vms/x_disk.config'/>"
                "<target dev='hdd' bus='ide'/></disk></devices></domain>" % (uuid.uuid4(), device))
    (tmp_path / "libvirt.xml").write_text(domain("cdrom"))
    assert recorded_config_drive_format(str(tmp_path)) == "iso9660"
    (tmp_path / "libvirt.xml").write_text(domain("disk"))
    assert recorded_config_drive_format(str(tmp_path)) == "vfat"
    os.unlink(tmp_path / "libvirt.xml")
    assert recorded_config_drive_format(str(tmp_path)) == "iso9660"
