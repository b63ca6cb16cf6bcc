# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json

from ansible_collections.virtops.compute.plugins.module_utils._host_facts import (
    read_instance_records, summarise, total_memory_mb)


def write_record(base, dirname, **record):
    (base / dirname).mkdir()
    (base / dirname / "instance.json").write_text(json.dumps(record))


def test_records_of_instances_and_resize_sources_are_read(tmp_path):
    write_record(tmp_path, "u1", uuid="u1", name="web1", flavor={"vcpus": 1})
    write_record(tmp_path, "u2_resize", uuid="u2", name="web2", flavor={"vcpus": 2})
    (tmp_path / "_base").mkdir()
    (tmp_path / "u3").mkdir()  # a directory without a record is not an instance
    (tmp_path / "u4").mkdir()
    (tmp_path / "u4" / "instance.json").write_text("{broken")
    names = [r["name"] for r in read_instance_records(str(tmp_path))]
    assert names == ["web1", "web2"]


def test_missing_instances_path_means_no_instances(tmp_path):
    assert read_instance_records(str(tmp_path / "absent")) == []


def test_summary_keeps_only_scheduler_keys():
    summary = summarise({"uuid": "u", "name": "n", "admin_pass": "secret", "vm_state": "active"})
    assert "admin_pass" not in summary
    assert summary["vm_state"] == "active" and summary["task_state"] is None


def test_total_memory_comes_from_meminfo():
    with open("/proc/meminfo") as meminfo:
        expected = int(meminfo.readline().split()[1]) // 1024
    assert total_memory_mb(1) == expected
