# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an instance learns about itself: Nova's InstanceMetadata, as a pure function.

``config_drive_tree(metadata)`` returns the config drive's files as ``{path: bytes}`` in the
layout Nova writes (``openstack/<version>/...``, ``openstack/content/NNNN``,
``ec2/<version>/...``). Nothing here touches the disk; ``_configdrive`` writes the image.

Secrets: ``admin_pass`` is held in a :class:`Secret` that never shows its value in ``repr``/
``str``; it is revealed only while ``meta_data.json`` is serialised. ``user_data`` and the
content of injected files are left out of ``repr`` too (they often carry credentials).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._model.instance import (
    META_ITEM_MAX,
    as_bytes,
    check_user_data,
)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    validate_text,
    validate_uuid,
)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    Subnet,
    Vif,
    parse_network_info,
)

# Nova's dated OpenStack metadata versions (nova/api/metadata/base.py), oldest first.
FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"      # random_seed
HAVANA = "2013-10-17"       # vendor_data.json
LIBERTY = "2015-10-15"      # network_data.json, project_id
NEWTON_ONE = "2016-06-30"   # devices
NEWTON_TWO = "2016-10-06"   # vendor_data2.json
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
OPENSTACK_VERSIONS = (FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY)
LATEST = "latest"
# Nova skips every EC2 version older than 2009-04-04 on a config drive; "latest" is 2009-04-04.
EC2_VERSIONS = ("2009-04-04", LATEST)

CONTENT_DIR = "openstack/content"
RANDOM_SEED_BYTES = 512
HOSTNAME_MAX = 63
FQDN_MAX = 253
NAME_MAX = 255
INJECTED_PATH_MAX = 255
KEYPAIR_TYPES = ("ssh", "x509")
# VIF types Nova has always shown to guests as the link type; everything else is 'phy'.
LEGACY_EXPOSED_VIF_TYPES = ("bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif")

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_KEYPAIR_NAME_RE = re.compile(r"^[A-Za-z0-9_. @-]{1,255}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Secret:
    """A string that keeps itself out of logs, reprs, tracebacks and JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str) or not value:
            raise VirtopsError("admin_pass must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        # Pickling or deep-copying must not be a way to print the value by accident.
        raise TypeError("Secret values cannot be pickled")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _fail(msg: str, **details) -> VirtopsError:
    return VirtopsError(msg, **details)


def _is_hostname(value: str, max_len: int) -> bool:
    if not value or len(value) > max_len:
        return False
    return all(_LABEL_RE.match(label) for label in value.split("."))


def derive_hostname(name: str, instance_uuid: str) -> str:
    """Nova's sanitize_hostname: display name -> RFC 1123 label, at most 63 characters.

    Spaces, underscores and dots become '-', every other character that is not an ASCII
    letter, digit or '-' is dropped, the result is lower-cased and stripped of leading and
    trailing '-'. An empty result falls back to ``server-<uuid>`` as Nova does.
    """
    text = name.encode("latin-1", "ignore").decode("latin-1")
    text = re.sub(r"[ _.]", "-", text).lower()
    # Nova keeps any \w (so 'é' survives); a hostname may only hold ASCII, so we are stricter.
    text = re.sub(r"[^a-z0-9-]+", "", text)
    text = text[:HOSTNAME_MAX].strip("-")
    if not text:
        text = "server-%s" % instance_uuid
    return text


def validate_injected_path(path: str) -> str:
    """An injected file's guest path: absolute, normalised, no traversal, <= 255 bytes."""
    if not isinstance(path, str) or not path:
        raise _fail("injected file path must be a non-empty string")
    if _CONTROL_RE.search(path) or "\\" in path:
        raise _fail("injected file path %r contains control characters or backslashes" % path)
    if len(path.encode("utf-8")) > INJECTED_PATH_MAX:
        raise _fail("injected file path is longer than %d bytes: %r..."
                    % (INJECTED_PATH_MAX, path[:40]))
    if not path.startswith("/"):
        raise _fail("injected file path %r must be an absolute guest path such as /etc/motd"
                    % path)
    components = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in components):
        raise _fail("injected file path %r must be normalised: no '.', '..', empty "
                    "components or trailing '/'" % path)
    return path


def _check_text(value, what: str, max_len: int = NAME_MAX, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail("%s must be a string, not %s" % (what, type(value).__name__))
    if not value and not allow_empty:
        raise _fail("%s must not be empty" % what)
    if len(value) > max_len:
        raise _fail("%s is longer than %d characters" % (what, max_len))
    if _CONTROL_RE.search(value):
        raise _fail("%s contains control characters" % what)
    return value


def _normalise_meta(meta: Optional[Mapping]) -> Dict[str, str]:
    """Nova's server metadata: string keys and values (<= 255). Sorted, so YAML order does
    not change the drive's content."""
    result = {}
    for key, value in (meta or {}).items():
        _check_text(key, "metadata key", META_ITEM_MAX)
        if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
            raise _fail("metadata %r: value must be a string (quote it in YAML), got %s"
                        % (key, type(value).__name__))
        result[key] = _check_text(str(value), "metadata %r value" % key, META_ITEM_MAX,
                                  allow_empty=True)
    return dict(sorted(result.items()))


@dataclass(frozen=True)
class Keypair:
    """One public key the guest should trust (Nova keypair: name, type, public_key)."""
    name: str
    public_key: str
    type: str = "ssh"

    def __post_init__(self):
        if not isinstance(self.name, str) or not _KEYPAIR_NAME_RE.match(self.name):
            raise _fail("keypair name %r: use 1-255 letters, digits, spaces and _ . @ -"
                        % (self.name,))
        if self.type not in KEYPAIR_TYPES:
            raise _fail("keypair %s: type must be one of %s, not %r"
                        % (self.name, ", ".join(KEYPAIR_TYPES), self.type))
        if not isinstance(self.public_key, str) or not self.public_key.strip():
            raise _fail("keypair %s: public_key is empty" % self.name)
        key = self.public_key.strip()
        if self.type == "ssh" and ("\n" in key or "\r" in key):
            raise _fail("keypair %s: an ssh public key is one line" % self.name)
        object.__setattr__(self, "public_key", key)

    @classmethod
    def from_dict(cls, data: Mapping) -> "Keypair":
        try:
            return cls(name=data["name"], public_key=data["public_key"],
                       type=data.get("type") or "ssh")
        except KeyError as exc:
            raise _fail("keypair is missing key %s" % exc)


@dataclass(frozen=True)
class InstanceInfo:
    """The instance fields Nova's metadata exposes."""
    uuid: str
    name: str
    hostname: Optional[str] = None
    launch_index: int = 0
    availability_zone: Optional[str] = None
    meta: Mapping[str, str] = field(default_factory=dict)
    project_id: str = "virtops"
    flavor_name: Optional[str] = None
    image_id: Optional[str] = None
    reservation_id: Optional[str] = None
    root_device_name: str = "/dev/vda"
    ephemeral_device: Optional[str] = None
    swap_device: Optional[str] = None

    def __post_init__(self):
        canonical = validate_uuid(self.uuid)
        object.__setattr__(self, "uuid", canonical)
        # The display name is free text here (Nova's is); the hostname is what must be safe.
        validate_text(self.name, "instance name", NAME_MAX)
        _check_text(self.name, "instance name")     # also no tab or newline
        if self.hostname is None:
            object.__setattr__(self, "hostname", derive_hostname(self.name, canonical))
        else:
            hostname = str(self.hostname).lower()
            if not _is_hostname(hostname, FQDN_MAX):
                raise _fail("hostname %r is not a valid RFC 1123 host name (labels of "
                            "a-z, 0-9 and '-', at most 63 characters each)" % (self.hostname,))
            object.__setattr__(self, "hostname", hostname)
        strict_int(self.launch_index, "launch_index", minimum=0, text=None)
        if self.availability_zone is not None:
            _check_text(self.availability_zone, "availability_zone")
        _check_text(self.project_id, "project_id")
        for attr in ("flavor_name", "image_id", "reservation_id", "ephemeral_device",
                     "swap_device"):
            if getattr(self, attr) is not None:
                _check_text(getattr(self, attr), attr)
        _check_text(self.root_device_name, "root_device_name")
        object.__setattr__(self, "meta", _normalise_meta(self.meta))

    @property
    def ec2_instance_id(self) -> str:
        # Nova numbers instances in its database ('i-%08x'); we have no database, so the id
        # comes from the uuid: stable across rebuilds and unique enough within a fleet.
        return "i-%s" % self.uuid.replace("-", "")[:8]

    @property
    def ec2_reservation_id(self) -> str:
        return self.reservation_id or "r-%s" % hashlib.sha1(self.uuid.encode()).hexdigest()[:8]

    @property
    def ec2_ami_id(self) -> Optional[str]:
        if not self.image_id:
            return None
        return "ami-%s" % hashlib.sha1(self.image_id.encode()).hexdigest()[:8]

    @classmethod
    def from_dict(cls, data: Mapping) -> "InstanceInfo":
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise _fail("instance: unknown keys %s" % ", ".join(unknown))
        if "uuid" not in data or "name" not in data:
            raise _fail("instance needs at least uuid and name")
        # Ansible passes None for options left unset: let the defaults apply.
        return cls(**{k: v for k, v in data.items() if v is not None})


@dataclass(frozen=True)
class InstanceMetadata:
    """Everything that goes onto one instance's config drive."""
    instance: InstanceInfo
    keypairs: Sequence[Keypair] = ()
    user_data: Optional[bytes] = field(default=None, repr=False)
    admin_pass: Optional[Secret] = field(default=None, repr=False)
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    vendor_data: Mapping = field(default_factory=dict, repr=False)
    network_info: Sequence[Vif] = ()
    dhcp_domain: Optional[str] = None
    # Injected by tests only; None draws 512 fresh bytes from os.urandom per build.
    random_seed: Optional[bytes] = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.instance, InstanceInfo):
            raise _fail("instance must be an InstanceInfo")
        keypairs = tuple(self.keypairs or ())
        names = [k.name for k in keypairs]
        if len(set(names)) != len(names):
            raise _fail("keypair names must be unique: %s" % ", ".join(names))
        object.__setattr__(self, "keypairs", keypairs)
        if self.user_data is not None:
            object.__setattr__(self, "user_data", check_user_data(self.user_data))
        if self.admin_pass is not None and not isinstance(self.admin_pass, Secret):
            object.__setattr__(self, "admin_pass", Secret(self.admin_pass))
        files = {}
        for path, content in (self.files or {}).items():
            files[validate_injected_path(path)] = as_bytes(content, "injected file %s" % path)
        # Sorted by guest path, so content numbering does not depend on dict order.
        object.__setattr__(self, "files", dict(sorted(files.items())))
        if not isinstance(self.vendor_data, Mapping):
            raise _fail("vendor_data must be a mapping")
        try:
            json.dumps(self.vendor_data)
        except (TypeError, ValueError) as exc:
            raise _fail("vendor_data is not JSON-serialisable: %s" % type(exc).__name__)
        vifs = tuple(self.network_info or ())
        if not all(isinstance(v, Vif) for v in vifs):
            raise _fail("network_info must be a list of Vif (use parse_network_info)")
        object.__setattr__(self, "network_info", vifs)
        if self.dhcp_domain is not None:
            if not _is_hostname(str(self.dhcp_domain).lower(), FQDN_MAX):
                raise _fail("dhcp_domain %r is not a valid DNS domain" % (self.dhcp_domain,))
            object.__setattr__(self, "dhcp_domain", str(self.dhcp_domain).lower())
        if self.random_seed is not None and len(self.random_seed) != RANDOM_SEED_BYTES:
            raise _fail("random_seed must be exactly %d bytes" % RANDOM_SEED_BYTES)

    def __repr__(self) -> str:
        return ("InstanceMetadata(uuid=%r, hostname=%r, keypairs=%r, files=%r, user_data=%s, "
                "admin_pass=%s, vifs=%d)" % (
                    self.instance.uuid, self.instance.hostname,
                    [k.name for k in self.keypairs], list(self.files),
                    "None" if self.user_data is None else "<%d bytes>" % len(self.user_data),
                    "<set>" if self.admin_pass is not None else "None",
                    len(self.network_info)))

    __str__ = __repr__

    @property
    def hostname(self) -> str:
        if self.dhcp_domain:
            return "%s.%s" % (self.instance.hostname, self.dhcp_domain)
        return self.instance.hostname

    @classmethod
    def from_params(cls, instance: Mapping, keypairs: Optional[Sequence[Mapping]] = None,
                    user_data: Union[str, bytes, None] = None, admin_pass: Optional[str] = None,
                    files: Optional[Mapping[str, Union[str, bytes]]] = None,
                    vendor_data: Optional[Mapping] = None,
                    network_info: Optional[list] = None,
                    dhcp_domain: Optional[str] = None) -> "InstanceMetadata":
        """Build from plain module parameters (dicts and lists, network_info in Nova's form)."""
        return cls(
            instance=InstanceInfo.from_dict(instance),
            keypairs=[Keypair.from_dict(k) for k in (keypairs or [])],
            user_data=user_data,
            admin_pass=admin_pass,
            files=files or {},
            vendor_data=vendor_data or {},
            network_info=parse_network_info(network_info),
            dhcp_domain=dhcp_domain,
        )


def _at_least(version: str, required: str) -> bool:
    if version == LATEST:
        return True
    return OPENSTACK_VERSIONS.index(version) >= OPENSTACK_VERSIONS.index(required)


def _first_subnet(vif: Vif, version: int) -> Optional[Subnet]:
    return next((s for s in vif.subnets if s.version == version), None)


def _dns_services(subnet: Subnet) -> List[dict]:
    return [{"type": "dns", "address": address} for address in subnet.dns]


def _link(vif: Vif, index: int) -> dict:
    return {
        "id": vif.devname or "interface%d" % index,
        "vif_id": vif.id,
        # A guest must not mistake our host-side 'vlan'/'vxlan' plumbing for a guest VLAN.
        "type": vif.vif_type if vif.vif_type in LEGACY_EXPOSED_VIF_TYPES else "phy",
        "mtu": vif.mtu,
        "ethernet_mac_address": vif.address,
    }


def _network(vif: Vif, subnet: Subnet, number: int, link_id: str) -> dict:
    version = subnet.version
    routes = []
    if subnet.gateway:
        default = "0.0.0.0" if version == 4 else "::"
        routes.append({"network": default, "netmask": default, "gateway": subnet.gateway})
    for route in subnet.routes:
        net = ipaddress.ip_network(route.cidr, strict=False)
        routes.append({"network": str(net.network_address), "netmask": str(net.netmask),
                       "gateway": route.gateway})
    return {
        "id": "network%d" % number,
        "type": "ipv%d" % version,
        "link": link_id,
        "ip_address": subnet.ips[0],
        "netmask": subnet.netmask,
        "routes": routes,
        "network_id": vif.network_id,
        "services": _dns_services(subnet),
    }


def network_data(vifs: Sequence[Vif]) -> dict:
    """network_data.json as Nova's get_network_metadata builds it (static addressing).

    Only the first IPv4 and the first IPv6 subnet of each VIF are described, as in Nova.
    """
    if not vifs:
        return {}
    links, networks, services = [], [], []
    link_index = -1
    for vif in vifs:
        if not vif.subnets:
            continue
        link_index += 1
        link = _link(vif, link_index)
        links.append(link)
        for version in (4, 6):
            subnet = _first_subnet(vif, version)
            if subnet is None or not subnet.ips:
                continue
            networks.append(_network(vif, subnet, len(networks), link["id"]))
            services.extend(s for s in _dns_services(subnet) if s not in services)
    return {"links": links, "networks": networks, "services": services}


def _meta_data(md: InstanceMetadata, version: str, random_seed: bytes) -> dict:
    data = {"uuid": md.instance.uuid}
    if md.instance.meta:
        data["meta"] = dict(md.instance.meta)
    if md.files:
        data["files"] = [{"path": path, "content_path": "/content/%04d" % index}
                         for index, path in enumerate(md.files)]
    if md.admin_pass is not None:
        # Nova passes it as extra_md, so it lands here in every version.
        data["admin_pass"] = md.admin_pass.reveal()
    if md.keypairs:
        data["public_keys"] = {k.name: k.public_key for k in md.keypairs}
        data["keys"] = [{"name": k.name, "type": k.type, "data": k.public_key}
                        for k in md.keypairs]
    data["hostname"] = md.hostname
    data["name"] = md.instance.name
    data["launch_index"] = md.instance.launch_index
    data["availability_zone"] = md.instance.availability_zone
    if _at_least(version, GRIZZLY):
        data["random_seed"] = base64.b64encode(random_seed).decode("ascii")
    if _at_least(version, LIBERTY):
        data["project_id"] = md.instance.project_id
    if _at_least(version, NEWTON_ONE):
        data["devices"] = []
    return data


def ec2_meta_data(md: InstanceMetadata) -> dict:
    """ec2/<version>/meta-data.json (the 2009-04-04 shape, which 'latest' also is)."""
    inst = md.instance
    fixed_v4 = [ip for vif in md.network_info for subnet in vif.subnets
                if subnet.version == 4 for ip in subnet.ips]
    data = {}
    if inst.ec2_ami_id:
        data["ami-id"] = inst.ec2_ami_id
    data.update({
        "ami-launch-index": inst.launch_index,
        "ami-manifest-path": "FIXME",   # Nova writes this literal
        "instance-id": inst.ec2_instance_id,
        "hostname": md.hostname,
        "local-ipv4": fixed_v4[0] if fixed_v4 else None,
        "reservation-id": inst.ec2_reservation_id,
        "security-groups": [],
    })
    if md.keypairs:
        data["public-keys"] = {str(i): {"openssh-key": k.public_key}
                               for i, k in enumerate(md.keypairs)}
    data["local-hostname"] = md.hostname
    data["public-hostname"] = md.hostname
    data["public-ipv4"] = ""
    if inst.flavor_name:
        data["instance-type"] = inst.flavor_name
    mapping = {"ami": inst.root_device_name.rsplit("/", 1)[-1], "root": inst.root_device_name}
    if inst.ephemeral_device:
        mapping["ephemeral0"] = inst.ephemeral_device
    if inst.swap_device:
        mapping["swap"] = inst.swap_device
    data["block-device-mapping"] = mapping
    data["placement"] = {"availability-zone": inst.availability_zone}
    data["instance-action"] = "none"
    return data


def _dump(obj) -> bytes:
    # Nova's jsonutils.dump_as_bytes: json.dumps defaults, insertion order.
    return json.dumps(obj).encode("utf-8")


def config_drive_tree(md: InstanceMetadata) -> Dict[str, bytes]:
    """The config drive's files, ``{relative path: content}``, in Nova's order.

    Deterministic for the same input, except ``random_seed`` (fresh per call unless the
    InstanceMetadata carries one).
    """
    random_seed = md.random_seed if md.random_seed is not None else os.urandom(RANDOM_SEED_BYTES)
    tree: Dict[str, bytes] = {}
    ec2 = _dump(ec2_meta_data(md))
    for version in EC2_VERSIONS:
        if md.user_data is not None:
            tree["ec2/%s/user-data" % version] = md.user_data
        tree["ec2/%s/meta-data.json" % version] = ec2
    vendor = json.dumps(md.vendor_data, sort_keys=True).encode("utf-8")
    vendor2 = json.dumps({"static": md.vendor_data}, sort_keys=True).encode("utf-8")
    net = _dump(network_data(md.network_info))
    for version in OPENSTACK_VERSIONS + (LATEST,):
        base = "openstack/%s/" % version
        tree[base + "meta_data.json"] = _dump(_meta_data(md, version, random_seed))
        if md.user_data is not None:
            tree[base + "user_data"] = md.user_data
        if _at_least(version, HAVANA):
            tree[base + "vendor_data.json"] = vendor
        if _at_least(version, LIBERTY):
            tree[base + "network_data.json"] = net
        if _at_least(version, NEWTON_TWO):
            tree[base + "vendor_data2.json"] = vendor2
    for index, content in enumerate(md.files.values()):
        tree["%s/%04d" % (CONTENT_DIR, index)] = content
    for path in tree:
        _check_tree_path(path)
    return tree


def _check_tree_path(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise _fail("internal error: config drive path %r is not a plain relative path" % path)


def _digest_view(path: str, content: bytes) -> bytes:
    """What the digest sees of a file: meta_data.json without random_seed, and with
    admin_pass reduced to 'present' (a changed password alone does not rebuild the drive,
    adding or removing one does)."""
    if not (path.startswith("openstack/") and path.endswith("/meta_data.json")):
        return content
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if not isinstance(data, dict):
        return content
    data.pop("random_seed", None)
    if "admin_pass" in data:
        data["admin_pass"] = True
    return json.dumps(data, sort_keys=True).encode("utf-8")


def tree_digest(tree: Mapping[str, bytes]) -> str:
    """sha256 over every (path, content) of a tree, ignoring random_seed and admin_pass."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        view = _digest_view(path, tree[path])
        digest.update(path.encode("utf-8") + b"\0" + str(len(view)).encode() + b"\0")
        digest.update(view)
    return "sha256:" + digest.hexdigest()


def content_digest(md: InstanceMetadata) -> str:
    return tree_digest(config_drive_tree(md))


def tree_summary(tree: Mapping[str, bytes]) -> List[Tuple[str, int]]:
    """(path, size) pairs: safe to log or return (no content)."""
    return [(path, len(content)) for path, content in tree.items()]
