# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's servers from host facts: the table, finding a server to delete, and what the
host facts say of each instance."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import summarise
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.fleet import (
    fleet_servers, server_locations, server_table)

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
FLEET = [
    {"hostname": "c2", "instances": [
        {"uuid": U2, "name": "web-2", "vm_state": "active", "task_state": None,
         "power_state": "running", "flavor": {"name": "m1.tiny"}, "image": {"name": "guest"},
         "ips": ["10.90.0.11", "10.91.0.4"]}]},
    {"hostname": "c1", "instances": [
        {"uuid": U1, "name": "web-1", "vm_state": "resized", "task_state": None,
         "power_state": "running", "flavor": {"name": "m1.small"}, "image": {"name": "guest"},
         "ips": ["10.90.0.10"]}]},
    {"hostname": "c3", "instances": [
        {"uuid": U1, "name": "web-1", "vm_state": "resized", "task_state": None,
         "power_state": "absent", "flavor": {"name": "m1.tiny"}, "image": {"name": "guest"},
         "ips": ["10.90.0.10"]}]},
]


def test_table_lists_every_record_aligned_and_sorted():
    lines = server_table(fleet_servers(FLEET))
    assert lines == [
        "NAME   HOST  STATE    TASK  POWER    FLAVOR    IMAGE  IPS",
        "web-1  c1    resized  -     running  m1.small  guest  10.90.0.10",
        "web-1  c3    resized  -     absent   m1.tiny   guest  10.90.0.10",
        "web-2  c2    active   -     running  m1.tiny   guest  10.90.0.11, 10.91.0.4",
    ]
    assert server_table([]) == ["NAME  HOST  STATE  TASK  POWER  FLAVOR  IMAGE  IPS"]


def test_a_server_is_found_on_every_host_that_holds_a_record_of_it():
    found = server_locations(FLEET, {"name": "web-1"})
    assert [(f["host"], f["uuid"]) for f in found] == [("c1", U1), ("c3", U1)]
    assert [f["name"] for f in server_locations(FLEET, {"name": "web", "max_count": 2})] == [
        "web-1", "web-1", "web-2"]
    assert [f["host"] for f in server_locations(FLEET, {"uuid": U2.upper()})] == ["c2"]
    assert server_locations(FLEET, {"name": "gone"}) == []
    with pytest.raises(VirtopsError, match="needs a name"):
        server_locations(FLEET, {})


def test_host_facts_give_each_instance_its_host_and_live_power_state():
    record = {"uuid": U1, "name": "web-1", "vm_state": "active", "power_state": "nostate",
              "admin_pass": "x", "network_info": [{"id": "p"}], "ips": ["10.90.0.10"]}
    summary = summarise(record, "c1", {U1: "running"})
    assert (summary["host"], summary["power_state"], summary["ips"]) == ("c1", "running",
                                                                         ["10.90.0.10"])
    assert summary["network_info"] == [{"id": "p"}] and "admin_pass" not in summary
    assert summarise(record, "c1", {})["power_state"] == "absent"    # no domain in libvirt
