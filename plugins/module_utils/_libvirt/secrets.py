# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt secret that holds a Ceph user's cephx key, named by each rbd disk's
``<auth><secret type="ceph" uuid=.../></auth>``.

Nova expects the operator to have defined it (``[libvirt] rbd_secret_uuid``, the
"Block Devices and OpenStack" guide: ``virsh secret-define`` of a non-ephemeral, non-private
secret of usage type ``ceph`` named ``client.<user> secret``, then ``virsh secret-set-value``
with the base64 key); host preparation does the same here, idempotently:
:func:`ensure_ceph_secret` defines it when missing, sets the value when it differs, and refuses
a secret of the same usage under another UUID (libvirt would refuse the definition anyway, with
a message that names neither setting).

The key is compared by value (the secret is not private, as in Ceph's guide), never logged.
"""
from __future__ import annotations

import base64
import binascii
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _connection
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import etree

# libvirt's number (virSecretUsageType), so this reads without the binding.
VIR_SECRET_USAGE_TYPE_CEPH = 2


def usage_name(user: str) -> str:
    """``client.<user> secret``: the usage name of Ceph's guide."""
    return "client.%s secret" % user


def ceph_secret_xml(secret_uuid: str, user: str) -> str:
    """``<secret ephemeral="no" private="no">`` with the uuid and the ceph usage."""
    secret = etree.Element("secret", ephemeral="no", private="no")
    etree.SubElement(secret, "uuid").text = secret_uuid
    usage = etree.SubElement(secret, "usage", type="ceph")
    etree.SubElement(usage, "name").text = usage_name(user)
    return etree.tostring(secret, encoding="unicode")


def decode_key(key: str) -> bytes:
    """The raw bytes of a cephx key written as Ceph writes it (base64), or a VirtopsError."""
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        raise VirtopsError("the Ceph key must be base64, as 'ceph auth get-key client.<user>' prints it")
    if not raw:
        raise VirtopsError("the Ceph key is empty")
    return raw


@dataclass
class SecretOutcome:
    changed: bool = False
    actions: List[str] = field(default_factory=list)


def _lookup(call, key):
    """``call(key)``, or None when libvirt has no such secret."""
    lv = _connection.libvirt
    try:
        return call(*key) if isinstance(key, tuple) else call(key)
    except lv.libvirtError as exc:
        if exc.get_error_code() == lv.VIR_ERR_NO_SECRET:
            return None
        raise VirtopsError("libvirt secret lookup failed: %s" % exc, libvirt_error_code=exc.get_error_code())


def ensure_ceph_secret(conn, secret_uuid: str, user: str, key: str, check_mode: bool = False) -> SecretOutcome:
    """The secret ``secret_uuid`` of usage ``client.<user> secret`` holding ``key``."""
    try:
        secret_uuid = str(uuid_mod.UUID(secret_uuid))
    except (TypeError, ValueError):
        raise VirtopsError("the libvirt secret's uuid must be a UUID, got %r" % (secret_uuid,))
    value = decode_key(key)
    outcome = SecretOutcome()
    name = usage_name(user)
    same_usage = _lookup(conn.secretLookupByUsage, (VIR_SECRET_USAGE_TYPE_CEPH, name))
    if same_usage is not None and same_usage.UUIDString() != secret_uuid:
        raise VirtopsError("libvirt already has secret %s for %r; the rbd settings name %s: use that uuid, or undefine the other secret"
                           % (same_usage.UUIDString(), name, secret_uuid))
    secret = _lookup(conn.secretLookupByUUIDString, secret_uuid)
    if secret is not None and secret.usageID() != name:
        raise VirtopsError("libvirt secret %s is for %r, not %r: choose another uuid for the rbd settings"
                           % (secret_uuid, secret.usageID(), name))
    if secret is None:
        outcome.changed = True
        outcome.actions.append("define libvirt secret %s (%s)" % (secret_uuid, name))
        if check_mode:
            outcome.actions.append("set the value of libvirt secret %s" % secret_uuid)
            return outcome
        secret = conn.secretDefineXML(ceph_secret_xml(secret_uuid, user), 0)
    if _current_value(secret) != value:
        outcome.changed = True
        outcome.actions.append("set the value of libvirt secret %s" % secret_uuid)
        if not check_mode:
            secret.setValue(value, 0)
    return outcome


def _current_value(secret) -> Optional[bytes]:
    """The secret's value; None when it has none yet (libvirt's VIR_ERR_NO_SECRET)."""
    lv = _connection.libvirt
    try:
        return bytes(secret.value(0))
    except lv.libvirtError as exc:
        if exc.get_error_code() == lv.VIR_ERR_NO_SECRET:
            return None
        raise VirtopsError("cannot read libvirt secret %s: %s" % (secret.UUIDString(), exc), libvirt_error_code=exc.get_error_code())
