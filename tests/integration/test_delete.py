# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/delete.yml on the session's two-host lab: a server is removed wherever it has a
record (its host, and the source of a resize), with its domain, taps, disks, directory and
claim; the cached base stays; deleting what is gone changes nothing."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.integration.boot_fleet import INSTANCES, ansible, guest_fleet

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("delete"))


def usage(fleet, host):
    facts = ansible(fleet, host, "virtops.compute.vm_host_facts", {"hostname": host})
    data = json.loads(facts.stdout.split("=>", 1)[1])["host"]
    return data["vcpus_used"], data["memory_mb_used"], data["local_gb_used"]


def put_record(fleet, host, directory, record):
    """Write an instance record on a lab host (/tmp is shared with the lab hosts)."""
    staging = Path("/tmp") / ("virtops-record-%s.json" % uuid.uuid4())
    staging.write_text(json.dumps(record))
    try:
        fleet.lab.run(host, ["mkdir", "-p", "%s/%s" % (INSTANCES, directory)])
        fleet.lab.run(host, ["cp", str(staging), "%s/%s/instance.json" % (INSTANCES, directory)])
    finally:
        staging.unlink()


def test_delete_removes_the_server_wherever_it_is_and_keeps_the_base(fleet):
    hosts = sorted(fleet.lab.hosts)
    before = {h: usage(fleet, h) for h in hosts}
    server = {"name": "del1", "flavor": "m1.nano", "image": "guest",
              "networks": [{"network": "private"}], "config_drive": True}
    booted = fleet.boot(server)
    assert booted.rc == 0, booted.failures()
    (result,) = booted.boot["servers"]
    host, inst_uuid = result["host"], result["uuid"]
    other = [h for h in hosts if h != host][0]
    # A resize in flight leaves the source's record in <uuid>_resize on the other host.
    record = fleet.record(host, inst_uuid)
    put_record(fleet, other, inst_uuid + "_resize",
               dict(record, vm_state="resized", host=other))
    assert [s["host"] for s in fleet.servers() if s["name"] == "del1"] == sorted([host, other])
    bases = fleet.bases(host)
    taps_with = fleet.taps(host)
    vif = record["network_info"][0]["devname"]
    assert vif in taps_with
    assert record["network_info"][0]["details"]["port_filter"]
    assert vif in fleet.port_filters(host)       # its anti-spoofing rules (nftables)

    run = fleet.delete(server)           # the boot request as it is
    assert run.rc == 0, run.failures()
    assert set(run.changed) == {host, other}
    deleted = run.fact("Summarise the delete", "server_delete_result")["deleted"]
    assert sorted((d["host"], d["uuid"]) for d in deleted) == sorted(
        [(host, inst_uuid), (other, inst_uuid)])
    assert "del1" not in fleet.lab.domains(host)
    assert inst_uuid not in " ".join(fleet.instance_dirs(host) + fleet.instance_dirs(other))
    assert vif not in fleet.taps(host)
    assert vif not in fleet.port_filters(host) + fleet.port_filters(other)
    assert fleet.bases(host) == bases        # the cached base is never touched
    assert {h: usage(fleet, h) for h in hosts} == before   # the claims are released
    assert "del1" not in [s["name"] for s in fleet.servers()]

    again = fleet.delete({"name": "del1"})
    assert again.rc == 0, again.failures()
    assert again.changed == {}, again.changed_tasks()
    assert again.fact("Summarise the delete", "server_delete_result")["msg"] == "nothing to delete"


def test_delete_of_a_multiple_create_and_by_uuid_takes_half_built_servers_too(fleet):
    hosts = sorted(fleet.lab.hosts)
    flavor = {"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1}
    made = {}
    for index, host in enumerate(hosts, start=1):
        made[host] = str(uuid.uuid4())
        claim = ansible(fleet, host, "virtops.compute.vm_instance", {
            "uuid": made[host], "name": "dm-%d" % index, "flavor": flavor})
        assert claim.returncode == 0, claim.stdout
    loose = str(uuid.uuid4())
    claim = ansible(fleet, hosts[0], "virtops.compute.vm_instance",
                    {"uuid": loose, "name": "loose", "flavor": flavor})
    assert claim.returncode == 0, claim.stdout

    run = fleet.delete({"name": "dm", "max_count": len(hosts), "flavor": "m1.nano",
                        "image": "guest"})
    assert run.rc == 0, run.failures()
    assert set(run.changed) == set(hosts)
    for host in hosts:
        assert made[host] not in fleet.instance_dirs(host)
    assert loose in fleet.instance_dirs(hosts[0])

    by_uuid = fleet.delete({"uuid": loose})
    assert by_uuid.rc == 0, by_uuid.failures()
    assert loose not in fleet.instance_dirs(hosts[0])
    assert fleet.delete({"uuid": loose}).changed == {}
