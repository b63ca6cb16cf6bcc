# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image, one model for the controller and the hosts.

An entry of the ``images`` catalog plays Glance's image: where its data is (``url``), its
``disk_format``, a ``checksum``, ``min_disk``/``min_ram`` and free-form ``properties``. Three
readers share this module:

- the boot request on the controller (:meth:`ImageSource.from_catalog`: the catalog entry's
  keys, formats and the checksum rule, before anything is scheduled);
- the image cache on a host (:meth:`ImageSource.from_dict`: what to fetch and check; the cache
  file name is Nova's ``sha1(image id)``);
- the guest designer (:class:`ImageSpec`, :class:`ImageProperties`: the ``hw_*`` properties
  Nova's libvirt driver reads through ``ImageMetaProps``).

The image id, when the entry gives none, is one rule for both sides (:func:`default_image_id`):
Glance never changes an image's data under its id, and here new data (another url or checksum)
gets a new id, so a new cached base.
"""
from __future__ import annotations

import hashlib
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import (
    boolish, catalog_entry, strict_int)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_text

# What a catalog entry may hold; the others are Glance fields accepted and not used.
IMAGE_KEYS = ("url", "disk_format", "checksum", "allow_unverified", "id", "min_disk", "min_ram",
              "properties", "locations")
IMAGE_IGNORED = ("name", "description", "container_format")
# The image as the domain definition takes it (vm_xml, vm_build): what it is built from and records.
IMAGE_REF_KEYS = ("id", "name", "disk_format", "properties")
# Formats a bootable image may have in the catalog.
DISK_FORMATS = ("raw", "qcow2", "vmdk", "iso")
# Glance's formats for the kernel and ramdisk a machine image names in kernel_id/ramdisk_id:
# fetched beside the disks, never booted from.
BOOT_FILE_FORMATS = {"kernel_id": "aki", "ramdisk_id": "ari"}
# hw_* property values Nova's libvirt driver supports for kvm/qemu.
VIF_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet")
FIRMWARE_TYPES = ("bios", "uefi")
POINTER_MODELS = ("usbtablet", "ps2mouse")


def default_image_id(url: str, checksum: Optional[str]) -> str:
    """The id of an entry that gives none: stable for one source and checksum, new for new
    data (Glance's ids never name two different contents)."""
    return str(uuid_mod.uuid5(uuid_mod.NAMESPACE_URL, "%s|%s" % (url, checksum or "")))


def require_checksum(url: str, checksum: Optional[str], allow_unverified: bool,
                     what: str = "image") -> None:
    """An image without a checksum is refused unless its entry allows it unverified."""
    if not checksum and not allow_unverified:
        raise VirtopsError(
            "%s %s has no checksum, so a truncated or altered download could not be told "
            "from the real one: add checksum: sha256:<hex> to its catalog entry (sha256sum "
            "of the file), or allow_unverified: true to use it unverified" % (what, url),
            url=url, reason="no checksum")


def _size(value, what: str, unit: str) -> int:
    """min_disk (GiB) or min_ram (MiB): a whole number, 0 when not given."""
    if value is None or value == "":
        return 0
    return strict_int(value, what, minimum=0, text="loose", floats=True,
                      hint="a whole number of %s" % unit)


@dataclass(frozen=True)
class ImageSource:
    """An image of the catalog, as the operator declared it: what to fetch and check."""
    url: str
    disk_format: str
    checksum: Optional[str] = None
    image_id: Optional[str] = None
    min_disk: int = 0
    min_ram: int = 0
    properties: Dict[str, object] = field(default_factory=dict)
    allow_unverified: bool = False
    name: Optional[str] = None
    # Glance's other locations of the same data: an rbd:// snapshot a host with images_type
    # rbd clones instead of fetching ``url`` (Nova's Rbd.clone); the others ignore them.
    locations: Tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The image id: the entry's, else :func:`default_image_id`."""
        return self.image_id or default_image_id(self.url, self.checksum)

    @property
    def base_name(self) -> str:
        """Nova's cache file name: SHA-1 hex digest of the image id."""
        return hashlib.sha1(self.id.encode("utf-8")).hexdigest()  # nosec - a name, not security

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "") -> "ImageSource":
        """The entry as a host takes it (vm_image's ``image``, ``kernel``, ``ramdisk``)."""
        url = data.get("url") or data.get("source")
        if not url:
            raise VirtopsError("%s needs a 'url' (http(s)://, file:// or an absolute path)"
                               % (where or "image"))
        where = where or "image %s" % url
        if not data.get("disk_format"):
            raise VirtopsError("%s needs a 'disk_format' (qcow2, raw, vmdk, ...)" % where)
        allow = data.get("allow_unverified", False)
        if not isinstance(allow, bool):
            raise VirtopsError("%s: allow_unverified must be true or false, not %r"
                               % (where, allow))
        properties = data.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise VirtopsError("%s: properties must be a mapping" % where)
        locations = data.get("locations") or []
        if not isinstance(locations, (list, tuple)) or not all(isinstance(item, str) for item in locations):
            raise VirtopsError("%s: locations must be a list of URLs such as "
                               "rbd://<fsid>/<pool>/<image>/<snapshot>" % where)
        return cls(url=str(url), disk_format=str(data["disk_format"]).lower(),
                   checksum=str(data["checksum"]) if data.get("checksum") else None,
                   image_id=str(data["id"]) if data.get("id") else None,
                   min_disk=_size(data.get("min_disk"), "%s: min_disk" % where, "GiB"),
                   min_ram=_size(data.get("min_ram"), "%s: min_ram" % where, "MiB"),
                   properties={str(k): v for k, v in properties.items()},
                   allow_unverified=allow,
                   name=str(data["name"]) if data.get("name") else None,
                   locations=tuple(locations))

    @classmethod
    def from_catalog(cls, name: str, data) -> "ImageSource":
        """The catalog entry ``images.<name>`` as the boot request checks it on the
        controller: known keys only, a bootable or kernel/ramdisk format, and the checksum
        rule the hosts apply (said here, it spares a schedule and a claim)."""
        where = "images.%s" % name
        catalog_entry(data, where, IMAGE_KEYS, IMAGE_IGNORED, "url, disk_format, checksum ...")
        if not data.get("url"):
            raise VirtopsError("%s: missing url (http://, https://, file:// or a path on the "
                               "hosts)" % where)
        formats = DISK_FORMATS + tuple(BOOT_FILE_FORMATS.values())
        if data.get("disk_format") not in formats:
            raise VirtopsError("%s: disk_format must be one of %s, not %r"
                               % (where, ", ".join(formats), data.get("disk_format")))
        source = cls.from_dict(dict(data, name=str(name)), where=where)
        require_checksum(source.url, source.checksum, source.allow_unverified, where)
        return source

    def require_verifiable(self, what: str = "image") -> None:
        """Refuse a source without a checksum unless it may be used unverified."""
        require_checksum(self.url, self.checksum, self.allow_unverified, what)

    def to_dict(self) -> dict:
        """The entry with its id resolved, as the boot plan carries it to the hosts."""
        data = {"name": self.name, "url": self.url, "disk_format": self.disk_format,
                "min_disk": self.min_disk, "min_ram": self.min_ram,
                "properties": dict(self.properties), "id": self.id}
        if self.checksum:
            data["checksum"] = self.checksum
        if self.allow_unverified:
            data["allow_unverified"] = True
        if self.locations:
            data["locations"] = list(self.locations)
        return data


@dataclass(frozen=True)
class ImageProperties:
    """The image properties the guest design reads (Nova's ``ImageMetaProps``)."""
    hw_disk_bus: Optional[str] = None
    hw_cdrom_bus: Optional[str] = None
    hw_vif_model: Optional[str] = None
    hw_machine_type: Optional[str] = None
    hw_firmware_type: Optional[str] = None
    hw_qemu_guest_agent: bool = False
    hw_rng_model: Optional[str] = None
    hw_video_model: Optional[str] = None
    hw_pointer_model: Optional[str] = None
    os_type: Optional[str] = None
    kernel_id: Optional[str] = None
    ramdisk_id: Optional[str] = None
    os_command_line: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Optional[Mapping]) -> "ImageProperties":
        data = data or {}
        if not isinstance(data, Mapping):
            raise VirtopsError("image properties must be a dict")
        values = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if value is None or value == "":
                continue
            if name == "hw_qemu_guest_agent":
                values[name] = boolish(value, "image property hw_qemu_guest_agent")
            else:
                values[name] = validate_text(str(value), "image property %s" % name,
                                             max_len=1024 if name == "os_command_line" else 255)
        props = cls(**values)
        if props.hw_firmware_type is not None and props.hw_firmware_type not in FIRMWARE_TYPES:
            raise VirtopsError("image property hw_firmware_type %r is not one of %s"
                               % (props.hw_firmware_type, ", ".join(FIRMWARE_TYPES)))
        if props.hw_vif_model is not None and props.hw_vif_model not in VIF_MODELS:
            raise VirtopsError("image property hw_vif_model %r is not supported for kvm/qemu "
                               "(supported: %s)" % (props.hw_vif_model, ", ".join(VIF_MODELS)))
        if props.hw_pointer_model is not None and props.hw_pointer_model not in POINTER_MODELS:
            raise VirtopsError("image property hw_pointer_model %r is not one of %s"
                               % (props.hw_pointer_model, ", ".join(POINTER_MODELS)))
        if props.ramdisk_id and not props.kernel_id:
            raise VirtopsError("image property ramdisk_id needs kernel_id as well")
        return props


@dataclass(frozen=True)
class ImageSpec:
    """The image as the guest design and the domain's metadata name it."""
    id: str
    name: Optional[str] = None
    disk_format: Optional[str] = None
    properties: ImageProperties = field(default_factory=ImageProperties)

    @classmethod
    def from_dict(cls, data: Mapping) -> "ImageSpec":
        if not isinstance(data, Mapping):
            raise VirtopsError("image must be a dict, got %r" % (data,))
        name = data.get("name")
        disk_format = data.get("disk_format")
        return cls(id=validate_text(str(data.get("id") or ""), "image id"),
                   name=validate_text(name, "image name") if name else None,
                   disk_format=validate_text(disk_format, "image disk_format")
                   if disk_format else None,
                   properties=ImageProperties.from_dict(data.get("properties")))
