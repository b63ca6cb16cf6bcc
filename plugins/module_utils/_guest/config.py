# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed libvirt domain configuration: one small class per XML element.

Nova's ``config.py`` pattern: every class formats itself to an lxml element with
``format_dom()`` and reads one back with the classmethod ``parse_dom(el)``, so that
``Cls.parse_dom(obj.format_dom()) == obj``. Attributes default to None and are emitted only
when set; children are emitted in a fixed order, so the same object always gives the same
bytes. No decisions live here (that is ``_guest_designer``) and no XML is built from strings.

``parse_dom`` reads what ``format_dom`` writes and ignores what it does not know (libvirt's
own additions such as ``<address>`` or ``<alias>``), so a live definition can be read too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Optional, Tuple


from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import etree, parse_xml

VIRTOPS_NS = "https://virtops.dev/xmlns/compute/1.0"
VIRTOPS_PREFIX = "virtops"


# --- small helpers -------------------------------------------------------------------------

def _str(value) -> str:
    if isinstance(value, bool):
        raise TypeError("booleans need an explicit yes/no or on/off spelling")
    return str(value)


def _node(tag: str, text=None, **attrs):
    """A new element; attributes whose value is None are left out, in the given order."""
    el = etree.Element(tag)
    for key, value in attrs.items():
        if value is not None:
            el.set(key.rstrip("_"), _str(value))
    if text is not None:
        el.text = _str(text)
    return el


def _sub(parent, tag: str, text=None, **attrs):
    el = _node(tag, text, **attrs)
    parent.append(el)
    return el


def _int(value) -> Optional[int]:
    return None if value is None else int(value)


def _yesno(value: Optional[bool], yes: str = "yes", no: str = "no") -> Optional[str]:
    if value is None:
        return None
    return yes if value else no


def _parse_bool(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    return value.lower() in ("yes", "on", "true", "1")


def _vtag(name: str) -> str:
    return "{%s}%s" % (VIRTOPS_NS, name)


def _vnode(tag: str, text=None, **attrs):
    # Every node names the prefix; lxml declares it only where a parent has not already.
    el = etree.Element(_vtag(tag), nsmap={VIRTOPS_PREFIX: VIRTOPS_NS})
    for key, value in attrs.items():
        if value is not None:
            el.set(key, _str(value))
    if text is not None:
        el.text = _str(text)
    return el


def _vsub(parent, tag: str, text=None, **attrs):
    el = _vnode(tag, text, **attrs)
    parent.append(el)
    return el


def _vtext(el, tag: str) -> Optional[str]:
    child = el.find(_vtag(tag))
    return None if child is None else child.text


class ConfigObject:
    """Base of every element class: serialisation helpers shared by all."""

    root_name: ClassVar[str] = ""

    def format_dom(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def parse_dom(cls, el):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_xml(self, pretty_print: bool = True) -> str:
        return etree.tostring(self.format_dom(), pretty_print=pretty_print, encoding="unicode")

    @classmethod
    def from_xml(cls, text: str):
        # A document from disk or libvirt is data, not a program: the safe parser.
        root = parse_xml(text, "%s XML" % (cls.root_name or "domain"), remove_blank_text=True)
        if root.tag != cls.root_name:
            raise VirtopsError("expected a <%s> element, found <%s>" % (cls.root_name, root.tag))
        return cls.parse_dom(root)


# --- metadata in our namespace ------------------------------------------------------------

@dataclass
class GuestMetaFlavor(ConfigObject):
    root_name: ClassVar[str] = _vtag("flavor")
    name: Optional[str] = None
    memory: Optional[int] = None      # MiB
    disk: Optional[int] = None        # GiB
    swap: Optional[int] = None        # MiB
    ephemeral: Optional[int] = None   # GiB
    vcpus: Optional[int] = None

    def format_dom(self):
        el = _vnode("flavor", name=self.name)
        for tag in ("memory", "disk", "swap", "ephemeral", "vcpus"):
            value = getattr(self, tag)
            if value is not None:
                _vsub(el, tag, value)
        return el

    @classmethod
    def parse_dom(cls, el):
        return cls(name=el.get("name"),
                   **{tag: _int(_vtext(el, tag))
                      for tag in ("memory", "disk", "swap", "ephemeral", "vcpus")})


@dataclass
class GuestMetaOwner(ConfigObject):
    root_name: ClassVar[str] = _vtag("owner")
    user: Optional[str] = None
    project: Optional[str] = None

    def format_dom(self):
        el = _vnode("owner")
        if self.user is not None:
            _vsub(el, "user", self.user)
        if self.project is not None:
            _vsub(el, "project", self.project)
        return el

    @classmethod
    def parse_dom(cls, el):
        return cls(user=_vtext(el, "user"), project=_vtext(el, "project"))


@dataclass
class GuestMetaImage(ConfigObject):
    root_name: ClassVar[str] = _vtag("image")
    id: Optional[str] = None
    name: Optional[str] = None

    def format_dom(self):
        return _vnode("image", id=self.id, name=self.name)

    @classmethod
    def parse_dom(cls, el):
        return cls(id=el.get("id"), name=el.get("name"))


@dataclass
class GuestMetaIP(ConfigObject):
    root_name: ClassVar[str] = _vtag("ip")
    address: Optional[str] = None
    version: Optional[int] = None
    type: Optional[str] = "fixed"

    def format_dom(self):
        return _vnode("ip", type=self.type, address=self.address, ipVersion=self.version)

    @classmethod
    def parse_dom(cls, el):
        return cls(address=el.get("address"), version=_int(el.get("ipVersion")),
                   type=el.get("type"))


@dataclass
class GuestMetaPort(ConfigObject):
    """A port and its MAC: the MAC is recorded so a redefinition can keep it stable."""
    root_name: ClassVar[str] = _vtag("port")
    id: Optional[str] = None
    mac: Optional[str] = None
    ips: List[GuestMetaIP] = field(default_factory=list)

    def format_dom(self):
        el = _vnode("port", id=self.id, mac=self.mac)
        for ip in self.ips:
            el.append(ip.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        return cls(id=el.get("id"), mac=el.get("mac"),
                   ips=[GuestMetaIP.parse_dom(c) for c in el.findall(_vtag("ip"))])


@dataclass
class GuestMetaInstance(ConfigObject):
    """``<virtops:instance>``: what ``virsh dumpxml`` should tell an operator."""
    root_name: ClassVar[str] = _vtag("instance")
    name: Optional[str] = None
    hostname: Optional[str] = None
    creation_time: Optional[str] = None
    flavor: Optional[GuestMetaFlavor] = None
    owner: Optional[GuestMetaOwner] = None
    image: Optional[GuestMetaImage] = None
    ports: List[GuestMetaPort] = field(default_factory=list)

    def format_dom(self):
        el = _vnode("instance")
        if self.name is not None:
            _vsub(el, "name", self.name)
        if self.hostname is not None:
            _vsub(el, "hostname", self.hostname)
        if self.creation_time is not None:
            _vsub(el, "creationTime", self.creation_time)
        for part in (self.flavor, self.owner, self.image):
            if part is not None:
                el.append(part.format_dom())
        ports = _vsub(el, "ports")
        for port in self.ports:
            ports.append(port.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        def one(klass):
            child = el.find(klass.root_name)
            return None if child is None else klass.parse_dom(child)
        ports_el = el.find(_vtag("ports"))
        ports = [] if ports_el is None else [GuestMetaPort.parse_dom(p)
                                             for p in ports_el.findall(_vtag("port"))]
        return cls(name=_vtext(el, "name"), hostname=_vtext(el, "hostname"),
                   creation_time=_vtext(el, "creationTime"), flavor=one(GuestMetaFlavor),
                   owner=one(GuestMetaOwner), image=one(GuestMetaImage), ports=ports)


# --- sysinfo, os, features, clock, cpu ----------------------------------------------------

@dataclass
class GuestSysinfo(ConfigObject):
    """``<sysinfo type='smbios'>`` system entries, shown to the guest as DMI/SMBIOS."""
    root_name: ClassVar[str] = "sysinfo"
    ENTRIES: ClassVar[Tuple[str, ...]] = ("manufacturer", "product", "version", "serial",
                                          "uuid", "family")
    manufacturer: Optional[str] = None
    product: Optional[str] = None
    version: Optional[str] = None
    serial: Optional[str] = None
    uuid: Optional[str] = None
    family: Optional[str] = None

    def format_dom(self):
        el = _node("sysinfo", type="smbios")
        system = _sub(el, "system")
        for name in self.ENTRIES:
            value = getattr(self, name)
            if value is not None:
                _sub(system, "entry", value, name=name)
        return el

    @classmethod
    def parse_dom(cls, el):
        values = {e.get("name"): e.text for e in el.findall("system/entry")}
        return cls(**{name: values.get(name) for name in cls.ENTRIES})


@dataclass
class GuestOSLoader(ConfigObject):
    root_name: ClassVar[str] = "loader"
    path: Optional[str] = None
    type: Optional[str] = None       # rom | pflash
    readonly: Optional[bool] = None
    secure: Optional[bool] = None

    def format_dom(self):
        return _node("loader", self.path, readonly=_yesno(self.readonly),
                     secure=_yesno(self.secure), type=self.type)

    @classmethod
    def parse_dom(cls, el):
        return cls(path=el.text, type=el.get("type"), readonly=_parse_bool(el.get("readonly")),
                   secure=_parse_bool(el.get("secure")))


@dataclass
class GuestOSNvram(ConfigObject):
    root_name: ClassVar[str] = "nvram"
    path: Optional[str] = None
    template: Optional[str] = None

    def format_dom(self):
        return _node("nvram", self.path, template=self.template)

    @classmethod
    def parse_dom(cls, el):
        return cls(path=el.text, template=el.get("template"))


@dataclass
class GuestOS(ConfigObject):
    root_name: ClassVar[str] = "os"
    type: str = "hvm"
    arch: Optional[str] = None
    machine: Optional[str] = None
    loader: Optional[GuestOSLoader] = None
    nvram: Optional[GuestOSNvram] = None
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None
    boot_devs: List[str] = field(default_factory=list)
    smbios_mode: Optional[str] = None

    def format_dom(self):
        el = _node("os")
        _sub(el, "type", self.type, arch=self.arch, machine=self.machine)
        if self.loader is not None:
            el.append(self.loader.format_dom())
        if self.nvram is not None:
            el.append(self.nvram.format_dom())
        for tag in ("kernel", "initrd", "cmdline"):
            value = getattr(self, tag)
            if value is not None:
                _sub(el, tag, value)
        for dev in self.boot_devs:
            _sub(el, "boot", dev=dev)
        if self.smbios_mode is not None:
            _sub(el, "smbios", mode=self.smbios_mode)
        return el

    @classmethod
    def parse_dom(cls, el):
        type_el = el.find("type")
        loader = el.find("loader")
        nvram = el.find("nvram")
        smbios = el.find("smbios")
        return cls(
            type=type_el.text if type_el is not None else "hvm",
            arch=type_el.get("arch") if type_el is not None else None,
            machine=type_el.get("machine") if type_el is not None else None,
            loader=GuestOSLoader.parse_dom(loader) if loader is not None else None,
            nvram=GuestOSNvram.parse_dom(nvram) if nvram is not None else None,
            kernel=el.findtext("kernel"), initrd=el.findtext("initrd"),
            cmdline=el.findtext("cmdline"),
            boot_devs=[b.get("dev") for b in el.findall("boot")],
            smbios_mode=smbios.get("mode") if smbios is not None else None)


@dataclass
class GuestHyperVFeature(ConfigObject):
    root_name: ClassVar[str] = "hyperv-feature"   # the element name is the feature name
    name: str = ""
    state: bool = True
    retries: Optional[int] = None

    def format_dom(self):
        return _node(self.name, state=_yesno(self.state, "on", "off"), retries=self.retries)

    @classmethod
    def parse_dom(cls, el):
        return cls(name=el.tag, state=_parse_bool(el.get("state")) is not False,
                   retries=_int(el.get("retries")))


@dataclass
class GuestFeatures(ConfigObject):
    """``<features>``: plain flags (acpi, apic, ...) and the Hyper-V enlightenments."""
    root_name: ClassVar[str] = "features"
    flags: List[str] = field(default_factory=list)
    hyperv: List[GuestHyperVFeature] = field(default_factory=list)

    def format_dom(self):
        el = _node("features")
        for flag in self.flags:
            _sub(el, flag)
        if self.hyperv:
            hv = _sub(el, "hyperv")
            for feature in self.hyperv:
                hv.append(feature.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        flags, hyperv = [], []
        for child in el:
            if not isinstance(child.tag, str):
                continue
            if child.tag == "hyperv":
                hyperv = [GuestHyperVFeature.parse_dom(c) for c in child
                          if isinstance(c.tag, str)]
            else:
                flags.append(child.tag)
        return cls(flags=flags, hyperv=hyperv)


@dataclass
class GuestTimer(ConfigObject):
    root_name: ClassVar[str] = "timer"
    name: str = ""
    tickpolicy: Optional[str] = None
    present: Optional[bool] = None

    def format_dom(self):
        return _node("timer", name=self.name, tickpolicy=self.tickpolicy,
                     present=_yesno(self.present))

    @classmethod
    def parse_dom(cls, el):
        return cls(name=el.get("name"), tickpolicy=el.get("tickpolicy"),
                   present=_parse_bool(el.get("present")))


@dataclass
class GuestClock(ConfigObject):
    root_name: ClassVar[str] = "clock"
    offset: str = "utc"
    timers: List[GuestTimer] = field(default_factory=list)

    def format_dom(self):
        el = _node("clock", offset=self.offset)
        for timer in self.timers:
            el.append(timer.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        return cls(offset=el.get("offset"),
                   timers=[GuestTimer.parse_dom(t) for t in el.findall("timer")])


@dataclass
class GuestCPUTopology(ConfigObject):
    root_name: ClassVar[str] = "topology"
    sockets: int = 1
    cores: int = 1
    threads: int = 1

    def format_dom(self):
        return _node("topology", sockets=self.sockets, cores=self.cores, threads=self.threads)

    @classmethod
    def parse_dom(cls, el):
        return cls(sockets=int(el.get("sockets", 1)), cores=int(el.get("cores", 1)),
                   threads=int(el.get("threads", 1)))


@dataclass
class GuestCPU(ConfigObject):
    root_name: ClassVar[str] = "cpu"
    mode: Optional[str] = None        # host-model | host-passthrough | custom
    match: Optional[str] = None
    model: Optional[str] = None
    topology: Optional[GuestCPUTopology] = None

    def format_dom(self):
        el = _node("cpu", mode=self.mode, match=self.match)
        if self.model is not None:
            _sub(el, "model", self.model)
        if self.topology is not None:
            el.append(self.topology.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        topology = el.find("topology")
        return cls(mode=el.get("mode"), match=el.get("match"), model=el.findtext("model"),
                   topology=GuestCPUTopology.parse_dom(topology) if topology is not None
                   else None)


# --- devices ------------------------------------------------------------------------------

@dataclass
class GuestDisk(ConfigObject):
    """A ``<disk>``: a file (``source_path``) or, with ``source_type="network"``, a network
    disk as Nova's ``LibvirtConfigGuestDisk`` writes one for ``images_type = rbd``:
    ``<source protocol="rbd" name="pool/image">`` with one ``<host name= port=>`` per monitor,
    and ``<auth username=><secret type="ceph" uuid=/></auth>`` naming the libvirt secret that
    holds the cephx key."""

    root_name: ClassVar[str] = "disk"
    source_type: str = "file"
    device: str = "disk"              # disk | cdrom
    driver_name: Optional[str] = None
    driver_format: Optional[str] = None
    driver_cache: Optional[str] = None
    driver_discard: Optional[str] = None
    source_path: Optional[str] = None
    source_protocol: Optional[str] = None
    source_name: Optional[str] = None
    source_hosts: List[Tuple[str, Optional[str]]] = field(default_factory=list)
    auth_username: Optional[str] = None
    auth_secret_type: Optional[str] = None
    auth_secret_uuid: Optional[str] = None
    target_dev: Optional[str] = None
    target_bus: Optional[str] = None
    readonly: bool = False

    def format_dom(self):
        el = _node("disk", type=self.source_type, device=self.device)
        if any(v is not None for v in (self.driver_name, self.driver_format, self.driver_cache,
                                       self.driver_discard)):
            _sub(el, "driver", name=self.driver_name, type=self.driver_format,
                 cache=self.driver_cache, discard=self.driver_discard)
        if self.source_path is not None:
            _sub(el, "source", file=self.source_path)
        elif self.source_protocol is not None:
            source = _sub(el, "source", protocol=self.source_protocol, name=self.source_name)
            for host, port in self.source_hosts:
                _sub(source, "host", name=host, port=port)
        if self.auth_username is not None:
            auth = _sub(el, "auth", username=self.auth_username)
            _sub(auth, "secret", type=self.auth_secret_type, uuid=self.auth_secret_uuid)
        _sub(el, "target", dev=self.target_dev, bus=self.target_bus)
        if self.readonly:
            _sub(el, "readonly")
        return el

    @classmethod
    def parse_dom(cls, el):
        driver = el.find("driver")
        source = el.find("source")
        target = el.find("target")
        auth = el.find("auth")
        secret = auth.find("secret") if auth is not None else None
        return cls(
            source_type=el.get("type"), device=el.get("device", "disk"),
            driver_name=driver.get("name") if driver is not None else None,
            driver_format=driver.get("type") if driver is not None else None,
            driver_cache=driver.get("cache") if driver is not None else None,
            driver_discard=driver.get("discard") if driver is not None else None,
            source_path=source.get("file") if source is not None else None,
            source_protocol=source.get("protocol") if source is not None else None,
            source_name=source.get("name") if source is not None else None,
            source_hosts=[(host.get("name"), host.get("port"))
                          for host in (source.findall("host") if source is not None else [])],
            auth_username=auth.get("username") if auth is not None else None,
            auth_secret_type=secret.get("type") if secret is not None else None,
            auth_secret_uuid=secret.get("uuid") if secret is not None else None,
            target_dev=target.get("dev") if target is not None else None,
            target_bus=target.get("bus") if target is not None else None,
            readonly=el.find("readonly") is not None)


@dataclass
class GuestController(ConfigObject):
    root_name: ClassVar[str] = "controller"
    type: str = ""
    index: Optional[int] = None
    model: Optional[str] = None

    def format_dom(self):
        return _node("controller", type=self.type, index=self.index, model=self.model)

    @classmethod
    def parse_dom(cls, el):
        return cls(type=el.get("type"), index=_int(el.get("index")), model=el.get("model"))


@dataclass
class GuestInterface(ConfigObject):
    root_name: ClassVar[str] = "interface"
    # which <source> attribute names the host side, per interface type
    SOURCE_ATTR: ClassVar[Dict[str, str]] = {"bridge": "bridge", "network": "network",
                                             "direct": "dev"}
    net_type: str = "bridge"          # bridge | network | ethernet | direct
    mac: Optional[str] = None
    source_dev: Optional[str] = None  # bridge name, network name, or host NIC for direct
    source_mode: Optional[str] = None  # direct only: bridge | vepa | private | passthrough
    target_dev: Optional[str] = None
    target_managed: Optional[str] = None  # "no": use the tap vm_vif made (ethernet VIFs)
    model: Optional[str] = None
    mtu: Optional[int] = None
    filtername: Optional[str] = None
    filterparams: List[Tuple[str, str]] = field(default_factory=list)

    def format_dom(self):
        el = _node("interface", type=self.net_type)
        if self.mac is not None:
            _sub(el, "mac", address=self.mac)
        attr = self.SOURCE_ATTR.get(self.net_type)
        if attr and self.source_dev is not None:
            _sub(el, "source", **{attr: self.source_dev, "mode": self.source_mode})
        if self.target_dev is not None:
            _sub(el, "target", dev=self.target_dev, managed=self.target_managed)
        if self.model is not None:
            _sub(el, "model", type=self.model)
        if self.filtername is not None:
            ref = _sub(el, "filterref", filter=self.filtername)
            for name, value in self.filterparams:
                _sub(ref, "parameter", name=name, value=value)
        if self.mtu is not None:
            _sub(el, "mtu", size=self.mtu)
        return el

    @classmethod
    def parse_dom(cls, el):
        net_type = el.get("type")
        mac = el.find("mac")
        source = el.find("source")
        target = el.find("target")
        model = el.find("model")
        mtu = el.find("mtu")
        ref = el.find("filterref")
        attr = cls.SOURCE_ATTR.get(net_type)
        return cls(
            net_type=net_type,
            mac=mac.get("address") if mac is not None else None,
            source_dev=source.get(attr) if source is not None and attr else None,
            source_mode=source.get("mode") if source is not None else None,
            target_dev=target.get("dev") if target is not None else None,
            target_managed=target.get("managed") if target is not None else None,
            model=model.get("type") if model is not None else None,
            mtu=_int(mtu.get("size")) if mtu is not None else None,
            filtername=ref.get("filter") if ref is not None else None,
            filterparams=[(p.get("name"), p.get("value")) for p in ref.findall("parameter")]
            if ref is not None else [])


@dataclass
class _GuestCharDevice(ConfigObject):
    """Common shape of ``<serial>``, ``<console>`` and ``<channel>``."""
    type: str = "pty"                 # pty | file | unix
    source_path: Optional[str] = None
    source_mode: Optional[str] = None
    log_file: Optional[str] = None
    log_append: Optional[bool] = None
    target_type: Optional[str] = None
    target_port: Optional[int] = None
    target_name: Optional[str] = None

    def format_dom(self):
        el = _node(self.root_name, type=self.type)
        if self.source_path is not None or self.source_mode is not None:
            _sub(el, "source", mode=self.source_mode, path=self.source_path)
        if self.log_file is not None:
            _sub(el, "log", file=self.log_file, append=_yesno(self.log_append, "on", "off"))
        if any(v is not None for v in (self.target_type, self.target_port, self.target_name)):
            _sub(el, "target", type=self.target_type, port=self.target_port,
                 name=self.target_name)
        return el

    @classmethod
    def parse_dom(cls, el):
        source = el.find("source")
        log = el.find("log")
        target = el.find("target")
        return cls(
            type=el.get("type"),
            source_path=source.get("path") if source is not None else None,
            source_mode=source.get("mode") if source is not None else None,
            log_file=log.get("file") if log is not None else None,
            log_append=_parse_bool(log.get("append")) if log is not None else None,
            target_type=target.get("type") if target is not None else None,
            target_port=_int(target.get("port")) if target is not None else None,
            target_name=target.get("name") if target is not None else None)


@dataclass
class GuestSerial(_GuestCharDevice):
    root_name: ClassVar[str] = "serial"


@dataclass
class GuestConsole(_GuestCharDevice):
    root_name: ClassVar[str] = "console"


@dataclass
class GuestChannel(_GuestCharDevice):
    root_name: ClassVar[str] = "channel"


@dataclass
class GuestInput(ConfigObject):
    root_name: ClassVar[str] = "input"
    type: str = "tablet"
    bus: Optional[str] = None

    def format_dom(self):
        return _node("input", type=self.type, bus=self.bus)

    @classmethod
    def parse_dom(cls, el):
        return cls(type=el.get("type"), bus=el.get("bus"))


@dataclass
class GuestGraphics(ConfigObject):
    root_name: ClassVar[str] = "graphics"
    type: str = "vnc"
    autoport: Optional[bool] = None
    listen: Optional[str] = None

    def format_dom(self):
        return _node("graphics", type=self.type, autoport=_yesno(self.autoport),
                     listen=self.listen)

    @classmethod
    def parse_dom(cls, el):
        return cls(type=el.get("type"), autoport=_parse_bool(el.get("autoport")),
                   listen=el.get("listen"))


@dataclass
class GuestVideo(ConfigObject):
    root_name: ClassVar[str] = "video"
    model: str = "virtio"
    heads: Optional[int] = None

    def format_dom(self):
        el = _node("video")
        _sub(el, "model", type=self.model, heads=self.heads)
        return el

    @classmethod
    def parse_dom(cls, el):
        model = el.find("model")
        return cls(model=model.get("type") if model is not None else None,
                   heads=_int(model.get("heads")) if model is not None else None)


@dataclass
class GuestRng(ConfigObject):
    root_name: ClassVar[str] = "rng"
    model: str = "virtio"
    backend_model: str = "random"
    backend_path: Optional[str] = "/dev/urandom"
    rate_bytes: Optional[int] = None
    rate_period: Optional[int] = None

    def format_dom(self):
        el = _node("rng", model=self.model)
        if self.rate_bytes is not None:
            _sub(el, "rate", bytes=self.rate_bytes, period=self.rate_period)
        _sub(el, "backend", self.backend_path, model=self.backend_model)
        return el

    @classmethod
    def parse_dom(cls, el):
        rate = el.find("rate")
        backend = el.find("backend")
        return cls(model=el.get("model"),
                   backend_model=backend.get("model") if backend is not None else None,
                   backend_path=backend.text if backend is not None else None,
                   rate_bytes=_int(rate.get("bytes")) if rate is not None else None,
                   rate_period=_int(rate.get("period")) if rate is not None else None)


@dataclass
class GuestMemballoon(ConfigObject):
    root_name: ClassVar[str] = "memballoon"
    model: str = "virtio"
    stats_period: Optional[int] = None

    def format_dom(self):
        el = _node("memballoon", model=self.model)
        if self.stats_period is not None:
            _sub(el, "stats", period=self.stats_period)
        return el

    @classmethod
    def parse_dom(cls, el):
        stats = el.find("stats")
        return cls(model=el.get("model"),
                   stats_period=_int(stats.get("period")) if stats is not None else None)


DEVICE_CLASSES = {cls.root_name: cls for cls in (
    GuestDisk, GuestController, GuestInterface, GuestSerial, GuestConsole, GuestChannel,
    GuestInput, GuestGraphics, GuestVideo, GuestRng, GuestMemballoon)}


# --- the domain ---------------------------------------------------------------------------

@dataclass
class Guest(ConfigObject):
    root_name: ClassVar[str] = "domain"
    virt_type: str = "qemu"
    name: Optional[str] = None
    uuid: Optional[str] = None
    metadata: Optional[GuestMetaInstance] = None
    memory_kib: Optional[int] = None
    current_memory_kib: Optional[int] = None
    vcpus: Optional[int] = None
    sysinfo: Optional[GuestSysinfo] = None
    os: Optional[GuestOS] = None
    features: Optional[GuestFeatures] = None
    cpu: Optional[GuestCPU] = None
    clock: Optional[GuestClock] = None
    devices: list = field(default_factory=list)

    def format_dom(self):
        el = _node("domain", type=self.virt_type)
        if self.name is not None:
            _sub(el, "name", self.name)
        if self.uuid is not None:
            _sub(el, "uuid", self.uuid)
        if self.metadata is not None:
            _sub(el, "metadata").append(self.metadata.format_dom())
        if self.memory_kib is not None:
            _sub(el, "memory", self.memory_kib, unit="KiB")
        if self.current_memory_kib is not None:
            _sub(el, "currentMemory", self.current_memory_kib, unit="KiB")
        if self.vcpus is not None:
            _sub(el, "vcpu", self.vcpus)
        for part in (self.sysinfo, self.os, self.features, self.cpu, self.clock):
            if part is not None:
                el.append(part.format_dom())
        devices = _sub(el, "devices")
        for device in self.devices:
            devices.append(device.format_dom())
        return el

    @classmethod
    def parse_dom(cls, el):
        def one(klass, tag=None):
            child = el.find(tag or klass.root_name)
            return None if child is None else klass.parse_dom(child)

        meta = el.find("metadata/" + GuestMetaInstance.root_name)
        devices = []
        for child in el.findall("devices/*"):
            klass = DEVICE_CLASSES.get(child.tag) if isinstance(child.tag, str) else None
            if klass is not None:
                devices.append(klass.parse_dom(child))
        return cls(
            virt_type=el.get("type"), name=el.findtext("name"), uuid=el.findtext("uuid"),
            metadata=GuestMetaInstance.parse_dom(meta) if meta is not None else None,
            memory_kib=_kib(el.find("memory")), current_memory_kib=_kib(el.find("currentMemory")),
            vcpus=_int(el.findtext("vcpu")),
            sysinfo=one(GuestSysinfo, "sysinfo[@type='smbios']"), os=one(GuestOS),
            features=one(GuestFeatures), cpu=one(GuestCPU), clock=one(GuestClock),
            devices=devices)

    def devices_of(self, klass) -> list:
        return [d for d in self.devices if isinstance(d, klass)]


_UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024 ** 2,
          "mib": 1024 ** 2, "mb": 1000 ** 2, "g": 1024 ** 3, "gib": 1024 ** 3,
          "gb": 1000 ** 3}


def _kib(el) -> Optional[int]:
    """A memory element in KiB, whatever unit a (possibly hand-edited) document used."""
    if el is None or el.text is None:
        return None
    factor = _UNITS.get((el.get("unit") or "KiB").lower())
    if factor is None:
        raise VirtopsError("unknown memory unit %r" % el.get("unit"))
    return int(el.text) * factor // 1024
