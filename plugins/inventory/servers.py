# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: servers
author:
  - virtops.compute contributors (@virtops)
short_description: The servers of a virtops.compute fleet, read from the compute hosts' libvirt
version_added: 0.2.0
description:
  - Lists the servers (guests) that the compute hosts of a virtops.compute fleet run, so that a
    follow-up job can target them, as C(openstack.cloud.openstack) lists the servers of a cloud.
  - Each compute host is read over libvirt's own remote transport with a read-only connection
    (C(virConnectOpenReadOnly)); nothing runs on the host but libvirt and its ssh server. Every
    domain whose C(<metadata>) holds the C(https://virtops.dev/xmlns/compute/1.0) element that
    C(virtops.compute.vm_xml) writes is a server; other domains are left out.
  - "Each server gets the host variables C(virtops_uuid), C(virtops_name), C(virtops_hostname),
    C(virtops_compute_host) (the compute host's name), C(virtops_power_state) (Nova's power state
    names: C(running), C(paused), C(shutdown), C(crashed), C(suspended), C(pending)),
    C(virtops_flavor) (C(name), C(vcpus), C(ram_mb), C(root_gb), C(ephemeral_gb), C(swap_mb)),
    C(virtops_image) (C(id), C(name)), C(virtops_ports) (C(id), C(mac), C(ips) per port),
    C(virtops_ips), C(virtops_macs), C(virtops_created_at), C(virtops_also_on) and
    C(virtops_console) (the URL of its running domain's console, C(vnc://<listen>:<port>), read
    from the live domain XML as M(virtops.compute.vm_host_facts) reads it; V(null) when the
    domain does not run), and C(ansible_host) (its first fixed IP) unless O(address=false)."
  - "Each server is in the groups C(virtops_servers), C(compute_host_<name>),
    C(power_<state>) and C(flavor_<name>), with any character other than letters, digits and
    C(_) replaced by C(_) (C(flavor_m1_nano)); O(keyed_groups), O(groups) and O(compose) add
    more."
  - Host keys are always checked. A URI that turns the check off (C(no_verify=1), or
    C(known_hosts_verify=auto) or C(ignore)) is refused.
  - A compute host that cannot be read is reported as a warning and left out, unless
    O(fail_on_errors=true); the cache is not written after such a run, so the next run asks
    again.
  - The guide C(docs/inventory.md) has more examples.
requirements:
  - On the controller (or in the Execution Environment) that runs the inventory, the libvirt
    Python binding (C(python3-libvirt), or C(pip install libvirt-python) with the libvirt client
    library) and lxml (C(python3-lxml)).
  - For C(qemu+ssh://) URIs an ssh client on the controller; on each compute host libvirtd and
    an ssh server (libvirt's C(virt-ssh-helper) or C(nc) reaches libvirtd's socket).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it must be V(virtops.compute.servers) for the file to be read by it.
    type: str
    required: true
    choices: [virtops.compute.servers]
  compute_hosts:
    description:
      - The compute hosts to read, in order. Each is a libvirt URI, or a mapping with C(uri) and
        C(name) (the name the compute host has in the fleet's inventory; by default the host part
        of the URI).
      - "A URI such as C(qemu+ssh://root@192.0.2.11/system?keyfile=/home/ops/.ssh/virtops&no_tty=1)
        connects with the C(ssh) client, which checks the host key against the controller user's
        C(~/.ssh/known_hosts) (and its ssh configuration); C(no_tty=1) makes it fail rather than
        wait for a password or a question nobody answers (AWX, cron)."
      - "C(qemu+libssh://root@192.0.2.11/system?keyfile=/path/key&known_hosts=/path/known_hosts&sshauth=privkey)
        connects with libvirt's built-in libssh client and checks the host key against the file
        C(known_hosts) names."
      - Never set C(no_verify=1); such a URI is refused.
    type: list
    elements: raw
    required: true
  want_stopped:
    description: List the servers whose domain is shut off too.
    type: bool
    default: true
  hostname_key:
    description:
      - What names a server's inventory host, its name (unique in the fleet) or its uuid.
      - A server whose name another server already has is listed as its uuid, with a warning.
    type: str
    choices: [name, uuid]
    default: name
  address:
    description:
      - Set C(ansible_host) to the server's first fixed IP address (of its first port), so a
        follow-up play connects to the server itself.
      - V(false) leaves C(ansible_host) unset (use O(compose) to choose another address).
    type: bool
    default: true
  fail_on_errors:
    description:
      - Fail the whole inventory source when a compute host cannot be read, instead of warning
        and listing the servers of the others.
    type: bool
    default: false
notes:
  - A server whose cold migration or resize waits for confirm or revert has a domain on both
    compute hosts; it is listed once, on the host where it runs (or the first of them), and
    C(virtops_also_on) names the other.
  - Values read from the compute hosts are marked unsafe, so a name or metadata on a host cannot
    template anything on the controller.
seealso:
  - name: libvirt remote URIs
    description: The transports and URI parameters of libvirt's remote driver.
    link: https://libvirt.org/uri.html#remote-uris
"""

EXAMPLES = r"""
# fleet.virtops_servers.yml: every server of two compute hosts, reached over ssh.
plugin: virtops.compute.servers
compute_hosts:
  - name: kvm1
    uri: qemu+ssh://root@192.0.2.11/system?keyfile=/home/ops/.ssh/virtops&no_tty=1
  - name: kvm2
    uri: qemu+ssh://root@192.0.2.12/system?keyfile=/home/ops/.ssh/virtops&no_tty=1

---
# Only running servers, named by uuid, grouped by image and by size, with the user a follow-up
# play logs in as; the listing is cached for 10 minutes.
plugin: virtops.compute.servers
compute_hosts:
  - qemu+libssh://root@192.0.2.11/system?keyfile=/etc/virtops/key&known_hosts=/etc/virtops/known_hosts&sshauth=privkey
want_stopped: false
hostname_key: uuid
keyed_groups:
  - key: virtops_image.name
    prefix: image
compose:
  ansible_user: "'debian'"
groups:
  big: virtops_flavor.ram_mb >= 4096
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /var/cache/ansible/virtops
cache_timeout: 600
"""

import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._inventory import servers as _servers

FILE_ENDINGS = ("virtops_servers.yml", "virtops_servers.yaml")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "virtops.compute.servers"

    def verify_file(self, path):
        name = os.path.basename(path)
        mine = name in FILE_ENDINGS or name.endswith(tuple("." + e for e in FILE_ENDINGS))
        return super().verify_file(path) and mine

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            hosts = _servers.compute_hosts(self.get_option("compute_hosts"))
        except VirtopsError as exc:
            raise AnsibleParserError("%s: %s" % (path, exc.msg))
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        fetched = None
        if use_cache:
            try:
                fetched = self._cache[cache_key]
            except KeyError:
                fetched = None
        if fetched is None:
            fetched = self._fetch(hosts)
            if self.get_option("cache") and not fetched["errors"]:
                self._cache[cache_key] = fetched
        self._populate(fetched)

    def _fetch(self, hosts):
        try:
            fetched = _servers.fetch(hosts)
        except VirtopsError as exc:
            raise AnsibleError("virtops.compute.servers: %s" % exc.msg)
        messages = ["compute host %s not read: %s" % (error["compute_host"], error["error"])
                    for error in fetched["errors"]]
        if messages and self.get_option("fail_on_errors"):
            raise AnsibleError("; ".join(messages))
        for message in messages:
            self.display.warning(message)
        return fetched

    def _populate(self, fetched):
        try:
            listed, warnings = _servers.select(fetched["servers"],
                                               want_stopped=self.get_option("want_stopped"),
                                               hostname_key=self.get_option("hostname_key"))
        except VirtopsError as exc:
            raise AnsibleParserError(exc.msg)
        for warning in list(fetched.get("warnings") or []) + warnings:
            self.display.warning(warning)
        strict = self.get_option("strict")
        for hostname, server in listed:
            host = self.inventory.add_host(hostname)
            hostvars = wrap_var(_servers.host_vars(server, address=self.get_option("address")))
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            for group in _servers.default_groups(server):
                self.inventory.add_child(self.inventory.add_group(self._sanitize_group_name(group)),
                                         host)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host,
                                              strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host,
                                           strict=strict)
