# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""images_type rbd end to end: playbooks/prepare_hosts.yml, boot.yml and delete.yml on the
session's two-host lab with the tests' real Ceph cluster (tests/fixtures/ceph.py).

One module fixture prepares both hosts (virtops_image_backend rbd: /etc/ceph files, the libvirt
secret) and boots two servers together, one per image kind, reused by every assertion:

* ``rr1`` from a raw image Glance-style in the ``images`` pool (``images/<id>@snap``, protected,
  the catalog entry's ``locations`` naming ``rbd://<fsid>/images/<id>/snap``): its root disk is
  a clone (``rbd info`` shows the parent), nothing fetched into ``_base``;
* ``rq1`` from the qcow2 test guest: fetched, inspected, converted and imported (no parent);

both with a config drive in the pool (``<uuid>_disk.config``), both printing the marker they read
from it. The host facts report the pool's room; delete leaves no rbd image of either.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.boot_fleet import CONSOLE_META, INSTANCES, Fleet, ansible

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

HOSTS = ("compute1", "compute2")
GUEST_DIR = Path("/var/cache/virtops-test/guest")
PROPERTIES = {"hw_disk_bus": "virtio", "hw_machine_type": "pc", "hw_vif_model": "virtio"}
SERVERS = [
    {"name": "rr1", "flavor": "m1.nano", "image": "guest-raw-rbd", "networks": [{"network": "private"}],
     "config_drive": True},
    {"name": "rq1", "flavor": "m1.nano", "image": "guest", "networks": [{"network": "private"}],
     "config_drive": True},
]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class RbdFleet:
    """The fleet, the cluster and what the module's boot made."""

    def __init__(self, fleet: Fleet, cluster, image_id: str, secret_uuid: str) -> None:
        self.fleet, self.cluster, self.image_id, self.secret_uuid = fleet, cluster, image_id, secret_uuid
        self.boot = None
        self.servers = {}
        self.images = {}
        self.deleted = set()

    def rbd_info(self, name: str):
        """``rbd info`` of ``vms/<name>``, or None when the pool has no such image."""
        if name not in self.vms():
            return None
        return json.loads(self.cluster.rbd(["info", "--format", "json", "vms/%s" % name]))

    def vms(self):
        return json.loads(self.cluster.rbd(["ls", "--format", "json", "vms"]))


@pytest.fixture(scope="module")
def rbd_fleet(lab, ceph_cluster, guest, tmp_path_factory):  # pylint: disable=unused-argument
    client = ceph_cluster.client
    tmp = tmp_path_factory.mktemp("rbd")
    image_id, secret_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    raw_dir = Path("/var/tmp") / ("vo-rbd-raw-%s" % image_id[:8])   # readable by the lab hosts
    raw_dir.mkdir(mode=0o755)
    raw = raw_dir / "guest.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(GUEST_DIR / "disk.qcow2"), str(raw)], check=True)
    parent = "images/%s@snap" % image_id
    ceph_cluster.rbd(["import", "--no-progress", str(raw), "images/%s" % image_id])
    ceph_cluster.rbd(["snap", "create", parent])
    ceph_cluster.rbd(["snap", "protect", parent])
    fleet = Fleet(lab, tmp)
    settings = {"virtops_image_backend": "rbd",
                "virtops_rbd": {"user": client.user, "secret_uuid": secret_uuid, "pool": "vms"},
                "virtops_rbd_key": client.key, "virtops_ceph_fsid": ceph_cluster.fsid,
                "virtops_ceph_mon_host": client.mon_host,
                "virtops_image_roots": [str(GUEST_DIR), str(raw_dir)]}
    fleet.set_host_vars(**{host: settings for host in HOSTS})
    images = {
        "guest": {"url": "file://%s/disk.qcow2" % GUEST_DIR, "checksum": sha256(GUEST_DIR / "disk.qcow2"),
                  "disk_format": "qcow2", "min_ram": 80, "properties": PROPERTIES},
        "guest-raw-rbd": {"url": "file://%s" % raw, "checksum": sha256(raw), "disk_format": "raw", "id": image_id,
                          "min_ram": 80, "properties": PROPERTIES,
                          "locations": ["rbd://%s/images/%s/snap" % (ceph_cluster.fsid, image_id)]}}
    handle = RbdFleet(fleet, ceph_cluster, image_id, secret_uuid)
    handle.images = images
    try:
        prepared = fleet.playbook("prepare_hosts.yml", None, "--tags", "virtops_storage")
        assert prepared.rc == 0, prepared.failures()
        handle.boot = fleet.boot(SERVERS, server_boot_wait_for_console=CONSOLE_META, images=images)
        assert handle.boot.rc == 0, handle.boot.failures()
        handle.servers = {server["name"]: server for server in handle.boot.boot["servers"]}
        yield handle
    finally:
        for server in SERVERS:
            if server["name"] not in handle.deleted:
                fleet.delete({"name": server["name"]})
        for host in HOSTS:
            lab.virsh(host, "secret-undefine", secret_uuid, check=False)
            lab.run(host, ["rm", "-f", "/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.%s.keyring" % client.user], check=False)
        for child in ceph_cluster.rbd(["children", parent]).split():
            ceph_cluster.rbd(["rm", "--no-progress", child])
        ceph_cluster.rbd(["snap", "unprotect", parent])
        ceph_cluster.rbd(["snap", "purge", "--no-progress", "images/%s" % image_id])
        ceph_cluster.rbd(["rm", "--no-progress", "images/%s" % image_id])
        raw.unlink()
        raw_dir.rmdir()


def test_both_servers_boot_from_rbd_and_read_their_config_drive_from_the_pool(rbd_fleet):
    for name in ("rr1", "rq1"):
        server = rbd_fleet.servers[name]
        assert server["result"] == "booted", server
        assert server["console"] == "VIRTOPS-META uuid=%s hostname=%s" % (server["uuid"], name)
        assert rbd_fleet.rbd_info("%s_disk.config" % server["uuid"]) is not None
        # Nothing of the disks stays in the instance directory: they are in Ceph.
        files = rbd_fleet.fleet.lab.run(server["host"], ["ls", "-1", "%s/%s" % (INSTANCES, server["uuid"])]).stdout.split()
        assert not {"disk", "disk.config"} & set(files), files
        domain = etree.fromstring(rbd_fleet.fleet.lab.virsh(server["host"], "dumpxml", name).stdout.encode())
        sources = [(disk.get("type"), disk.find("source").get("protocol"), disk.find("source").get("name"),
                    disk.find("auth/secret").get("uuid")) for disk in domain.findall("devices/disk")]
        assert sources == [("network", "rbd", "vms/%s_disk" % server["uuid"], rbd_fleet.secret_uuid),
                           ("network", "rbd", "vms/%s_disk.config" % server["uuid"], rbd_fleet.secret_uuid)]


def test_the_raw_image_is_cloned_from_its_snapshot_and_the_qcow2_one_imported_grown_to_the_flavor(rbd_fleet):
    cloned = rbd_fleet.rbd_info("%s_disk" % rbd_fleet.servers["rr1"]["uuid"])
    assert (cloned["parent"]["pool"], cloned["parent"]["image"], cloned["parent"]["snapshot"]) == (
        "images", rbd_fleet.image_id, "snap")
    imported = rbd_fleet.rbd_info("%s_disk" % rbd_fleet.servers["rq1"]["uuid"])
    assert "parent" not in imported
    assert cloned["size"] == imported["size"] == 1024 ** 3   # m1.nano's root_gb
    # The clone fetched nothing: the raw image's base is in no host's _base.
    raw_base = hashlib.sha1(rbd_fleet.image_id.encode()).hexdigest()
    for host in HOSTS:
        assert raw_base not in rbd_fleet.fleet.bases(host)


def test_preparing_and_booting_again_changes_nothing(rbd_fleet):
    fleet = rbd_fleet.fleet
    prepared = fleet.playbook("prepare_hosts.yml", None, "--tags", "virtops_storage")
    assert prepared.rc == 0, prepared.failures()
    # The Ceph client's files, the libvirt secret and the instances path (whose _base the image
    # cache made its own way when it fetched the qcow2 image) are as they were.
    assert prepared.changed == {}, prepared.changed_tasks()
    again = fleet.boot(SERVERS, server_boot_wait_for_console=CONSOLE_META, images=rbd_fleet.images)
    assert again.rc == 0, again.failures()
    assert again.changed == {}, again.changed_tasks()
    assert {server["name"]: server["result"] for server in again.boot["servers"]} == {"rr1": "unchanged", "rq1": "unchanged"}


def test_the_host_facts_report_the_pools_room(rbd_fleet):
    host = rbd_fleet.servers["rr1"]["host"]
    settings = rbd_fleet.fleet.host_vars[host]["virtops_rbd"]
    proc = ansible(rbd_fleet.fleet, host, "virtops.compute.vm_host_facts", {"backend": "rbd", "rbd": settings})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    facts = json.loads(proc.stdout[proc.stdout.index("{"):])["host"]
    storage = facts["storage"]
    assert (storage["images_type"], storage["shared"], storage["pool"]) == ("rbd", True, "vms")
    # The tests' cluster has no ceph-mgr: `ceph df` lists no pool, the room is estimated.
    assert storage["source"] == "ceph df" or "no ceph-mgr" in storage["source"]
    assert 0 < storage["free_bytes"] <= storage["total_bytes"]
    assert facts["local_gb"] == storage["total_bytes"] // 1024 ** 3


def other_host(host: str) -> str:
    return HOSTS[1] if host == HOSTS[0] else HOSTS[0]


def snapshots(rbd_fleet, name: str):
    """``rbd snap ls`` of ``vms/<name>`` as {snapshot: size}."""
    listed = json.loads(rbd_fleet.cluster.rbd(["snap", "ls", "--format", "json", "vms/%s" % name]))
    return {snap["name"]: snap["size"] for snap in listed}


def own_images(rbd_fleet, server_uuid: str):
    return sorted(image for image in rbd_fleet.vms() if image.startswith(server_uuid))


def images_in_pool(images):
    return ["vms/%s" % image for image in images]


def files_in(rbd_fleet, host: str, directory: str):
    listed = rbd_fleet.fleet.lab.run(host, ["ls", "-1A", directory], check=False)
    return sorted(listed.stdout.split()) if listed.returncode == 0 else None


# Moves with disks in Ceph (Nova's shared block storage): the two servers of the module move
# between the two lab hosts; nothing is booted for them. The guest's ACPI power off is quick.
MOVE_VARS = {"virtops_shutdown_timeout": 20, "virtops_shutdown_retry_interval": 5}
DISK_FILES = {"disk", "disk.local", "disk.swap", "disk.config"}


def test_a_cold_migration_moves_no_disk_and_once_confirmed_the_guest_runs_on_the_other_host(rbd_fleet):
    fleet, server = rbd_fleet.fleet, rbd_fleet.servers["rr1"]
    source, server_uuid = server["host"], server["uuid"]
    target = other_host(source)
    images = own_images(rbd_fleet, server_uuid)
    assert images == ["%s_disk" % server_uuid, "%s_disk.config" % server_uuid]
    moved = fleet.playbook("cold_migrate.yml", dict(
        MOVE_VARS, server="rr1", target_host=target,
        server_migrate_wait_for_console="VIRTOPS-META uuid=%s hostname=rr1" % server_uuid))
    assert moved.rc == 0, moved.failures()
    record = fleet.record(target, server_uuid)
    migration = record["migration"]
    assert (record["vm_state"], record["host"], migration["status"]) == ("resized", target, "finished")
    # The disks are shared (rbd), the instance directory is not: its small files went by rsync.
    assert (migration["shared_block_storage"], migration["shared_storage"]) == (True, False)
    copied = [name for copy in migration["transfer"]["copies"] for name in copy["files"]]
    assert sorted(copied) == ["disk.info", "libvirt.xml"], migration["transfer"]
    # Bytes on the wire: the two small files (sent uncompressed) and rsync's protocol, no disk.
    copied_bytes = sum(copy["total_size"] for copy in migration["transfer"]["copies"])
    resize_dir = "%s/%s_resize" % (INSTANCES, server_uuid)
    dir_bytes = int(fleet.lab.run(source, ["du", "-sb", resize_dir]).stdout.split()[0])
    print("rbd cold migration: %d bytes on the wire for %d bytes of copied files; the instance directory "
          "holds %d bytes (%s); the 1 GiB root disk stayed in Ceph"
          % (migration["bytes_sent"], copied_bytes, dir_bytes, ", ".join(files_in(rbd_fleet, source, resize_dir))))
    assert copied_bytes <= migration["bytes_sent"] < 64 * 1024, migration["transfer"]
    # No disk file on the destination: the guest runs from the same rbd images as before.
    assert not DISK_FILES & set(files_in(rbd_fleet, target, "%s/%s" % (INSTANCES, server_uuid))), \
        files_in(rbd_fleet, target, "%s/%s" % (INSTANCES, server_uuid))
    assert own_images(rbd_fleet, server_uuid) == images
    assert fleet.lab.virsh(target, "domstate", "rr1").stdout.strip() == "running"
    domain = etree.fromstring(fleet.lab.virsh(target, "dumpxml", "rr1").stdout.encode())
    assert [disk.find("source").get("name") for disk in domain.findall("devices/disk")] == images_in_pool(images)
    # The way back until confirm: the source's copy, the root disk's snapshot nova-resize.
    assert "%s_resize" % server_uuid in fleet.instance_dirs(source)
    assert list(snapshots(rbd_fleet, "%s_disk" % server_uuid)) == ["nova-resize"]

    confirmed = fleet.playbook("confirm_resize.yml", {"server": "rr1"})
    assert confirmed.rc == 0, confirmed.failures()
    record = fleet.record(target, server_uuid)
    assert (record["vm_state"], record["migration"]["status"]) == ("active", "confirmed")
    assert not [name for name in fleet.instance_dirs(source) if name.startswith(server_uuid)]
    assert "rr1" not in fleet.lab.domains(source)
    assert snapshots(rbd_fleet, "%s_disk" % server_uuid) == {}
    assert own_images(rbd_fleet, server_uuid) == images
    assert rbd_fleet.rbd_info("%s_disk" % server_uuid)["size"] == 1024 ** 3
    assert fleet.lab.virsh(target, "domstate", "rr1").stdout.strip() == "running"


def test_a_resize_grows_the_rbd_image_and_a_revert_rolls_it_back_to_its_snapshot(rbd_fleet):
    fleet, server = rbd_fleet.fleet, rbd_fleet.servers["rq1"]
    source, server_uuid = server["host"], server["uuid"]
    root = "%s_disk" % server_uuid
    images = own_images(rbd_fleet, server_uuid)
    assert rbd_fleet.rbd_info(root)["size"] == 1024 ** 3
    bigger = {"vcpus": 1, "ram_mb": 128, "root_gb": 2, "ephemeral_gb": 0, "swap_mb": 0}
    # The tests' 4 GiB OSD leaves less than 2 GiB of estimated room once both servers' 1 GiB
    # images count whole, so the scheduler's DiskFilter is left out of this move.
    filters = ["RetryFilter", "AvailabilityZoneFilter", "ComputeFilter", "RamFilter", "CoreFilter"]
    resized = fleet.playbook("resize.yml", dict(
        MOVE_VARS, server="rq1", flavor="m1.rbd2", virtops_scheduler={"enabled_filters": filters},
        flavors={"m1.nano": {"vcpus": 1, "ram_mb": 128, "root_gb": 1, "ephemeral_gb": 0, "swap_mb": 0},
                 "m1.rbd2": bigger}))
    assert resized.rc == 0, resized.failures()
    target = other_host(source)
    record = fleet.record(target, server_uuid)
    assert (record["vm_state"], record["flavor"]["name"], record["migration"]["status"]) == (
        "resized", "m1.rbd2", "finished")
    assert record["migration"]["shared_block_storage"] is True
    assert rbd_fleet.rbd_info(root)["size"] == 2 * 1024 ** 3
    # nova-resize holds the disk as it was: its old size.
    assert snapshots(rbd_fleet, root) == {"nova-resize": 1024 ** 3}
    assert not DISK_FILES & set(files_in(rbd_fleet, target, "%s/%s" % (INSTANCES, server_uuid)))
    assert fleet.lab.virsh(target, "domstate", "rq1").stdout.strip() == "running"

    reverted = fleet.playbook("revert_resize.yml", {"server": "rq1"})
    assert reverted.rc == 0, reverted.failures()
    assert rbd_fleet.rbd_info(root)["size"] == 1024 ** 3
    assert snapshots(rbd_fleet, root) == {}
    assert own_images(rbd_fleet, server_uuid) == images
    record = fleet.record(source, server_uuid)
    assert (record["vm_state"], record["flavor"]["name"], record["migration"]["status"]) == (
        "active", "m1.nano", "reverted")
    assert fleet.lab.virsh(source, "domstate", "rq1").stdout.strip() == "running"
    assert "rq1" not in fleet.lab.domains(target)
    assert files_in(rbd_fleet, target, "%s/%s" % (INSTANCES, server_uuid)) is None


def test_delete_removes_the_servers_rbd_images_and_only_those(rbd_fleet):
    neighbour = "%s_disk" % uuid.uuid4()
    rbd_fleet.cluster.rbd(["create", "--size", "4", "vms/%s" % neighbour])
    try:
        for name in ("rr1", "rq1"):
            gone = rbd_fleet.fleet.delete({"name": name})
            assert gone.rc == 0, gone.failures()
            rbd_fleet.deleted.add(name)
        left = rbd_fleet.vms()
        for server in rbd_fleet.servers.values():
            assert not [image for image in left if image.startswith(server["uuid"])], left
        assert neighbour in left
    finally:
        rbd_fleet.cluster.rbd(["rm", "--no-progress", "vms/%s" % neighbour])
