# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import usage
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import (
    read_instance_records, summarise, total_memory_mb)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)

U1 = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
U2 = "1a2b3c4d-0000-4000-8000-000000000002"
U3 = "1a2b3c4d-0000-4000-8000-000000000003"


def save(base, uuid, name, vcpus=1, resize=False):
    record = InstanceRecord(uuid=uuid, name=name, vm_state="active", task_state=None,
                            flavor=Flavor.from_dict({"name": "m1", "vcpus": vcpus, "ram_mb": 128,
                                                     "root_gb": 1}))
    RecordStore(str(base)).save(record, resize=resize)


def scan(base):
    records, ignored = read_instance_records(str(base))
    return [r["name"] for r in records], {os.path.basename(e["path"]): e["reason"] for e in ignored}


@pytest.fixture
def host(tmp_path):
    """An instances path with one instance, a resize source and the collection's own entries."""
    save(tmp_path, U1, "web1")
    save(tmp_path, U2, "web2", vcpus=2, resize=True)
    for own in ("_base", "locks", "lost+found", ".cache"):
        (tmp_path / own).mkdir()
    return tmp_path


def assert_instances_still_counted(base):
    assert [r.name for r in RecordStore(str(base)).all()] == ["web1", "web2"]
    assert usage(RecordStore(str(base)), 0).vcpus == 3


def test_records_of_instances_and_resize_sources_are_read_and_own_entries_are_silent(host):
    assert scan(host) == (["web1", "web2"], {})
    assert_instances_still_counted(host)


def test_missing_instances_path_means_no_instances(tmp_path):
    assert read_instance_records(str(tmp_path / "absent")) == ([], [])
    assert RecordStore(str(tmp_path / "absent")).all() == []


def test_a_stray_file_is_reported_and_the_instances_are_still_counted(host):
    (host / "filler").touch()
    assert scan(host) == (["web1", "web2"],
                          {"filler": "the name is not an instance uuid (or <uuid>_resize)"})
    assert_instances_still_counted(host)


def test_a_file_named_like_an_instance_is_not_a_directory(host):
    (host / U3).write_text("x")
    assert scan(host)[1] == {U3: "not a directory"}
    assert_instances_still_counted(host)


def test_a_directory_whose_name_is_not_a_uuid_is_reported(host):
    save(host, U3, "web3")
    os.rename(str(host / U3), str(host / "backup-of-web3"))
    (host / U3.upper()).mkdir()  # not the canonical form the store writes
    (host / (U3 + "_del")).mkdir()
    ignored = scan(host)[1]
    assert set(ignored) == {"backup-of-web3", U3.upper(), U3 + "_del"}
    assert all("not an instance uuid" in reason for reason in ignored.values())
    assert_instances_still_counted(host)


def test_a_directory_without_instance_json_is_reported(host):
    (host / U3).mkdir()
    assert scan(host)[1] == {U3: "no instance.json in it (not an instance directory)"}
    assert_instances_still_counted(host)


def test_an_unreadable_instance_json_is_reported(host):
    (host / U3 / "instance.json").mkdir(parents=True)
    reason = scan(host)[1][U3]
    assert reason == "cannot read instance.json: Is a directory"
    assert_instances_still_counted(host)


@pytest.mark.parametrize("content, says", [
    ("{broken", "is not valid JSON"),
    ("[1, 2]", "holds a list, not an instance record"),
    (json.dumps({"uuid": U3, "name": "web3"}),
     "is not a valid instance record: instance record %s has no flavor" % U3),
    (json.dumps({"uuid": U3, "name": "web3", "flavor": "m1.tiny"}), "flavor must be a dict"),
    (json.dumps({"uuid": U1, "name": "web3", "flavor": {"vcpus": 1, "ram_mb": 64}}),
     "names instance %s, not the directory's %s" % (U1, U3)),
])
def test_a_corrupt_instance_json_is_reported(host, content, says):
    (host / U3).mkdir()
    (host / U3 / "instance.json").write_text(content)
    reason = scan(host)[1][U3]
    assert says in reason and reason.startswith("instance.json ")
    assert_instances_still_counted(host)


def test_a_symlink_to_an_instance_directory_is_reported_not_followed(host, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    save(elsewhere, U3, "web3")
    os.symlink(str(elsewhere / U3), str(host / U3))
    assert scan(host)[1] == {U3: "a symbolic link, not an instance directory"}
    assert_instances_still_counted(host)


def test_summary_keeps_only_scheduler_keys():
    summary = summarise({"uuid": "u", "name": "n", "admin_pass": "secret", "vm_state": "active"})
    assert "admin_pass" not in summary
    assert summary["vm_state"] == "active" and summary["task_state"] is None


def test_total_memory_comes_from_meminfo():
    with open("/proc/meminfo") as meminfo:
        expected = int(meminfo.readline().split()[1]) // 1024
    assert total_memory_mb(1) == expected


def test_power_states_and_consoles_are_read_on_a_read_only_connection_by_domain_uuid(tmp_path):
    libvirt = pytest.importorskip("libvirt")
    from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import (
        LiveDomain, live_domains)
    from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import connect
    from ansible_collections.virtops.compute.plugins.module_utils._model.console import Graphics
    from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._inventory.helpers import (
        node_xml, server_xml)
    node = tmp_path / "node.xml"
    node.write_text(node_xml(server_xml("web1", U1, vnc=("192.0.2.11", 5901)),
                             server_xml("web2", U2, shutoff=True, vnc=("192.0.2.11", 5902))))
    with connect("test://%s" % node, read_only=True) as conn:
        live = live_domains(conn)
        with pytest.raises(libvirt.libvirtError, match="read only"):
            conn.lookupByName("web1").suspend()
    assert live[U1] == LiveDomain("running", (Graphics("vnc", "192.0.2.11", 5901),))
    # A shut-off domain's console has no port: it is not read.
    assert live[U2] == LiveDomain("shutdown", ())


def test_an_instance_has_the_consoles_of_its_running_domain_and_none_without_a_domain():
    from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import LiveDomain
    from ansible_collections.virtops.compute.plugins.module_utils._model.console import Graphics
    live = {U1: LiveDomain("running", (Graphics("vnc", "192.0.2.11", 5900),))}
    summary = summarise({"uuid": U1, "name": "web1"}, "c1", live)
    assert summary["graphics"] == [{"type": "vnc", "listen": "192.0.2.11", "port": 5900}]
    assert (summary["power_state"], summarise({"uuid": U2, "name": "web2"}, "c1", live)["graphics"]) \
        == ("running", [])


def test_the_history_is_returned_only_for_the_servers_asked_for_by_name_or_uuid(tmp_path):
    from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import (
        wants_history)
    record = InstanceRecord(uuid=U1, name="web1", flavor=Flavor.from_dict(
        {"name": "m1", "vcpus": 1, "ram_mb": 128, "root_gb": 1}))
    record.set_state(task_state="spawning")
    record.set_state("active", None)
    document = record.to_dict()
    assert "history" not in summarise(document, "c1", {})
    assert wants_history(document, ["web1"]) and wants_history(document, [U1])
    assert not wants_history(document, ["web2"]) and not wants_history(document, [])
    history = summarise(document, "c1", {}, history=True)["history"]
    assert [(e["vm_state"], e["task_state"]) for e in history] == [
        ("building", "spawning"), ("active", None)]


def test_the_disk_of_an_rbd_host_is_its_pools_room_and_of_a_local_one_its_filesystem(tmp_path):
    from ansible_collections.virtops.compute.plugins.module_utils._common.process import Result
    from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import HostConfig, disk_room
    gib = 1024 ** 3
    df = {"stats": {"total_bytes": 300 * gib}, "pools": [{"name": "vms", "stats": {"max_avail": 90 * gib, "bytes_used": 5 * gib}}]}
    calls = []

    def ceph(argv, check=True, timeout=None, env=None):
        calls.append(list(argv))
        return Result(tuple(argv), 0, json.dumps(df), "")

    rbd = {"user": "nova", "secret_uuid": "5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10"}
    local_gb, free_gb, storage = disk_room(HostConfig(hostname="h", backend="rbd", rbd=rbd), runner=ceph)
    assert (local_gb, free_gb) == (300, 90)
    assert storage == {"images_type": "rbd", "shared": True, "pool": "vms", "total_bytes": 300 * gib,
                       "free_bytes": 90 * gib, "used_bytes": 5 * gib, "source": "ceph df"}
    assert calls[0][-4:] == ["nova", "df", "--format", "json"]
    local_gb, free_gb, storage = disk_room(HostConfig(hostname="h", instances_path=str(tmp_path)))
    assert storage == {"images_type": "qcow2", "shared": False} and local_gb >= free_gb >= 0
    with pytest.raises(VirtopsError, match="images_type is qcow2"):
        disk_room(HostConfig(hostname="h", rbd=rbd))
