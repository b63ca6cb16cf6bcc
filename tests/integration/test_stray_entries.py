# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stray entries in a host's instances path (a file, a foreign directory, a directory without a
record, a symbolic link) on the session's two-host lab: the hosts are still gathered and
scheduled, the strays are reported, and delete works."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.integration.boot_fleet import INSTANCES, ansible, guest_fleet

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

EMPTY_UUID = str(uuid.uuid4())
STRAYS = {"filler": "the name is not an instance uuid (or <uuid>_resize)",
          "old-backup": "the name is not an instance uuid (or <uuid>_resize)",
          EMPTY_UUID: "no instance.json in it (not an instance directory)",
          EMPTY_UUID + "_resize": "a symbolic link, not an instance directory"}


@pytest.fixture
def fleet(lab, tmp_path):
    fleet = guest_fleet(lab, tmp_path)
    made = ["%s/%s" % (INSTANCES, name) for name in STRAYS]
    try:
        for host in fleet.hosts:
            fleet.lab.run(host, ["touch", made[0]])
            fleet.lab.run(host, ["mkdir", made[1], made[2]])
            fleet.lab.run(host, ["ln", "-s", made[2], made[3]])
        yield fleet
    finally:
        for host in fleet.hosts:
            fleet.lab.run(host, ["rm", "-rf"] + made, check=False)


def test_stray_entries_are_reported_and_the_host_still_boots_and_deletes(fleet):
    for host in fleet.hosts:
        facts = ansible(fleet, host, "virtops.compute.vm_host_facts", {"hostname": host})
        assert facts.returncode == 0, facts.stdout + facts.stderr
        data = json.loads(facts.stdout.split("=>", 1)[1])["host"]
        assert {os.path.basename(e["path"]): e["reason"] for e in data["ignored_entries"]} == STRAYS
        # What an operator sees: a warning per stray entry (ansible-core 2.19's oneline
        # callback no longer prints module warnings, so ask for the configured callback).
        shown = ansible(fleet, host, "virtops.compute.vm_host_facts", {"hostname": host},
                        oneline=False)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "skipped %s/filler in the instances path" % INSTANCES in shown.stdout + shown.stderr

    server = {"name": "stray1", "flavor": "m1.nano", "image": "guest",
              "networks": [{"network": "private"}]}
    booted = fleet.boot(server)
    try:
        assert booted.rc == 0, booted.failures()
        (result,) = booted.boot["servers"]
        assert result["host"] in fleet.hosts
        assert [s["host"] for s in fleet.servers() if s["name"] == "stray1"] == [result["host"]]
    finally:
        deleted = fleet.delete(server)
    assert deleted.rc == 0, deleted.failures()
    assert result["uuid"] not in fleet.instance_dirs(result["host"])
    for host in fleet.hosts:     # the strays are left alone: they are not the collection's
        assert set(STRAYS) <= set(fleet.instance_dirs(host))
