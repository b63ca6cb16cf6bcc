# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt access layer on libvirt's real test driver: one opener (read-only or
read-write), lookups that tell "no such domain" from a broken libvirt, undefine, power states."""
from __future__ import annotations

import uuid as uuidlib

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import domains
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    DEFAULT_URI, LIBVIRT_ARGS, connect)

libvirt = pytest.importorskip("libvirt")

TEST_URI = "test:///default"
DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>
"""


@pytest.fixture
def conn():
    with connect(TEST_URI) as connection:
        yield connection


@pytest.fixture
def defined(conn):
    """A defined (shut off) domain with a fresh name and uuid; undefined afterwards if left."""
    uuid = str(uuidlib.uuid4())
    dom = conn.defineXML(DOMAIN_XML.format(name="p2-" + uuid[:8], uuid=uuid))
    yield dom
    try:
        dom.undefine()
    except libvirt.libvirtError:
        pass


def test_the_argument_spec_and_the_default_uri_are_the_system_libvirtd():
    assert DEFAULT_URI == "qemu:///system"
    assert LIBVIRT_ARGS == {"libvirt_uri": {"type": "str", "default": DEFAULT_URI}}


def test_an_unreachable_uri_is_a_virtops_error_that_names_it():
    with pytest.raises(VirtopsError, match="cannot connect to libvirt at test:///nonexistent") as err:
        with connect("test:///nonexistent"):
            pass
    assert err.value.details["uri"] == "test:///nonexistent"
    assert err.value.msg.endswith("Is libvirtd running (systemctl start libvirtd, or libvirtd -d)?")


def test_a_remote_uri_that_does_not_answer_is_a_virtops_error_that_says_what_to_check():
    uri = "qemu+ssh://root@192.0.2.1:1/system?no_tty=1&command=/bin/false"
    with pytest.raises(VirtopsError) as err:
        with connect(uri, read_only=True):
            pass
    assert err.value.msg.startswith("cannot connect to libvirt at %s (read-only): " % uri)
    assert err.value.msg.endswith("Can this machine reach the host (address, ssh key, the host's "
                                  "key in known_hosts) and is libvirtd running there?")


def test_a_read_only_connection_reads_but_is_refused_any_change(defined):
    with connect(TEST_URI, read_only=True) as ro:
        dom = domains.find_domain(ro, uuid=defined.UUIDString())
        assert dom is not None and domains.power_state(dom) == "shutdown"
        with pytest.raises(libvirt.libvirtError, match="read only"):
            dom.create()
    with connect(TEST_URI) as rw:
        dom = domains.find_domain(rw, uuid=defined.UUIDString())
        dom.create()
        assert domains.power_state(dom) == "running"
        dom.destroy()


def test_a_missing_domain_is_none_by_uuid_and_by_name(conn):
    assert domains.find_domain(conn, uuid=str(uuidlib.uuid4())) is None
    assert domains.find_domain(conn, name="p2-no-such-domain") is None


def test_a_domain_is_found_by_uuid_and_by_name(conn, defined):
    assert domains.find_domain(conn, uuid=defined.UUIDString()).name() == defined.name()
    assert domains.find_domain(conn, name=defined.name()).UUIDString() == defined.UUIDString()


def test_a_libvirt_error_other_than_no_domain_is_raised_with_its_code_not_taken_for_absent(conn):
    # libvirt refuses a malformed uuid with VIR_ERR_INVALID_ARG: an error, not "no domain".
    with pytest.raises(VirtopsError, match="libvirt lookup of not-a-uuid failed") as err:
        domains.find_domain(conn, uuid="not-a-uuid")
    assert err.value.details["libvirt_error_code"] == libvirt.VIR_ERR_INVALID_ARG
    assert err.value.details["lookup"] == "uuid"


def test_a_lookup_on_a_closed_connection_is_raised_not_taken_for_absent():
    connection = libvirt.open(TEST_URI)
    connection.close()
    with pytest.raises(VirtopsError, match="libvirt lookup of test failed") as err:
        domains.find_domain(connection, name="test")
    assert err.value.details["libvirt_error_code"] != libvirt.VIR_ERR_NO_DOMAIN


def test_find_domain_needs_exactly_one_key(conn):
    with pytest.raises(VirtopsError, match="exactly one of uuid and name"):
        domains.find_domain(conn)
    with pytest.raises(VirtopsError, match="exactly one of uuid and name"):
        domains.find_domain(conn, uuid=str(uuidlib.uuid4()), name="x")


def test_power_states_have_novas_names(conn, defined):
    assert domains.power_state(None) == "absent"
    assert domains.power_state(defined) == "shutdown"
    defined.create()
    assert domains.power_state(defined) == "running"
    defined.suspend()
    assert domains.power_state(defined) == "paused"
    defined.destroy()
    assert domains.power_state(defined) == "shutdown"
    assert domains.POWER_STATE_NAMES[libvirt.VIR_DOMAIN_CRASHED] == "crashed"
    assert domains.POWER_STATE_NAMES[libvirt.VIR_DOMAIN_PMSUSPENDED] == "suspended"


def test_the_state_names_match_the_binding_numbers():
    assert (domains.VIR_RUNNING, domains.VIR_PAUSED, domains.VIR_SHUTOFF) == (
        libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_SHUTOFF)


def test_undefine_removes_the_definition_and_a_second_undefine_reports_it_gone(conn, defined):
    uuid = defined.UUIDString()
    assert domains.undefine(defined) is True
    assert domains.find_domain(conn, uuid=uuid) is None
    assert domains.power_state(defined) == "absent"
    assert domains.undefine(defined) is False


def test_undefine_refused_by_libvirt_is_a_virtops_error_naming_the_domain(defined):
    with connect(TEST_URI, read_only=True) as ro:
        dom = domains.find_domain(ro, uuid=defined.UUIDString())
        with pytest.raises(VirtopsError, match="undefining domain %s failed: .*read only"
                           % defined.name()):
            domains.undefine(dom)
    assert domains.power_state(defined) == "shutdown"


class NoFlagsDomain:
    """A driver that knows none of the undefine flags (old libvirt): only plain undefine."""

    def __init__(self):
        self.calls = []

    def undefineFlags(self, flags):
        self.calls.append(("undefineFlags", flags))
        raise libvirt.libvirtError("unsupported flags")

    def undefine(self):
        self.calls.append(("undefine",))


def test_undefine_asks_for_nvram_managed_save_and_metadata_and_falls_back_without_flags():
    dom = NoFlagsDomain()
    assert domains.undefine(dom) is True
    flags = dom.calls[0][1]
    for flag in (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE,
                 libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
                 libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA):
        assert flags & flag == flag
    assert dom.calls[1] == ("undefine",)


GRAPHICS_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <graphics type='vnc' port='5907' autoport='no' listen='192.0.2.11'>
      <listen type='address' address='192.0.2.11'/>
    </graphics>
  </devices>
</domain>
"""


def test_the_consoles_of_a_running_domain_are_read_from_its_live_xml(conn):
    uuid = str(uuidlib.uuid4())
    dom = conn.createXML(GRAPHICS_XML.format(name="g-" + uuid[:8], uuid=uuid), 0)
    try:
        assert [g.to_dict() for g in domains.live_graphics(dom)] == [
            {"type": "vnc", "listen": "192.0.2.11", "port": 5907}]
    finally:
        dom.destroy()
    # A transient domain is gone once destroyed: no consoles, no error.
    assert domains.live_graphics(dom) == []


def test_a_console_without_a_port_yet_or_with_only_a_listen_element_is_read_as_such():
    from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import parse_xml
    root = parse_xml("<domain><devices>"
                     "<graphics type='vnc' port='-1' autoport='yes'>"
                     "<listen type='address' address='::1'/></graphics>"
                     "<graphics type='spice' autoport='yes' listen='0.0.0.0'/>"
                     "</devices></domain>", "test")
    assert [g.to_dict() for g in domains.graphics_of(root)] == [
        {"type": "vnc", "listen": "::1", "port": None},
        {"type": "spice", "listen": "0.0.0.0", "port": None}]
    assert domains.graphics_of(parse_xml("<domain><devices/></domain>", "test")) == []
