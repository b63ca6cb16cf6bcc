# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/converge.yml on the session's two-host lab, as an infrastructure-as-code repository
uses it: a vars file of three servers converges the fleet in one run, a second run changes
nothing, an entry turned absent is deleted, flavor drift is reported and, with resize: true,
resized; --check changes nothing."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.integration.boot_fleet import guest_fleet

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

NETWORK = [{"network": "private"}]


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("converge"))


def converge(fleet, servers, *args):
    """converge.yml with ``servers`` in a vars file, as an IaC repository keeps it."""
    path = fleet.workdir / "servers.yml"
    path.write_text(yaml.safe_dump({"servers": servers}))
    return fleet.playbook("converge.yml", None, "-e", "@%s" % path, *args)


def plan_lines(run):
    return run.fact("Compare the servers with the fleet", "virtops_converge")["lines"]


def by_name(fleet):
    rows = {}
    for row in fleet.servers():
        rows.setdefault(row["name"], []).append(row)
    return rows


def server(name, **keys):
    return dict({"name": name, "flavor": "m1.nano", "image": "guest", "networks": NETWORK,
                 "config_drive": True}, **keys)


def test_a_vars_file_of_three_servers_converges_the_fleet_and_a_second_run_changes_nothing(fleet):
    servers = [server("conv1"), server("conv2", state="stopped"), server("conv3")]
    first = converge(fleet, servers)
    assert first.rc == 0, first.failures()
    assert plan_lines(first) == ["conv1: boot (m1.nano, guest)",
                                 "conv2: boot, stop (m1.nano, guest)",
                                 "conv3: boot (m1.nano, guest)"]
    rows = by_name(fleet)
    assert [(r["vm_state"], r["power_state"]) for r in rows["conv1"]] == [("active", "running")]
    assert [(r["vm_state"], r["power_state"]) for r in rows["conv2"]] == [("stopped", "shutdown")]
    assert [r["vm_state"] for r in rows["conv3"]] == ["active"]
    host2 = rows["conv2"][0]["host"]
    assert fleet.lab.virsh(host2, "domstate", "conv2").stdout.strip() == "shut off"

    second = converge(fleet, servers)
    assert second.rc == 0, second.failures()
    assert second.changed == {}, second.changed_tasks()
    assert plan_lines(second) == ["conv1: unchanged", "conv2: unchanged", "conv3: unchanged"]

    # --check --diff: the plan per server, and nothing changes.
    servers[1] = server("conv2", state="running")
    checked = converge(fleet, servers + [server("conv4", state="stopped")], "--check", "--diff")
    assert checked.rc == 0, checked.failures()
    assert plan_lines(checked)[1:] == ["conv2: start", "conv3: unchanged",
                                       "conv4: boot, stop (m1.nano, guest)"]
    shown = checked.task("Show each server before and after")["localhost"]["msg"]
    assert [(s["name"], (s["before"] or {}).get("vm_state"), s["after"]["vm_state"])
            for s in shown] == [("conv2", "stopped", "active"), ("conv4", None, "stopped")]
    rows = by_name(fleet)
    assert [r["vm_state"] for r in rows["conv2"]] == ["stopped"] and "conv4" not in rows

    # conv3 goes, conv2 starts, conv1's flavor drifts: reported, not changed.
    servers = [server("conv1", flavor="m1.tiny"), server("conv2"),
               server("conv3", state="absent")]
    third = converge(fleet, servers)
    assert third.rc == 0, third.failures()
    assert plan_lines(third) == [
        "conv1: unchanged; DRIFT: flavor m1.nano, wanted m1.tiny (resize: true resizes it)",
        "conv2: start", "conv3: delete (on %s)" % rows["conv3"][0]["host"]]
    rows = by_name(fleet)
    assert "conv3" not in rows
    assert [(r["vm_state"], r["power_state"]) for r in rows["conv2"]] == [("active", "running")]
    assert [r["flavor"] for r in rows["conv1"]] == ["m1.nano"]

    # resize: true resizes and confirms.
    servers[0] = server("conv1", flavor="m1.tiny", resize=True)
    fourth = converge(fleet, servers)
    assert fourth.rc == 0, fourth.failures()
    assert plan_lines(fourth)[0] == "conv1: resize (m1.nano -> m1.tiny)"
    rows = by_name(fleet)
    assert [(r["flavor"], r["vm_state"]) for r in rows["conv1"]] == [("m1.tiny", "active")]
    assert converge(fleet, servers).changed == {}

    gone = converge(fleet, [{"name": n, "state": "absent"} for n in ("conv1", "conv2", "conv3")])
    assert gone.rc == 0, gone.failures()
    assert not {"conv1", "conv2", "conv3"} & set(by_name(fleet))


def test_a_malformed_list_or_a_stray_server_variable_changes_nothing(fleet):
    before = json.dumps(by_name(fleet), sort_keys=True)
    twice = converge(fleet, [server("dup"), server("dup")])
    assert twice.rc != 0 and "dup is listed twice" in twice.failures()
    stray = converge(fleet, [server("conv9")], "-e", json.dumps({"server": "web1"}))
    assert stray.rc != 0 and "takes the list servers" in stray.failures()
    assert json.dumps(by_name(fleet), sort_keys=True) == before
