# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/boot.yml end to end on a lab of three compute hosts (prefix vb, 10.77.5.0/24).

The tests run in file order on one lab, taken down at the end even on failure:

* one server boots for real and its console shows the uuid it read from its config drive;
  booting it again changes nothing; servers.yml lists it, with its VNC console on the address
  its host's virtops_vnc_listen names and the port libvirt gave it, and prints its history
  (building -> active) with -e history=NAME, and refuses an unknown name;
* two servers placed on two hosts (anti-affinity) are built at the same time, their consoles
  on the default 127.0.0.1, then deleted;
* placement proofs run in check mode (scheduler, ports and the claim check on the chosen
  hosts, nothing built): a multiple create of 4 spreads with the RAM weigher and stacks with
  a negative multiplier; an anti-affinity group puts 3 members on 3 hosts and refuses a 4th;
  an availability zone and a capability steer placement;
* a server too big for any host fails with the per-filter explanation;
* a host whose build fails at its last step (the guest never shows the console line that host
  waits for) is cleaned and the server boots on an alternate (run under ansible-runner, as an
  AWX job); when every host fails (their instances paths read-only, so each claim fails), the
  server is in error with each attempt's reason and nothing is left anywhere;
* virtops_max_attempts alone sets how often a failing server is built: 1 never retries, 5 tries
  every host and ends in No valid host (the run fails), more than 5 stops before any host;
* ten concurrent claims onto a host with room for five: exactly five succeed;
* a cold migration whose first pick refuses the claim (the server's directory there is on a
  read-only filesystem) claims on the alternate and moves there;
* an AMI-style image (kernel_id, ramdisk_id naming aki/ari images of the catalog) boots by
  direct kernel boot and cold-migrates with its kernel and ramdisk, its console moving to the
  destination's own virtops_vnc_listen;
* a host whose libvirtd is killed (by its pid) under a build: the server boots elsewhere, the
  run fails naming the host and what its failed cleanup left (marked error/deleting, shown so by
  servers.yml), and the next boot removes it;
* drift: a destroyed domain is reported and its record synced to stopped, started only with
  server_boot_drift=start; an undefined one puts the server in error.

At most three test guests run at once (TCG, 128 MiB each).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures.guest import ensure_guest
from tests.integration.boot_fleet import CONSOLE_META, INSTANCES, Fleet, ansible
from tests.lab.handle import LabHandle

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

HOSTS = ("compute1", "compute2", "compute3")
WEB = {"name": "web1", "flavor": "m1.nano", "image": "guest", "networks": [{"network": "private"}],
       "key_name": "ops", "config_drive": True, "metadata": {"role": "web"},
       "admin_pass": "Sesame-42-open", "user_data": "#cloud-config\nhostname: web1\n"}
RAM_ONLY = {"disk_weight_multiplier": 0.0, "cpu_weight_multiplier": 0.0}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from tests.fixtures.guest import GuestBuildError
    try:
        ensure_guest()
    except GuestBuildError as exc:
        pytest.skip("the test guest cannot be built here: %s" % exc)
    tmp = tmp_path_factory.mktemp("boot")
    lab = LabHandle(tmp / "lab", prefix="vb", subnet="10.77.5")
    lab.down()
    try:
        lab.up(3)
        yield Fleet(lab, tmp)
    finally:
        proc = lab.down()
        assert proc.returncode == 0, proc.stderr


def placements(run) -> dict:
    return {s["name"]: s["host"] for s in run.boot["servers"]}


def vnc_on_lab_addresses(fleet) -> dict:
    """Every lab host's virtops_vnc_listen set to its own lab address, as host_vars."""
    return {name: {"virtops_vnc_listen": host.address} for name, host in fleet.lab.hosts.items()}


def test_boot_one_server_that_reads_its_config_drive(fleet):
    fleet.set_host_vars(**vnc_on_lab_addresses(fleet))
    try:
        _boot_one_server_that_reads_its_config_drive(fleet)
    finally:
        fleet.set_host_vars()


def _boot_one_server_that_reads_its_config_drive(fleet):
    run = fleet.boot(WEB, server_boot_wait_for_console=CONSOLE_META)
    assert run.rc == 0, run.failures()
    (server,) = run.boot["servers"]
    assert server["result"] == "booted" and server["host"] in HOSTS
    host, inst_uuid = server["host"], server["uuid"]
    # The guest printed the uuid and hostname it read from the config drive.
    assert server["console"] == "VIRTOPS-META uuid=%s hostname=web1" % inst_uuid
    assert fleet.lab.virsh(host, "domstate", "web1").stdout.strip() == "running"
    record = fleet.record(host, inst_uuid)
    assert (record["vm_state"], record["task_state"], record["host"]) == ("active", None, host)
    assert record["ips"] == server["ips"] and record["ips"][0].startswith("10.90.0.")
    assert "VIRTOPS-NET eth0 %s %s/24" % (record["network_info"][0]["address"],
                                          record["ips"][0]) in fleet.console(host, inst_uuid)
    # The admin password reached the guest's config drive, never the output.
    assert WEB["admin_pass"] not in run.output + run.stderr
    for other in HOSTS:
        if other != host:
            assert fleet.instance_dirs(other) == []

    again = fleet.boot(WEB, server_boot_wait_for_console=CONSOLE_META)
    assert again.rc == 0, again.failures()
    assert again.changed == {}, again.changed_tasks()
    assert again.boot["servers"][0]["result"] == "unchanged"
    assert again.boot["servers"][0]["uuid"] == inst_uuid

    # The console listens on the host's own lab address (its virtops_vnc_listen); libvirt
    # gave it a port, which servers.yml reports.
    listen, port = fleet.vnc(host, "web1")
    assert listen == fleet.lab.hosts[host].address and port >= 5900
    listed = [s for s in fleet.servers() if s["name"] == "web1"]
    assert listed == [{"name": "web1", "uuid": inst_uuid, "host": host, "vm_state": "active",
                       "task_state": None, "power_state": "running", "flavor": "m1.nano",
                       "image": "guest", "ips": record["ips"], "networks": ["private"],
                       "server_group": None, "fault": None,
                       "console": "vnc://%s:%d" % (listen, port)}]
    assert fleet.lab.run(host, ["ss", "-Htln", "sport = :%d" % port]).stdout.split()[3] == \
        "%s:%d" % (listen, port)

    # The history, oldest first: the claim, the spawn, active.
    history = fleet.playbook("servers.yml", {"history": "web1"})
    assert history.rc == 0, history.failures()
    lines = history.fact("Read the history of web1", "virtops_server_history")
    assert lines[0] == "web1 (%s) on %s" % (inst_uuid, host)
    assert [line.split()[1:] for line in lines[1:]] == [
        [host, "building", "scheduling", "claimed", "on", host], [host, "building", "spawning"],
        [host, "active", "-"]]
    assert [line.split()[0] for line in lines[1:]] == [e["at"] for e in record["history"]]
    unknown = fleet.playbook("servers.yml", {"history": "no-such-server"})
    assert unknown.rc != 0
    assert "No server with a name or ID of 'no-such-server' exists" in unknown.failures()


def test_instances_on_different_hosts_build_at_the_same_time(fleet):
    server = {"name": "par", "flavor": "m1.nano", "image": "guest", "max_count": 2,
              "networks": [{"network": "private"}], "scheduler_hints": {"group": "spread"}}
    run = fleet.boot(server)
    assert run.rc == 0, run.failures()
    built = run.boot["servers"]
    assert [s["result"] for s in built] == ["booted", "booted"]
    assert len({s["host"] for s in built}) == 2
    spans = []
    for item in built:
        record = fleet.record(item["host"], item["uuid"])
        assert record["server_group"] == "spread"
        marks = {(h["vm_state"], h["task_state"]): h["at"] for h in record["history"]}
        spans.append((datetime.fromisoformat(marks[("building", "spawning")]),
                      datetime.fromisoformat(marks[("active", None)])))
    # one play over the compute group: both hosts spawned at once, not one after the other
    assert max(start for start, _end in spans) < min(end for _start, end in spans), spans
    # No virtops_vnc_listen: the consoles stay on the loopback (Nova's server_listen default).
    assert {fleet.vnc(item["host"], item["name"])[0] for item in built} == {"127.0.0.1"}

    gone = fleet.delete(server)
    assert gone.rc == 0, gone.failures()
    assert all("par-" not in " ".join(fleet.lab.domains(h)) for h in HOSTS)


def test_multiple_create_spreads_by_ram_and_stacks_with_a_negative_multiplier(fleet):
    spread = fleet.boot({"name": "sp", "flavor": "m1.nano", "image": "guest", "max_count": 4},
                        "--check", virtops_scheduler=RAM_ONLY)
    assert spread.rc == 0, spread.failures()
    counts = collections.Counter(placements(spread).values())
    assert sorted(counts.values()) == [1, 1, 2] and set(counts) == set(HOSTS)
    # each pick consumed RAM before the next: the host that already runs web1 gets one
    assert {s["result"] for s in spread.boot["servers"]} == {"placed (check mode)"}
    # the claims were checked on the chosen hosts, and nothing was written
    claimed = {result["instance"]["name"]: host for play in spread.plays
               for task in play["tasks"] for host, result in task["hosts"].items()
               if result.get("msg") == "claimed" and isinstance(result.get("instance"), dict)}
    assert claimed == placements(spread)
    assert [s["name"] for s in fleet.servers()] == ["web1"]

    stack = fleet.boot({"name": "st", "flavor": "m1.nano", "image": "guest", "max_count": 4},
                       "--check", virtops_scheduler=dict(RAM_ONLY, ram_weight_multiplier=-1.0))
    assert stack.rc == 0, stack.failures()
    web1_host = [s["host"] for s in fleet.servers() if s["name"] == "web1"][0]
    # stacking fills the fullest host that fits: the one running web1
    assert set(placements(stack).values()) == {web1_host}


def test_anti_affinity_puts_members_on_different_hosts_and_refuses_when_it_cannot(fleet):
    group = {"name": "aa", "flavor": "m1.nano", "image": "guest", "max_count": 3,
             "scheduler_hints": {"group": "spread"}}
    run = fleet.boot(group, "--check")
    assert run.rc == 0, run.failures()
    assert sorted(placements(run).values()) == sorted(HOSTS)

    refused = fleet.boot(dict(group, max_count=4, min_count=4), "--check")
    assert refused.rc != 0
    assert refused.boot["failed"] == ["aa-1", "aa-2", "aa-3", "aa-4"]
    fault = refused.boot["servers"][3]["fault"]
    assert fault.startswith("No valid host was found for aa-4: 3 hosts; "
                            "ServerGroupAntiAffinityFilter removed 3"), fault

    # min_count lower than max_count: as many as fit, the rest are not created
    fewer = fleet.boot(dict(group, max_count=4, min_count=2), "--check")
    assert fewer.rc == 0, fewer.failures()
    results = {s["name"]: s["result"] for s in fewer.boot["servers"]}
    assert results == {"aa-1": "placed (check mode)", "aa-2": "placed (check mode)",
                       "aa-3": "placed (check mode)", "aa-4": "not created"}


def test_availability_zone_and_capability_steer_placement(fleet):
    fleet.set_host_vars(compute3={"availability_zone": "az2"},
                        compute2={"virtops_host_capabilities": {"storage": "ssd"}})
    try:
        in_az2 = fleet.boot({"name": "z2", "flavor": "m1.nano", "image": "guest",
                             "availability_zone": "az2", "max_count": 2}, "--check")
        assert in_az2.rc == 0, in_az2.failures()
        assert set(placements(in_az2).values()) == {"compute3"}

        ssd = fleet.boot({"name": "ssd", "flavor": "m1.ssd", "image": "guest", "max_count": 2},
                         "--check")
        assert ssd.rc == 0, ssd.failures()
        assert set(placements(ssd).values()) == {"compute2"}

        neither = fleet.boot({"name": "none1", "flavor": "m1.ssd", "image": "guest",
                              "availability_zone": "az2"}, "--check")
        assert neither.rc != 0
        assert neither.boot["servers"][0]["fault"] == (
            "No valid host was found for none1: 3 hosts; AvailabilityZoneFilter removed 2, "
            "ComputeCapabilitiesFilter removed 1")
    finally:
        fleet.set_host_vars()


def test_too_big_for_any_host_fails_naming_each_filter(fleet):
    run = fleet.boot({"name": "big1", "flavor": "m1.huge", "image": "guest"})
    assert run.rc != 0
    assert run.boot["failed"] == ["big1"]
    fault = run.boot["servers"][0]["fault"]
    assert fault == "No valid host was found for big1: 3 hosts; RamFilter removed 3", fault
    message = run.task("Fail for the servers that could not be built")["localhost"]["msg"]
    assert "big1: No valid host was found for big1: 3 hosts; RamFilter removed 3" in message
    assert sum(len(fleet.instance_dirs(h)) for h in HOSTS) == 1      # web1 only
    again = fleet.boot({"name": "big1", "flavor": "m1.huge", "image": "guest"})
    assert again.rc != 0 and again.changed == {}


def test_a_failing_host_is_cleaned_and_the_server_boots_on_an_alternate(fleet):
    """Run as AWX runs a job template: ansible-runner, extra vars in env/extravars."""
    pytest.importorskip("ansible_runner")
    # compute1 has the most free RAM (smallest reservation), so it is tried first, and fails
    # after its disks, VIFs and domain XML exist and the domain was started: it waits for a
    # console line the guest never prints.
    never = "VIRTOPS-NEVER-PRINTED"
    fleet.set_host_vars(compute1={"reserved_host_memory_mb": 64,
                                  "server_boot_wait_for_console": never,
                                  "server_boot_console_timeout": 1},
                        compute2={"reserved_host_memory_mb": 1024},
                        compute3={"reserved_host_memory_mb": 2048})
    busy_hosts = {s["host"] for s in fleet.servers()}
    bases_before = fleet.bases("compute1")
    try:
        server = {"name": "rs1", "flavor": "m1.nano", "image": "guest",
                  "networks": [{"network": "private"}], "config_drive": True}
        extravars = {"server": server, "virtops_scheduler": RAM_ONLY}
        run = fleet.runner("playbooks/boot.yml", extravars, "boot-rs1")
        assert run.rc == 0, run.output[-3000:]
        (result,) = run.boot["servers"]
        assert result["result"] == "booted" and result["host"] != "compute1"
        assert result["attempts"] == [{
            "host": "compute1", "step": "domain",
            "reason": "domain rs1 runs, but %r did not appear in %s/%s/console.log within 1.0s; "
                      "the guest is left running" % (never, INSTANCES, result["uuid"])}]
        assert run.stats["compute1"]["rescued"] == 1
        # nothing of rs1 is left on compute1: domain, directory (record, disks), tap
        assert "rs1" not in fleet.lab.domains("compute1")
        assert result["uuid"] not in fleet.instance_dirs("compute1")
        if "compute1" not in busy_hosts:
            assert fleet.taps("compute1") == []
        # the cached base stays: other instances share it
        assert fleet.bases("compute1") and set(bases_before) <= set(fleet.bases("compute1"))
        record = fleet.record(result["host"], result["uuid"])
        assert record["vm_state"] == "active"

        again = fleet.boot(server, virtops_scheduler=RAM_ONLY)
        assert again.rc == 0, again.failures()
        assert again.changed == {}, again.changed_tasks()
    finally:
        fleet.set_host_vars()


@contextlib.contextmanager
def _read_only_instances(fleet, hosts):
    """The instances path of ``hosts`` made read-only (a bind mount of itself, remounted ro in
    the host's mount namespace), as a failing disk would: the host facts still read what the
    host holds, and every claim there fails when it writes, at the build's first step."""
    mounted = []
    try:
        for host in hosts:
            fleet.lab.run(host, ["mount", "--bind", INSTANCES, INSTANCES])
            mounted.append(host)
            fleet.lab.run(host, ["mount", "-o", "remount,bind,ro", INSTANCES])
        yield
    finally:
        for host in mounted:
            fleet.lab.run(host, ["umount", INSTANCES], check=False)


def test_every_attempt_failing_ends_in_error_and_leaves_nothing(fleet):
    dirs_before = {h: fleet.instance_dirs(h) for h in HOSTS}
    with _read_only_instances(fleet, HOSTS):
        run = fleet.boot({"name": "doomed", "flavor": "m1.nano", "image": "guest"})
    assert run.rc != 0
    (server,) = run.boot["servers"]
    assert server["result"] == "failed" and server["host"] is None
    assert sorted(a["host"] for a in server["attempts"]) == sorted(HOSTS)
    assert {a["step"] for a in server["attempts"]} == {"claim"}
    assert all("Read-only file system" in a["reason"] for a in server["attempts"])
    assert run.boot["leftovers"] == []
    assert server["fault"].endswith("gave up after 3 attempts (max_attempts)")
    # every claim was released: the hosts hold what they held before
    assert {h: fleet.instance_dirs(h) for h in HOSTS} == dirs_before
    assert "doomed" not in [s["name"] for s in fleet.servers()]


def test_max_attempts_alone_sets_how_often_a_failing_server_is_tried(fleet):
    """virtops_max_attempts is the one retry count: 1 builds once and gives up; 5, on a fleet
    of 3 hosts that all fail, tries each host once and then ends in No valid host, failing
    the run (before issue 13 the fixed 3 attempts of boot.yml left it unplaced, rc 0); above
    the ceiling the run stops before any host is touched."""
    dirs_before = {h: fleet.instance_dirs(h) for h in HOSTS}
    doomed = {"name": "doomed", "flavor": "m1.nano", "image": "guest"}
    with _read_only_instances(fleet, HOSTS):
        once = fleet.boot(doomed, virtops_max_attempts=1)
        many = fleet.boot(doomed, virtops_max_attempts=5)
    assert once.rc != 0
    (server,) = once.boot["servers"]
    assert (server["result"], server["host"]) == ("failed", None)
    assert len(server["attempts"]) == 1 and server["attempts"][0]["step"] == "claim"
    assert "Read-only file system" in server["attempts"][0]["reason"]
    assert server["fault"].endswith("gave up after 1 attempt (max_attempts)"), server["fault"]
    assert once.boot["failed"] == ["doomed"]

    assert many.rc != 0, many.boot["lines"]
    (server,) = many.boot["servers"]
    assert (server["result"], server["host"]) == ("failed", None)
    assert sorted(a["host"] for a in server["attempts"]) == sorted(HOSTS)
    assert {a["step"] for a in server["attempts"]} == {"claim"}
    assert server["fault"].endswith(
        "No valid host was found for doomed: 3 hosts; RetryFilter removed 3"), server["fault"]
    message = many.task("Fail for the servers that could not be built")["localhost"]["msg"]
    assert "doomed: attempt 1 on " in message
    assert {h: fleet.instance_dirs(h) for h in HOSTS} == dirs_before

    too_many = fleet.boot(doomed, virtops_max_attempts=6)
    assert too_many.rc != 0
    assert "virtops_max_attempts" in too_many.failures()
    # No host was touched: the one result a compute host has is the check of its settings
    # (an action on the controller, no connection), boot.yml's first play on every host.
    for host in HOSTS:
        assert [name.split(" - ")[0] for name in too_many.tasks_on(host)] == [
            "virtops.compute.virtops : Validating arguments against arg spec 'settings'"], host
    assert "doomed" not in [s["name"] for s in fleet.servers()]


def test_concurrent_claims_never_oversubscribe_a_host(fleet):
    """Ten vm_instance claims at once onto a host with room for exactly five."""
    host = "compute3"
    facts = ansible(fleet, host, "virtops.compute.vm_host_facts", {"hostname": host})
    used = json.loads(facts.stdout.split("=>", 1)[1])["host"]["memory_mb_used"]
    uuids = [str(uuid.uuid4()) for _index in range(10)]
    flavor = {"name": "c100", "vcpus": 1, "ram_mb": 100, "root_gb": 0}

    def claim(index):
        return ansible(fleet, host, "virtops.compute.vm_instance", {
            "uuid": uuids[index], "name": "claim%d" % index, "flavor": flavor,
            "limits": {"memory_mb": used + 5 * 100}})

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(claim, range(10)))
        won = [r for r in results if r.returncode == 0]
        lost = [r for r in results if r.returncode != 0]
        assert len(won) == 5, [r.stdout[-300:] for r in results]
        assert all("Insufficient compute resources: Free memory" in r.stdout for r in lost), \
            [r.stdout[-300:] for r in lost]
        claimed = [u for u in uuids if u in fleet.instance_dirs(host)]
        assert len(claimed) == 5
    finally:
        fleet.lab.run(host, ["rm", "-rf"] + ["%s/%s" % (INSTANCES, u) for u in uuids])


def test_cold_migration_claims_on_an_alternate_when_the_first_pick_refuses(fleet):
    # The RAM weigher sends the boot to compute3 (smallest reservation) and, with compute3
    # the source, the migration to compute1 first, then compute2.
    fleet.set_host_vars(compute3={"reserved_host_memory_mb": 64})
    server = {"name": "mv1", "flavor": "m1.nano", "image": "guest",
              "networks": [{"network": "private"}], "config_drive": True}
    booted = fleet.boot(server, virtops_scheduler=RAM_ONLY)
    blocked = None
    try:
        assert booted.rc == 0, booted.failures()
        (result,) = booted.boot["servers"]
        assert result["host"] == "compute3"
        server_uuid = result["uuid"]
        # compute1's directory for the server sits on a read-only filesystem (a failing disk):
        # the scheduler cannot see that; the claim there fails when it writes the record.
        blocked = "%s/%s" % (INSTANCES, server_uuid)
        fleet.lab.run("compute1", ["mkdir", "-p", blocked])
        fleet.lab.run("compute1", ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "virtops-test", blocked])
        fleet.set_host_vars(compute1={"reserved_host_memory_mb": 64},
                            compute2={"reserved_host_memory_mb": 1024},
                            compute3={"reserved_host_memory_mb": 2048})
        moved = fleet.playbook("cold_migrate.yml", {
            "server": "mv1", "virtops_scheduler": RAM_ONLY, "server_migrate_auto_confirm": True,
            "virtops_shutdown_timeout": 20, "virtops_shutdown_retry_interval": 5})
        assert moved.rc == 0, moved.failures()
        report = next(iter(moved.task("Report").values()))["msg"]
        assert "compute3 -> compute2" in report
        assert "Claims refused first: compute1: " in report and "Read-only file system" in report
        assert "mv1" in fleet.lab.domains("compute2")
        assert "mv1" not in fleet.lab.domains("compute3")
        assert fleet.record("compute2", server_uuid)["vm_state"] == "active"
        assert server_uuid not in fleet.instance_dirs("compute3")
        # nothing of mv1 was written on the host that refused
        assert fleet.lab.run("compute1", ["ls", "-A", blocked]).stdout.strip() == ""
    finally:
        if blocked:
            fleet.lab.run("compute1", ["umount", blocked], check=False)
            fleet.lab.run("compute1", ["rmdir", blocked], check=False)
        fleet.set_host_vars()
        fleet.delete({"name": "mv1"})
    assert "mv1" not in [s["name"] for s in fleet.servers()]


def test_an_ami_style_image_boots_by_direct_kernel_boot_and_migrates_with_its_kernel(fleet):
    server = {"name": "kb1", "flavor": "m1.nano", "image": "guest-kernel",
              "networks": [{"network": "private"}], "config_drive": True}
    fleet.set_host_vars(**vnc_on_lab_addresses(fleet))
    try:
        run = fleet.boot(server, server_boot_wait_for_console=CONSOLE_META)
        assert run.rc == 0, run.failures()
        (booted,) = run.boot["servers"]
        host, inst_uuid = booted["host"], booted["uuid"]
        assert booted["console"] == "VIRTOPS-META uuid=%s hostname=kb1" % inst_uuid
        inst_dir = "%s/%s" % (INSTANCES, inst_uuid)
        domain = fleet.lab.virsh(host, "dumpxml", "kb1").stdout
        assert "<kernel>%s/kernel</kernel>" % inst_dir in domain
        assert "<initrd>%s/ramdisk</initrd>" % inst_dir in domain
        assert "<cmdline>console=ttyS0</cmdline>" in domain
        assert fleet.vnc(host, "kb1")[0] == fleet.lab.hosts[host].address
        sums = fleet.lab.run(host, ["sha256sum", inst_dir + "/kernel", inst_dir + "/ramdisk"]).stdout
        guest = ensure_guest()
        assert sums.split()[0] == hashlib.sha256(Path(guest.kernel).read_bytes()).hexdigest()
        assert sums.split()[2] == hashlib.sha256(Path(guest.initrd).read_bytes()).hexdigest()
        again = fleet.boot(server, server_boot_wait_for_console=CONSOLE_META)
        assert again.rc == 0 and again.changed == {}, again.changed_tasks()

        # Cold migration carries the kernel and ramdisk with the disks.
        moved = fleet.playbook("cold_migrate.yml", {
            "server": "kb1", "server_migrate_auto_confirm": True,
            "server_migrate_wait_for_console": "VIRTOPS-META uuid=%s" % inst_uuid,
            "virtops_shutdown_timeout": 20, "virtops_shutdown_retry_interval": 5})
        assert moved.rc == 0, moved.failures()
        (listed,) = [s for s in fleet.servers() if s["name"] == "kb1"]
        dest = listed["host"]
        assert dest != host and listed["vm_state"] == "active"
        assert fleet.lab.run(dest, ["sha256sum", inst_dir + "/kernel"]).stdout.split()[0] == \
            sums.split()[0]
        assert fleet.lab.virsh(dest, "domstate", "kb1").stdout.strip() == "running"
        # The destination wrote the domain with its own console address.
        assert fleet.vnc(dest, "kb1")[0] == fleet.lab.hosts[dest].address
    finally:
        fleet.set_host_vars()
        fleet.delete({"name": "kb1"})
    assert "kb1" not in [s["name"] for s in fleet.servers()]


def _host_instances(fleet, host: str) -> Path:
    """The host's instances path as this machine sees it (the lab bind-mounts it from here)."""
    return Path(fleet.lab.state()["hosts"][host]["dir"]) / "root" / "var-lib-virtops" / "instances"


def _libvirtd_pid(fleet, host: str) -> int:
    pid = int((Path(fleet.lab.state()["hosts"][host]["dir"]) / "libvirtd.pid").read_text())
    assert os.readlink("/proc/%d/exe" % pid) == "/usr/sbin/libvirtd"
    return pid


def _kill_libvirtd_when_the_xml_appears(fleet, host: str, stop: threading.Event) -> dict:
    """Kill ``host``'s libvirtd (by its pid) as soon as a build there wrote libvirt.xml, and
    start it again once the failed cleanup marked the record (or after 120 s)."""
    seen = {}
    base = _host_instances(fleet, host)
    before = {p.name for p in base.iterdir()} if base.is_dir() else set()
    while not stop.is_set():
        fresh = [p for p in base.glob("*/libvirt.xml") if p.parent.name not in before]
        if fresh:
            seen["uuid"] = fresh[0].parent.name
            seen["pid"] = _libvirtd_pid(fleet, host)
            os.kill(seen["pid"], signal.SIGKILL)
            break
        time.sleep(0.05)
    else:
        return seen
    record = base / seen["uuid"] / "instance.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stop.is_set():
        try:
            if json.loads(record.read_text()).get("task_state") == "deleting":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    pidfile = Path(fleet.lab.state()["hosts"][host]["dir"]) / "libvirtd.pid"
    fleet.lab.run(host, ["/usr/sbin/libvirtd", "-d", "-p", str(pidfile)])
    for _attempt in range(100):
        if fleet.lab.virsh(host, "version", check=False).returncode == 0:
            break
        time.sleep(0.2)
    seen["restarted"] = True
    return seen


def test_a_host_fault_during_a_build_leaves_a_reported_leftover_that_the_next_boot_removes(fleet):
    # compute1 has the most free RAM, so it is tried first; its libvirtd dies under the build,
    # so the cleanup there fails too, and the server is built on compute2.
    fleet.set_host_vars(compute1={"reserved_host_memory_mb": 64},
                        compute2={"reserved_host_memory_mb": 1024},
                        compute3={"reserved_host_memory_mb": 2048})
    busy_hosts = {s["host"] for s in fleet.servers()}
    server = {"name": "lf1", "flavor": "m1.nano", "image": "guest",
              "networks": [{"network": "private"}], "config_drive": True}
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            fault = pool.submit(_kill_libvirtd_when_the_xml_appears, fleet, "compute1", stop)
            try:
                run = fleet.boot(server, virtops_scheduler=RAM_ONLY)
            finally:
                stop.set()
            seen = fault.result(timeout=200)
        assert seen.get("restarted"), seen
        leftover_uuid = seen["uuid"]
        assert run.rc != 0, run.failures()
        (result,) = run.boot["servers"]
        assert result["result"] == "booted" and result["host"] not in (None, "compute1")
        assert result["uuid"] == leftover_uuid
        assert result["attempts"][0]["host"] == "compute1"
        (left,) = run.boot["leftovers"]
        assert (left["host"], left["uuid"], left["status"]) == ("compute1", leftover_uuid, "remains")
        remains = ", ".join(left["remains"])
        assert "instance.json" in remains and "libvirt.xml" in remains and "claim" in remains
        assert "marked vm_state error, task_state deleting" in remains
        failed = run.task("Fail for what failed builds left behind")["localhost"]
        assert failed["failed"] and "left things behind on compute1" in failed["msg"]
        # the ghost is marked on compute1, not a second active server
        record = fleet.record("compute1", leftover_uuid)
        assert (record["vm_state"], record["task_state"]) == ("error", "deleting")
        assert "failed at domain" in record["fault"]["message"]
        listing = fleet.playbook("servers.yml")
        assert listing.rc == 0, listing.failures()
        rows = [r for r in listing.fact("Collect the servers of every host", "virtops_servers")
                if r["name"] == "lf1"]
        assert sorted((r["host"], r["vm_state"], r["task_state"]) for r in rows) == sorted(
            [("compute1", "error", "deleting"), (result["host"], "active", None)])
        notes = listing.fact("Find what needs attention", "virtops_server_notes")
        assert any(n.startswith("lf1 on compute1 (%s): LEFTOVER" % leftover_uuid) for n in notes)

        again = fleet.boot(server, virtops_scheduler=RAM_ONLY)
        assert again.rc == 0, again.failures()
        (second,) = again.boot["servers"]
        assert (second["result"], second["host"]) == ("unchanged", result["host"])
        assert again.boot["cleaned"] == ["lf1 on compute1"] and again.boot["leftovers"] == []
        assert "compute1" in again.changed
        assert leftover_uuid not in fleet.instance_dirs("compute1")
        assert "lf1" not in fleet.lab.domains("compute1")
        if "compute1" not in busy_hosts:
            assert fleet.taps("compute1") == []
        assert [r["host"] for r in fleet.servers() if r["name"] == "lf1"] == [result["host"]]

        third = fleet.boot(server, virtops_scheduler=RAM_ONLY)
        assert third.rc == 0 and third.changed == {}, third.changed_tasks()
    finally:
        stop.set()
        fleet.set_host_vars()
        fleet.delete({"name": "lf1"})
    assert "lf1" not in [s["name"] for s in fleet.servers()]


def test_a_boot_rerun_reports_and_syncs_drift_and_starts_only_when_asked(fleet):
    server = {"name": "dr1", "flavor": "m1.nano", "image": "guest",
              "networks": [{"network": "private"}]}
    try:
        booted = fleet.boot(server)
        assert booted.rc == 0, booted.failures()
        (result,) = booted.boot["servers"]
        host, inst_uuid = result["host"], result["uuid"]
        fleet.lab.virsh(host, "destroy", "dr1")

        listing = fleet.playbook("servers.yml")
        assert listing.rc == 0, listing.failures()
        assert "dr1 on %s: DRIFT: the domain is shutdown while the record says active" % host \
            in " | ".join(listing.fact("Find what needs attention", "virtops_server_notes"))

        synced = fleet.boot(server)
        assert synced.rc == 0, synced.failures()
        (drifted,) = synced.boot["servers"]
        assert (drifted["result"], drifted["vm_state"], drifted["host"]) == ("drifted", "stopped", host)
        assert drifted["drift"]["reason"] == "the domain is shutdown while the record says active"
        assert host in synced.changed
        assert fleet.record(host, inst_uuid)["vm_state"] == "stopped"
        assert fleet.lab.virsh(host, "domstate", "dr1").stdout.strip() == "shut off"
        # the record now says what the domain is: nothing left to do
        settled = fleet.boot(server)
        assert settled.rc == 0 and settled.changed == {}, settled.changed_tasks()
        assert settled.boot["servers"][0]["result"] == "unchanged"

        started = fleet.boot(server, server_boot_drift="start")
        assert started.rc == 0, started.failures()
        assert started.boot["servers"][0]["drift"]["action"] == "start"
        assert fleet.lab.virsh(host, "domstate", "dr1").stdout.strip() == "running"
        assert fleet.record(host, inst_uuid)["vm_state"] == "active"

        fleet.lab.virsh(host, "destroy", "dr1")
        fleet.lab.virsh(host, "undefine", "dr1")
        missing = fleet.boot(server)
        assert missing.rc != 0
        assert missing.boot["failed"] == ["dr1"]
        assert missing.boot["servers"][0]["vm_state"] == "error"
        message = missing.task("Fail for the servers that could not be built")["localhost"]["msg"]
        assert "dr1: drift on %s: the domain is missing while the record says active" % host in message
        record = fleet.record(host, inst_uuid)
        assert record["vm_state"] == "error" and "domain is missing" in record["fault"]["message"]
    finally:
        fleet.delete({"name": "dr1"})
    assert "dr1" not in [s["name"] for s in fleet.servers()]
