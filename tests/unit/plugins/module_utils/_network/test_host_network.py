# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_host_network's plan against this host's real links (read only; nothing is created)."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec
from ansible_collections.virtops.compute.plugins.module_utils._network.host_network import (
    plan_network)


@pytest.mark.parametrize("spec, message", [
    (NetworkSpec("n", bridge="br0", vif_type="vlan", vlan=20),
     "vif_type vlan needs vlan \\(1-4094\\) and physical_interface"),
    (NetworkSpec("n", bridge="br0", vif_type="vlan", vlan=5000, physical_interface="eth0"),
     "vlan must be between 1 and 4094, got 5000"),
    (NetworkSpec("n", bridge="br0", vif_type="vxlan", vxlan_id=7, physical_interface="eth0"),
     "needs vxlan_peers .* or a multicast vxlan_group"),
    (NetworkSpec("n", bridge="br0", vif_type="vxlan", vxlan_id=7, physical_interface="eth0",
                 vxlan_peers=("peer1",)), "'peer1' is not an IP address"),
    (NetworkSpec("n", bridge="br-much-too-long-name"), "not a valid interface name"),
    (NetworkSpec("n", vif_type="bridge"), "needs a bridge name"),
    (NetworkSpec("n", bridge="br0", vif_type="ovs"), "vif_type 'ovs' is not one of"),
    (NetworkSpec("n", bridge="br0", mtu=10), "mtu must be between 68 and 65535, got 10"),
])
def test_invalid_networks_are_refused_with_the_reason(spec, message):
    with pytest.raises(VirtopsError, match=message):
        plan_network(spec)


def test_missing_bridge_is_planned_not_created():
    plan = plan_network(NetworkSpec("private", bridge="vo-ut-nobr", mtu=1500))
    assert plan.changed
    assert plan.describe() == [
        "ip link add name vo-ut-nobr mtu 1500 type bridge stp_state 0 forward_delay 0",
        "ip link set dev vo-ut-nobr up"]


def test_operator_bridge_that_is_missing_is_an_error():
    with pytest.raises(VirtopsError, match="create_bridge is false"):
        plan_network(NetworkSpec("ext", bridge="vo-ut-nobr", create_bridge=False))


def test_a_link_that_is_not_a_bridge_is_not_taken_for_one():
    with pytest.raises(VirtopsError, match="lo exists but is a physical interface"):
        plan_network(NetworkSpec("n", bridge="lo"))


def test_networks_without_a_host_bridge_need_nothing():
    assert not plan_network(NetworkSpec("libvirt", vif_type="network")).changed
