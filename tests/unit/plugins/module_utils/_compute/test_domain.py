# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain lifecycle logic: on libvirt's test driver, and with a clock we control for the
timeouts (a guest that ignores ACPI, VIFs that never come up)."""
from __future__ import annotations

import os

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    FINGERPRINT_NS, VIR_PAUSED, VIR_RUNNING, VIR_SHUTOFF, DomainManager, DomainParams,
    console_log_path, expected_ports, parse_domain_xml)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import Vif
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    FilterSnapshot, PortFilter)
from ansible_collections.virtops.compute.tests.unit.plugins.module_utils._network.test_port_filter import (
    in_force)
from ansible_collections.virtops.compute.tests.unit.plugins.module_utils._network.test_vif import (
    FakeNftHost)

libvirt = pytest.importorskip("libvirt")

UUID = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
DOMAIN_XML = """<domain type='test'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='KiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <serial type='pty'><log file='{log}' append='on'/><target port='0'/></serial>
  </devices>
</domain>
"""


class FakeClock:
    """time.monotonic and time.sleep for code that polls: sleeping advances the clock and
    runs what the test scheduled for that moment."""

    def __init__(self):
        self.now = 1000.0
        self.events = []          # (time, callable)

    def __call__(self) -> float:
        return self.now

    def at(self, delay: float, action) -> None:
        self.events.append((self.now + delay, action))

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for due, action in list(self.events):
            if due <= self.now:
                self.events.remove((due, action))
                action()


@pytest.fixture
def conn():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connection = libvirt.open("test:///default")
    try:
        yield connection
    finally:
        connection.close()


def write_xml(instances, name="vm1", memory=131072):
    directory = instances / UUID
    directory.mkdir(exist_ok=True)
    (directory / "libvirt.xml").write_text(DOMAIN_XML.format(
        name=name, uuid=UUID, memory=memory, log=directory / "console.log"))
    return directory


def manager(conn, instances, check_mode=False, **params):
    return DomainManager(conn, DomainParams(uuid=UUID, instances_path=str(instances), **params),
                         check_mode=check_mode)


# -- parameters and XML -----------------------------------------------------------------------

@pytest.mark.parametrize("params, message", [
    ({"state": "gone"}, "state must be one of"),
    ({"reboot": True, "state": "stopped"}, "reboot needs state=running"),
    ({"retry_interval": 0}, "retry_interval must be more than 0"),
    ({"shutdown_timeout": -1}, "shutdown_timeout must be 0 or more"),
    ({"instances_path": "relative/path"}, "instances_path must be absolute"),
    ({"wait_for_console": "("}, "not a valid regular expression"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(VirtopsError, match=message):
        DomainParams(uuid=UUID, **params)


def test_uuid_that_could_escape_the_instances_path_is_refused(conn, tmp_path):
    with pytest.raises(VirtopsError, match="invalid instance uuid"):
        DomainManager(conn, DomainParams(uuid="../../etc", instances_path=str(tmp_path)))


def test_console_log_is_found_where_the_definition_puts_it():
    pty = parse_domain_xml("<domain><devices><serial type='pty'><log file='/i/console.log'/>"
                           "</serial></devices></domain>", "x")
    file_port = parse_domain_xml("<domain><devices><serial type='file'><source path='/i/s.log'/>"
                                 "</serial></devices></domain>", "x")
    bare = parse_domain_xml("<domain><devices/></domain>", "x")
    assert console_log_path(pty, "/d") == "/i/console.log"
    assert console_log_path(file_port, "/d") == "/i/s.log"
    assert console_log_path(bare, "/d") == "/d/console.log"


def test_entities_in_a_definition_are_not_expanded():
    xml = ("<?xml version='1.0'?><!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
           "<domain><name>&x;</name></domain>")
    root = parse_domain_xml(xml, "x")
    assert "root:" not in (root.findtext("name") or "")


def test_expected_ports_take_the_bridge_from_network_info():
    live = parse_domain_xml("""<domain><devices>
      <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><source bridge='br-xml'/>
        <target dev='tap1'/></interface>
      <interface type='network'><mac address='fa:16:3e:00:00:02'/>
        <source network='default' bridge='virbr0'/><target dev='vnet3'/></interface>
      <interface type='direct'><mac address='fa:16:3e:00:00:03'/><source dev='eth0'/>
        <target dev='macvtap0'/></interface>
      <interface type='user'><mac address='fa:16:3e:00:00:04'/></interface>
    </devices></domain>""", "live")
    vif = Vif(id="p1", address="fa:16:3e:00:00:01", network_id="n", network_label="private",
              bridge="br-port", devname="tap1")
    ports = expected_ports(live, [vif])
    assert [(p.devname, p.bridge) for p in ports] == [
        ("tap1", "br-port"), ("vnet3", "virbr0"), ("macvtap0", None)]


def test_a_filtered_port_is_expected_with_its_nftables_rules_and_with_nwfilter_without():
    live = parse_domain_xml("""<domain><devices>
      <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><source bridge='br-port'/>
        <target dev='tap1'/></interface></devices></domain>""", "live")
    vif = Vif(id="p1", address="fa:16:3e:00:00:01", network_id="n", network_label="private",
              bridge="br-port", devname="tap1", port_filter=True)
    [port] = expected_ports(live, [vif])
    assert (port.port_filter.devname, port.port_filter.mac) == ("tap1", "fa:16:3e:00:00:01")
    [port] = expected_ports(live, [vif], "nwfilter")
    assert port.port_filter is None


# -- the lifecycle on libvirt's test driver -------------------------------------------------

def test_define_start_and_leave_alone(conn, tmp_path):
    write_xml(tmp_path)
    planned = manager(conn, tmp_path, check_mode=True).ensure()
    assert planned.changed and planned.definition_changed
    assert planned.actions == ["define domain vm1 from %s/%s/libvirt.xml" % (tmp_path, UUID),
                               "start domain vm1"]
    assert conn.listDefinedDomains() == [] and "vm1" not in [
        d.name() for d in conn.listAllDomains()]

    done = manager(conn, tmp_path).ensure()
    assert done.changed and done.power_state == "running" and done.defined
    dom = conn.lookupByUUIDString(UUID)
    assert dom.state()[0] == VIR_RUNNING
    assert 'sha256="' in dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, FINGERPRINT_NS,
                                      libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert [(t["vm_state"], t["task_state"]) for t in done.transitions] == [
        ("building", "spawning"), ("active", None)]
    assert done.spawn_seconds is not None and "total" in done.timings

    again = manager(conn, tmp_path).ensure()
    assert not again.changed and again.actions == [] and again.power_state == "running"
    assert not manager(conn, tmp_path, check_mode=True).ensure().changed


def test_a_changed_file_is_redefined_with_a_diff_and_a_restart_hint(conn, tmp_path):
    write_xml(tmp_path, memory=131072)
    manager(conn, tmp_path).ensure()
    write_xml(tmp_path, memory=262144)
    result = manager(conn, tmp_path).ensure()
    assert result.changed and result.definition_changed
    assert "131072" in result.xml_before and "262144" in result.xml_after
    assert result.restart_required
    assert any("runs with its previous definition" in w for w in result.warnings)
    inactive = conn.lookupByUUIDString(UUID).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "262144" in inactive
    assert not manager(conn, tmp_path).ensure().changed


def test_stop_pause_resume_and_delete(conn, tmp_path):
    directory = write_xml(tmp_path)
    (tmp_path / (UUID + "_resize")).mkdir()
    manager(conn, tmp_path).ensure()
    dom = conn.lookupByUUIDString(UUID)

    paused = manager(conn, tmp_path, state="paused").ensure()
    assert paused.changed and paused.power_state == "paused" and dom.state()[0] == VIR_PAUSED
    assert not manager(conn, tmp_path, state="paused").ensure().changed
    resumed = manager(conn, tmp_path).ensure()
    assert resumed.actions == ["resume domain vm1"] and dom.state()[0] == VIR_RUNNING

    stopped = manager(conn, tmp_path, state="stopped").ensure()
    assert stopped.power_off["method"] == "acpi" and stopped.power_off["acpi_requests"] == 1
    assert dom.state()[0] == VIR_SHUTOFF
    assert [t["task_state"] for t in stopped.transitions] == ["powering-off", None]
    assert not manager(conn, tmp_path, state="stopped").ensure().changed

    planned = manager(conn, tmp_path, state="absent", check_mode=True).ensure()
    assert planned.actions == ["undefine domain vm1", "remove %s" % directory,
                               "remove %s_resize" % directory]
    assert directory.exists()
    gone = manager(conn, tmp_path, state="absent").ensure()
    assert gone.changed and gone.power_state == "absent" and not gone.defined
    assert not directory.exists() and not (tmp_path / (UUID + "_resize")).exists()
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByUUIDString(UUID)
    assert not manager(conn, tmp_path, state="absent").ensure().changed


def test_reboot_soft_and_hard(conn, tmp_path):
    write_xml(tmp_path)
    manager(conn, tmp_path).ensure()
    soft = manager(conn, tmp_path, reboot=True).ensure()
    assert soft.changed and soft.power_state == "running"
    assert soft.power_off["method"] == "acpi"
    assert [t["task_state"] for t in soft.transitions] == ["rebooting", "reboot_started", None]
    hard = manager(conn, tmp_path, reboot=True, reboot_type="hard").ensure()
    assert hard.power_off["method"] == "destroy" and hard.power_state == "running"


def test_missing_definition_and_foreign_names_are_explained(conn, tmp_path):
    with pytest.raises(VirtopsError, match="has no domain and no .*libvirt.xml to define it from"):
        manager(conn, tmp_path).ensure()
    # The test driver has a domain called 'test' with another uuid.
    write_xml(tmp_path, name="test")
    with pytest.raises(VirtopsError, match="another domain named 'test'"):
        manager(conn, tmp_path).ensure()
    directory = tmp_path / UUID
    (directory / "libvirt.xml").write_text(DOMAIN_XML.format(
        name="vm1", uuid="1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", memory=131072, log="/x"))
    with pytest.raises(VirtopsError, match="defines uuid 1c2d3e4f.*not the instance's"):
        manager(conn, tmp_path).ensure()


# -- timeouts, with a clock we control --------------------------------------------------------

class FakeDomain:
    """The part of virDomain the power and VIF logic uses, for guests we cannot make
    misbehave on demand: one that ignores ACPI, one whose taps never come up."""

    def __init__(self, state=VIR_RUNNING, acpi_needed=None, live_xml="<domain/>"):
        self._state = state
        self.acpi_needed = acpi_needed     # None: ignores the power button
        self.acpi_seen = 0
        self.destroyed = self.undefined = False
        self.live_xml = live_xml

    def state(self):
        return [self._state, 1]

    def isActive(self):
        return self._state != VIR_SHUTOFF

    def shutdown(self):
        self.acpi_seen += 1
        if self.acpi_needed is not None and self.acpi_seen >= self.acpi_needed:
            self._state = VIR_SHUTOFF

    def destroy(self):
        self.destroyed = True
        self._state = VIR_SHUTOFF

    def undefineFlags(self, _flags):
        self.undefined = True

    def XMLDesc(self, _flags=0):
        return self.live_xml

    def createWithFlags(self, flags):
        self._state = VIR_PAUSED if flags & libvirt.VIR_DOMAIN_START_PAUSED else VIR_RUNNING

    def resume(self):
        self._state = VIR_RUNNING


def clocked_manager(conn, tmp_path, clock, **params):
    mgr = DomainManager(conn, DomainParams(uuid=UUID, instances_path=str(tmp_path), **params),
                        clock=clock, sleep=clock.sleep, sysfs=str(tmp_path / "sys"))
    mgr.result.name = "vm1"
    mgr.console_log = str(tmp_path / "console.log")
    return mgr


def test_a_guest_that_ignores_acpi_is_destroyed_after_the_timeout(conn, tmp_path):
    clock = FakeClock()
    dom = FakeDomain(acpi_needed=None)
    off = clocked_manager(conn, tmp_path, clock, shutdown_timeout=60,
                          retry_interval=10).power_off(dom)
    assert off.method == "destroy" and dom.destroyed
    assert off.acpi_requests == 6             # at 0, 10, 20, 30, 40, 50 s
    assert 60 <= off.seconds < 61
    assert "did not power off within 60" in off.reason


def test_acpi_is_resent_until_the_guest_listens(conn, tmp_path):
    clock = FakeClock()
    dom = FakeDomain(acpi_needed=3)           # the first two presses come too early
    off = clocked_manager(conn, tmp_path, clock, shutdown_timeout=60,
                          retry_interval=5).power_off(dom)
    assert (off.method, off.acpi_requests, dom.destroyed) == ("acpi", 3, False)
    assert 10 <= off.seconds <= 11


def test_paused_guests_and_a_zero_timeout_are_destroyed_at_once(conn, tmp_path):
    clock = FakeClock()
    paused = FakeDomain(state=VIR_PAUSED, acpi_needed=1)
    off = clocked_manager(conn, tmp_path, clock).power_off(paused)
    assert off.method == "destroy" and paused.acpi_seen == 0 and "paused" in off.reason
    running = FakeDomain(acpi_needed=1)
    off = clocked_manager(conn, tmp_path, clock, shutdown_timeout=0).power_off(running)
    assert off.method == "destroy" and running.acpi_seen == 0
    assert clocked_manager(conn, tmp_path, clock).power_off(
        FakeDomain(state=VIR_SHUTOFF)).method == "none"


LIVE_WITH_TAP = """<domain><devices><interface type='bridge'>
  <mac address='fa:16:3e:00:00:01'/><source bridge='br-a'/><target dev='tap1'/>
</interface></devices></domain>"""


def sysfs_device(root, name, master=None):
    path = root / "sys" / name
    path.mkdir(parents=True)
    (path / "flags").write_text("0x1003\n")
    if master:
        os.symlink("../" + master, str(path / "master"))


def test_vifs_that_never_plug_fail_the_start_and_undo_it(conn, tmp_path):
    clock = FakeClock()
    sysfs_device(tmp_path, "br-a")               # the bridge is there, the tap never is
    dom = FakeDomain(state=VIR_SHUTOFF, live_xml=LIVE_WITH_TAP)
    mgr = clocked_manager(conn, tmp_path, clock, vif_plugging_timeout=30)
    mgr._defined_now = True
    with pytest.raises(VirtopsError) as exc:
        mgr.start(dom)
    assert "VIFs of domain vm1 not plugged after 30s: tap1 does not exist" in exc.value.msg
    assert dom.destroyed and dom.undefined
    assert exc.value.details["cleanup"] == ["destroyed the domain", "undefined the domain"]
    assert 30 <= clock.now - 1000.0 < 31
    assert mgr.result.transitions[-1]["vm_state"] == "error"


def test_vifs_that_plug_late_are_waited_for(conn, tmp_path):
    clock = FakeClock()
    sysfs_device(tmp_path, "br-a")
    dom = FakeDomain(state=VIR_SHUTOFF, live_xml=LIVE_WITH_TAP)
    mgr = clocked_manager(conn, tmp_path, clock, vif_plugging_timeout=30)
    clock.at(4.2, lambda: sysfs_device(tmp_path, "tap1", master="br-a"))
    mgr.start(dom)
    assert dom.state()[0] == VIR_RUNNING and not dom.destroyed
    assert 4.2 <= mgr.result.timings["vif_wait"] <= 5
    assert mgr.result.vifs == [{"devname": "tap1", "bridge": "br-a", "mac": "fa:16:3e:00:00:01",
                                "problem": None}]


def test_a_filtered_port_is_waited_for_until_its_nftables_rules_are_in_force(conn, tmp_path):
    clock = FakeClock()
    sysfs_device(tmp_path, "br-a")
    sysfs_device(tmp_path, "tap1", master="br-a")
    port = Vif(id="p1", address="fa:16:3e:00:00:01", network_id="n", network_label="private",
               bridge="br-a", devname="tap1", port_filter=True)
    dom = FakeDomain(state=VIR_SHUTOFF, live_xml=LIVE_WITH_TAP)
    mgr = clocked_manager(conn, tmp_path, clock, vif_plugging_timeout=30,
                          network_info=[port.to_dict()])
    mgr.vif_host = FakeNftHost(FilterSnapshot())
    clock.at(2.5, lambda: setattr(mgr.vif_host, "filters", in_force(PortFilter.from_vif(port))))
    mgr.start(dom)
    assert dom.state()[0] == VIR_RUNNING
    assert 2.5 <= mgr.result.timings["vif_wait"] <= 3.5
    assert mgr.result.vifs[0]["problem"] is None


def test_not_fatal_vif_timeout_resumes_with_a_warning(conn, tmp_path):
    clock = FakeClock()
    dom = FakeDomain(state=VIR_SHUTOFF, live_xml=LIVE_WITH_TAP)
    mgr = clocked_manager(conn, tmp_path, clock, vif_plugging_timeout=3,
                          vif_plugging_is_fatal=False)
    mgr.start(dom)
    assert dom.state()[0] == VIR_RUNNING and not dom.destroyed
    assert any("vif_plugging_is_fatal is false" in w for w in mgr.result.warnings)


def test_console_wait_reads_only_what_this_boot_wrote(conn, tmp_path):
    log = tmp_path / "console.log"
    log.write_text("old boot: READY\n")
    clock = FakeClock()
    mgr = clocked_manager(conn, tmp_path, clock, wait_for_console=r"READY|login:",
                          console_timeout=20)
    offset = mgr._console_offset()
    clock.at(3, lambda: log.write_text(log.read_text() + "booting\nweb1 login: \n"))
    mgr._wait_for_console(offset)
    assert mgr.result.console_match == "login:"
    assert 3 <= mgr.result.timings["console"] <= 3.5
    with pytest.raises(VirtopsError) as exc:
        clocked_manager(conn, tmp_path, clock, wait_for_console="never",
                        console_timeout=2)._wait_for_console(0)
    assert "did not appear" in exc.value.msg and "login:" in exc.value.details["console_tail"]
