# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain lifecycle: define, start (paused until the VIFs are plugged), stop, reboot, delete.

Nova's ``_create_domain_and_network``, ``_clean_shutdown``, ``power_on``/``power_off``,
``reboot`` and ``destroy``/``cleanup`` for one instance, driven by a wanted ``state``.

- The definition comes from ``<instances_path>/<uuid>/libvirt.xml``. libvirt rewrites what it
  is given, so "did the file change" is answered by a SHA-256 of the file kept in the domain's
  own metadata (namespace :data:`FINGERPRINT_NS`), not by comparing XML texts.
- A start with VIFs goes paused first; the domain is resumed once every tap exists, is up and
  hangs off its bridge, which is up (our "network-vif-plugged"). When that does not happen
  within ``vif_plugging_timeout`` the domain is destroyed, what this run created is removed,
  and the start fails (``vif_plugging_is_fatal``).
- A clean power off sends the ACPI power button, re-sends it every ``retry_interval`` and
  destroys the domain after ``shutdown_timeout``; the result says which of the two happened.

Everything takes the libvirt connection, a clock and a sleep function, so the state machine
runs under unit tests on ``test:///default`` with a fake clock.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _libvirt
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import domains as _domains
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.events import EventSleep
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.domains import (
    POWER_STATE_NAMES, VIR_BLOCKED, VIR_CRASHED, VIR_PAUSED, VIR_PMSUSPENDED, VIR_RUNNING,
    VIR_SHUTOFF)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import etree, parse_xml
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import read_text
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome, rounded
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    CONSOLE_LOG, DEFAULT_INSTANCES_PATH, DOMAIN_XML, RECORD, RESIZE_SUFFIX, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_uuid
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    Vif, parse_network_info)
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER, valid_firewall_driver)
from ansible_collections.virtops.compute.plugins.module_utils._network.vif import (
    SYSFS_NET, ExpectedPort, HostNetwork, check_plugged, expected_filter, plug_vifs, port_problem,
    unfilter_devices, unplug_vifs)


FINGERPRINT_NS = "https://virtops.dev/xmlns/domain/1.0"
FINGERPRINT_PREFIX = "virtopsdom"
STATES = ("running", "paused", "stopped", "absent")
POLL_INTERVAL = 0.5          # Nova's _wait_for_boot and _wait_for_destroy poll at 0.5 s
CONSOLE_TAIL = 2000
# Interface types whose host device we can see and check before the guest runs.
VERIFIED_INTERFACE_TYPES = ("bridge", "network", "ethernet", "direct")
# Power states and their Nova names live in _libvirt.domains (POWER_STATE_NAMES, power_state).
VM_STATE_FOR = {"running": "active", "paused": "paused", "shutdown": "stopped",
                "crashed": "error", "suspended": "suspended", "pending": "building",
                "absent": "building"}


@dataclass(frozen=True)
class DomainParams:
    uuid: str
    state: str = "running"
    reboot: bool = False
    reboot_type: str = "soft"
    instances_path: str = DEFAULT_INSTANCES_PATH
    libvirt_uri: str = _libvirt.DEFAULT_URI
    network_info: Optional[list] = None
    nwfilter: str = DEFAULT_NWFILTER
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER
    vif_plugging_timeout: float = 300
    vif_plugging_is_fatal: bool = True
    shutdown_timeout: float = 60
    retry_interval: float = 10
    wait_for_console: Optional[str] = None
    console_timeout: float = 300

    def __post_init__(self):
        if self.state not in STATES:
            raise VirtopsError("state must be one of %s, not %r" % (", ".join(STATES), self.state))
        if self.reboot_type not in ("soft", "hard"):
            raise VirtopsError("reboot_type must be soft or hard, not %r" % self.reboot_type)
        if self.reboot and self.state != "running":
            raise VirtopsError("reboot needs state=running (a reboot leaves the guest running)")
        valid_firewall_driver(self.firewall_driver)
        for name in ("vif_plugging_timeout", "shutdown_timeout", "console_timeout"):
            if getattr(self, name) < 0:
                raise VirtopsError("%s must be 0 or more seconds" % name)
        if self.retry_interval <= 0:
            raise VirtopsError("retry_interval must be more than 0 seconds")
        if not os.path.isabs(self.instances_path):
            raise VirtopsError("instances_path must be absolute, got %r" % self.instances_path)
        if self.wait_for_console is not None:
            try:
                re.compile(self.wait_for_console)
            except re.error as exc:
                raise VirtopsError("wait_for_console is not a valid regular expression: %s" % exc)


@dataclass
class PowerOff:
    """How a guest was powered off."""
    method: str                 # acpi | destroy | none
    acpi_requests: int = 0
    seconds: float = 0.0
    reason: str = ""


@dataclass
class DomainResult(Outcome):
    """vm_domain's Outcome (changed, actions, timings) and what the module returns."""
    uuid: str = ""
    name: Optional[str] = None
    power_state: str = "absent"
    defined: bool = False
    definition_changed: bool = False
    restart_required: bool = False
    transitions: List[dict] = field(default_factory=list)
    power_off: Optional[dict] = None
    vifs: List[dict] = field(default_factory=list)
    console_match: Optional[str] = None
    spawn_seconds: Optional[float] = None
    warnings: List[str] = field(default_factory=list)
    xml_before: Optional[str] = None
    xml_after: Optional[str] = None

    def as_module_result(self) -> dict:
        data = asdict(self)
        for key in ("warnings", "xml_before", "xml_after"):
            data.pop(key)
        data["timings"] = rounded(self.timings)
        if self.spawn_seconds is not None:
            data["spawn_seconds"] = round(self.spawn_seconds, 2)
        return data


# --------------------------------------------------------------------------- XML helpers

def parse_domain_xml(text: str, source: str):
    root = parse_xml(text, source)
    if root.tag != "domain":
        raise VirtopsError("%s holds a <%s>, not a <domain>" % (source, root.tag))
    return root


def xml_identity(root, source: str):
    name = (root.findtext("name") or "").strip()
    uuid = (root.findtext("uuid") or "").strip().lower()
    if not name or not uuid:
        raise VirtopsError("%s must name the domain and give its uuid" % source)
    return name, uuid


def console_log_path(root, instance_dir: str) -> str:
    """Where the serial console is logged: <log file=...>, a file-type port, else console.log."""
    for serial in root.iterfind("devices/serial"):
        log = serial.find("log")
        if log is not None and log.get("file"):
            return log.get("file")
        source = serial.find("source")
        if serial.get("type") == "file" and source is not None and source.get("path"):
            return source.get("path")
    return os.path.join(instance_dir, CONSOLE_LOG)


def expected_ports(live_root, vifs: List[Vif],
                   firewall_driver: str = DEFAULT_FIREWALL_DRIVER) -> List[ExpectedPort]:
    """The host devices a running domain's interfaces should have, from its live XML.

    For bridged interfaces the bridge the port's network_info names wins over the XML's, so a
    definition that puts a port on the wrong bridge never counts as plugged. With the
    ``nftables`` driver a filtered port also needs its anti-spoofing rules.
    """
    by_mac = {v.address: v for v in vifs}
    ports = []
    for iface in live_root.iterfind("devices/interface"):
        kind = iface.get("type")
        target = iface.find("target")
        mac_el = iface.find("mac")
        mac = mac_el.get("address", "").lower() if mac_el is not None else None
        dev = target.get("dev") if target is not None else None
        source = iface.find("source")
        if kind not in VERIFIED_INTERFACE_TYPES:
            continue
        if not dev:
            ports.append(ExpectedPort(devname="(no device for %s)" % mac, mac=mac))
            continue
        bridge = None
        if kind in ("bridge", "network") and source is not None:
            bridge = source.get("bridge")
        vif = by_mac.get(mac)
        if vif is not None and vif.vif_type in ("bridge", "vlan", "vxlan") and vif.bridge:
            bridge = vif.bridge
        port_filter = expected_filter(vif, firewall_driver) if vif is not None else None
        if port_filter is not None and port_filter.devname != dev:
            port_filter = replace(port_filter, devname=dev)
        ports.append(ExpectedPort(devname=dev, bridge=bridge, mac=mac, port_filter=port_filter))
    return ports


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_record_network_info(instance_dir: str) -> Optional[list]:
    """network_info recorded in instance.json, if there is one."""
    path = os.path.join(instance_dir, RECORD)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VirtopsError("cannot read %s: %s" % (path, exc))
    value = record.get("network_info") if isinstance(record, dict) else None
    return value if isinstance(value, list) else None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- the manager

class DomainManager:
    """One instance's domain on one connection. ``ensure()`` does the work."""

    def __init__(self, conn, params: DomainParams, check_mode: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Optional[Callable[[float], None]] = None,
                 sysfs: str = SYSFS_NET, vif_host=None, plug: bool = True):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.clock = clock
        self.sysfs = sysfs
        self.vif_host = vif_host
        self.plug = plug
        self.uuid = validate_uuid(params.uuid)
        # Waits look at the state every POLL_INTERVAL; by default a lifecycle event of the
        # domain ends the sleep at once (_libvirt.events).
        self._events = EventSleep(conn, self.uuid) if sleep is None else None
        self.sleep = sleep or self._events
        self.instance_dir = InstanceLayout(os.path.normpath(params.instances_path)).instance_dir(
            self.uuid)
        self.result = DomainResult(uuid=self.uuid)
        self._started = clock()
        self._defined_now = False
        self._plugged_now = False
        self._vifs: Optional[List[Vif]] = None

    # -- small helpers -------------------------------------------------------------------
    @property
    def libvirt(self):
        return _libvirt.libvirt

    def _error(self, what: str, exc) -> VirtopsError:
        return VirtopsError("%s of domain %s failed: %s"
                            % (what, self.result.name or self.uuid, exc))

    def _act(self, description: str) -> None:
        self.result.act(description)

    def _time(self, phase: str, since: float) -> None:
        self.result.add_time(phase, self.clock() - since)

    def _transition(self, vm_state: str, task_state: Optional[str], power_state: str) -> None:
        self.result.transitions.append({"at": _now_iso(), "vm_state": vm_state,
                                        "task_state": task_state, "power_state": power_state})

    def vifs(self) -> List[Vif]:
        if self._vifs is None:
            info = self.params.network_info
            if info is None:
                info = read_record_network_info(self.instance_dir)
            self._vifs = parse_network_info(info)
        return self._vifs

    # -- definition ----------------------------------------------------------------------
    def _read_xml(self) -> Optional[str]:
        return read_text(os.path.join(self.instance_dir, DOMAIN_XML))

    def _stored_fingerprint(self, dom) -> Optional[str]:
        try:
            text = dom.metadata(self.libvirt.VIR_DOMAIN_METADATA_ELEMENT, FINGERPRINT_NS,
                                self.libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except self.libvirt.libvirtError as exc:
            if exc.get_error_code() == self.libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise self._error("reading the metadata", exc)
        try:
            return parse_xml(text, "the fingerprint metadata").get("sha256")
        except VirtopsError:
            return None

    def _inactive_xml(self, dom) -> str:
        try:
            return dom.XMLDesc(self.libvirt.VIR_DOMAIN_XML_INACTIVE)
        except self.libvirt.libvirtError as exc:
            raise self._error("reading the definition", exc)

    def ensure_defined(self, dom):
        """Define or redefine from libvirt.xml when it changed; return the domain (or None in
        check mode when it would be defined)."""
        path = os.path.join(self.instance_dir, DOMAIN_XML)
        text = self._read_xml()
        if text is None:
            if dom is None:
                raise VirtopsError(
                    "instance %s has no domain and no %s to define it from; write it with "
                    "virtops.compute.vm_xml first" % (self.uuid, path))
            self.result.warnings.append("%s is missing; the existing definition is kept" % path)
            self.result.name = dom.name()
            return dom
        root = parse_domain_xml(text, path)
        name, uuid = xml_identity(root, path)
        if uuid != self.uuid:
            raise VirtopsError("%s defines uuid %s, not the instance's %s" % (path, uuid, self.uuid))
        self.result.name = name
        self.console_log = console_log_path(root, self.instance_dir)
        if dom is not None and dom.name() != name:
            raise VirtopsError("domain %s is defined as %r, but %s names it %r; vm_domain does "
                               "not rename domains" % (self.uuid, dom.name(), path, name))
        other = _domains.find_domain(self.conn, name=name)
        if other is not None and other.UUIDString().lower() != self.uuid:
            raise VirtopsError("another domain named %r (uuid %s) is defined on this host"
                               % (name, other.UUIDString()))
        digest = fingerprint(text)
        if dom is not None and self._stored_fingerprint(dom) == digest:
            return dom
        started = self.clock()
        before = self._inactive_xml(dom) if dom is not None else ""
        self.result.definition_changed = True
        self._act("define domain %s from %s" % (name, path) if dom is None
                  else "redefine domain %s from the changed %s" % (name, path))
        if self.check_mode:
            self.result.xml_before, self.result.xml_after = before, text
            return dom
        try:
            new = self.conn.defineXMLFlags(text, self.libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        except self.libvirt.libvirtError as exc:
            raise VirtopsError("libvirt refused the definition in %s: %s" % (path, exc))
        self._defined_now = dom is None
        marker = etree.Element("{%s}source" % FINGERPRINT_NS, nsmap={None: FINGERPRINT_NS})
        marker.set("sha256", digest)
        marker.set("file", path)
        try:
            new.setMetadata(self.libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                            etree.tostring(marker, encoding="unicode"), FINGERPRINT_PREFIX,
                            FINGERPRINT_NS, self.libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except self.libvirt.libvirtError as exc:
            raise self._error("recording the definition's fingerprint", exc)
        self.result.xml_before, self.result.xml_after = before, self._inactive_xml(new)
        self._time("define", started)
        return new

    # -- VIFs ----------------------------------------------------------------------------
    def plug_vifs(self) -> None:
        vifs = self.vifs()
        if not vifs or not self.plug:
            return
        started = self.clock()
        plugged = plug_vifs(vifs, conn=self.conn, check_mode=self.check_mode,
                            nwfilter=self.params.nwfilter, host=self.vif_host,
                            firewall_driver=self.params.firewall_driver)
        self.result.warnings.extend(plugged.warnings)
        for action in plugged.actions:
            self._act(action)
        self._plugged_now = plugged.changed
        self._time("plug", started)

    def unplug_vifs(self) -> None:
        vifs = self.vifs()
        if not vifs or not self.plug:
            return
        started = self.clock()
        unplugged = unplug_vifs(vifs, check_mode=self.check_mode, host=self.vif_host)
        for action in unplugged.actions:
            self._act(action)
        self._time("unplug", started)

    def _wait_for_vifs(self, dom) -> None:
        """Poll until every port is plugged; on timeout destroy, clean up and fail (fatal)."""
        live = parse_domain_xml(dom.XMLDesc(0), "the live definition")
        ports = expected_ports(live, self.vifs(), self.params.firewall_driver)
        started = self.clock()
        deadline = started + self.params.vif_plugging_timeout
        problems = check_plugged(ports, self.sysfs, self._port_filters(ports))
        while problems and self.clock() < deadline:
            self.sleep(POLL_INTERVAL)
            problems = check_plugged(ports, self.sysfs, self._port_filters(ports))
        self._time("vif_wait", started)
        filters = self._port_filters(ports)
        self.result.vifs = [{"devname": p.devname, "bridge": p.bridge, "mac": p.mac,
                             "problem": port_problem(p, self.sysfs, filters)} for p in ports]
        if not problems:
            return
        message = ("VIFs of domain %s not plugged after %ss: %s"
                   % (self.result.name, self.params.vif_plugging_timeout, "; ".join(problems)))
        if not self.params.vif_plugging_is_fatal:
            self.result.warnings.append(message + " (vif_plugging_is_fatal is false: resumed "
                                                  "anyway)")
            return
        self._fail_start(dom, message, problems=problems)

    def _port_filters(self, ports: List[ExpectedPort]):
        """The anti-spoofing table, read only when a port should have rules in it."""
        if not any(p.port_filter is not None for p in ports):
            return None
        if self.vif_host is None:
            self.vif_host = HostNetwork()
        return self.vif_host.port_filters()

    def _fail_start(self, dom, message: str, **details) -> None:
        """Undo this run's start: destroy; undefine and unplug what this run made; raise."""
        cleanup = []
        try:
            if dom.isActive():
                dom.destroy()
                cleanup.append("destroyed the domain")
        except self.libvirt.libvirtError as exc:
            cleanup.append("destroy failed: %s" % exc)
        if self._defined_now:
            try:
                _domains.undefine(dom)
                cleanup.append("undefined the domain")
            except VirtopsError as exc:
                cleanup.append(exc.msg)
        if self._plugged_now:
            self.unplug_vifs()
            cleanup.append("unplugged the VIFs")
        self._transition("error", None, _domains.power_state(dom))
        raise VirtopsError(message, cleanup=cleanup, transitions=self.result.transitions,
                           **details)

    # -- power ---------------------------------------------------------------------------
    def _console_offset(self) -> int:
        try:
            return os.path.getsize(self.console_log)
        except OSError:
            return 0

    def start(self, dom, paused: bool = False, task_state: str = "powering-on") -> None:
        """Create the domain (paused while the VIFs are checked), resume, wait RUNNING."""
        if self._defined_now:
            self._transition("building", "spawning", "pending")
        else:
            current = _domains.power_state(dom)
            self._transition(VM_STATE_FOR[current], task_state, current)
        self._act("start domain %s%s" % (self.result.name, " paused" if paused else ""))
        if self.check_mode:
            return
        started = self.clock()
        offset = self._console_offset()
        verify = self.params.vif_plugging_timeout > 0 and any(
            iface.get("type") in VERIFIED_INTERFACE_TYPES
            for iface in parse_domain_xml(dom.XMLDesc(0), "the definition")
            .iterfind("devices/interface"))
        flags = self.libvirt.VIR_DOMAIN_START_PAUSED if verify or paused else 0
        try:
            dom.createWithFlags(flags)
        except self.libvirt.libvirtError as exc:
            if self._defined_now or self._plugged_now:
                self._fail_start(dom, "starting domain %s failed: %s" % (self.result.name, exc))
            raise self._error("starting", exc)
        self._time("create", started)
        if verify:
            self._wait_for_vifs(dom)
        if not paused:
            try:
                if dom.state()[0] == VIR_PAUSED:
                    dom.resume()
            except self.libvirt.libvirtError as exc:
                self._fail_start(dom, "resuming domain %s failed: %s" % (self.result.name, exc))
        self._wait_for_state(dom, VIR_PAUSED if paused else VIR_RUNNING)
        self.result.spawn_seconds = self.clock() - started
        if not paused and self.params.wait_for_console:
            self._wait_for_console(offset)
        final = "paused" if paused else "active"
        self._transition(final, None, _domains.power_state(dom))

    def _wait_for_state(self, dom, wanted: int) -> None:
        timeout = self.params.vif_plugging_timeout or 300
        deadline = self.clock() + timeout
        begun = self.clock()
        while True:
            state, reason = dom.state()
            if state == wanted or (wanted == VIR_RUNNING and state == VIR_BLOCKED):
                break
            if state in (VIR_SHUTOFF, VIR_CRASHED):
                self._fail_start(dom, "domain %s went %s (reason %d) while starting; see %s"
                                 % (self.result.name, POWER_STATE_NAMES[state], reason,
                                    self.console_log))
            if self.clock() >= deadline:
                self._fail_start(dom, "domain %s is not %s after %ss (it is %s)"
                                 % (self.result.name, POWER_STATE_NAMES[wanted], timeout,
                                    POWER_STATE_NAMES.get(state, state)))
            self.sleep(POLL_INTERVAL)
        self._time("boot", begun)

    def _wait_for_console(self, offset: int) -> None:
        pattern = re.compile(self.params.wait_for_console)
        started = self.clock()
        deadline = started + self.params.console_timeout
        text = ""
        while True:
            text = self._console_text(offset)
            match = pattern.search(text)
            if match:
                self.result.console_match = match.group(0)
                self._time("console", started)
                return
            if self.clock() >= deadline:
                self._time("console", started)
                raise VirtopsError(
                    "domain %s runs, but %r did not appear in %s within %ss; the guest is left "
                    "running" % (self.result.name, self.params.wait_for_console,
                                 self.console_log, self.params.console_timeout),
                    console_tail=text[-CONSOLE_TAIL:], transitions=self.result.transitions)
            self.sleep(POLL_INTERVAL)

    def _console_text(self, offset: int) -> str:
        try:
            with open(self.console_log, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(offset if size >= offset else 0)   # truncated: read it all
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def power_off(self, dom, timeout: Optional[float] = None) -> PowerOff:
        """Nova's _clean_shutdown then destroy: ACPI, re-sent every retry_interval."""
        timeout = self.params.shutdown_timeout if timeout is None else timeout
        state = dom.state()[0]
        if state == VIR_SHUTOFF:
            return PowerOff("none", reason="already shut off")
        started = self.clock()
        if state in (VIR_PAUSED, VIR_CRASHED, VIR_PMSUSPENDED) or timeout == 0:
            reason = ("shutdown_timeout is 0" if timeout == 0 else
                      "the domain was %s and cannot take an ACPI request"
                      % POWER_STATE_NAMES[state])
            self._destroy(dom)
            return PowerOff("destroy", 0, self.clock() - started, reason)
        requests = 0
        last = None
        deadline = started + timeout
        while self.clock() < deadline:
            if last is None or self.clock() - last >= self.params.retry_interval:
                try:
                    dom.shutdown()    # ACPI power button (or the guest agent), as Nova
                    requests += 1
                except self.libvirt.libvirtError:
                    if not dom.isActive():
                        break
                last = self.clock()
            self.sleep(POLL_INTERVAL)
            if not dom.isActive():
                break
        if not dom.isActive():
            return PowerOff("acpi", requests, self.clock() - started,
                            "the guest powered off after the ACPI power button")
        self._destroy(dom)
        return PowerOff("destroy", requests, self.clock() - started,
                        "the guest did not power off within %ss of ACPI requests" % timeout)

    def _destroy(self, dom) -> None:
        try:
            dom.destroy()
        except self.libvirt.libvirtError as exc:
            if dom.isActive():
                raise self._error("destroying", exc)

    def _record_power_off(self, off: PowerOff) -> None:
        self.result.power_off = asdict(off)
        self.result.power_off["seconds"] = round(off.seconds, 2)
        self.result.timings["power_off"] = off.seconds

    def stop(self, dom, task_state: str = "powering-off") -> None:
        current = _domains.power_state(dom)
        self._transition(VM_STATE_FOR[current], task_state, current)
        self._act("power off domain %s" % self.result.name)
        if self.check_mode:
            return
        self._record_power_off(self.power_off(dom))
        if task_state == "powering-off":
            self._transition("stopped", None, _domains.power_state(dom))

    # -- wanted states -------------------------------------------------------------------
    def ensure(self) -> DomainResult:
        try:
            if self.params.state == "absent":
                self.delete()
            else:
                self._ensure_present()
        finally:
            self.close()
        self.result.timings["total"] = self.clock() - self._started
        return self.result

    def close(self) -> None:
        """Stop listening to the domain's events (the connection stays the caller's)."""
        if self._events is not None:
            self._events.close()

    def _ensure_present(self) -> None:
        state = self.params.state
        self.console_log = os.path.join(self.instance_dir, CONSOLE_LOG)
        dom = _domains.find_domain(self.conn, uuid=self.uuid)
        dom = self.ensure_defined(dom)
        current = _domains.power_state(dom) if dom is not None else "absent"
        if state in ("running", "paused"):
            self.plug_vifs()
        if dom is None:
            # Check mode and a domain that would be defined now.
            if state in ("running", "paused"):
                self._act("start domain %s%s" % (self.result.name,
                                                 " paused" if state == "paused" else ""))
            self.result.power_state = "absent"
            return
        # A domain that stays up keeps the definition it was started with.
        stale = self.result.definition_changed and current != "shutdown"
        if state == "running":
            if self.params.reboot:
                self.reboot(dom, current)
            elif current == "paused":
                self._resume(dom)
            elif current in ("crashed",):
                self.stop(dom, task_state="powering-off")
                self.start(dom)
            elif current == "suspended":
                self._act("wake up domain %s" % self.result.name)
                if not self.check_mode:
                    try:
                        dom.pMWakeup()
                    except self.libvirt.libvirtError as exc:
                        raise self._error("waking up", exc)
            elif current != "running":
                self.start(dom)
        elif state == "paused":
            if current == "running":
                self._transition("active", "pausing", current)
                self._act("pause domain %s" % self.result.name)
                if not self.check_mode:
                    try:
                        dom.suspend()
                    except self.libvirt.libvirtError as exc:
                        raise self._error("pausing", exc)
                    self._transition("paused", None, _domains.power_state(dom))
            elif current != "paused":
                self.start(dom, paused=True)
        elif state == "stopped" and current != "shutdown":
            self.stop(dom)
        self.result.defined = True
        self.result.power_state = _domains.power_state(dom) if not self.check_mode else {
            "running": "running", "paused": "paused", "stopped": "shutdown"}[state]
        restarted = any(a.startswith("start domain") for a in self.result.actions)
        if stale and not restarted and self.result.power_state != "shutdown":
            self.result.restart_required = True
            self.result.warnings.append(
                "domain %s runs with its previous definition; the changed %s takes effect at "
                "its next start (stop and start it, or reboot it)" % (self.result.name, DOMAIN_XML))

    def _resume(self, dom) -> None:
        self._transition("paused", "unpausing", "paused")
        self._act("resume domain %s" % self.result.name)
        if self.check_mode:
            return
        try:
            dom.resume()
        except self.libvirt.libvirtError as exc:
            raise self._error("resuming", exc)
        self._transition("active", None, _domains.power_state(dom))

    def reboot(self, dom, current: str) -> None:
        if current == "shutdown":
            self.result.warnings.append("domain %s was shut off; reboot started it"
                                        % self.result.name)
            self.start(dom)
            return
        self._transition(VM_STATE_FOR[current], "rebooting" if self.params.reboot_type == "soft"
                         else "rebooting_hard", current)
        if self.params.reboot_type == "hard":
            self._act("destroy domain %s (hard reboot)" % self.result.name)
            if not self.check_mode:
                started = self.clock()
                self._destroy(dom)
                self._record_power_off(PowerOff("destroy", 0, self.clock() - started,
                                                "hard reboot"))
        else:
            self._act("power off domain %s cleanly (soft reboot)" % self.result.name)
            if not self.check_mode:
                self._record_power_off(self.power_off(dom))
        self.start(dom, task_state="reboot_started")

    def delete(self) -> None:
        dom = _domains.find_domain(self.conn, uuid=self.uuid)
        # Read before the directory goes: instance.json knows the ports. A broken record must
        # not keep a deleted instance alive.
        try:
            self.vifs()
        except VirtopsError as exc:
            self.result.warnings.append("VIFs not unplugged: %s" % exc.msg)
            self._vifs = []
        devices: List[str] = []
        if dom is not None:
            self.result.name = dom.name()
            if not self._vifs and self.plug:
                # No ports known: the taps the definition names may still have rules of ours.
                definition = parse_domain_xml(dom.XMLDesc(0), "the definition")
                devices = [str(dev) for dev in definition.xpath("devices/interface/target/@dev")]
            current = _domains.power_state(dom)
            self._transition(VM_STATE_FOR[current], "deleting", current)
            if current != "shutdown":
                self._act("destroy domain %s" % self.result.name)
                if not self.check_mode:
                    started = self.clock()
                    self._destroy(dom)
                    self._record_power_off(PowerOff("destroy", 0, self.clock() - started,
                                                    "delete"))
            self._act("undefine domain %s" % self.result.name)
            if not self.check_mode:
                started = self.clock()
                _domains.undefine(dom)
                self._time("undefine", started)
        self.unplug_vifs()
        if devices:
            unfiltered = unfilter_devices(devices, check_mode=self.check_mode, host=self.vif_host)
            for action in unfiltered.actions:
                self._act(action)
        base = os.path.normpath(self.params.instances_path)
        for suffix in ("", RESIZE_SUFFIX, "_del"):
            path = os.path.join(base, self.uuid + suffix)
            if os.path.lexists(path):
                self._act("remove %s" % path)
                if not self.check_mode:
                    started = self.clock()
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                    self._time("remove", started)
        if self.result.changed and not self.check_mode:
            self._transition("deleted", None, "absent")
        self.result.power_state = "absent"
        self.result.defined = False


def ensure_domain(params: DomainParams, check_mode: bool = False) -> DomainResult:
    with _libvirt.connect(params.libvirt_uri) as conn:
        return DomainManager(conn, params, check_mode=check_mode).ensure()
