# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console log's tail (plugins/module_utils/_compute/console.py), on real files."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.console import (
    console_tail, log_path, tail)

UUID = "0f7e3c52-5b1d-4a7e-9c1a-3d2b1e0f4a55"
DOMAIN = """<domain type='qemu'><name>web1</name><uuid>%s</uuid><devices>
<serial type='pty'><log file='%s' append='off'/></serial></devices></domain>"""


def test_the_last_lines_are_read_from_the_end_of_a_long_log(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"".join(b"line %d\r\n" % n for n in range(50000)))
    assert tail(str(log), 3) == ["line 49997", "line 49998", "line 49999"]


def test_a_short_log_gives_what_it_has_and_a_last_line_without_newline_counts(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"one\ntwo\nthree")
    assert tail(str(log), 50) == ["one", "two", "three"]
    log.write_bytes(b"")
    assert tail(str(log), 5) == []


def test_no_more_than_nova_s_100_kib_are_read(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"x" * 300000 + b"\nlast\n")
    lines = tail(str(log), 10)
    assert lines[-1] == "last" and sum(len(line) + 1 for line in lines) <= 100 * 1024


def test_the_log_is_the_one_the_definition_names_else_console_log(tmp_path):
    instance = tmp_path / UUID
    instance.mkdir()
    assert log_path(str(tmp_path), UUID) == str(instance / "console.log")
    (instance / "libvirt.xml").write_text(DOMAIN % (UUID, "/var/log/web1.log"))
    assert log_path(str(tmp_path), UUID) == "/var/log/web1.log"


def test_an_instance_without_a_log_has_no_lines_and_bad_requests_are_refused(tmp_path):
    (tmp_path / UUID).mkdir()
    result = console_tail(str(tmp_path), UUID, 5)
    assert (result.exists, result.lines, result.changed) == (False, [], False)
    (tmp_path / UUID / "console.log").write_text("VIRTOPS-GUEST-BOOTED\nVIRTOPS-GUEST-READY\n")
    assert console_tail(str(tmp_path), UUID, 1).lines == ["VIRTOPS-GUEST-READY"]
    with pytest.raises(VirtopsError, match="lines must be 1 or more"):
        console_tail(str(tmp_path), UUID, 0)
    with pytest.raises(VirtopsError):
        console_tail(str(tmp_path), "../etc", 5)
