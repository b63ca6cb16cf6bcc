# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The config drive's content, as pure data: Nova's InstanceMetadata layout and keys."""
from __future__ import annotations

import base64
import copy
import dataclasses
import json
import pickle

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    OPENSTACK_VERSIONS,
    InstanceInfo,
    InstanceMetadata,
    Keypair,
    Secret,
    config_drive_tree,
    content_digest,
    derive_hostname,
    network_data,
    tree_digest,
    tree_summary,
    validate_injected_path,
)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info,
)

UUID = "0b1e6a8c-2d3f-4a5b-9c6d-7e8f90a1b2c3"
PASSWORD = "Adm1n-Pa55-7q3z"
SEED = bytes(range(256)) * 2
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0mHhbrr1Z0p5dJ3Y8E0o6b7m9t8tIh7i3pJ3yY0aa ops@ctl"

VIF_BRIDGE = {
    "id": "8c1f3a2e-1111-4222-8333-944455556666",
    "address": "FA:16:3E:00:00:05",
    "type": "bridge",
    "network": {
        "id": "net-private", "label": "private", "bridge": "br-private",
        "meta": {"mtu": 1450},
        "subnets": [
            {"cidr": "10.10.0.0/24", "gateway": {"address": "10.10.0.1"},
             "dns": [{"address": "10.10.0.2"}, {"address": "10.10.0.3"}],
             "ips": [{"address": "10.10.0.5"}],
             "routes": [{"cidr": "192.168.50.0/24", "gateway": {"address": "10.10.0.254"}}]},
            {"cidr": "fd00:10::/64", "gateway": {"address": "fd00:10::1"},
             "dns": [{"address": "10.10.0.2"}],
             "ips": [{"address": "fd00:10::5"}]},
        ],
    },
}
VIF_VLAN = {
    "id": "77aa0000-bbbb-4ccc-8ddd-eeeeffff0000",
    "address": "fa:16:3e:00:00:06",
    "type": "vlan",
    "devname": "tap77aa0000-bb",
    "network": {
        "id": "net-storage", "label": "storage", "bridge": "br-vlan20",
        "meta": {"vlan": 20},
        "subnets": [{"cidr": "172.16.20.0/24", "gateway": None,
                     "ips": [{"address": "172.16.20.9"}]}],
    },
}
VIF_NO_SUBNET = {
    "id": "99990000-bbbb-4ccc-8ddd-eeeeffff0000",
    "address": "fa:16:3e:00:00:07",
    "network": {"id": "net-empty", "subnets": []},
}


def make_md(**overrides) -> InstanceMetadata:
    params = {
        "instance": {"uuid": UUID, "name": "Web 1", "availability_zone": "az1",
                     "meta": {"role": "web", "tier": "front"}, "flavor_name": "m1.tiny",
                     "image_id": "tiny"},
        "keypairs": [{"name": "ops", "public_key": KEY + "\n"}],
        "user_data": "#cloud-config\nruncmd: [true]\n",
        "admin_pass": PASSWORD,
        "files": {"/etc/motd": "hello\n", "/etc/banner": b"\x00\xffbin"},
        "vendor_data": {"b": 1, "a": {"x": [1, 2]}},
        "network_info": [VIF_BRIDGE, VIF_VLAN, VIF_NO_SUBNET],
    }
    params.update(overrides)
    md = InstanceMetadata.from_params(**params)
    return dataclasses.replace(md, random_seed=SEED)


def meta(tree, version="latest"):
    return json.loads(tree["openstack/%s/meta_data.json" % version])


# ---------------------------------------------------------------- hostname

@pytest.mark.parametrize("name, expected", [
    ("web1", "web1"),
    ("Web 1", "web-1"),
    ("my_server.example.com", "my-server-example-com"),
    ("db#1 (primary)!", "db1-primary"),
    ("héllo wörld", "hllo-wrld"),          # only ASCII survives in a host name
    ("--edge--", "edge"),
    ("a" * 70, "a" * 63),
    ("a" * 62 + " b", "a" * 62),            # cut at 63 never leaves a trailing '-'
])
def test_hostname_is_derived_from_the_name_like_nova(name, expected):
    assert derive_hostname(name, UUID) == expected
    assert InstanceInfo(uuid=UUID, name=name).hostname == expected


@pytest.mark.parametrize("name", ["!!!", "日本語", "___"])
def test_hostname_falls_back_to_server_uuid_when_nothing_is_left(name):
    assert derive_hostname(name, UUID) == "server-" + UUID


def test_explicit_hostname_is_kept_lowercased_and_validated():
    assert InstanceInfo(uuid=UUID, name="x", hostname="Web-01.Example.org").hostname \
        == "web-01.example.org"
    for bad in ("bad_host", "-lead", "trail-", "a" * 64, "a..b", "spa ce"):
        with pytest.raises(VirtopsError, match="RFC 1123"):
            InstanceInfo(uuid=UUID, name="x", hostname=bad)


def test_dhcp_domain_is_appended_to_the_hostname():
    tree = config_drive_tree(make_md(dhcp_domain="cloud.example"))
    assert meta(tree)["hostname"] == "web-1.cloud.example"
    assert json.loads(tree["ec2/latest/meta-data.json"])["local-hostname"] == "web-1.cloud.example"


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("bad_uuid", ["not-a-uuid", UUID.replace("-", ""), "{%s}" % UUID, ""])
def test_non_canonical_uuid_is_refused(bad_uuid):
    with pytest.raises(VirtopsError, match="invalid instance uuid"):
        InstanceInfo(uuid=bad_uuid, name="x")


def test_name_is_free_text_but_bounded_and_without_controls():
    assert InstanceInfo(uuid=UUID, name="Web server (eu) #1").name == "Web server (eu) #1"
    for bad in ("", "a" * 256, "bell\x07", "new\nline"):
        with pytest.raises(VirtopsError, match="instance name"):
            InstanceInfo(uuid=UUID, name=bad)


def test_uuid_is_lowercased():
    assert InstanceInfo(uuid=UUID.upper(), name="x").uuid == UUID


@pytest.mark.parametrize("path", [
    "../etc/passwd", "etc/passwd", "/etc/../../passwd", "/etc/./motd", "/etc//motd",
    "/etc/", "/..", "/", "", "/etc/mo\x00td", "/etc/mo\ntd", "C:\\evil", "/" + "a" * 255,
])
def test_injected_file_paths_that_could_escape_are_refused(path):
    with pytest.raises(VirtopsError, match="injected file path"):
        validate_injected_path(path)
    with pytest.raises(VirtopsError, match="injected file path"):
        make_md(files={path: "x"})


def test_injected_file_path_must_be_text():
    with pytest.raises(VirtopsError, match="injected file path"):
        validate_injected_path(b"/etc/motd")


def test_meta_values_must_be_strings_and_numbers_are_stringified():
    md = make_md(instance={"uuid": UUID, "name": "x", "meta": {"port": 8080, "z": "1"}})
    assert md.instance.meta == {"port": "8080", "z": "1"}
    for value in (True, None, ["a"], {"k": "v"}):
        with pytest.raises(VirtopsError, match="must be a string"):
            make_md(instance={"uuid": UUID, "name": "x", "meta": {"k": value}})


def test_keypair_rules():
    assert Keypair("my key@host.1", KEY).type == "ssh"
    with pytest.raises(VirtopsError, match="keypair name"):
        Keypair("bad/name", KEY)
    with pytest.raises(VirtopsError, match="type must be"):
        Keypair("k", KEY, type="rsa")
    with pytest.raises(VirtopsError, match="one line"):
        Keypair("k", KEY + "\nssh-rsa AAAA second")
    with pytest.raises(VirtopsError, match="unique"):
        make_md(keypairs=[{"name": "k", "public_key": KEY}, {"name": "k", "public_key": KEY}])


def test_user_data_limit_is_novas():
    make_md(user_data=b"x" * 49149)          # base64 length 65532
    with pytest.raises(VirtopsError, match="user_data"):
        make_md(user_data=b"x" * 49152)      # base64 length 65536


def test_unknown_instance_keys_are_refused():
    with pytest.raises(VirtopsError, match="unknown keys flavour"):
        make_md(instance={"uuid": UUID, "name": "x", "flavour": "m1"})


# ---------------------------------------------------------------- layout

def test_tree_has_novas_layout_for_every_version():
    tree = config_drive_tree(make_md())
    for version in OPENSTACK_VERSIONS + ("latest",):
        base = "openstack/%s/" % version
        assert base + "meta_data.json" in tree
        assert tree[base + "user_data"] == b"#cloud-config\nruncmd: [true]\n"
        has = {name for name in ("vendor_data.json", "network_data.json", "vendor_data2.json")
               if base + name in tree}
        expected = set()
        if version == "latest" or version >= "2013-10-17":
            expected.add("vendor_data.json")
        if version == "latest" or version >= "2015-10-15":
            expected.add("network_data.json")
        if version == "latest" or version >= "2016-10-06":
            expected.add("vendor_data2.json")
        assert has == expected, version
    for version in ("2009-04-04", "latest"):
        assert tree["ec2/%s/user-data" % version] == b"#cloud-config\nruncmd: [true]\n"
        assert "ec2/%s/meta-data.json" % version in tree
    assert not any(path.startswith("/") or ".." in path.split("/") for path in tree)


def test_no_user_data_means_no_user_data_files():
    tree = config_drive_tree(make_md(user_data=None))
    assert not [p for p in tree if p.endswith("user_data") or p.endswith("user-data")]


def test_meta_data_keys_follow_the_version():
    tree = config_drive_tree(make_md())
    folsom = meta(tree, "2012-08-10")
    assert "random_seed" not in folsom and "project_id" not in folsom
    assert "devices" not in meta(tree, "2015-10-15")
    assert meta(tree, "2015-10-15")["project_id"] == "virtops"
    latest = meta(tree)
    assert list(latest) == ["uuid", "meta", "files", "admin_pass", "public_keys", "keys",
                            "hostname", "name", "launch_index", "availability_zone",
                            "random_seed", "project_id", "devices"]
    assert latest["uuid"] == UUID
    assert latest["name"] == "Web 1"
    assert latest["hostname"] == "web-1"
    assert latest["launch_index"] == 0
    assert latest["availability_zone"] == "az1"
    assert latest["meta"] == {"role": "web", "tier": "front"}
    assert latest["public_keys"] == {"ops": KEY}
    assert latest["keys"] == [{"name": "ops", "type": "ssh", "data": KEY}]
    assert base64.b64decode(latest["random_seed"]) == SEED
    assert latest["devices"] == []
    assert latest["admin_pass"] == PASSWORD


def test_optional_meta_data_keys_are_absent_when_empty():
    md = InstanceMetadata.from_params({"uuid": UUID, "name": "bare"})
    latest = meta(config_drive_tree(md))
    for key in ("meta", "files", "admin_pass", "public_keys", "keys"):
        assert key not in latest
    assert latest["availability_zone"] is None
    assert len(base64.b64decode(latest["random_seed"])) == 512


def test_injected_files_are_listed_and_numbered_by_path():
    tree = config_drive_tree(make_md())
    files = meta(tree)["files"]
    assert files == [{"path": "/etc/banner", "content_path": "/content/0000"},
                     {"path": "/etc/motd", "content_path": "/content/0001"}]
    for item in files:
        assert "openstack" + item["content_path"] in tree
    assert tree["openstack/content/0000"] == b"\x00\xffbin"
    assert tree["openstack/content/0001"] == b"hello\n"
    assert [p for p in tree if p.startswith("openstack/content/")] == \
        ["openstack/content/0000", "openstack/content/0001"]


def test_vendor_data_files():
    tree = config_drive_tree(make_md())
    assert json.loads(tree["openstack/latest/vendor_data.json"]) == {"a": {"x": [1, 2]}, "b": 1}
    assert json.loads(tree["openstack/latest/vendor_data2.json"]) == \
        {"static": {"a": {"x": [1, 2]}, "b": 1}}
    bare = config_drive_tree(make_md(vendor_data=None))
    assert json.loads(bare["openstack/latest/vendor_data.json"]) == {}
    assert json.loads(bare["openstack/latest/vendor_data2.json"]) == {"static": {}}


def test_ec2_meta_data():
    ec2 = json.loads(config_drive_tree(make_md())["ec2/latest/meta-data.json"])
    assert ec2["instance-id"] == "i-0b1e6a8c"
    assert ec2["ami-id"].startswith("ami-") and len(ec2["ami-id"]) == 12
    assert ec2["hostname"] == ec2["local-hostname"] == "web-1"
    assert ec2["local-ipv4"] == "10.10.0.5"
    assert ec2["public-keys"] == {"0": {"openssh-key": KEY}}
    assert ec2["instance-type"] == "m1.tiny"
    assert ec2["placement"] == {"availability-zone": "az1"}
    assert ec2["block-device-mapping"] == {"ami": "vda", "root": "/dev/vda"}
    assert ec2["reservation-id"].startswith("r-")


# ---------------------------------------------------------------- network_data.json

def test_network_data_matches_novas_format():
    nd = network_data(parse_network_info([VIF_BRIDGE, VIF_VLAN, VIF_NO_SUBNET]))
    assert nd == {
        "links": [
            {"id": "tap8c1f3a2e-11", "vif_id": "8c1f3a2e-1111-4222-8333-944455556666",
             "type": "bridge", "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:05"},
            # a host-side VLAN is a plain NIC to the guest: Nova says 'phy'
            {"id": "tap77aa0000-bb", "vif_id": "77aa0000-bbbb-4ccc-8ddd-eeeeffff0000",
             "type": "phy", "mtu": None, "ethernet_mac_address": "fa:16:3e:00:00:06"},
        ],
        "networks": [
            {"id": "network0", "type": "ipv4", "link": "tap8c1f3a2e-11",
             "ip_address": "10.10.0.5", "netmask": "255.255.255.0",
             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.10.0.1"},
                        {"network": "192.168.50.0", "netmask": "255.255.255.0",
                         "gateway": "10.10.0.254"}],
             "network_id": "net-private",
             "services": [{"type": "dns", "address": "10.10.0.2"},
                          {"type": "dns", "address": "10.10.0.3"}]},
            {"id": "network1", "type": "ipv6", "link": "tap8c1f3a2e-11",
             "ip_address": "fd00:10::5", "netmask": "ffff:ffff:ffff:ffff::",
             "routes": [{"network": "::", "netmask": "::", "gateway": "fd00:10::1"}],
             "network_id": "net-private",
             "services": [{"type": "dns", "address": "10.10.0.2"}]},
            {"id": "network2", "type": "ipv4", "link": "tap77aa0000-bb",
             "ip_address": "172.16.20.9", "netmask": "255.255.255.0", "routes": [],
             "network_id": "net-storage", "services": []},
        ],
        "services": [{"type": "dns", "address": "10.10.0.2"},
                     {"type": "dns", "address": "10.10.0.3"}],
    }


def test_no_network_info_gives_an_empty_object():
    assert network_data([]) == {}
    tree = config_drive_tree(make_md(network_info=None))
    assert tree["openstack/latest/network_data.json"] == b"{}"
    assert json.loads(tree["ec2/latest/meta-data.json"])["local-ipv4"] is None


# ---------------------------------------------------------------- determinism and digest

def test_same_input_same_tree_and_meta_order_does_not_matter():
    one = config_drive_tree(make_md())
    reordered = make_md(instance={"uuid": UUID, "name": "Web 1", "availability_zone": "az1",
                                  "meta": {"tier": "front", "role": "web"},
                                  "flavor_name": "m1.tiny", "image_id": "tiny"},
                        files={"/etc/banner": b"\x00\xffbin", "/etc/motd": "hello\n"})
    assert config_drive_tree(reordered) == one
    assert config_drive_tree(make_md()) == one


def test_digest_ignores_random_seed_and_password_value_but_not_content():
    base = content_digest(make_md())
    assert base.startswith("sha256:") and len(base) == 7 + 64
    fresh_seed = dataclasses.replace(make_md(), random_seed=None)
    assert content_digest(fresh_seed) == base
    assert content_digest(make_md(admin_pass="another-password")) == base
    assert content_digest(make_md(admin_pass=None)) != base
    assert content_digest(make_md(user_data="#!/bin/sh\n")) != base
    assert content_digest(make_md(keypairs=[])) != base
    assert content_digest(make_md(network_info=[VIF_BRIDGE])) != base
    # the digest of a tree is the digest of the metadata it came from
    assert tree_digest(config_drive_tree(make_md())) == base


# ---------------------------------------------------------------- the password stays hidden

def test_admin_pass_is_not_in_repr_str_asdict_or_summaries():
    md = make_md()
    for text in (repr(md), str(md), repr(md.admin_pass), str(md.admin_pass),
                 repr(dataclasses.asdict(md)), repr(copy.deepcopy(md)),
                 repr(tree_summary(config_drive_tree(md)))):
        assert PASSWORD not in text
    assert "<set>" in repr(md)
    with pytest.raises(TypeError):
        json.dumps(dataclasses.asdict(md))
    with pytest.raises(TypeError):
        pickle.dumps(md.admin_pass)
    assert md.admin_pass == Secret(PASSWORD)
    assert md.admin_pass.reveal() == PASSWORD


def test_admin_pass_is_not_in_error_messages():
    bad_inputs = [
        dict(instance={"uuid": "nope", "name": "x"}),
        dict(instance={"uuid": UUID, "name": "x", "hostname": "bad_host"}),
        dict(files={"../x": "y"}),
        dict(user_data=12),
        dict(vendor_data={"k": object()}),
        dict(keypairs=[{"name": "a/b", "public_key": KEY}]),
        dict(network_info=[{"id": "p", "address": "fa:16:3e:00:00:01", "type": "weird",
                            "network": {"id": "n"}}]),
    ]
    for overrides in bad_inputs:
        with pytest.raises(VirtopsError) as info:
            make_md(**overrides)
        assert PASSWORD not in str(info.value)
        assert PASSWORD not in repr(info.value.details)
    with pytest.raises(VirtopsError) as info:
        Secret("")
    assert "admin_pass" in str(info.value)


def test_user_data_and_file_content_stay_out_of_repr():
    md = make_md(user_data="password: hunter2", files={"/etc/secret": "token-XYZ"})
    assert "hunter2" not in repr(md) and "token-XYZ" not in repr(md)
    assert "/etc/secret" in repr(md)
