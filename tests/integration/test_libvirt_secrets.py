# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ceph key's libvirt secret on this machine's libvirtd, with the tests' Ceph client key."""
from __future__ import annotations

import base64
import uuid

import libvirt

from ansible_collections.virtops.compute.plugins.module_utils._libvirt.secrets import ensure_ceph_secret


def test_the_ceph_clients_key_lands_in_a_libvirt_secret_once_and_reads_back(conn, ceph_cluster):
    secret_uuid, user = str(uuid.uuid4()), "virtops-%s" % uuid.uuid4().hex[:8]
    try:
        first = ensure_ceph_secret(conn, secret_uuid, user, ceph_cluster.client.key)
        assert first.changed
        secret = conn.secretLookupByUUIDString(secret_uuid)
        assert secret.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_CEPH
        assert secret.usageID() == "client.%s secret" % user
        assert bytes(secret.value(0)) == base64.b64decode(ceph_cluster.client.key)
        assert not ensure_ceph_secret(conn, secret_uuid, user, ceph_cluster.client.key).changed
    finally:
        try:
            conn.secretLookupByUUIDString(secret_uuid).undefine()
        except libvirt.libvirtError:
            pass
