# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's servers from host facts: the table, finding a server to delete, and what the
host facts say of each instance."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import summarise
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import LiveDomain
from ansible_collections.virtops.compute.plugins.module_utils._model.console import Graphics
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.fleet import (
    fleet_servers, server_history, server_locations, server_table)

U1 = "00000000-0000-0000-0000-000000000001"
U2 = "00000000-0000-0000-0000-000000000002"
FLEET = [
    {"hostname": "c2", "instances": [
        {"uuid": U2, "name": "web-2", "vm_state": "active", "task_state": None,
         "power_state": "running", "flavor": {"name": "m1.tiny"}, "image": {"name": "guest"},
         "ips": ["10.90.0.11", "10.91.0.4"],
         "graphics": [{"type": "vnc", "listen": "192.0.2.12", "port": 5901}]}]},
    {"hostname": "c1", "instances": [
        {"uuid": U1, "name": "web-1", "vm_state": "resized", "task_state": None,
         "power_state": "running", "flavor": {"name": "m1.small"}, "image": {"name": "guest"},
         "ips": ["10.90.0.10"],
         "graphics": [{"type": "vnc", "listen": "fd00::11", "port": 5900}]}]},
    {"hostname": "c3", "instances": [
        {"uuid": U1, "name": "web-1", "vm_state": "resized", "task_state": None,
         "power_state": "absent", "flavor": {"name": "m1.tiny"}, "image": {"name": "guest"},
         "ips": ["10.90.0.10"]}]},
]


def test_table_lists_every_record_aligned_and_sorted_with_the_console_of_each_running_domain():
    lines = server_table(fleet_servers(FLEET))
    assert lines == [
        "NAME   HOST  STATE    TASK  POWER    FLAVOR    IMAGE  IPS                    CONSOLE",
        "web-1  c1    resized  -     running  m1.small  guest  10.90.0.10             vnc://[fd00::11]:5900",
        "web-1  c3    resized  -     absent   m1.tiny   guest  10.90.0.10             -",
        "web-2  c2    active   -     running  m1.tiny   guest  10.90.0.11, 10.91.0.4  vnc://192.0.2.12:5901",
    ]
    assert server_table([]) == ["NAME  HOST  STATE  TASK  POWER  FLAVOR  IMAGE  IPS  CONSOLE"]


def test_the_console_column_comes_from_the_graphics_the_host_facts_read():
    rows = {(r["name"], r["host"]): r["console"] for r in fleet_servers(FLEET)}
    assert rows == {("web-1", "c1"): "vnc://[fd00::11]:5900", ("web-1", "c3"): None,
                    ("web-2", "c2"): "vnc://192.0.2.12:5901"}


def _entry(at, vm_state, task_state, reason=None):
    entry = {"at": "2026-12-07T20:%s+00:00" % at, "vm_state": vm_state, "task_state": task_state}
    if reason:
        entry["reason"] = reason
    return entry


BUILT = [_entry("00:00.100", "building", "scheduling"), _entry("00:00.200", "building", "spawning"),
         _entry("00:02.000", "active", None)]
RESIZING = [
    {"hostname": "c1", "instances": [{"uuid": U1, "name": "web-1", "history": BUILT + [
        _entry("05:00.000", "active", "resize_migrating"),
        _entry("05:01.000", "active", "resize_migrated")]}]},
    {"hostname": "c3", "instances": [{"uuid": U1, "name": "web-1", "history": BUILT + [
        _entry("04:59.000", "active", "resize_prep"),
        _entry("05:09.000", "resized", None, "migration 7 finished")]}]},
    {"hostname": "c2", "instances": [{"uuid": U2, "name": "web-2", "history": BUILT}]},
]


def test_the_history_has_one_line_per_entry_oldest_first_from_every_host_holding_a_record():
    assert server_history(RESIZING, "web-1") == [
        "web-1 (%s) on c1, c3" % U1,
        "2026-12-07T20:00:00.100+00:00  c1,c3  building  scheduling",
        "2026-12-07T20:00:00.200+00:00  c1,c3  building  spawning",
        "2026-12-07T20:00:02.000+00:00  c1,c3  active    -",
        "2026-12-07T20:04:59.000+00:00  c3     active    resize_prep",
        "2026-12-07T20:05:00.000+00:00  c1     active    resize_migrating",
        "2026-12-07T20:05:01.000+00:00  c1     active    resize_migrated",
        "2026-12-07T20:05:09.000+00:00  c3     resized   -                 migration 7 finished",
    ]


def test_the_history_is_found_by_uuid_too_and_an_unknown_server_has_none():
    assert server_history(RESIZING, U2.upper())[0] == "web-2 (%s) on c2" % U2
    assert len(server_history(RESIZING, U2)) == 4
    assert server_history(RESIZING, "web-9") == []
    with pytest.raises(VirtopsError, match="name or uuid"):
        server_history(RESIZING, " ")


def test_a_record_whose_history_was_not_asked_for_says_so():
    facts = [{"hostname": "c1", "instances": [{"uuid": U1, "name": "web-1"}]}]
    assert server_history(facts, "web-1") == ["web-1 (%s) on c1" % U1, "(no history recorded)"]


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
    summary = summarise(record, "c1", {U1: LiveDomain("running", (Graphics("vnc", "::1", 5900),))})
    assert (summary["host"], summary["power_state"], summary["ips"]) == ("c1", "running",
                                                                         ["10.90.0.10"])
    assert summary["network_info"] == [{"id": "p"}] and "admin_pass" not in summary
    assert summary["graphics"] == [{"type": "vnc", "listen": "::1", "port": 5900}]
    assert summarise(record, "c1", {})["power_state"] == "absent"    # no domain in libvirt
