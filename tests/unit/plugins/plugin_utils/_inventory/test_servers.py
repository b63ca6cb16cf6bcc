# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The servers of a fleet read from libvirt's real test driver (test:///default, domains defined
with our metadata): what is a server, what each one's record says, one record per server, and
the URIs refused because they would not check the host's identity."""
from __future__ import annotations

import uuid as uuidlib
from contextlib import contextmanager

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import connect
from ansible_collections.virtops.compute.plugins.plugin_utils._inventory import servers
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._inventory.helpers import (
    CREATED_AT, foreign_xml, server_xml)

libvirt = pytest.importorskip("libvirt")

TEST_URI = "test:///default"


@pytest.fixture
def conn():
    with connect(TEST_URI) as connection:
        yield connection


@pytest.fixture
def define(conn):
    """define(xml, start=False) -> uuid; every domain defined is destroyed and undefined after."""
    made = []

    def _define(xml, start=False):
        dom = conn.defineXML(xml)
        made.append(dom)
        if start:
            dom.create()
        return dom.UUIDString()

    yield _define
    for dom in made:
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass


def fresh(prefix="inv"):
    uuid = str(uuidlib.uuid4())
    return "%s-%s" % (prefix, uuid[:8]), uuid


def mine(records, *uuids):
    """The records of these domains, in the order read (other tests share test:///default)."""
    return [r for r in records if r["uuid"] in uuids]


def test_a_running_server_is_read_with_its_flavor_image_ports_power_state_and_console(conn, define):
    name, uuid = fresh()
    define(server_xml(name, uuid, ports=[("fa:16:3e:00:00:01", ["10.90.0.5", "fd00::5"]),
                                         ("fa:16:3e:00:00:02", ["10.91.0.5"])],
                      vnc=("fd00::1", 5902)), start=True)
    records, warnings = servers.read_host(conn, "kvm1")
    assert mine(records, uuid) == [{
        "uuid": uuid, "name": name, "domain": name, "hostname": name, "compute_host": "kvm1",
        "power_state": "running", "active": True,
        "flavor": {"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                   "ephemeral_gb": 0, "swap_mb": 0},
        "image": {"id": "img-guest", "name": "guest"},
        "ports": [{"id": "port-0-%s" % name, "mac": "fa:16:3e:00:00:01",
                   "ips": ["10.90.0.5", "fd00::5"]},
                  {"id": "port-1-%s" % name, "mac": "fa:16:3e:00:00:02", "ips": ["10.91.0.5"]}],
        "ips": ["10.90.0.5", "fd00::5", "10.91.0.5"],
        "macs": ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"],
        "created_at": CREATED_AT,
        "graphics": [{"type": "vnc", "listen": "fd00::1", "port": 5902}],
    }]
    assert warnings == []
    [record] = mine(records, uuid)
    assert servers.host_vars(dict(record, also_on=[]))["virtops_console"] == "vnc://[fd00::1]:5902"


def test_a_defined_server_that_is_not_running_is_shutdown_and_inactive(conn, define):
    name, uuid = fresh()
    define(server_xml(name, uuid))
    [record] = mine(servers.read_host(conn, "kvm1")[0], uuid)
    assert (record["power_state"], record["active"]) == ("shutdown", False)


def test_domains_without_our_metadata_are_not_servers(conn, define):
    name, uuid = fresh("foreign")
    define(foreign_xml(name, uuid), start=True)
    records, warnings = servers.read_host(conn, "kvm1")
    assert mine(records, uuid) == []
    assert "test" not in [r["domain"] for r in records]   # the test driver's own domain
    assert warnings == []


def test_a_domain_whose_metadata_is_ours_but_unreadable_is_left_out_with_a_warning(conn, define):
    name, uuid = fresh("broken")
    bad = ("<virtops:instance xmlns:virtops='https://virtops.dev/xmlns/compute/1.0'>"
           "<virtops:flavor name='m1'><virtops:vcpus>two</virtops:vcpus></virtops:flavor>"
           "</virtops:instance>")
    define(server_xml(name, uuid, meta_xml=bad))
    records, warnings = servers.read_host(conn, "kvm1")
    assert mine(records, uuid) == []
    assert [w for w in warnings if name in w] == [
        "compute host kvm1: domain %s left out: its virtops metadata cannot be read: "
        "invalid literal for int() with base 10: 'two'" % name]


def test_fetch_reads_every_compute_host_and_reports_the_one_it_cannot_reach(define):
    name, uuid = fresh()
    define(server_xml(name, uuid), start=True)
    hosts = servers.compute_hosts([{"name": "kvm1", "uri": TEST_URI},
                                   {"name": "kvm2", "uri": "test:///nonexistent-node.xml"}])
    fetched = servers.fetch(hosts)
    assert [(r["compute_host"], r["name"]) for r in mine(fetched["servers"], uuid)] == [
        ("kvm1", name)]
    [error] = fetched["errors"]
    assert (error["compute_host"], error["uri"]) == ("kvm2", "test:///nonexistent-node.xml")
    assert "cannot connect to libvirt at test:///nonexistent-node.xml (read-only)" in error["error"]


def test_fetch_opens_each_compute_host_read_only():
    opened = []

    @contextmanager
    def opener(uri):
        opened.append(uri)
        with connect(uri, read_only=True) as ro:
            yield ro

    servers.fetch(servers.compute_hosts(["test:///default"]), opener=opener)
    assert opened == [TEST_URI]
    with connect(TEST_URI, read_only=True) as ro:
        with pytest.raises(libvirt.libvirtError, match="read only"):
            ro.defineXML(server_xml(*fresh()))


def test_without_libvirt_python_or_lxml_the_plugin_says_what_to_install(monkeypatch):
    monkeypatch.setattr(servers._connection, "HAS_LIBVIRT", False)
    monkeypatch.setattr(servers._xml, "HAS_LXML", False)
    with pytest.raises(VirtopsError) as err:
        servers.fetch(servers.compute_hosts([TEST_URI]))
    assert err.value.msg == (
        "reading the compute hosts needs the libvirt Python binding (python3-libvirt, or pip "
        "install libvirt-python) and lxml (python3-lxml, or pip install lxml) in the Python that "
        "runs the inventory (this controller or its Execution Environment)")


# --- the option compute_hosts and its URIs ------------------------------------------------

def test_a_compute_host_is_a_uri_named_by_its_host_or_a_name_and_a_uri():
    assert servers.compute_hosts([
        "qemu+ssh://root@192.0.2.11/system?keyfile=/k&no_verify=0",
        {"name": "kvm2", "uri": "qemu+libssh://root@192.0.2.12/system?known_hosts=/kh"},
        "qemu:///system",
    ]) == [servers.ComputeHost("192.0.2.11", "qemu+ssh://root@192.0.2.11/system?keyfile=/k&no_verify=0"),
           servers.ComputeHost("kvm2", "qemu+libssh://root@192.0.2.12/system?known_hosts=/kh"),
           servers.ComputeHost("localhost", "qemu:///system")]


@pytest.mark.parametrize("uri", [
    "qemu+ssh://root@192.0.2.11/system?no_verify=1",
    "qemu+ssh://root@192.0.2.11/system?keyfile=/k&no_verify=1",
    "qemu+ssh://root@192.0.2.11/system?keyfile=/k;No_Verify=2",
    "qemu+ssh://root@192.0.2.11/system?no%5Fverify=1",
    "qemu+ssh://root@192.0.2.11/system?no_verify=yes",
    "qemu+tls://192.0.2.11/system?no_verify=1",
])
def test_a_uri_that_turns_off_host_key_checking_is_refused_with_the_reason(uri):
    with pytest.raises(VirtopsError) as err:
        servers.compute_hosts([{"name": "kvm1", "uri": uri}])
    assert err.value.msg.startswith("compute host compute_hosts[0]: the libvirt URI %s sets no_verify=" % uri)
    assert "turns off the check of the host's ssh key" in err.value.msg
    assert "never reads servers from a host it cannot verify" in err.value.msg


@pytest.mark.parametrize("value", ["auto", "ignore"])
def test_a_libssh_uri_that_accepts_unknown_host_keys_is_refused(value):
    uri = "qemu+libssh://root@192.0.2.11/system?known_hosts=/kh&known_hosts_verify=%s" % value
    with pytest.raises(VirtopsError, match="sets known_hosts_verify=%s, which accepts a host key" % value):
        servers.compute_hosts([uri])


@pytest.mark.parametrize("entries, says", [
    ([], "compute_hosts must be a non-empty list"),
    ("qemu:///system", "compute_hosts must be a non-empty list"),
    (["kvm1"], "compute host compute_hosts[0]: 'kvm1' is not a libvirt URI"),
    ([{"name": "kvm1"}], "compute host compute_hosts[0]: the libvirt URI must be a non-empty string"),
    ([{"name": "kvm1", "uri": "qemu:///system", "user": "root"}], "compute_hosts[0]: unknown keys user"),
    (["qemu+ssh://a/system", {"name": "a", "uri": "qemu+ssh://b/system"}],
     "two compute hosts are named a"),
])
def test_a_wrong_compute_hosts_entry_is_refused_with_what_is_wrong(entries, says):
    with pytest.raises(VirtopsError) as err:
        servers.compute_hosts(entries)
    assert says in err.value.msg


# --- one inventory host per server ---------------------------------------------------------

def record(name, uuid, host="kvm1", active=True, ips=("10.90.0.5",), flavor="m1.nano"):
    return {"uuid": uuid, "name": name, "domain": name, "hostname": name, "compute_host": host,
            "power_state": "running" if active else "shutdown", "active": active,
            "flavor": {"name": flavor, "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                       "ephemeral_gb": 0, "swap_mb": 0},
            "image": {"id": "img-guest", "name": "guest"},
            "ports": [{"id": "p", "mac": "fa:16:3e:00:00:01", "ips": list(ips)}],
            "ips": list(ips), "macs": ["fa:16:3e:00:00:01"], "created_at": CREATED_AT}


U1, U2, U3 = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
              "33333333-3333-4333-8333-333333333333")


def names(listed):
    """The inventory hostnames of ``select``'s pairs."""
    return [pair[0] for pair in listed]


def test_servers_are_named_by_name_or_by_uuid_and_stopped_ones_left_out_on_request():
    records = [record("web1", U1), record("web2", U2, active=False)]
    assert names(servers.select(records)[0]) == ["web1", "web2"]
    assert names(servers.select(records, hostname_key="uuid")[0]) == [U1, U2]
    assert names(servers.select(records, want_stopped=False)[0]) == ["web1"]
    with pytest.raises(VirtopsError, match="hostname_key must be one of name, uuid, not 'id'"):
        servers.select(records, hostname_key="id")


def test_a_server_waiting_for_resize_confirm_is_listed_once_where_it_runs():
    source = record("web1", U1, host="kvm1", active=False, flavor="m1.nano")
    destination = record("web1", U1, host="kvm2", active=True, flavor="m1.small")
    listed, warnings = servers.select([source, destination])
    assert [(h, s["compute_host"], s["flavor"]["name"], s["also_on"]) for h, s in listed] == [
        ("web1", "kvm2", "m1.small", ["kvm1"])]
    assert warnings == []


def test_a_server_stopped_on_two_hosts_is_listed_on_the_first_with_a_warning():
    listed, warnings = servers.select([record("web1", U1, host="kvm1", active=False),
                                       record("web1", U1, host="kvm2", active=False)])
    assert [(h, s["compute_host"], s["also_on"]) for h, s in listed] == [("web1", "kvm1", ["kvm2"])]
    assert warnings == ["server web1 (%s) has a domain on kvm1, kvm2: listed on kvm1, the first of "
                        "them (a migration or resize waiting for confirm or revert?)" % U1]


def test_two_servers_with_one_name_never_merge_the_second_is_listed_as_its_uuid():
    listed, warnings = servers.select([record("web1", U1, host="kvm1"),
                                       record("web1", U2, host="kvm2")])
    assert names(listed) == ["web1", U2]
    assert warnings == ["servers %s and %s are both named web1; the second (on kvm2) is listed "
                        "as its uuid" % (U1, U2)]


def test_a_name_that_is_no_host_name_is_replaced_by_the_uuid():
    listed, warnings = servers.select([record("web 1 {{ lookup('pipe', 'id') }}", U3)])
    assert names(listed) == [U3]
    assert warnings[0].startswith("server %s on kvm1: its name" % U3)


def test_host_vars_carry_the_record_and_ansible_host_is_the_first_fixed_ip():
    hostvars = servers.host_vars(dict(record("web1", U1, ips=("10.90.0.5", "10.91.0.5")),
                                      also_on=[]))
    assert hostvars == {
        "virtops_uuid": U1, "virtops_name": "web1", "virtops_hostname": "web1",
        "virtops_compute_host": "kvm1", "virtops_power_state": "running",
        "virtops_flavor": {"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                           "ephemeral_gb": 0, "swap_mb": 0},
        "virtops_image": {"id": "img-guest", "name": "guest"},
        "virtops_ports": [{"id": "p", "mac": "fa:16:3e:00:00:01", "ips": ["10.90.0.5", "10.91.0.5"]}],
        "virtops_ips": ["10.90.0.5", "10.91.0.5"], "virtops_macs": ["fa:16:3e:00:00:01"],
        "virtops_created_at": CREATED_AT, "virtops_also_on": [], "virtops_console": None,
        "ansible_host": "10.90.0.5"}
    assert "ansible_host" not in servers.host_vars(record("web1", U1), address=False)
    assert "ansible_host" not in servers.host_vars(record("web1", U1, ips=()))


def test_the_default_groups_are_all_servers_compute_host_power_state_and_flavor():
    assert servers.default_groups(record("web1", U1, host="kvm-1", flavor="m1.nano")) == [
        "virtops_servers", "compute_host_kvm-1", "power_running", "flavor_m1.nano"]
    assert servers.default_groups(dict(record("web1", U1), flavor=None)) == [
        "virtops_servers", "compute_host_kvm1", "power_running"]
