# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot's controller-side bookkeeping: request checks, naming, existing servers,
placement, retries without the failed hosts, and the summary."""
from __future__ import annotations

import itertools
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import plan as bp
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import request as br
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule

FLAVORS = {"m1.tiny": {"vcpus": 1, "ram_mb": 128, "root_gb": 1},
           "m1.big": {"vcpus": 1, "ram_mb": 4096, "root_gb": 1}}
IMAGES = {"guest": {"url": "file:///srv/guest.qcow2", "disk_format": "qcow2",
                    "checksum": "sha256:" + "a" * 64, "min_ram": 64,
                    "properties": {"hw_disk_bus": "virtio"}}}
NETWORKS = {"private": {"cidr": "10.90.0.0/24"}}
GROUPS = {"spread": {"policy": "anti-affinity"}}


def request(**server):
    body = {"name": "web", "flavor": "m1.tiny", "image": "guest"}
    body.update(server)
    return br.boot_request(body, FLAVORS, IMAGES, NETWORKS, {"ops": "ssh-ed25519 AAAA ops"},
                           GROUPS)


def host(name, memory_mb=8192, instances=()):
    return {"hostname": name, "vcpus": 8, "vcpus_used": 0, "memory_mb": memory_mb,
            "memory_mb_used": 512, "local_gb": 100, "local_gb_used": 0,
            "instances": list(instances)}


def uuids():
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter)))


def test_request_takes_the_catalog_entries_and_nova_defaults():
    req = request(metadata={"role": "web", "n": 1}, key_name="ops", config_drive=True)
    assert req["flavor"] == {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                             "ephemeral_gb": 0, "swap_mb": 0, "extra_specs": {}}
    assert req["networks"] == [{"network": "private"}]          # auto: the only network
    assert req["metadata"] == {"role": "web", "n": "1"}
    assert req["keypair"] == {"name": "ops", "public_key": "ssh-ed25519 AAAA ops", "type": "ssh"}
    assert (req["min_count"], req["max_count"], req["config_drive"]) == (1, 1, True)
    # vm_image and vm_xml take different views of the image
    assert set(req["image_source"]) == {"url", "disk_format", "checksum", "id", "min_disk",
                                        "min_ram", "properties"}
    assert set(req["image_ref"]) == {"id", "name", "disk_format", "properties"}


def test_image_id_follows_the_source_so_new_data_gets_a_new_base():
    first = request()["image"]["id"]
    assert request()["image"]["id"] == first
    changed = dict(IMAGES["guest"], checksum="sha256:" + "b" * 64)
    other = br.boot_request({"name": "web", "flavor": "m1.tiny", "image": "guest"}, FLAVORS,
                            {"guest": changed})
    assert other["image"]["id"] != first


@pytest.mark.parametrize("server, message", [
    ({"flavor": "m1.huge"}, "there is no flavor 'm1.huge' in flavors (known: m1.big, m1.tiny)"),
    ({"image": "cirros"}, "there is no image 'cirros' in images (known: guest)"),
    ({"networks": [{"network": "public"}]}, "server.networks[0]: there is no network 'public'"),
    ({"networks": [{"network": "private", "fixed_ip": "10.90.0.5"}], "max_count": 2},
     "fixed_ip and mac cannot be used when max_count is more than 1"),
    ({"min_count": 3, "max_count": 2}, "server.min_count (3) is more than server.max_count (2)"),
    ({"key_name": "nobody"}, "there is no keypair 'nobody' in keypairs (known: ops)"),
    ({"scheduler_hints": {"group": "g9"}}, "there is no server group 'g9' in server_groups"),
    ({"scheduler_hints": {"sam_host": ["a"]}}, "unknown hint(s) sam_host"),
    ({"name": "web/1"}, "server.name 'web/1'"),
    ({"name": "w" * 62, "max_count": 10}, "with the -N suffix of a multiple create"),
    ({"flavour": "m1.tiny"}, "server: unknown key(s) flavour"),
])
def test_request_errors_name_the_key(server, message):
    with pytest.raises(VirtopsError) as exc:
        request(**server)
    assert message in exc.value.msg


def test_image_min_ram_is_checked_against_the_flavor_before_scheduling():
    images = {"big": dict(IMAGES["guest"], min_ram=256)}
    with pytest.raises(VirtopsError, match="flavor m1.tiny has 128 MB of RAM; image big needs "
                                           "at least 256"):
        br.boot_request({"name": "web", "flavor": "m1.tiny", "image": "big"}, FLAVORS, images)


def test_user_data_over_the_config_drive_limit_is_refused_before_scheduling():
    # 49149 bytes are 65532 characters of base64, the most under Nova's 65535; 49152 are 65536.
    assert request(user_data="x" * 49149)["name"] == "web"
    with pytest.raises(VirtopsError) as exc:
        request(user_data="x" * 49152)
    assert exc.value.msg == ("server.user_data is 49152 bytes; Nova's limit is 65535 characters "
                             "of base64 (about 48 KiB of raw data)")
    with pytest.raises(VirtopsError, match="server.user_data must be text or bytes, not list"):
        request(user_data=["#cloud-config"])


def test_several_networks_need_a_choice():
    with pytest.raises(VirtopsError, match="several networks"):
        br.boot_request({"name": "w", "flavor": "m1.tiny", "image": "guest"}, FLAVORS, IMAGES,
                        {"a": {"cidr": "10.1.0.0/24"}, "b": {"cidr": "10.2.0.0/24"}})
    req = br.boot_request({"name": "w", "flavor": "m1.tiny", "image": "guest",
                           "networks": "none"}, FLAVORS, IMAGES, NETWORKS)
    assert req["networks"] == []


def test_plan_names_a_multiple_create_and_leaves_existing_servers_alone():
    existing = {"uuid": str(uuid.UUID(int=99)), "name": "web-2", "vm_state": "active",
                "power_state": "running", "ips": ["10.90.0.7"]}
    plan = bp.boot_plan(request(max_count=3), [host("c1"), host("c2", instances=[existing])],
                        uuid_factory=uuids())
    states = [(i["name"], i["status"], i["host"]) for i in plan["instances"]]
    assert states == [("web-1", "unplaced", None), ("web-2", "exists", "c2"),
                      ("web-3", "unplaced", None)]
    assert plan["instances"][1]["uuid"] == existing["uuid"]
    (sched,) = bp.schedule_requests(plan)
    assert sched["instance_names"] == ["web-1", "web-3"]
    assert "ignore_hosts" not in sched


def test_an_interrupted_build_is_finished_on_its_host_and_an_error_stops_the_boot():
    building = {"uuid": str(uuid.UUID(int=5)), "name": "web", "vm_state": "building"}
    plan = bp.boot_plan(request(), [host("c1", instances=[building])], uuid_factory=uuids())
    plan = bp.boot_start_attempt(plan, 1)
    assert bp.host_work(plan, "c1")[0]["uuid"] == building["uuid"]
    assert bp.schedule_requests(plan) == []

    broken = dict(building, vm_state="error", fault={"message": "disk full"})
    with pytest.raises(VirtopsError, match=r"web exists on c1 in vm_state error \(disk full\); "
                                           r"delete it"):
        bp.boot_plan(request(), [host("c1", instances=[broken])])


def run_attempt(plan, hosts, attempt, outcome):
    """Place with the real scheduler, then apply ``outcome(host) -> report``."""
    plan = bp.boot_start_attempt(plan, attempt)
    for sched in bp.schedule_requests(plan):
        try:
            plan = bp.boot_placed(plan, [s.to_dict() for s in schedule(hosts, sched)], attempt)
        except VirtopsError as exc:
            plan = bp.boot_unschedulable(plan, exc.msg, names=sched["instance_names"])
    reports = {}
    for instance in plan["instances"]:
        if instance["status"] == "pending" and instance["attempt"] == attempt:
            reports.setdefault(instance["host"], {})[instance["uuid"]] = dict(
                outcome(instance["host"]), attempt=attempt)
    assert set(reports) == set(bp.attempt_hosts(plan))
    return bp.boot_collect(plan, reports)


def test_a_failed_build_is_placed_again_without_the_hosts_it_failed_on():
    hosts = [host("c1", memory_mb=16384), host("c2", memory_mb=8192), host("c3", memory_mb=4096)]
    plan = bp.boot_plan(request(), hosts, uuid_factory=uuids())

    def fail_on_c1(name):
        return {"ok": name != "c1", "step": "vif", "reason": "bridge missing"}

    plan = run_attempt(plan, hosts, 1, fail_on_c1)       # RAM weigher picks c1 first
    (web,) = plan["instances"]
    assert (web["status"], web["tried"]) == ("unplaced", ["c1"])
    assert bp.schedule_requests(plan)[0]["ignore_hosts"] == ["c1"]
    assert bp.needs_work(plan)
    plan = run_attempt(plan, hosts, 2, fail_on_c1)
    (web,) = plan["instances"]
    assert (web["status"], web["host"]) == ("active", "c2")
    summary = bp.boot_summary(plan)
    assert summary["lines"] == ["web: booted on c2 after 1 failed attempt(s)"]
    assert summary["servers"][0]["attempts"] == [{"host": "c1", "step": "vif",
                                                  "reason": "bridge missing"}]
    assert not bp.needs_work(plan)


def test_three_failures_put_the_instance_in_error_with_every_reason():
    hosts = [host("c1"), host("c2"), host("c3")]
    plan = bp.boot_plan(request(), hosts, uuid_factory=uuids())
    for attempt in (1, 2, 3):
        plan = run_attempt(plan, hosts, attempt,
                           lambda name: {"ok": False, "step": "domain", "reason": "no " + name})
    (web,) = plan["instances"]
    assert web["status"] == "error" and sorted(web["tried"]) == ["c1", "c2", "c3"]
    assert web["fault"].endswith("gave up after 3 attempts (max_attempts)")
    assert all("on %s failed at domain: no %s" % (h, h) in web["fault"] for h in ("c1", "c2", "c3"))
    summary = bp.boot_summary(plan)
    assert summary["failed"] == ["web"] and not bp.needs_work(plan)


def test_no_other_host_for_a_retry_is_an_error_naming_the_filter():
    hosts = [host("c1"), host("c2", memory_mb=600)]   # c2 has 88 MB free: too small
    plan = bp.boot_plan(request(), hosts, uuid_factory=uuids())
    plan = run_attempt(plan, hosts, 1, lambda name: {"ok": False, "step": "image",
                                                     "reason": "checksum mismatch"})
    plan = run_attempt(plan, hosts, 2, lambda name: {"ok": True})
    (web,) = plan["instances"]
    assert web["status"] == "error"
    assert web["fault"].startswith("attempt 1 on c1 failed at image: checksum mismatch; "
                                   "No valid host was found for web: 2 hosts; RetryFilter "
                                   "removed 1, RamFilter removed 1")


def test_a_host_that_does_not_report_failed_the_build():
    hosts = [host("c1"), host("c2")]
    plan = bp.boot_start_attempt(bp.boot_plan(request(), hosts, uuid_factory=uuids()), 1)
    plan = bp.boot_placed(plan, [s.to_dict() for s in schedule(hosts, bp.schedule_requests(plan)[0])], 1)
    plan = bp.boot_collect(plan, {})
    (web,) = plan["instances"]
    assert web["status"] == "unplaced" and "did not report" in web["failures"][0]["reason"]


def test_min_count_fallback_places_fewer_and_drops_the_rest():
    hosts = [host("c1", memory_mb=1000)]         # 488 MB free: three of 128 MB, not four
    plan = bp.boot_start_attempt(bp.boot_plan(request(min_count=2, max_count=4), hosts,
                                              uuid_factory=uuids()), 1)
    with pytest.raises(VirtopsError, match="No valid host was found for web-4"):
        schedule(hosts, bp.schedule_requests(plan)[0])
    assert bp.fallback_counts(plan) == [3, 2]
    fewer = schedule(hosts, bp.schedule_requests(plan, 3)[0])
    plan = bp.boot_placed(plan, [s.to_dict() for s in fewer], 1, drop_unplaced=True)
    assert [i["status"] for i in plan["instances"]] == ["pending"] * 3 + ["dropped"]


def test_ports_are_asked_once_for_the_instances_to_build():
    plan = bp.boot_start_attempt(bp.boot_plan(request(max_count=2), [host("c1")],
                                              uuid_factory=uuids()), 1)
    plan = bp.boot_placed(plan, [{"instance_name": "web-1", "host": "c1"},
                                 {"instance_name": "web-2", "host": "c1"}], 1)
    asked = bp.ports_request(plan)
    assert [a["name"] for a in asked] == ["web-1", "web-2"]
    assert asked[0]["networks"] == [{"network": "private"}]
    plan = bp.boot_ported(plan, [{"name": "web-1", "ips": ["10.90.0.1"], "network_info": [{"id": "p"}]},
                                 {"name": "web-2", "ips": ["10.90.0.2"], "network_info": [{"id": "q"}]}])
    assert bp.ports_request(plan) == []
    assert [i["ips"] for i in plan["instances"]] == [["10.90.0.1"], ["10.90.0.2"]]


KERNEL_IMAGES = dict(
    IMAGES,
    vmlinuz={"url": "file:///srv/vmlinuz", "disk_format": "aki", "checksum": "sha256:" + "c" * 64,
             "id": "kernel-6.1"},
    initrd={"url": "file:///srv/initrd.gz", "disk_format": "ari", "allow_unverified": True},
    ami={"url": "file:///srv/root.qcow2", "disk_format": "qcow2", "checksum": "sha256:" + "d" * 64,
         "properties": {"kernel_id": "kernel-6.1", "ramdisk_id": "initrd"}})


def kernel_request(image="ami", images=None):
    return br.boot_request({"name": "web", "flavor": "m1.tiny", "image": image}, FLAVORS,
                           images or KERNEL_IMAGES, NETWORKS, {}, {})


def test_kernel_and_ramdisk_are_found_by_id_or_name_for_vm_image():
    req = kernel_request()
    assert req["kernel_source"] == {"url": "file:///srv/vmlinuz", "disk_format": "aki",
                                    "checksum": "sha256:" + "c" * 64, "id": "kernel-6.1"}
    assert req["ramdisk_source"]["url"] == "file:///srv/initrd.gz"
    assert req["ramdisk_source"]["disk_format"] == "ari" and req["ramdisk_source"]["id"]
    plain = request()
    assert plain["kernel_source"] is None and plain["ramdisk_source"] is None


@pytest.mark.parametrize("images, image, message", [
    (dict(KERNEL_IMAGES, ami=dict(KERNEL_IMAGES["ami"], properties={"kernel_id": "nope"})),
     "ami", "images.ami.properties.kernel_id: there is no image 'nope' (by name or id)"),
    (dict(KERNEL_IMAGES, ami=dict(KERNEL_IMAGES["ami"], properties={"kernel_id": "guest"})),
     "ami", "names image guest, whose disk_format is qcow2, not aki"),
    (dict(KERNEL_IMAGES, ami=dict(KERNEL_IMAGES["ami"], properties={"ramdisk_id": "initrd"})),
     "ami", "ramdisk_id needs kernel_id"),
    (KERNEL_IMAGES, "vmlinuz", "vmlinuz is a aki image (a kernel or ramdisk)"),
])
def test_kernel_references_that_cannot_work_are_refused(images, image, message):
    with pytest.raises(VirtopsError) as caught:
        kernel_request(image, images)
    assert message in caught.value.msg


@pytest.mark.parametrize("entry, message", [
    ({"url": "http://images/x.qcow2", "disk_format": "qcow2"},
     "images.bare http://images/x.qcow2 has no checksum, so a truncated or altered download "
     "could not be told from the real one: add checksum: sha256:<hex> to its catalog entry "
     "(sha256sum of the file), or allow_unverified: true to use it unverified"),
    ({"url": "http://images/x.qcow2", "disk_format": "qcow2", "allow_unverified": "yes"},
     "images.bare: allow_unverified must be true or false, not 'yes'"),
    ({"url": "http://images/x.qcow2", "disk_format": "qcow2", "checksum": "sha256:" + "a" * 64,
      "min_ram": -1}, "images.bare: min_ram cannot be negative, got -1"),
    ({"url": "http://images/x.qcow2", "disk_format": "qcow2", "checksum": "sha256:" + "a" * 64,
      "min_disk": "lots"}, "images.bare: min_disk must be an integer, got 'lots'"),
    ({"url": "http://images/x.qcow2", "disk_format": "qcow2", "checksum": "sha256:" + "a" * 64,
      "min_disk": 10 ** 12}, "image bare needs at least %d GB (min_disk)" % 10 ** 12),
])
def test_an_image_entry_that_cannot_be_trusted_is_refused_before_scheduling(entry, message):
    with pytest.raises(VirtopsError) as caught:
        br.boot_request({"name": "web", "flavor": "m1.tiny", "image": "bare"}, FLAVORS,
                        {"bare": entry}, NETWORKS, {}, {})
    assert message in caught.value.msg


def test_an_unverified_image_is_booted_only_when_its_entry_allows_it_and_vm_image_is_told():
    entry = {"url": "http://images/x.qcow2", "disk_format": "qcow2", "allow_unverified": True}
    req = br.boot_request({"name": "web", "flavor": "m1.tiny", "image": "bare"}, FLAVORS,
                          {"bare": entry}, NETWORKS, {}, {})
    assert req["image_source"]["allow_unverified"] is True
    assert "checksum" not in req["image_source"]
    unverified_kernel = dict(KERNEL_IMAGES, vmlinuz=dict(KERNEL_IMAGES["vmlinuz"]))
    del unverified_kernel["vmlinuz"]["checksum"]
    with pytest.raises(VirtopsError, match="images.vmlinuz file:///srv/vmlinuz has no checksum"):
        kernel_request("ami", unverified_kernel)
    assert kernel_request()["ramdisk_source"]["allow_unverified"] is True


NO_VALID_HOST = ("No valid host was found for web: 3 hosts; RamFilter removed 2, "
                 "DiskFilter removed 1")


@pytest.mark.parametrize("failed_msg", [
    NO_VALID_HOST,                                                    # ansible-core 2.17, 2.18
    "Task failed: Finalization of task args for 'ansible.builtin.set_fact' failed: Error while "
    "resolving value for 'server_boot_plan': The lookup plugin 'virtops.compute.scheduler' "
    "failed: " + NO_VALID_HOST,                                       # ansible-core 2.19
])
def test_the_fault_of_an_unschedulable_instance_is_the_schedulers_message_on_every_core(failed_msg):
    plan = bp.boot_plan(request(), [host("c1")], uuid_factory=uuids())
    plan = bp.boot_unschedulable(bp.boot_start_attempt(plan, 1), failed_msg)
    (instance,) = plan["instances"]
    assert instance["status"] == "error"
    assert instance["fault"] == NO_VALID_HOST


def test_a_message_that_names_no_failed_plugin_is_kept_whole():
    message = "the ports lookup failed: the filter plugin is not mentioned here"
    assert bp.plugin_failure(message) == message
    assert bp.plugin_failure("The filter plugin 'virtops.compute.boot_request' failed: "
                             "flavor m9 is not in the flavors catalog") == \
        "flavor m9 is not in the flavors catalog"
