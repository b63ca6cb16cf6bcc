# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build of one instance on its host, in one process: Nova's ``_build_and_run_instance``.

Nova's compute manager builds an instance in one process, one step after the other: the
resource claim (``instance_claim``), task_state ``spawning``, the driver's ``spawn``
(``_create_image``, ``plug_vifs``, ``_get_guest_xml``, ``_create_guest_with_network``, which
waits for the guest to run) and ``vm_state=active``. ``build_instance`` runs the same steps with
the same parts the single-purpose modules use (``instance``, ``create_image``, ``vif``,
``domain_xml``, ``domain``), so a playbook pays one module start-up instead of seven.

Every failure names its step (``claim``, ``image``, ``vif``, ``xml``, ``domain``) in
:class:`BuildStepFailed`; what the build made is left for the caller's cleanup, which also
releases the claim (the boot role's rescue, as Nova's ``_cleanup_allocated_networks`` and
``_shutdown_instance`` run before a reschedule). Check mode checks the claim and stops there,
as the boot role always has: nothing after it can be decided without the image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome, rounded
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB
from ansible_collections.virtops.compute.plugins.module_utils._compute import instance as _instance
from ansible_collections.virtops.compute.plugins.module_utils._compute.capacity import host_capacity
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
    VmImageParams, ensure_present, rbd_cli_for)
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    DomainManager, DomainParams)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import (
    VmXmlParams, ensure_libvirt_xml)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _libvirt
from ansible_collections.virtops.compute.plugins.module_utils._model.console import (
    DEFAULT_VNC_LISTEN, valid_vnc_listen)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import IMAGE_KEYS, IMAGE_REF_KEYS
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import HostStorage
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR)
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info)
from ansible_collections.virtops.compute.plugins.module_utils._network.vif import plug_vifs
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    RecordStore)

STEPS = ("claim", "image", "vif", "xml", "domain")
# The instance's own fields as the claim, the image step and the definition take them.
CLAIM_KEYS = ("uuid", "name", "host", "availability_zone", "server_group", "metadata",
              "key_name", "launch_index")
METADATA_KEYS = ("uuid", "name", "launch_index", "availability_zone", "metadata")


@dataclass(frozen=True)
class BuildParams:
    """vm_build's parameters: what vm_instance, vm_image, vm_vif, vm_xml and vm_domain take."""
    instance: dict
    flavor: dict
    image: dict
    limits: Optional[dict] = None
    kernel: Optional[dict] = None
    ramdisk: Optional[dict] = None
    network_info: List[dict] = field(default_factory=list)
    # The image and disks (vm_image).
    backend: str = "qcow2"
    rbd: Optional[dict] = None          # images_type rbd: pool, ceph_conf, user, secret_uuid
    force_raw: bool = True
    config_drive: bool = False
    config_drive_format: str = "iso9660"
    user_data: Optional[str] = field(default=None, repr=False)
    admin_pass: Optional[str] = field(default=None, repr=False)
    keypairs: List[dict] = field(default_factory=list)
    virt_type: str = "auto"
    download_timeout: float = 60.0
    download_max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    image_roots: List[str] = field(default_factory=list)
    # The claim (vm_instance; Nova's resource tracker).
    reserved_host_memory_mb: int = 512
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    # The VIFs and the domain (vm_vif, vm_xml, vm_domain).
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER
    nwfilter: str = DEFAULT_NWFILTER
    vnc_listen: str = DEFAULT_VNC_LISTEN      # Nova's [vnc] server_listen (virtops_vnc_listen)
    vif_plugging_timeout: float = 300
    vif_plugging_is_fatal: bool = True
    wait_for_console: Optional[str] = None
    console_timeout: float = 300
    instances_path: str = DEFAULT_INSTANCES_PATH
    state_dir: str = DEFAULT_STATE_DIR
    libvirt_uri: str = _libvirt.DEFAULT_URI

    def __post_init__(self):
        # Refused before the claim: a host whose console address or storage settings are
        # wrong builds nothing.
        valid_vnc_listen(self.vnc_listen)
        HostStorage.from_values(self.backend, self.rbd)

    @property
    def uuid(self) -> str:
        return str(self.instance.get("uuid") or "")


def params_of_image(params: BuildParams) -> VmImageParams:
    """The storage settings of a build, as the image step takes them."""
    return VmImageParams(backend=params.backend, rbd=params.rbd)


class BuildStepFailed(Exception):
    """A build step failed: ``step`` is one of STEPS, ``error`` the VirtopsError or OSError."""

    def __init__(self, step: str, error: Exception):
        super().__init__("%s: %s" % (step, error))
        self.step = step
        self.error = error


@dataclass
class BuildResult(Outcome):
    """What the build did (``Outcome``: changed, actions, timings per step)."""
    uuid: str = ""
    name: Optional[str] = None
    checked_only: bool = False
    msg: str = ""
    power_state: str = "absent"
    spawn_seconds: Optional[float] = None
    console_match: Optional[str] = None
    image_base: Optional[str] = None
    instance_dir: Optional[str] = None
    record: Optional[dict] = None
    warnings: List[str] = field(default_factory=list)
    steps: Dict[str, dict] = field(default_factory=dict)

    def absorb(self, step: str, outcome: Outcome, **facts) -> None:
        """Add a step's Outcome: its actions, its changed, its time under the step's name."""
        for action in outcome.actions:
            self.act(action)
        self.changed |= outcome.changed
        self.steps[step] = dict(changed=outcome.changed, **facts)

    def as_module_result(self) -> dict:
        return {"changed": self.changed, "msg": self.msg, "uuid": self.uuid, "name": self.name,
                "checked_only": self.checked_only, "power_state": self.power_state,
                "spawn_seconds": None if self.spawn_seconds is None else round(self.spawn_seconds, 2),
                "console_match": self.console_match, "image_base": self.image_base,
                "instance_dir": self.instance_dir, "instance": self.record,
                "actions": self.actions, "steps": self.steps, "timings": rounded(self.timings)}


class Builder:
    """One build; ``run()`` does it. Connection, clock and sleep are injected for tests."""

    def __init__(self, params: BuildParams, check_mode: bool = False, conn=None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Optional[Callable[[float], None]] = None):
        self.p = params
        self.check_mode = check_mode
        self.conn = conn
        self.clock = clock
        self.sleep = sleep
        self.store = RecordStore(params.instances_path)
        self.result = BuildResult(uuid=params.uuid, name=params.instance.get("name"))
        self.step = STEPS[0]

    def run(self) -> BuildResult:
        began = self.clock()
        try:
            record = self._claim()
            if not self.check_mode:
                image = self._image()
                self._plug()
                self._definition(image)
                self._start()
                self._activate(record, image)
                self.result.msg = "built" if self.result.changed else "already built"
        except (VirtopsError, OSError) as exc:
            raise BuildStepFailed(self.step, exc)
        except _libvirt.libvirt.libvirtError as exc:
            # A libvirtd that went away mid-build (the parts report their own libvirt errors).
            raise BuildStepFailed(self.step, VirtopsError("libvirt failed during the %s step: %s"
                                                          % (self.step, exc)))
        self.result.timings["total"] = self.clock() - began
        return self.result

    def _begin(self, step: str) -> float:
        self.step = step
        return self.clock()

    def _end(self, step: str, began: float) -> None:
        self.result.add_time(step, self.clock() - began)

    # -- the steps ---------------------------------------------------------------------
    def _claim(self):
        began = self._begin("claim")
        p = self.p
        capacity = host_capacity(p.instances_path, p.reserved_host_memory_mb,
                                 p.cpu_allocation_ratio, p.ram_allocation_ratio,
                                 p.disk_allocation_ratio)
        if p.backend == "rbd" and not (p.limits or {}).get("disk_gb"):
            # Without the scheduler's limits the disk is the pool's, as the host facts say.
            room = rbd_cli_for(params_of_image(p)).pool_capacity()
            capacity = replace(capacity, local_gb=room.total_bytes // GIB)
        fields = {key: p.instance.get(key) for key in CLAIM_KEYS}
        fields.update(flavor=p.flavor, image=p.image, limits=p.limits, network_info=p.network_info)
        claimed = _instance.claim(self.store, capacity, fields, self.check_mode)
        self.result.absorb("claim", claimed, msg=claimed.msg)
        record = claimed.record
        self.result.checked_only = self.check_mode
        self.result.msg = claimed.msg
        if not self.check_mode and record.vm_state == "building":
            # Nova's task_state spawning: the record says the host is at work on it.
            if _instance.update(self.store, record, {"task_state": "spawning"}, False):
                self.result.act("record task_state spawning")
        self.result.record = record.to_dict()
        self._end("claim", began)
        return record

    def _image(self):
        began = self._begin("image")
        p = self.p
        params = VmImageParams(
            instance={key: p.instance.get(key) for key in METADATA_KEYS},
            image={key: p.image[key] for key in IMAGE_KEYS if key in p.image},
            flavor=p.flavor, kernel=p.kernel, ramdisk=p.ramdisk, backend=p.backend, rbd=p.rbd,
            force_raw=p.force_raw, config_drive=p.config_drive,
            config_drive_format=p.config_drive_format, user_data=p.user_data,
            admin_pass=p.admin_pass, keypairs=list(p.keypairs),
            network_info=list(p.network_info), virt_type=p.virt_type, state_dir=p.state_dir,
            download_timeout=p.download_timeout, download_max_bytes=p.download_max_bytes,
            image_roots=list(p.image_roots), instances_path=p.instances_path,
            libvirt_uri=p.libvirt_uri)
        image = ensure_present(params)
        self.result.instance_dir = image.instance_dir
        self.result.image_base = (image.base or {}).get("path")
        self.result.absorb("image", image, base=self.result.image_base,
                           virt_type=image.virt_type, timings=image.rounded_timings())
        self._end("image", began)
        return image

    def _plug(self) -> None:
        if not self.p.network_info:
            return
        began = self._begin("vif")
        plugged = plug_vifs(parse_network_info(self.p.network_info), conn=self.conn,
                            nwfilter=self.p.nwfilter, firewall_driver=self.p.firewall_driver)
        self.result.warnings.extend(plugged.warnings)
        self.result.absorb("vif", plugged)
        self._end("vif", began)

    def _definition(self, image) -> None:
        began = self._begin("xml")
        p = self.p
        params = VmXmlParams(
            instance={"uuid": p.uuid, "name": p.instance.get("name")}, flavor=p.flavor,
            image={key: p.image[key] for key in IMAGE_REF_KEYS if key in p.image},
            network_info=list(p.network_info), disk_info=image.disk_info,
            disk_formats=image.disk_formats, instances_path=p.instances_path,
            virt_type=image.virt_type or "auto", state_dir=p.state_dir,
            libvirt_uri=p.libvirt_uri, vnc_listen=p.vnc_listen, nwfilter=p.nwfilter,
            firewall_driver=p.firewall_driver, rbd=p.rbd,
            rbd_monitors=rbd_cli_for(params_of_image(p)).monitors() if p.backend == "rbd" else [])
        written = ensure_libvirt_xml(params)
        self.result.absorb("xml", written, path=written.path)
        self._end("xml", began)

    def _start(self) -> None:
        began = self._begin("domain")
        p = self.p
        params = DomainParams(
            uuid=p.uuid, state="running", instances_path=p.instances_path,
            libvirt_uri=p.libvirt_uri, network_info=list(p.network_info), nwfilter=p.nwfilter,
            firewall_driver=p.firewall_driver,
            vif_plugging_timeout=p.vif_plugging_timeout,
            vif_plugging_is_fatal=p.vif_plugging_is_fatal,
            wait_for_console=p.wait_for_console or None, console_timeout=p.console_timeout)
        manager = DomainManager(self.conn, params, clock=self.clock, sleep=self.sleep, plug=False)
        domain = manager.ensure()
        self.result.warnings.extend(domain.warnings)
        self.result.power_state = domain.power_state
        self.result.spawn_seconds = domain.spawn_seconds
        self.result.console_match = domain.console_match
        self.result.absorb("domain", domain, power_state=domain.power_state,
                           timings=domain.rounded_timings())
        self._end("domain", began)

    def _activate(self, record, image) -> None:
        began = self._begin("domain")
        changes = {"vm_state": "active", "clear_task_state": True,
                   "image_base": self.result.image_base}
        current = self.store.load(record.uuid) or record
        if _instance.update(self.store, current, changes, False):
            self.result.act("record vm_state active")
        self.result.record = current.to_dict()
        self._end("domain", began)


def build_instance(params: BuildParams, check_mode: bool = False) -> BuildResult:
    """Build (or, when it is built, check) one instance on this host; see the module docs."""
    with _libvirt.connect(params.libvirt_uri, read_only=check_mode) as conn:
        return Builder(params, check_mode=check_mode, conn=conn).run()
