# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import multiprocessing
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import (
    ClaimManager, HostCapacity, Limits, check_fits, usage)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)
from ansible_collections.virtops.compute.plugins.module_utils._compute.instance import run

TINY = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 1000, "root_gb": 1}
CAPACITY = HostCapacity(vcpus=2, memory_mb=8000, local_gb=100, reserved_host_memory_mb=500)


def record(name, flavor=None, **kwargs):
    return InstanceRecord(uuid=str(uuid.uuid4()), name=name,
                          flavor=Flavor.from_dict(flavor or TINY), **kwargs)


def params(tmp_path, **overrides):
    base = {"uuid": str(uuid.uuid4()), "name": "web1", "state": "present", "flavor": TINY,
            "limits": None, "image": None, "host": "c1", "availability_zone": None,
            "server_group": None, "metadata": None, "key_name": None, "launch_index": 0,
            "network_info": None, "image_base": None, "vm_state": None, "task_state": None,
            "clear_task_state": False, "reason": None, "remove_directory": False,
            "instances_path": str(tmp_path), "reserved_host_memory_mb": 512,
            "cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0}
    base.update(overrides)
    return base


def test_usage_counts_building_instances_and_both_sides_of_a_resize(tmp_path):
    store = RecordStore(str(tmp_path))
    store.save(record("a"))
    big = Flavor.from_dict({"name": "big", "vcpus": 2, "ram_mb": 3000, "root_gb": 5})
    resizing = record("b", new_flavor=big)
    store.save(resizing)
    source_copy = record("c")
    store.save(source_copy, resize=True)  # <uuid>_resize on the source
    used = usage(store, 500)
    assert used.vcpus == 1 + 2 + 1
    assert used.memory_mb == 500 + 1000 + 3000 + 1000
    assert used.disk_gb == 1 + 5 + 1


def test_claim_checks_limits_with_novas_message():
    used = usage(RecordStore("/nonexistent"), 500)
    with pytest.raises(VirtopsError, match=r"Free memory 500.00 MB < requested 1000 MB"):
        check_fits(Flavor.from_dict(TINY), used, Limits(memory_mb=1000))
    check_fits(Flavor.from_dict(TINY), used, Limits(memory_mb=1500))
    check_fits(Flavor.from_dict(TINY), used, Limits())  # no limit, no check


def test_claim_is_idempotent_and_refuses_a_second_name(tmp_path):
    store = RecordStore(str(tmp_path))
    manager = ClaimManager(store, CAPACITY)
    first = record("web1")
    assert manager.instance_claim(first) is True
    assert manager.instance_claim(first) is False
    with pytest.raises(VirtopsError, match="already exists on this host"):
        manager.instance_claim(record("web1"))
    other_flavor = InstanceRecord(uuid=first.uuid, name="web1",
                                  flavor=Flavor.from_dict(dict(TINY, name="m1.big", ram_mb=2000)))
    with pytest.raises(VirtopsError, match="resize it instead"):
        manager.instance_claim(other_flavor)


def test_check_mode_claim_writes_nothing(tmp_path):
    outcome = run(params(tmp_path), check_mode=True)
    assert outcome.changed and list(tmp_path.iterdir()) == [tmp_path / "locks"]


def test_resize_claim_needs_room_only_for_growth(tmp_path):
    store = RecordStore(str(tmp_path))
    manager = ClaimManager(store, CAPACITY)
    rec = record("web1")
    manager.instance_claim(rec)
    bigger = Flavor.from_dict(dict(TINY, name="m1.small", ram_mb=2000))
    with pytest.raises(VirtopsError, match="Free memory"):
        manager.resize_claim(rec.uuid, bigger, Limits(memory_mb=2000))
    assert manager.resize_claim(rec.uuid, bigger, Limits(memory_mb=2500)) is True
    assert store.load(rec.uuid).new_flavor == bigger


def _claim_one(args):
    instances_path, index = args
    limits = {"memory_mb": 500 + 5 * 1000 + 999}  # room for exactly five
    try:
        run(params(instances_path, name="vm%d" % index, limits=limits,
                   reserved_host_memory_mb=500), check_mode=False)
        return "ok"
    except VirtopsError as exc:
        return exc.msg


def test_ten_concurrent_claims_on_room_for_five(tmp_path):
    with multiprocessing.get_context("fork").Pool(10) as pool:
        results = pool.map(_claim_one, [(str(tmp_path), i) for i in range(10)])
    assert results.count("ok") == 5
    assert all("Insufficient compute resources" in r for r in results if r != "ok")
    assert len(RecordStore(str(tmp_path)).all()) == 5


def test_state_updates_keep_history_and_fault(tmp_path):
    p = params(tmp_path)
    run(p, check_mode=False)
    out = run(dict(p, state="updated", vm_state="error", reason="spawn failed: no space"), False)
    assert out.changed and out.record.vm_state == "error"
    assert out.record.fault["message"] == "spawn failed: no space"
    again = run(dict(p, state="updated", vm_state="active", clear_task_state=True), False)
    assert again.record.task_state is None and again.record.launched_at
    assert [h["vm_state"] for h in again.record.history][-2:] == ["error", "active"]
    assert run(dict(p, state="updated", vm_state="active", clear_task_state=True), False).changed is False


def test_the_history_of_a_new_record_begins_with_its_claim_and_a_reclaim_adds_nothing(tmp_path):
    p = dict(params(tmp_path), host="c1")
    first = run(p, check_mode=False).record
    assert [(h["vm_state"], h["task_state"], h.get("reason")) for h in first.history] == [
        ("building", "scheduling", "claimed on c1")]
    assert run(p, check_mode=False).record.history == first.history


def test_release_removes_record_and_is_idempotent(tmp_path):
    p = params(tmp_path)
    run(p, check_mode=False)
    out = run(dict(p, state="absent", remove_directory=True), False)
    assert out.changed and not (tmp_path / p["uuid"]).exists()
    assert run(dict(p, state="absent", remove_directory=True), False).changed is False


def test_names_with_path_characters_are_refused(tmp_path):
    with pytest.raises(VirtopsError):
        run(params(tmp_path, name="../etc"), check_mode=False)
    with pytest.raises(VirtopsError):
        run(params(tmp_path, uuid="../../etc"), check_mode=False)
    assert not (tmp_path / "etc").exists()


def test_a_claim_whose_record_cannot_be_written_leaves_no_directory(tmp_path, monkeypatch):
    from ansible_collections.virtops.compute.plugins.module_utils._storage import instance_record as _instance_record

    def disk_full(path, document, mode=0o644):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(_instance_record, "atomic_write_json", disk_full)
    store = RecordStore(str(tmp_path))
    manager = ClaimManager(store, CAPACITY)
    new = record("web1")
    with pytest.raises(OSError, match="No space left"):
        manager.instance_claim(new)
    assert not (tmp_path / new.uuid).exists()
    # A directory that was there before the failed write is not the claim's to remove.
    kept = tmp_path / new.uuid
    kept.mkdir()
    with pytest.raises(OSError):
        store.save(new)
    assert kept.is_dir()


def test_an_os_error_at_a_module_edge_names_the_path_and_what_to_check():
    from ansible_collections.virtops.compute.plugins.module_utils._common.errors import host_os_error
    message = host_os_error(OSError(30, "Read-only file system", "/var/lib/virtops/instances/x"))
    assert message.startswith("the host refused a file operation on /var/lib/virtops/instances/x: "
                              "Read-only file system (errno 30).")
    assert "read-only mount" in message
    assert "->" in host_os_error(OSError(18, "Invalid cross-device link", "/a", None, "/b"))
