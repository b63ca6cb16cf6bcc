# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ceph key's libvirt secret, on a scripted connection (libvirt's test driver has no
secrets; tests/integration/test_libvirt_secrets.py uses the machine's libvirtd)."""
from __future__ import annotations

import base64
import types

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _connection
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import secrets
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import etree

UUID = "5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10"
KEY = base64.b64encode(b"\x01" * 28).decode()
NO_SECRET = 66


class FakeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__("libvirt error %d" % code)
        self.code = code

    def get_error_code(self) -> int:
        return self.code


@pytest.fixture(autouse=True)
def fake_binding(monkeypatch):
    monkeypatch.setattr(_connection, "libvirt", types.SimpleNamespace(libvirtError=FakeError, VIR_ERR_NO_SECRET=NO_SECRET))


class FakeSecret:
    def __init__(self, uuid: str, usage: str) -> None:
        self.uuid, self.usage, self.data = uuid, usage, None

    def UUIDString(self):  # noqa: N802 (libvirt's name)
        return self.uuid

    def usageID(self):  # noqa: N802
        return self.usage

    def value(self, flags=0):
        if self.data is None:
            raise FakeError(NO_SECRET)
        return self.data

    def setValue(self, value, flags=0):  # noqa: N802
        self.data = bytes(value)


class FakeConn:
    def __init__(self) -> None:
        self.secrets = {}
        self.defined = []

    def secretLookupByUUIDString(self, uuid):  # noqa: N802
        if uuid not in self.secrets:
            raise FakeError(NO_SECRET)
        return self.secrets[uuid]

    def secretLookupByUsage(self, usage_type, usage_id):  # noqa: N802
        assert usage_type == secrets.VIR_SECRET_USAGE_TYPE_CEPH
        for secret in self.secrets.values():
            if secret.usage == usage_id:
                return secret
        raise FakeError(NO_SECRET)

    def secretDefineXML(self, xml, flags=0):  # noqa: N802
        doc = etree.fromstring(xml)
        assert (doc.get("ephemeral"), doc.get("private"), doc.find("usage").get("type")) == ("no", "no", "ceph")
        secret = FakeSecret(doc.findtext("uuid"), doc.findtext("usage/name"))
        self.secrets[secret.uuid] = secret
        self.defined.append(xml)
        return secret


def test_a_missing_secret_is_defined_with_cephs_usage_name_and_given_the_key_once():
    conn = FakeConn()
    first = secrets.ensure_ceph_secret(conn, UUID.upper(), "nova", KEY)
    assert first.changed and first.actions == ["define libvirt secret %s (client.nova secret)" % UUID,
                                               "set the value of libvirt secret %s" % UUID]
    assert conn.secrets[UUID].data == b"\x01" * 28
    again = secrets.ensure_ceph_secret(conn, UUID, "nova", KEY)
    assert (again.changed, again.actions, len(conn.defined)) == (False, [], 1)


def test_check_mode_reports_what_would_change_and_changes_nothing():
    conn = FakeConn()
    outcome = secrets.ensure_ceph_secret(conn, UUID, "nova", KEY, check_mode=True)
    assert outcome.changed and len(outcome.actions) == 2 and conn.secrets == {}
    secrets.ensure_ceph_secret(conn, UUID, "nova", KEY)
    rotated = base64.b64encode(b"\x02" * 28).decode()
    outcome = secrets.ensure_ceph_secret(conn, UUID, "nova", rotated, check_mode=True)
    assert outcome.actions == ["set the value of libvirt secret %s" % UUID]
    assert conn.secrets[UUID].data == b"\x01" * 28


def test_a_rotated_key_replaces_the_value_of_the_same_secret():
    conn = FakeConn()
    secrets.ensure_ceph_secret(conn, UUID, "nova", KEY)
    outcome = secrets.ensure_ceph_secret(conn, UUID, "nova", base64.b64encode(b"\x02" * 28).decode())
    assert outcome.actions == ["set the value of libvirt secret %s" % UUID]
    assert conn.secrets[UUID].data == b"\x02" * 28 and len(conn.defined) == 1


def test_another_secret_for_the_same_user_or_this_uuid_for_another_user_is_refused_with_the_way_out():
    conn = FakeConn()
    secrets.ensure_ceph_secret(conn, UUID, "nova", KEY)
    with pytest.raises(VirtopsError, match="already has secret %s for 'client.nova secret'" % UUID):
        secrets.ensure_ceph_secret(conn, "0b4bc6ea-5e67-4a5b-9c1f-2d3c4e5f6a7b", "nova", KEY)
    with pytest.raises(VirtopsError, match="is for 'client.nova secret', not 'client.glance secret'"):
        secrets.ensure_ceph_secret(conn, UUID, "glance", KEY)


@pytest.mark.parametrize("key", ["not base64!", "", "   "])
def test_a_key_that_is_not_cephs_base64_is_refused_before_libvirt_is_asked(key):
    conn = FakeConn()
    with pytest.raises(VirtopsError, match="base64|empty"):
        secrets.ensure_ceph_secret(conn, UUID, "nova", key)
    assert conn.secrets == {}
