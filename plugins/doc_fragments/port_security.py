# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Who enforces the anti-spoofing of ports with details.port_filter (argument spec:
    # module_utils/_model/network.py PORT_SECURITY_ARGS).
    DOCUMENTATION = r"""
options:
  firewall_driver:
    description:
      - How ports with C(details.port_filter) (the network's C(port_security)) are kept from
        spoofing, in the spirit of Neutron's firewall drivers.
      - V(nftables) (the default) - M(virtops.compute.vm_vif) writes the port's rules into
        the nftables table C(bridge virtops) when it plugs the port and removes them when it
        unplugs it; the domain XML has no C(<filterref>). The rules drop frames from the guest
        whose source MAC is not the port's, IPv4 not from the port's fixed IPv4 addresses
        (DHCP requests from 0.0.0.0 pass), DHCP server replies, ARP whose sender is not the
        port's MAC and IPv4 addresses, and every other ethertype (IPv6 included). Traffic to
        the guest is not filtered. See C(nft list table bridge virtops) and
        C(docs/networking.md).
      - V(nwfilter) - the old way, libvirt's nwfilter O(nwfilter) referenced by each filtered
        interface of the domain XML with the port's IPv4 addresses; libvirt instantiates it
        with ebtables at every domain start and removes it at every destroy (1.1 s more per
        start and 0.25 s more per destroy measured on a development machine, about 2.5 s each
        reported on lab hosts; see C(docs/networking.md)).
      - Use the same value for M(virtops.compute.vm_vif), M(virtops.compute.vm_xml),
        M(virtops.compute.vm_domain) and M(virtops.compute.vm_migrate) (the roles pass
        C(virtops_firewall_driver)).
    type: str
    choices: [nftables, nwfilter]
    default: nftables
  nwfilter:
    description:
      - The libvirt network filter of filtered ports, used only with
        O(firewall_driver=nwfilter); it must be defined on the host (C(virsh nwfilter-list)).
    type: str
    default: clean-traffic
"""
