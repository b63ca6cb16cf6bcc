# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The servers of a fleet as the compute hosts' libvirt shows them (inventory plugin ``servers``).

Nova's ``GET /servers`` reads its database; here every compute host is asked over libvirt's own
remote transport, read-only, with no agent on the host: its domains are listed and each one's
``<metadata>`` in our namespace (written by ``vm_xml``, read back by ``_guest.config``'s
``GuestMetaInstance``) says which server it is. A domain without it is not a server and is
left out.

- :func:`compute_hosts` reads the option (a libvirt URI or ``{name, uri}`` per host) and refuses a
  URI that turns host-key or certificate checking off (:func:`check_uri`).
- :func:`fetch` reads every compute host, one after the other, into plain JSON-able records:
  what the inventory cache stores. Not in threads: libvirt's test driver crashed the process
  when one thread opened a connection while another read a domain's XML, and lxml and libvirt
  share libxml2.
- :func:`select` turns the records into ``(inventory hostname, record)`` pairs: one per server
  (a server whose migration or resize waits for confirm or revert has a domain on two hosts),
  stopped ones dropped on request.
- :func:`host_vars` and :func:`default_groups` are what the plugin sets for each.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import GuestMetaInstance
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _connection
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import domains as _domains
from ansible_collections.virtops.compute.plugins.module_utils._libvirt import xml as _xml
from ansible_collections.virtops.compute.plugins.module_utils._model.console import console_url
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    validate_instance_name)

HOSTNAME_KEYS = ("name", "uuid")
# The group every server is in.
ALL_GROUP = "virtops_servers"
# libvirt's URI parameters that turn off checking who answers (docs/inventory.md).
_KNOWN_HOSTS_VERIFY_OK = ("normal",)


@dataclass(frozen=True)
class ComputeHost:
    """A compute host as the option ``compute_hosts`` names it."""
    name: str
    uri: str


def _uri_params(uri: str) -> List[Tuple[str, str]]:
    """The query parameters of a libvirt URI as libvirt reads them: ``&`` or ``;`` between them,
    percent-decoded, names in lower case (libvirt compares them case-insensitively)."""
    query = urlsplit(uri).query
    params = []
    for part in re.split(r"[&;]", query):
        if not part:
            continue
        name, _sep, value = part.partition("=")
        params.append((unquote(name).strip().lower(), unquote(value)))
    return params


def check_uri(uri: str, host: str) -> str:
    """``uri`` if it keeps libvirt's check of the host's identity, else VirtopsError.

    ``no_verify`` other than 0 makes the ssh transport accept any host key
    (``StrictHostKeyChecking=no``) and the TLS transport any certificate;
    ``known_hosts_verify=auto`` or ``ignore`` does the same for libssh and libssh2. A server
    list read from a host that merely claims an address would send the follow-up job there.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise VirtopsError("compute host %s: the libvirt URI must be a non-empty string, got %r"
                           % (host, uri))
    if "://" not in uri:
        raise VirtopsError("compute host %s: %r is not a libvirt URI such as "
                           "qemu+ssh://root@192.0.2.11/system" % (host, uri))
    for name, value in _uri_params(uri):
        if name == "no_verify":
            try:
                turned_off = int(value.strip()) != 0
            except ValueError:
                turned_off = True
            if turned_off:
                raise VirtopsError(
                    "compute host %s: the libvirt URI %s sets no_verify=%s, which turns off the "
                    "check of the host's ssh key (or TLS certificate); the inventory never reads "
                    "servers from a host it cannot verify. Remove no_verify and put the host's "
                    "key in the controller's known_hosts (ssh-keyscan, checked against the host) "
                    "or name the file with known_hosts=... (qemu+libssh://)" % (host, uri, value),
                    uri=uri)
        elif name == "known_hosts_verify" and value not in _KNOWN_HOSTS_VERIFY_OK:
            raise VirtopsError(
                "compute host %s: the libvirt URI %s sets known_hosts_verify=%s, which accepts a "
                "host key the known_hosts file does not hold; the inventory never reads servers "
                "from a host it cannot verify. Remove it (the default, normal, checks the key)"
                % (host, uri, value), uri=uri)
    return uri


def _name_from_uri(uri: str) -> str:
    """The host part of a URI (``qemu+ssh://root@kvm1/system`` -> ``kvm1``), ``localhost``
    for a local one (``qemu:///system``)."""
    try:
        hostname = urlsplit(uri).hostname
    except ValueError:
        hostname = None
    return hostname or "localhost"


def compute_hosts(entries) -> List[ComputeHost]:
    """The option ``compute_hosts``: each entry a libvirt URI or a mapping ``{name, uri}``."""
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)) or not entries:
        raise VirtopsError("compute_hosts must be a non-empty list of libvirt URIs or "
                           "{name, uri} mappings")
    hosts: List[ComputeHost] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping):
            unknown = sorted(str(k) for k in entry if k not in ("name", "uri"))
            if unknown:
                raise VirtopsError("compute_hosts[%d]: unknown keys %s (a compute host is a URI "
                                   "or {name, uri})" % (index, ", ".join(unknown)))
            uri = entry.get("uri")
            name = entry.get("name")
            check_uri(uri, "compute_hosts[%d]" % index)
            name = _name_from_uri(uri) if name is None else name
        else:
            uri = entry
            check_uri(uri, "compute_hosts[%d]" % index)
            name = _name_from_uri(uri)
        if not isinstance(name, str) or not name.strip():
            raise VirtopsError("compute_hosts[%d]: the name must be a non-empty string, got %r"
                               % (index, name))
        if any(h.name == name for h in hosts):
            raise VirtopsError("compute_hosts: two compute hosts are named %s; give each a "
                               "name of its own ({name, uri})" % name)
        hosts.append(ComputeHost(name=name, uri=uri))
    return hosts


# --- reading one compute host --------------------------------------------------------------

def _vanished(exc) -> bool:
    return exc.get_error_code() == _connection.libvirt.VIR_ERR_NO_DOMAIN


def server_record(domain_xml: str, compute_host: str, power_state: str,
                  active: bool) -> Optional[dict]:
    """The record of a server from its domain XML; None when the domain has none of our
    metadata (not a server). VirtopsError when the XML or the metadata cannot be read."""
    root = _xml.parse_xml(domain_xml, "domain XML")
    meta_el = root.find("metadata/" + GuestMetaInstance.root_name)
    if meta_el is None:
        return None
    try:
        meta = GuestMetaInstance.parse_dom(meta_el)
    except (TypeError, ValueError) as exc:
        raise VirtopsError("its virtops metadata cannot be read: %s" % exc)
    domain_name = root.findtext("name")
    name = meta.name or domain_name
    flavor = meta.flavor
    ports = [{"id": port.id, "mac": port.mac,
              "ips": [ip.address for ip in port.ips if ip.address]} for port in meta.ports]
    return {
        "uuid": (root.findtext("uuid") or "").lower(),
        "name": name,
        "domain": domain_name,
        "hostname": meta.hostname,
        "compute_host": compute_host,
        "power_state": power_state,
        "active": active,
        "flavor": None if flavor is None else {
            "name": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.memory,
            "root_gb": flavor.disk, "ephemeral_gb": flavor.ephemeral, "swap_mb": flavor.swap},
        "image": None if meta.image is None else {"id": meta.image.id, "name": meta.image.name},
        "ports": ports,
        "ips": [ip for port in ports for ip in port["ips"]],
        "macs": [port["mac"] for port in ports if port["mac"]],
        "created_at": meta.creation_time,
        # The consoles as libvirt runs them (the port of an autoport console is set while the
        # domain runs), as vm_host_facts reports them.
        "graphics": [g.to_dict() for g in _domains.graphics_of(root)],
    }


def read_host(conn, compute_host: str) -> Tuple[List[dict], List[str]]:
    """The servers on one open connection and a warning per domain whose metadata is ours but
    unreadable. A domain that vanishes while being read is left out."""
    lv = _connection.libvirt
    servers: List[dict] = []
    warnings: List[str] = []
    for dom in conn.listAllDomains(0):
        try:
            domain_xml = dom.XMLDesc(0)
            power = _domains.power_state(dom)
            active = bool(dom.isActive())
        except lv.libvirtError as exc:
            if _vanished(exc):
                continue
            raise
        if power == _domains.ABSENT:
            continue
        try:
            record = server_record(domain_xml, compute_host, power, active)
        except VirtopsError as exc:
            warnings.append("compute host %s: domain %s left out: %s"
                            % (compute_host, dom.name(), exc.msg))
            continue
        if record is not None:
            servers.append(record)
    return sorted(servers, key=lambda s: (str(s["name"]), s["uuid"])), warnings


def _open_read_only(uri: str):
    return _connection.connect(uri, read_only=True)


def _fetch_one(host: ComputeHost, opener) -> dict:
    lv = _connection.libvirt
    try:
        with opener(host.uri) as conn:
            servers, warnings = read_host(conn, host.name)
    except VirtopsError as exc:
        return {"servers": [], "warnings": [], "error": exc.msg}
    except lv.libvirtError as exc:
        return {"servers": [], "warnings": [],
                "error": "reading the domains at %s failed: %s" % (host.uri, exc)}
    return {"servers": servers, "warnings": warnings, "error": None}


def fetch(hosts: Sequence[ComputeHost],
          opener: Callable = _open_read_only) -> dict:
    """Every compute host's servers: ``{servers, warnings, errors}``, JSON-able (the cache).

    ``errors`` has one ``{compute_host, uri, error}`` per host that could not be read; the
    others are read all the same. ``opener(uri)`` is a context manager giving a connection.
    """
    missing = []
    if not _connection.HAS_LIBVIRT:
        missing.append("the libvirt Python binding (python3-libvirt, or pip install libvirt-python)")
    if not _xml.HAS_LXML:
        missing.append("lxml (python3-lxml, or pip install lxml)")
    if missing:
        raise VirtopsError("reading the compute hosts needs %s in the Python that runs the "
                           "inventory (this controller or its Execution Environment)"
                           % " and ".join(missing))
    fetched: dict = {"servers": [], "warnings": [], "errors": []}
    for host in hosts:
        result = _fetch_one(host, opener)
        fetched["servers"].extend(result["servers"])
        fetched["warnings"].extend(result["warnings"])
        if result["error"] is not None:
            fetched["errors"].append({"compute_host": host.name, "uri": host.uri,
                                      "error": result["error"]})
    return fetched


# --- from records to inventory hosts -------------------------------------------------------

def _one_per_server(servers: Sequence[dict]) -> Tuple[List[dict], List[str]]:
    """One record per uuid. A cold migration or resize waiting for confirm or revert leaves
    the stopped source domain beside the destination's: the running one is the server; when
    none or both run, the first compute host's. ``also_on`` names the other hosts."""
    by_uuid: Dict[str, List[dict]] = {}
    for server in servers:
        by_uuid.setdefault(server["uuid"], []).append(server)
    chosen: List[dict] = []
    warnings: List[str] = []
    for server in servers:
        copies = by_uuid[server["uuid"]]
        if copies[0] is not server:
            continue
        running = [c for c in copies if c["active"]]
        pick = running[0] if len(running) == 1 else copies[0]
        others = [c["compute_host"] for c in copies if c is not pick]
        if others and len(running) != 1:
            warnings.append("server %s (%s) has a domain on %s: listed on %s, the first of them "
                            "(a migration or resize waiting for confirm or revert?)"
                            % (pick["name"], pick["uuid"],
                               ", ".join(c["compute_host"] for c in copies), pick["compute_host"]))
        chosen.append(dict(pick, also_on=others))
    return chosen, warnings


def select(servers: Sequence[dict], want_stopped: bool = True,
           hostname_key: str = "name") -> Tuple[List[Tuple[str, dict]], List[str]]:
    """``(inventory hostname, record)`` for each server to list, and warnings.

    A name another server already has, or that is not a usable host name, gives way to the
    server's uuid (with a warning), so two servers never merge into one inventory host.
    """
    if hostname_key not in HOSTNAME_KEYS:
        raise VirtopsError("hostname_key must be one of %s, not %r"
                           % (", ".join(HOSTNAME_KEYS), hostname_key))
    chosen, warnings = _one_per_server(servers)
    listed: List[Tuple[str, dict]] = []
    taken: Dict[str, str] = {}
    for server in chosen:
        if not want_stopped and not server["active"]:
            continue
        hostname = server["uuid"]
        if hostname_key == "name":
            try:
                hostname = validate_instance_name(server["name"])
            except VirtopsError:
                warnings.append("server %s on %s: its name %r is not a usable host name; listed "
                                "as its uuid" % (server["uuid"], server["compute_host"],
                                                 server["name"]))
            if hostname in taken and taken[hostname] != server["uuid"]:
                warnings.append("servers %s and %s are both named %s; the second (on %s) is "
                                "listed as its uuid" % (taken[hostname], server["uuid"], hostname,
                                                        server["compute_host"]))
                hostname = server["uuid"]
        taken[hostname] = server["uuid"]
        listed.append((hostname, server))
    return listed, warnings


def host_vars(server: Mapping, address: bool = True) -> dict:
    """The variables of a server's inventory host."""
    hostvars = {
        "virtops_uuid": server["uuid"],
        "virtops_name": server["name"],
        "virtops_hostname": server.get("hostname"),
        "virtops_compute_host": server["compute_host"],
        "virtops_power_state": server["power_state"],
        "virtops_flavor": server.get("flavor"),
        "virtops_image": server.get("image"),
        "virtops_ports": list(server.get("ports") or []),
        "virtops_ips": list(server.get("ips") or []),
        "virtops_macs": list(server.get("macs") or []),
        "virtops_created_at": server.get("created_at"),
        "virtops_also_on": list(server.get("also_on") or []),
        "virtops_console": console_url(server.get("graphics") or []),
    }
    if address and server.get("ips"):
        hostvars["ansible_host"] = server["ips"][0]
    return hostvars


def default_groups(server: Mapping) -> List[str]:
    """The groups every server is put in; the plugin sanitises the names (``m1.nano`` ->
    ``m1_nano``)."""
    groups = [ALL_GROUP, "compute_host_%s" % server["compute_host"],
              "power_%s" % server["power_state"]]
    flavor = server.get("flavor") or {}
    if flavor.get("name"):
        groups.append("flavor_%s" % flavor["name"])
    return groups
