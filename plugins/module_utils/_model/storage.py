# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a compute host keeps instance disks: Nova's ``[libvirt] images_type`` and, for
``rbd``, the Ceph settings Nova reads beside it.

One model for the controller (host facts, the scheduler's disk accounting) and the hosts (the
image backend, the domain's network disks):

- ``images_type``: ``qcow2`` (overlays on a local base), ``flat`` (raw copies) or ``rbd`` (RBD
  images in a Ceph pool);
- for ``rbd``: ``pool`` (Nova's ``images_rbd_pool``), ``ceph_conf`` (``images_rbd_ceph_conf``),
  ``user`` (``rbd_user``, without ``client.``) and ``secret_uuid`` (``rbd_secret_uuid``: the
  libvirt secret that holds the user's cephx key, named in each disk's ``<auth>``).

``from_dict`` is strict, as everything read from an inventory is: unknown keys, an unknown
images_type, rbd settings without rbd, a user written ``client.x`` and a secret that is not a
UUID are refused with what to write instead.
"""
from __future__ import annotations

import re
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

IMAGES_TYPES = ("qcow2", "flat", "rbd")
RBD_KEYS = ("pool", "ceph_conf", "user", "secret_uuid")
DEFAULT_POOL = "vms"
DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf"
# Ceph's pool and user names: no '/', '@' or whitespace (rbd specs are pool/image@snap).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# The modules' ``rbd`` option (doc fragment virtops.compute.rbd).
RBD_ARGS = dict(rbd=dict(type="dict", options=dict(
    pool=dict(type="str", default=DEFAULT_POOL),
    ceph_conf=dict(type="path", default=DEFAULT_CEPH_CONF),
    user=dict(type="str", required=True),
    secret_uuid=dict(type="str", required=True, no_log=False))))   # names the secret, is none


@dataclass(frozen=True)
class RbdSettings:
    """A host's Ceph client settings for ``images_type = rbd``."""

    user: str
    secret_uuid: str
    pool: str = DEFAULT_POOL
    ceph_conf: str = DEFAULT_CEPH_CONF

    @classmethod
    def from_dict(cls, data: Any, where: str = "rbd") -> "RbdSettings":
        if not isinstance(data, Mapping):
            raise VirtopsError("%s must be a mapping with user and secret_uuid (and optionally pool, ceph_conf)" % where)
        unknown = sorted(str(key) for key in data if key not in RBD_KEYS)
        if unknown:
            raise VirtopsError("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(RBD_KEYS)))
        user = _name(data.get("user"), "%s.user" % where, "the Ceph user without 'client.', such as nova")
        pool = _name(data.get("pool", DEFAULT_POOL), "%s.pool" % where, "a Ceph pool name, such as vms")
        secret = data.get("secret_uuid")
        try:
            secret_uuid = str(uuid_mod.UUID(str(secret)))
        except ValueError:
            raise VirtopsError("%s.secret_uuid must be the UUID of the libvirt secret holding %s's key, got %r" % (where, user, secret))
        ceph_conf = data.get("ceph_conf", DEFAULT_CEPH_CONF)
        if not isinstance(ceph_conf, str) or not ceph_conf.startswith("/"):
            raise VirtopsError("%s.ceph_conf must be an absolute path, such as %s, got %r" % (where, DEFAULT_CEPH_CONF, ceph_conf))
        return cls(user=user, secret_uuid=secret_uuid, pool=pool, ceph_conf=ceph_conf)

    def to_dict(self) -> dict:
        return {"pool": self.pool, "ceph_conf": self.ceph_conf, "user": self.user, "secret_uuid": self.secret_uuid}


@dataclass(frozen=True)
class HostStorage:
    """``images_type`` and, for rbd only, its settings."""

    images_type: str = "qcow2"
    rbd: Optional[RbdSettings] = None

    @property
    def shared(self) -> bool:
        """Instance disks on storage every host sees: with rbd, Nova's migration moves no disk."""
        return self.images_type == "rbd"

    @classmethod
    def from_values(cls, images_type: Any, rbd: Any = None) -> "HostStorage":
        if images_type not in IMAGES_TYPES:
            raise VirtopsError("images_type must be one of %s, got %r" % (", ".join(IMAGES_TYPES), images_type))
        if images_type != "rbd":
            if rbd:
                raise VirtopsError("rbd settings are given but images_type is %s: set images_type to rbd or drop them" % images_type)
            return cls(images_type=images_type)
        if not rbd:
            raise VirtopsError("images_type rbd needs rbd settings: user and secret_uuid (and optionally pool, ceph_conf)")
        return cls(images_type="rbd", rbd=RbdSettings.from_dict(rbd))


def rbd_image_name(instance_uuid: str, disk_name: str) -> str:
    """Nova's rbd name of an instance disk: ``<uuid>_disk``, ``<uuid>_disk.config``, ...
    (``Rbd.__init__``: ``'%s_%s' % (instance.uuid, disk_name)``)."""
    return "%s_%s" % (instance_uuid, disk_name)


@dataclass(frozen=True)
class RbdDisks:
    """How the domain reaches a host's rbd disks: the settings and the monitors' addresses
    (``address``, ``port``), as Nova's ``Rbd.libvirt_info`` fills ``<source>`` and ``<auth>``
    (the monitors from ``RBDDriver.get_mon_addrs``, the user and secret from the settings)."""

    settings: RbdSettings
    hosts: Tuple[Tuple[str, str], ...]

    @classmethod
    def from_values(cls, settings: RbdSettings, monitors: Sequence[str]) -> "RbdDisks":
        """``monitors`` as ``address:port`` (an IPv6 address in brackets)."""
        hosts = []
        for monitor in monitors:
            address, sep, port = str(monitor).rpartition(":")
            if not sep or not address or not port.isdigit():
                raise VirtopsError("a Ceph monitor must be written address:port, got %r" % (monitor,))
            hosts.append((address.strip("[]"), port))
        if not hosts:
            raise VirtopsError("images_type rbd needs at least one Ceph monitor address")
        return cls(settings=settings, hosts=tuple(hosts))

    def source_name(self, instance_uuid: str, disk_name: str) -> str:
        """``<pool>/<uuid>_<disk>``: the ``name`` of the disk's ``<source protocol='rbd'>``."""
        return "%s/%s" % (self.settings.pool, rbd_image_name(instance_uuid, disk_name))


def _name(value: Any, what: str, hint: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise VirtopsError("%s must be %s, got %r" % (what, hint, value))
    if value.startswith("client."):
        raise VirtopsError("%s must be %s, got %r" % (what, hint, value))
    return value
