# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_domain on a lab host: the whole power lifecycle of a real guest, what each state leaves
on the host, and the start that fails because a VIF never gets plugged."""
from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from lxml import etree

from ansible_collections.virtops.compute.plugins.plugin_utils._network.ipam import allocate_ports

from tests.integration.vif_lab import FLAVOR, READY

pytestmark = [pytest.mark.slow, pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

HOST = "compute1"
NETWORKS = {
    "dom": {"cidr": "10.77.61.0/24", "bridge": "br-dom"},
    # The operator's bridge: vm_vif and vm_domain never create or change it.
    "ops": {"cidr": "10.77.62.0/24", "bridge": "br-ops", "create_bridge": False},
}


def network_info(name, instance_uuid, network="dom"):
    [allocation] = allocate_ports(NETWORKS, [{"name": name, "uuid": instance_uuid,
                                              "networks": [network]}])
    return allocation.to_dict()["network_info"]


def domain(vif_fleet, instance_uuid, check=False, diff=False, **args):
    return vif_fleet.ok(HOST, "vm_domain", dict(uuid=instance_uuid, **args), check=check, diff=diff)


def host_state(vif_fleet, instance_uuid, name):
    left = vif_fleet.leftovers(HOST)
    return {"domain": vif_fleet.domstate(HOST, name), "taps": left["taps"],
            "bindings": left["nwfilter_bindings"], "filters": left["port_filters"],
            "dir": instance_uuid in left["instance_dirs"]}


def test_power_lifecycle_leaves_exactly_what_each_state_needs(vif_fleet, guest, vif_instances):
    instance_uuid = vif_instances.add(HOST, str(uuid.uuid4()))
    name = "life"
    info = network_info(name, instance_uuid)
    tap = info[0]["devname"]
    vif_fleet.prepare_instance(HOST, instance_uuid, name, info, guest)
    # The port's nftables rules come with the plug and stay while the guest is off (the port
    # stays bound, as in Neutron); libvirt instantiates no nwfilter binding.
    running = {"domain": "running", "taps": [tap], "bindings": [], "filters": [tap], "dir": True}
    stopped = {"domain": "shut off", "taps": [], "bindings": [], "filters": [tap], "dir": True}
    args = {"network_info": info, "wait_for_console": READY, "console_timeout": 180}

    planned = domain(vif_fleet, instance_uuid, check=True, **args)
    assert planned.changed and planned["power_state"] == "absent"
    assert planned["actions"][-1] == "start domain %s" % name
    assert "create bridge br-dom (mtu 1500)" in planned["actions"]
    assert host_state(vif_fleet, instance_uuid, name)["domain"] == "absent"

    started = domain(vif_fleet, instance_uuid, **args)
    assert started.changed and started["power_state"] == "running"
    assert started["console_match"] == READY
    assert [(t["vm_state"], t["task_state"]) for t in started["transitions"]] == [
        ("building", "spawning"), ("active", None)]
    assert started["vifs"] == [{"devname": tap, "bridge": "br-dom", "mac": info[0]["address"],
                                "problem": None}]
    assert 0 < started["spawn_seconds"] < 60
    assert host_state(vif_fleet, instance_uuid, name) == running
    assert not domain(vif_fleet, instance_uuid, check=True, **args).changed
    assert not domain(vif_fleet, instance_uuid, **args).changed

    off = domain(vif_fleet, instance_uuid, state="stopped", retry_interval=5)
    assert off["power_off"]["method"] == "acpi"       # the guest powered itself off
    assert "VIRTOPS-SHUTDOWN" in vif_fleet.console(HOST, instance_uuid)
    assert host_state(vif_fleet, instance_uuid, name) == stopped
    assert not domain(vif_fleet, instance_uuid, state="stopped").changed

    # A changed libvirt.xml is picked up: redefined, with the XML diff.
    vif_fleet.ok(HOST, "vm_xml", {
        "instance": {"uuid": instance_uuid, "name": name},
        "flavor": dict(FLAVOR, ram_mb=160),
        "image": {"id": "virtops-test-guest", "properties": {
            "kernel_id": "virtops-test-kernel", "ramdisk_id": "virtops-test-initrd",
            "os_command_line": guest.cmdline}},
        "network_info": info, "config_drive": True, "virt_type": "qemu"})
    preview = domain(vif_fleet, instance_uuid, check=True, diff=True, state="stopped")
    assert preview.changed and preview["definition_changed"]
    assert "131072" in preview["diff"]["before"] and "163840" in preview["diff"]["after"]
    redefined = domain(vif_fleet, instance_uuid, diff=True, state="stopped")
    assert redefined["actions"] == ["redefine domain %s from the changed %s/%s/libvirt.xml"
                                    % (name, "/var/lib/virtops/instances", instance_uuid)]
    assert "<memory unit='KiB'>163840</memory>" in redefined["diff"]["after"]
    assert not domain(vif_fleet, instance_uuid, state="stopped").changed

    again = domain(vif_fleet, instance_uuid, **args)
    assert again["actions"] == ["start domain %s" % name] and again["console_match"] == READY
    assert host_state(vif_fleet, instance_uuid, name) == running
    assert "163840" in vif_fleet.lab.virsh(HOST, "dumpxml", name).stdout

    soft = domain(vif_fleet, instance_uuid, reboot=True, **args)
    assert soft["power_off"]["method"] == "acpi" and soft["console_match"] == READY
    assert [t["task_state"] for t in soft["transitions"]] == ["rebooting", "reboot_started",
                                                              None]
    hard = domain(vif_fleet, instance_uuid, reboot=True, reboot_type="hard", **args)
    assert hard["power_off"]["method"] == "destroy" and hard["console_match"] == READY
    assert host_state(vif_fleet, instance_uuid, name) == running

    paused = domain(vif_fleet, instance_uuid, state="paused")
    assert paused["power_state"] == "paused"
    assert host_state(vif_fleet, instance_uuid, name) == dict(running, domain="paused")
    assert not domain(vif_fleet, instance_uuid, state="paused").changed
    resumed = domain(vif_fleet, instance_uuid, **args)
    assert resumed["actions"] == ["resume domain %s" % name]

    preview = domain(vif_fleet, instance_uuid, check=True, state="absent")
    assert preview.changed and host_state(vif_fleet, instance_uuid, name) == running
    gone = domain(vif_fleet, instance_uuid, state="absent")
    assert gone["power_state"] == "absent" and gone["transitions"][-1]["vm_state"] == "deleted"
    assert vif_fleet.leftovers(HOST) == {"domains": [], "taps": [], "nwfilter_bindings": [],
                                         "port_filters": [], "ebtables_chains": [],
                                         "instance_dirs": []}
    assert not domain(vif_fleet, instance_uuid, state="absent").changed


def test_a_vif_that_never_gets_plugged_fails_in_time_and_leaves_nothing(
        vif_fleet, guest, vif_instances):
    instance_uuid = vif_instances.add(HOST, str(uuid.uuid4()))
    name = "unplugged"
    info = network_info(name, instance_uuid, network="ops")
    # The operator's bridge exists but is down, and it is not ours to bring up.
    vif_fleet.sh(HOST, "ip", "link", "add", "br-ops", "type", "bridge")
    try:
        vif_fleet.prepare_instance(HOST, instance_uuid, name, info, guest)
        timeout = 5
        run = vif_fleet.module(HOST, "vm_domain", {"uuid": instance_uuid, "network_info": info,
                                                   "vif_plugging_timeout": timeout})
        assert run.failed
        assert run["msg"] == "VIFs of domain %s not plugged after %.1fs: bridge br-ops of %s " \
                             "is down" % (name, timeout, info[0]["devname"])
        # This run plugged the port (its anti-spoofing rules), so it unplugs it again.
        assert run["cleanup"] == ["destroyed the domain", "undefined the domain",
                                  "unplugged the VIFs"]
        assert run["transitions"][-1]["vm_state"] == "error"
        # Creating the domain, the wait and the clean-up, plus Ansible's own second or two.
        assert run.seconds < timeout + 30
        left = vif_fleet.leftovers(HOST)
        assert (left["domains"], left["taps"], left["nwfilter_bindings"], left["port_filters"]) == (
            [], [], [], [])
        assert "UP" not in vif_fleet.links(HOST)["br-ops"]["flags"], "the operator's bridge is kept"

        # The same start succeeds when the bridge comes up while vm_domain waits.
        timer = threading.Timer(4, vif_fleet.sh, (HOST, "ip", "link", "set", "br-ops", "up"))
        timer.start()
        try:
            waited = domain(vif_fleet, instance_uuid, network_info=info, vif_plugging_timeout=120)
        finally:
            timer.join()
        assert waited["power_state"] == "running" and waited["vifs"][0]["problem"] is None
        assert waited["timings"]["vif_wait"] > 0.4
    finally:
        vif_instances.cleanup()
        vif_fleet.sh(HOST, "ip", "link", "del", "br-ops", check=False)
    assert vif_fleet.leftovers(HOST)["instance_dirs"] == []


def test_a_guest_that_ignores_the_power_button_is_destroyed_after_the_timeout(
        vif_fleet, guest, vif_instances):
    instance_uuid = vif_instances.add(HOST, str(uuid.uuid4()))
    name = "deaf"
    info = network_info(name, instance_uuid)
    directory = vif_fleet.prepare_instance(HOST, instance_uuid, name, info, guest)
    # Without ACPI the guest has no power button to press.
    xml = directory / "libvirt.xml"
    root = etree.fromstring(xml.read_bytes())
    features = root.find("features")
    features.remove(features.find("acpi"))
    xml.write_bytes(etree.tostring(root))
    domain(vif_fleet, instance_uuid, network_info=info)
    started = time.monotonic()
    off = domain(vif_fleet, instance_uuid, state="stopped", shutdown_timeout=3, retry_interval=1)
    assert off["power_off"]["method"] == "destroy"
    assert off["power_off"]["acpi_requests"] == 3
    assert 3 <= off["power_off"]["seconds"] < 10
    assert time.monotonic() - started < 30
    assert vif_fleet.domstate(HOST, name) == "shut off"
