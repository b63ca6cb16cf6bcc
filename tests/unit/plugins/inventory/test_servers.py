# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin virtops.compute.servers as users run it: a real ``ansible-inventory``
on an inventory file, reading libvirt's test driver.

Each compute host is a node file of the test driver (``test:///<path>``), read afresh on every
connection, so the ansible-inventory process sees the domains the test wrote: servers carrying
our metadata (made by the collection's ``GuestMetaInstance``), running or shut off, beside a
domain that is not a server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.inventory import servers as servers_plugin
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._inventory.helpers import (
    CREATED_AT, foreign_xml, node_xml, server_xml)

pytest.importorskip("libvirt")

# The directory holding ansible_collections/ (.cache/collections in the repository).
COLLECTIONS = Path(os.path.abspath(servers_plugin.__file__)).parents[5]
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"

pytestmark = pytest.mark.skipif(not ANSIBLE_INVENTORY.exists() or not COLLECTIONS.is_dir(),
                                reason="needs ansible-inventory beside the test Python and .cache/collections")

WEB1 = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
WEB2 = "1a2b3c4d-0000-4000-8000-000000000002"
DB1 = "1a2b3c4d-0000-4000-8000-000000000003"
FOREIGN = "1a2b3c4d-0000-4000-8000-0000000000ff"


class Fleet:
    """Two compute hosts as test-driver node files, and inventory files that list them."""

    def __init__(self, path: Path):
        self.path = path
        self.kvm1 = path / "kvm1.xml"
        self.kvm2 = path / "kvm2.xml"
        self.kvm1.write_text(node_xml(
            server_xml("web1", WEB1, ports=[("fa:16:3e:00:00:01", ["10.90.0.5"]),
                                            ("fa:16:3e:00:00:02", ["10.91.0.5"])],
                       vnc=("192.0.2.11", 5901)),
            server_xml("web2", WEB2, shutoff=True, ports=[("fa:16:3e:00:00:03", ["10.90.0.6"])]),
            foreign_xml("not-a-server", FOREIGN)))
        self.kvm2.write_text(node_xml(
            server_xml("db1", DB1, flavor="m1.small", ram_mb=2048, vcpus=2, image="debian12",
                       ports=[("fa:16:3e:00:00:04", ["10.90.0.7"])])))

    def inventory(self, name="fleet.virtops_servers.yml", **options) -> Path:
        config = {"plugin": "virtops.compute.servers",
                  "compute_hosts": [{"name": "kvm1", "uri": "test://%s" % self.kvm1},
                                    {"name": "kvm2", "uri": "test://%s" % self.kvm2}]}
        config.update(options)
        path = self.path / name
        path.write_text(yaml.safe_dump(config))
        return path

    @staticmethod
    def env() -> dict:
        return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_LOCALHOST_WARNING="0",
                    # A source the plugin cannot parse is an error, not an empty inventory.
                    ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1")

    def run(self, inventory: Path) -> subprocess.CompletedProcess:
        """``ansible-inventory --list``; stderr with its lines joined (warnings wrap)."""
        proc = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(inventory), "--list"],
                              cwd=self.path, env=self.env(), capture_output=True, text=True,
                              timeout=120, check=False)
        proc.stderr = " ".join(proc.stderr.split())
        return proc

    def refresh(self, inventory: Path) -> str:
        """Read the compute hosts again, as ``ansible-playbook --flush-cache`` does (ansible-core
        2.17's ansible-inventory has no --flush-cache); its warnings."""
        play = self.path / "nothing.yml"
        play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        proc = subprocess.run([str(ANSIBLE_INVENTORY.parent / "ansible-playbook"), "--flush-cache",
                               "-i", str(inventory), str(play)], cwd=self.path, env=self.env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return " ".join(proc.stderr.split())

    def listing(self, inventory: Path) -> dict:
        proc = self.run(inventory)
        assert proc.returncode == 0, proc.stderr
        return plain(json.loads(proc.stdout))


def plain(value):
    """ansible-inventory's JSON with the unsafe markers of values read from hosts removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hosts_of(listing: dict, group: str) -> list:
    return sorted(listing.get(group, {}).get("hosts", []))


@pytest.fixture
def fleet(tmp_path):
    return Fleet(tmp_path)


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    """One ansible-inventory run with keyed groups, composed groups and variables."""
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    return fleet.listing(fleet.inventory(
        keyed_groups=[{"key": "virtops_image.name", "prefix": "image"}],
        groups={"big": "virtops_flavor.ram_mb >= 1024"},
        compose={"ansible_user": "'debian'", "vcpus_twice": "virtops_flavor.vcpus * 2"}))


def test_every_server_of_every_compute_host_is_listed_and_no_other_domain(listed):
    assert sorted(listed["_meta"]["hostvars"]) == ["db1", "web1", "web2"]
    assert hosts_of(listed, "virtops_servers") == ["db1", "web1", "web2"]


def test_a_server_has_its_uuid_compute_host_power_state_flavor_image_addresses_creation_and_console(listed):
    web1 = listed["_meta"]["hostvars"]["web1"]
    assert {k: v for k, v in web1.items() if k.startswith("virtops_") or k == "ansible_host"} == {
        "virtops_uuid": WEB1, "virtops_name": "web1", "virtops_hostname": "web1",
        "virtops_compute_host": "kvm1", "virtops_power_state": "running",
        "virtops_flavor": {"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1,
                           "ephemeral_gb": 0, "swap_mb": 0},
        "virtops_image": {"id": "img-guest", "name": "guest"},
        "virtops_ports": [{"id": "port-0-web1", "mac": "fa:16:3e:00:00:01", "ips": ["10.90.0.5"]},
                          {"id": "port-1-web1", "mac": "fa:16:3e:00:00:02", "ips": ["10.91.0.5"]}],
        "virtops_ips": ["10.90.0.5", "10.91.0.5"],
        "virtops_macs": ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"],
        "virtops_created_at": CREATED_AT, "virtops_also_on": [],
        "virtops_console": "vnc://192.0.2.11:5901", "ansible_host": "10.90.0.5"}
    assert listed["_meta"]["hostvars"]["web2"]["virtops_power_state"] == "shutdown"
    assert listed["_meta"]["hostvars"]["web2"]["virtops_console"] is None
    assert listed["_meta"]["hostvars"]["db1"]["virtops_compute_host"] == "kvm2"


def test_servers_are_grouped_by_compute_host_power_state_and_flavor_with_safe_names(listed):
    assert hosts_of(listed, "compute_host_kvm1") == ["web1", "web2"]
    assert hosts_of(listed, "compute_host_kvm2") == ["db1"]
    assert hosts_of(listed, "power_running") == ["db1", "web1"]
    assert hosts_of(listed, "power_shutdown") == ["web2"]
    assert hosts_of(listed, "flavor_m1_nano") == ["web1", "web2"]
    assert hosts_of(listed, "flavor_m1_small") == ["db1"]
    assert "flavor_m1.nano" not in listed


def test_keyed_groups_groups_and_compose_work_on_the_server_variables(listed):
    assert hosts_of(listed, "image_guest") == ["web1", "web2"]
    assert hosts_of(listed, "image_debian12") == ["db1"]
    assert hosts_of(listed, "big") == ["db1"]
    db1 = listed["_meta"]["hostvars"]["db1"]
    assert db1["ansible_user"] == "debian"
    assert int(db1["vcpus_twice"]) == 4


def test_stopped_servers_are_left_out_and_uuids_name_hosts_without_ansible_host_on_request(fleet):
    listing = fleet.listing(fleet.inventory(want_stopped=False, hostname_key="uuid",
                                            address=False))
    assert sorted(listing["_meta"]["hostvars"]) == sorted([WEB1, DB1])
    assert not any("ansible_host" in v for v in listing["_meta"]["hostvars"].values())


def test_a_uri_with_no_verify_is_refused_and_nothing_is_listed(fleet):
    inventory = fleet.inventory(compute_hosts=[
        {"name": "kvm1", "uri": "test://%s" % fleet.kvm1},
        {"name": "kvm2", "uri": "qemu+ssh://root@192.0.2.12/system?keyfile=/k&no_verify=1"}])
    proc = fleet.run(inventory)
    assert proc.returncode != 0
    assert ("compute host compute_hosts[1]: the libvirt URI "
            "qemu+ssh://root@192.0.2.12/system?keyfile=/k&no_verify=1 sets no_verify=1, which "
            "turns off the check of the host's ssh key") in proc.stderr


def test_a_compute_host_that_cannot_be_read_is_a_warning_or_with_fail_on_errors_a_failure(fleet):
    hosts = [{"name": "kvm1", "uri": "test://%s" % fleet.kvm1},
             {"name": "kvm3", "uri": "test://%s" % (fleet.path / "gone.xml")}]
    proc = fleet.run(fleet.inventory(compute_hosts=hosts))
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["_meta"]["hostvars"]) == ["web1", "web2"]
    assert "compute host kvm3 not read: cannot connect to libvirt at test://" in proc.stderr
    failed = fleet.run(fleet.inventory(compute_hosts=hosts, fail_on_errors=True))
    assert failed.returncode != 0
    assert "compute host kvm3 not read" in failed.stderr


def test_the_cache_answers_until_the_inventory_is_refreshed(fleet):
    inventory = fleet.inventory(cache=True, cache_plugin="ansible.builtin.jsonfile",
                                cache_connection=str(fleet.path / "cache"), cache_timeout=3600)
    assert sorted(fleet.listing(inventory)["_meta"]["hostvars"]) == ["db1", "web1", "web2"]
    assert len(list((fleet.path / "cache").iterdir())) == 1
    fleet.kvm2.write_text(node_xml())           # db1 deleted behind the cache's back
    assert sorted(fleet.listing(inventory)["_meta"]["hostvars"]) == ["db1", "web1", "web2"]
    fleet.refresh(inventory)
    assert sorted(fleet.listing(inventory)["_meta"]["hostvars"]) == ["web1", "web2"]


def test_a_run_that_could_not_read_a_compute_host_does_not_replace_the_cache(fleet):
    inventory = fleet.inventory(cache=True, cache_plugin="ansible.builtin.jsonfile",
                                cache_connection=str(fleet.path / "cache"), cache_timeout=3600)
    fleet.listing(inventory)
    fleet.kvm2.unlink()
    assert "compute host kvm2 not read" in fleet.refresh(inventory)
    assert sorted(fleet.listing(inventory)["_meta"]["hostvars"]) == ["db1", "web1", "web2"]


@pytest.mark.parametrize("name, mine", [
    ("virtops_servers.yml", True), ("fleet.virtops_servers.yml", True),
    ("fleet.virtops_servers.yaml", True), ("fleet.yml", False),
    ("fleetvirtops_servers.yml", False), ("fleet.virtops_servers.json", False),
])
def test_only_files_named_virtops_servers_yml_are_read_by_the_plugin(tmp_path, name, mine):
    path = tmp_path / name
    path.write_text("plugin: virtops.compute.servers\n")
    assert servers_plugin.InventoryModule().verify_file(str(path)) is mine


def test_values_read_from_hosts_are_marked_unsafe(fleet):
    proc = fleet.run(fleet.inventory())
    web1 = json.loads(proc.stdout)["_meta"]["hostvars"]["web1"]
    assert web1["virtops_name"] == {"__ansible_unsafe": "web1"}
