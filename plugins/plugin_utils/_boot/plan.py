# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bookkeeping of a boot on the controller (Nova's API checks and conductor, small).

The ``server_boot`` role keeps one *plan* (a plain dict, an Ansible fact on the controller)
and moves it through the flow with the filters of ``plugins/filter/boot.py``:

1. :func:`boot_request` checks ``server`` against the catalogs (flavors, images, networks,
   keypairs, server groups) the way Nova's API does, before any host is touched.
2. :func:`boot_plan` names the instances (``web``, or ``web-1`` ... ``web-N`` for a multiple
   create), finds the ones the fleet already has (host facts, by name) and gives the new
   ones a uuid. An instance that exists is left alone; one left ``building`` by an
   interrupted run is finished on its host; one in ``error`` stops the boot.
3. :func:`schedule_requests` / :func:`boot_placed`: the scheduler lookup's requests and its
   selections. :func:`ports_request` / :func:`boot_ported`: the same for the ports lookup.
4. After each build attempt :func:`boot_collect` reads what every host reported; a failed
   instance remembers the host and the reason and is scheduled again without the hosts it
   failed on, up to ``max_attempts`` (3, Nova's default) in all, then it is in ``error``.
5. :func:`boot_summary` says what happened, per instance, and what failed cleanups left on
   hosts.

Leftovers and drift: a failed build whose cleanup fails too leaves its record on the host
marked (vm_state ``error``, task_state ``deleting``); the next boot of the server sees it as a
leftover, not as the server (:func:`split_leftovers`), and its host removes it before building
(:func:`host_fixes`, :func:`boot_fixed`), as Nova's ``_run_pending_deletes`` retries the
deletes whose files remain. An existing server whose domain is off or missing while its record
says active is reported and, as ``server_boot_drift`` says, recorded or started
(:func:`power_drift`, Nova's ``_sync_instance_power_state``).

Instance statuses in the plan: ``exists`` (already there, nothing to do), ``unplaced``
(needs a host), ``pending`` (has a host, to be built in the current attempt), ``active``
(built by this run), ``error`` (gave up; ``fault`` says why), ``dropped`` (a multiple
create placed fewer than ``max_count``, no fewer than ``min_count``).
"""
from __future__ import annotations

import re
import uuid as uuid_mod
from typing import Callable, Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    INSTANCE_NAME_MAX, validate_instance_name)
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    check_user_data)

MAX_ATTEMPTS = 3
MULTI_INSTANCE_NAME_TEMPLATE = "%(name)s-%(count)d"     # Nova's default, as the scheduler's
SERVER_KEYS = ("name", "flavor", "image", "networks", "min_count", "max_count",
               "availability_zone", "key_name", "user_data", "metadata", "admin_pass",
               "config_drive", "scheduler_hints")
FLAVOR_KEYS = ("vcpus", "ram_mb", "root_gb", "ephemeral_gb", "swap_mb", "extra_specs")
FLAVOR_IGNORED = ("name", "id", "description", "is_public")
IMAGE_KEYS = ("url", "disk_format", "checksum", "allow_unverified", "id", "min_disk", "min_ram",
              "properties")
IMAGE_IGNORED = ("name", "description", "container_format")
DISK_FORMATS = ("raw", "qcow2", "vmdk", "iso")
# Glance's formats for the kernel and ramdisk a machine image names in kernel_id/ramdisk_id:
# fetched beside the disks, never booted from.
BOOT_FILE_FORMATS = {"kernel_id": "aki", "ramdisk_id": "ari"}
HINT_KEYS = ("group", "same_host", "different_host")
GROUP_POLICIES = ("affinity", "anti-affinity")
METADATA_MAX_ITEMS = 128     # Nova's default metadata_items quota
METADATA_FIELD_MAX = 255
# States in which an instance counts as existing: a boot of the same name changes nothing.
SETTLED_STATES = ("active", "stopped", "paused", "resized")
ALIVE = ("unplaced", "pending")


def _fail(msg: str) -> VirtopsError:
    return VirtopsError(msg)


def _known(catalog: Mapping) -> str:
    return ", ".join(sorted(str(k) for k in catalog)) or "none"


def _catalog(value, what: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("%s must be a mapping of name to definition, not %s"
                    % (what, type(value).__name__))
    return value


def _int(value, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise _fail("%s must be a whole number, not %r" % (what, value))
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise _fail("%s must be a whole number, not %r" % (what, value))
    if number < minimum:
        raise _fail("%s must be at least %d, not %d" % (what, minimum, number))
    return number


def _names(base: str, count: int) -> List[str]:
    if count == 1:
        return [base]
    return [MULTI_INSTANCE_NAME_TEMPLATE % {"name": base, "count": n} for n in range(1, count + 1)]


# --------------------------------------------------------------------------- the request

def _flavor(name: str, flavors: Mapping) -> dict:
    if name not in flavors:
        raise _fail("server.flavor: there is no flavor %r in flavors (known: %s)"
                    % (name, _known(flavors)))
    data = flavors[name]
    if not isinstance(data, Mapping):
        raise _fail("flavors.%s must be a mapping with vcpus, ram_mb, root_gb ..." % name)
    unknown = sorted(str(k) for k in data if k not in FLAVOR_KEYS + FLAVOR_IGNORED)
    if unknown:
        raise _fail("flavors.%s: unknown key(s) %s (known: %s)"
                    % (name, ", ".join(unknown), ", ".join(FLAVOR_KEYS)))
    for key in ("vcpus", "ram_mb"):
        if data.get(key) is None:
            raise _fail("flavors.%s: missing %s" % (name, key))
    extra_specs = data.get("extra_specs") or {}
    if not isinstance(extra_specs, Mapping):
        raise _fail("flavors.%s.extra_specs must be a mapping" % name)
    return {
        "name": str(name),
        "vcpus": _int(data["vcpus"], "flavors.%s.vcpus" % name, 1),
        "ram_mb": _int(data["ram_mb"], "flavors.%s.ram_mb" % name, 1),
        "root_gb": _int(data.get("root_gb") or 0, "flavors.%s.root_gb" % name),
        "ephemeral_gb": _int(data.get("ephemeral_gb") or 0, "flavors.%s.ephemeral_gb" % name),
        "swap_mb": _int(data.get("swap_mb") or 0, "flavors.%s.swap_mb" % name),
        "extra_specs": {str(k): v for k, v in extra_specs.items()},
    }


def _image(name: str, images: Mapping) -> dict:
    if name not in images:
        raise _fail("server.image: there is no image %r in images (known: %s)"
                    % (name, _known(images)))
    data = images[name]
    if not isinstance(data, Mapping):
        raise _fail("images.%s must be a mapping with url, disk_format, checksum ..." % name)
    unknown = sorted(str(k) for k in data if k not in IMAGE_KEYS + IMAGE_IGNORED)
    if unknown:
        raise _fail("images.%s: unknown key(s) %s (known: %s)"
                    % (name, ", ".join(unknown), ", ".join(IMAGE_KEYS)))
    if not data.get("url"):
        raise _fail("images.%s: missing url (http://, https://, file:// or a path on the hosts)"
                    % name)
    disk_format = data.get("disk_format")
    if disk_format not in DISK_FORMATS + tuple(BOOT_FILE_FORMATS.values()):
        raise _fail("images.%s: disk_format must be one of %s, not %r"
                    % (name, ", ".join(DISK_FORMATS + tuple(BOOT_FILE_FORMATS.values())),
                       disk_format))
    properties = data.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise _fail("images.%s.properties must be a mapping" % name)
    image = {
        "name": str(name),
        "url": str(data["url"]),
        "disk_format": disk_format,
        "min_disk": _int(data.get("min_disk") or 0, "images.%s.min_disk" % name),
        "min_ram": _int(data.get("min_ram") or 0, "images.%s.min_ram" % name),
        "properties": {str(k): v for k, v in properties.items()},
    }
    if data.get("checksum"):
        image["checksum"] = str(data["checksum"])
    allow = data.get("allow_unverified", False)
    if not isinstance(allow, bool):
        raise _fail("images.%s.allow_unverified must be true or false, not %r" % (name, allow))
    if allow:
        image["allow_unverified"] = True
    elif "checksum" not in image:
        # vm_image refuses it on the host too; saying so here spares a schedule and a claim.
        raise _fail("images.%s has no checksum, so a truncated or altered download could not "
                    "be told from the real image: add checksum: sha256:<hex> (sha256sum of the "
                    "file) to it, or allow_unverified: true to boot it unverified" % name)
    # Glance never changes an image's data under its id; here the catalog entry may change,
    # so the default id follows the source and its checksum: new data, new cached base.
    image["id"] = str(data.get("id") or uuid_mod.uuid5(
        uuid_mod.NAMESPACE_URL, "%s|%s" % (image["url"], image.get("checksum", ""))))
    return image


def _boot_file(image: Mapping, key: str, images: Mapping) -> Optional[dict]:
    """The kernel (kernel_id) or ramdisk (ramdisk_id) a machine image names, from the catalog:
    by name, or by the id of an entry."""
    ref = image["properties"].get(key)
    if ref in (None, ""):
        return None
    ref = str(ref)
    if ref in images:
        found = _image(ref, images)
    else:
        found = None
        for name in images:
            candidate = _image(str(name), images)
            if candidate["id"] == ref:
                found = candidate
                break
    if found is None:
        raise _fail("images.%s.properties.%s: there is no image %r (by name or id) in images "
                    "(known: %s)" % (image["name"], key, ref, _known(images)))
    if found["disk_format"] != BOOT_FILE_FORMATS[key]:
        raise _fail("images.%s.properties.%s names image %s, whose disk_format is %s, not %s"
                    % (image["name"], key, found["name"], found["disk_format"],
                       BOOT_FILE_FORMATS[key]))
    return {k: found[k] for k in ("url", "checksum", "allow_unverified", "id", "disk_format")
            if k in found}


def image_source(image: Mapping) -> dict:
    """The image as vm_image takes it (what to fetch and check)."""
    return {k: image[k] for k in IMAGE_KEYS if k in image}


def image_ref(image: Mapping) -> dict:
    """The image as vm_xml takes it (what the domain is built from and records)."""
    return {k: image[k] for k in ("id", "name", "disk_format", "properties")}


def _networks(value, catalog: Mapping, max_count: int) -> List[dict]:
    if value is None or value == "auto":
        if not catalog:
            return []
        if len(catalog) > 1:
            raise _fail("server.networks: there are several networks (%s); say which, e.g. "
                        "networks: [{network: %s}], or networks: none"
                        % (_known(catalog), sorted(catalog)[0]))
        return [{"network": str(next(iter(catalog)))}]
    if value == "none":
        return []
    if not isinstance(value, (list, tuple)):
        raise _fail("server.networks must be a list such as [{network: private}], 'auto' or "
                    "'none', not %r" % (value,))
    ports = []
    for index, entry in enumerate(value):
        what = "server.networks[%d]" % index
        if isinstance(entry, str):
            entry = {"network": entry}
        if not isinstance(entry, Mapping) or not entry.get("network"):
            raise _fail("%s needs network: <name>" % what)
        unknown = sorted(str(k) for k in entry if k not in ("network", "fixed_ip", "mac"))
        if unknown:
            raise _fail("%s: unknown key(s) %s (known: network, fixed_ip, mac)"
                        % (what, ", ".join(unknown)))
        if entry["network"] not in catalog:
            raise _fail("%s: there is no network %r in networks (known: %s)"
                        % (what, entry["network"], _known(catalog)))
        if max_count > 1 and (entry.get("fixed_ip") or entry.get("mac")):
            # Nova: "Multiple instances cannot be created with a specific fixed IP".
            raise _fail("%s: fixed_ip and mac cannot be used when max_count is more than 1"
                        % what)
        ports.append({k: str(v) for k, v in entry.items() if v not in (None, "")})
    return ports


def _keypair(key_name, keypairs: Mapping) -> Optional[dict]:
    if not key_name:
        return None
    if key_name not in keypairs:
        raise _fail("server.key_name: there is no keypair %r in keypairs (known: %s)"
                    % (key_name, _known(keypairs)))
    data = keypairs[key_name]
    if isinstance(data, str):
        data = {"public_key": data}
    if not isinstance(data, Mapping) or not data.get("public_key"):
        raise _fail("keypairs.%s needs public_key" % key_name)
    return {"name": str(key_name), "public_key": str(data["public_key"]).strip(),
            "type": str(data.get("type") or "ssh")}


def _metadata(value) -> Dict[str, str]:
    value = value or {}
    if not isinstance(value, Mapping):
        raise _fail("server.metadata must be a mapping of strings")
    if len(value) > METADATA_MAX_ITEMS:
        raise _fail("server.metadata has %d items; at most %d" % (len(value), METADATA_MAX_ITEMS))
    meta = {}
    for key, item in value.items():
        key, item = str(key), "" if item is None else str(item)
        if not key or len(key) > METADATA_FIELD_MAX or len(item) > METADATA_FIELD_MAX:
            raise _fail("server.metadata %r: keys must be 1 to %d characters and values at "
                        "most %d" % (key, METADATA_FIELD_MAX, METADATA_FIELD_MAX))
        meta[key] = item
    return meta


def _hints(value, server_groups: Mapping):
    hints = value or {}
    if not isinstance(hints, Mapping):
        raise _fail("server.scheduler_hints must be a mapping")
    unknown = sorted(str(k) for k in hints if k not in HINT_KEYS)
    if unknown:
        raise _fail("server.scheduler_hints: unknown hint(s) %s (known: %s)"
                    % (", ".join(unknown), ", ".join(HINT_KEYS)))
    clean = {}
    for key in ("same_host", "different_host"):
        names = hints.get(key)
        if names:
            clean[key] = [str(n) for n in ([names] if isinstance(names, str) else names)]
    group = None
    if hints.get("group"):
        name = str(hints["group"])
        if name not in server_groups:
            raise _fail("server.scheduler_hints.group: there is no server group %r in "
                        "server_groups (known: %s)" % (name, _known(server_groups)))
        data = server_groups[name]
        if isinstance(data, str):
            data = {"policy": data}
        if not isinstance(data, Mapping) or data.get("policy") not in GROUP_POLICIES:
            raise _fail("server_groups.%s: policy must be affinity or anti-affinity" % name)
        group = {"name": name, "policy": data["policy"]}
        if data.get("rules"):
            group["rules"] = dict(data["rules"])
        if data.get("members"):
            group["members"] = [str(m) for m in data["members"]]
        clean["group"] = name
    return clean, group


def boot_request(server, flavors=None, images=None, networks=None, keypairs=None,
                 server_groups=None) -> dict:
    """``server`` (Nova's POST /servers body) checked against the catalogs.

    The result holds everything the flow needs except the secrets (``admin_pass`` and
    ``user_data``, which the role keeps out of facts that verbose output would show).
    """
    if not isinstance(server, Mapping):
        raise _fail("server must be a mapping with at least name, flavor and image")
    unknown = sorted(str(k) for k in server if k not in SERVER_KEYS)
    if unknown:
        raise _fail("server: unknown key(s) %s (known: %s)"
                    % (", ".join(unknown), ", ".join(SERVER_KEYS)))
    for key in ("name", "flavor", "image"):
        if not server.get(key):
            raise _fail("server.%s is required" % key)
    flavors = _catalog(flavors, "flavors")
    images = _catalog(images, "images")
    networks = _catalog(networks, "networks")
    keypairs = _catalog(keypairs, "keypairs")
    server_groups = _catalog(server_groups, "server_groups")

    min_count = _int(server.get("min_count") or 1, "server.min_count", 1)
    max_count = _int(server.get("max_count") or 1, "server.max_count", 1)
    if min_count > max_count:
        raise _fail("server.min_count (%d) is more than server.max_count (%d)"
                    % (min_count, max_count))
    name = str(server["name"])
    try:
        validate_instance_name(name)
        for instance_name in _names(name, max_count)[-1:]:
            validate_instance_name(instance_name)
    except VirtopsError:
        raise _fail("server.name %r: use 1 to %d characters of A-Z a-z 0-9 . _ - (with the "
                    "-N suffix of a multiple create), not starting with '.' or '-'"
                    % (name, INSTANCE_NAME_MAX))
    flavor = _flavor(str(server["flavor"]), flavors)
    image = _image(str(server["image"]), images)
    if image["disk_format"] in BOOT_FILE_FORMATS.values():
        raise _fail("server.image: %s is a %s image (a kernel or ramdisk): boot from a machine "
                    "image whose properties kernel_id/ramdisk_id name it"
                    % (image["name"], image["disk_format"]))
    if image["properties"].get("ramdisk_id") and not image["properties"].get("kernel_id"):
        raise _fail("images.%s.properties: ramdisk_id needs kernel_id (a ramdisk is only used "
                    "with a kernel)" % image["name"])
    kernel = _boot_file(image, "kernel_id", images)
    ramdisk = _boot_file(image, "ramdisk_id", images)
    # Nova's API checks (FlavorMemoryTooSmall, FlavorDiskTooSmall) before scheduling.
    if image["min_ram"] > flavor["ram_mb"]:
        raise _fail("flavor %s has %d MB of RAM; image %s needs at least %d (min_ram)"
                    % (flavor["name"], flavor["ram_mb"], image["name"], image["min_ram"]))
    if flavor["root_gb"] and image["min_disk"] > flavor["root_gb"]:
        raise _fail("flavor %s has a %d GB root disk; image %s needs at least %d GB (min_disk)"
                    % (flavor["name"], flavor["root_gb"], image["name"], image["min_disk"]))
    if server.get("user_data") is not None:
        # Nova's API refuses it before scheduling; the host would only after the claim.
        check_user_data(server["user_data"], "server.user_data")
    hints, group = _hints(server.get("scheduler_hints"), server_groups)
    zone = server.get("availability_zone")
    if zone is not None and not isinstance(zone, str):
        raise _fail("server.availability_zone must be a string such as az1 (or az1:host)")
    return {
        "name": name,
        "min_count": min_count,
        "max_count": max_count,
        "flavor": flavor,
        "image": image,
        "image_source": image_source(image),
        "kernel_source": kernel,
        "ramdisk_source": ramdisk,
        "image_ref": image_ref(image),
        "networks": _networks(server.get("networks"), networks, max_count),
        "availability_zone": zone or None,
        "keypair": _keypair(server.get("key_name"), keypairs),
        "metadata": _metadata(server.get("metadata")),
        "config_drive": bool(server.get("config_drive")),
        "scheduler_hints": hints,
        "server_group": group,
    }


# --------------------------------------------------------------------------- the plan

def _facts_list(hosts) -> List[Mapping]:
    if hosts is None:
        return []
    if isinstance(hosts, Mapping):
        return [dict(facts, hostname=facts.get("hostname") or name)
                for name, facts in hosts.items() if isinstance(facts, Mapping)]
    return [facts for facts in hosts if isinstance(facts, Mapping)]


def find_instances(hosts, name: str) -> List[dict]:
    """Every record of ``name`` in the fleet's host facts, with the host holding it."""
    found = []
    for facts in _facts_list(hosts):
        for instance in facts.get("instances") or []:
            if instance.get("name") == name:
                found.append(dict(instance, host=facts.get("hostname")))
    return found


def boot_plan(request: Mapping, hosts, uuid_factory: Callable[[], str] = None,
              max_attempts: int = MAX_ATTEMPTS, drift: str = "sync") -> dict:
    """Name the instances, find the ones that exist, give the others a uuid.

    Records a failed cleanup left behind (:func:`split_leftovers`) do not count as the
    instance: they go in ``leftovers``, for their hosts to finish removing. An existing
    instance whose domain does not match its record gets a ``drift`` (:func:`power_drift`)."""
    make_uuid = uuid_factory or (lambda: str(uuid_mod.uuid4()))
    if drift not in DRIFT_MODES:
        raise _fail("server_boot_drift must be one of %s, not %r" % (", ".join(DRIFT_MODES), drift))
    instances = []
    leftovers = []
    for index, name in enumerate(_names(request["name"], request["max_count"])):
        entry = {"name": name, "launch_index": index, "uuid": None, "status": "unplaced",
                 "host": None, "limits": {}, "alternates": [], "tried": [], "failures": [],
                 "network_info": [], "attempt": 0, "resumed": False, "fault": None,
                 "availability_zone": None, "drift": None}
        found, left = split_leftovers(find_instances(hosts, name))
        leftovers += [leftover_entry(record, "an earlier run") for record in left]
        if len(found) > 1 and len({f.get("uuid") for f in found}) > 1:
            raise _fail("%s exists more than once in the fleet (%s); delete the extra ones "
                        "first" % (name, ", ".join("%s on %s" % (f.get("uuid"), f["host"])
                                                   for f in found)))
        if found:
            record = found[0]
            entry["uuid"] = record.get("uuid")
            entry["host"] = record["host"]
            entry["vm_state"] = record.get("vm_state")
            entry["task_state"] = record.get("task_state")
            entry["power_state"] = record.get("power_state")
            entry["ips"] = record.get("ips") or []
            entry["availability_zone"] = record.get("availability_zone")
            if len(found) > 1 or record.get("migration") or record.get("vm_state") in SETTLED_STATES:
                entry["status"] = "exists"     # also an instance in a move: leave it alone
                if len(found) == 1:
                    entry["drift"] = power_drift(record, drift)
            elif record.get("vm_state") == "building":
                # An interrupted boot: finish it where it was claimed (every step is idempotent).
                entry.update(status="pending", resumed=True)
            else:
                fault = (record.get("fault") or {}).get("message") if isinstance(
                    record.get("fault"), Mapping) else record.get("fault")
                raise _fail("%s exists on %s in vm_state %s%s; delete it (playbooks/delete.yml) "
                            "before booting it again" % (name, record["host"],
                                                         record.get("vm_state"),
                                                         " (%s)" % fault if fault else ""))
        else:
            entry["uuid"] = make_uuid()
        instances.append(entry)
    return {"request": dict(request), "instances": instances, "attempt": 0,
            "max_attempts": _int(max_attempts, "max_attempts", 1), "leftovers": leftovers,
            "drift_mode": drift}


def _request_base(plan: Mapping) -> dict:
    request = plan["request"]
    base = {"flavor": request["flavor"], "image": {"properties": request["image"]["properties"]}}
    if request.get("availability_zone"):
        base["availability_zone"] = request["availability_zone"]
    if request.get("scheduler_hints"):
        base["scheduler_hints"] = request["scheduler_hints"]
    if request.get("server_group"):
        base["server_group"] = request["server_group"]
    return base


def schedule_requests(plan: Mapping, count: Optional[int] = None) -> List[dict]:
    """The scheduler requests for the instances that need a host.

    Instances that failed on the same hosts go in one request (each pick consumes capacity
    and counts for the group filters before the next); ``ignore_hosts`` is what they tried
    (Nova's RetryFilter). ``count`` keeps only the first ``count`` new instances (the
    min_count fallback of a multiple create).
    """
    groups: Dict[tuple, List[Mapping]] = {}
    for instance in plan["instances"]:
        if instance["status"] == "unplaced":
            groups.setdefault(tuple(sorted(instance["tried"])), []).append(instance)
    requests = []
    for tried, members in groups.items():
        if count is not None:
            members = members[:count]
        request = _request_base(plan)
        request["instance_names"] = [m["name"] for m in members]
        request["instance_uuids"] = [m["uuid"] for m in members]
        if tried:
            request["ignore_hosts"] = list(tried)
        requests.append(request)
    return requests


def unplaced_count(plan: Mapping) -> int:
    return sum(1 for i in plan["instances"] if i["status"] == "unplaced")


def fallback_counts(plan: Mapping) -> List[int]:
    """Smaller multiple creates to try, largest first, when all of max_count cannot be placed:
    down to what min_count still needs (Nova creates between min_count and max_count)."""
    new = unplaced_count(plan)
    have = sum(1 for i in plan["instances"] if i["status"] in ("exists", "pending"))
    floor = max(1, plan["request"]["min_count"] - have)
    return list(range(new - 1, floor - 1, -1))


def boot_start_attempt(plan: Mapping, attempt: int) -> dict:
    """Begin build attempt ``attempt``: instances with a host and no attempt yet (finished
    after an interrupted run) are built in it."""
    plan = _copy(plan)
    plan["attempt"] = _int(attempt, "attempt", 1)
    for instance in plan["instances"]:
        if instance["status"] == "pending" and not instance["attempt"]:
            instance["attempt"] = plan["attempt"]
    return plan


def boot_placed(plan: Mapping, selections, attempt: int, drop_unplaced: bool = False) -> dict:
    """Apply the scheduler's selections; the placed instances are built in ``attempt``."""
    plan = _copy(plan)
    chosen = {s["instance_name"]: s for s in (selections or [])}
    for instance in plan["instances"]:
        selection = chosen.get(instance["name"])
        if selection is not None and instance["status"] == "unplaced":
            instance.update(status="pending", host=selection["host"],
                            limits=dict(selection.get("limits") or {}),
                            availability_zone=selection.get("availability_zone"),
                            alternates=[a["host"] for a in selection.get("alternates") or []],
                            attempt=attempt)
        elif drop_unplaced and instance["status"] == "unplaced":
            instance["status"] = "dropped"
    return plan


def boot_unschedulable(plan: Mapping, reason: str, names=None,
                       statuses=("unplaced",)) -> dict:
    """These instances cannot go on (all in ``statuses`` when ``names`` is None): error, with
    ``reason`` (No valid host ..., or a port that cannot be allocated) as the fault."""
    plan = _copy(plan)
    reason = plugin_failure(reason)
    for instance in plan["instances"]:
        if instance["status"] in statuses and (names is None or instance["name"] in names):
            instance["status"] = "error"
            instance["fault"] = _fault_text(instance, reason)
    return plan


# ansible-core 2.19 wraps a plugin's error in the chain of what was being done ("Task failed:
# Finalization of task args for 'ansible.builtin.set_fact' failed: Error while resolving value
# for 'server_boot_plan': The lookup plugin 'virtops.compute.scheduler' failed: <message>");
# 2.17 and 2.18 give the message alone.
_PLUGIN_FAILED = re.compile(r"^.*\bThe (?:lookup|filter|test) plugin '[\w.]+' failed: ", re.DOTALL)


def plugin_failure(message: str) -> str:
    """The message a lookup or filter plugin failed with, as a ``rescue`` reads it from
    ``ansible_failed_result.msg``, without ansible-core 2.19's wrapping: the fault a user sees
    is the scheduler's "No valid host was found ..." whatever the ansible-core version."""
    return _PLUGIN_FAILED.sub("", str(message), count=1)


def ports_request(plan: Mapping) -> List[dict]:
    """Instances for the ports lookup: the ones to build that have no ports yet."""
    return [{"name": i["name"], "uuid": i["uuid"], "networks": plan["request"]["networks"]}
            for i in plan["instances"]
            if i["status"] == "pending" and not i["network_info"] and plan["request"]["networks"]]


def boot_ported(plan: Mapping, allocations) -> dict:
    plan = _copy(plan)
    by_name = {a["name"]: a for a in allocations or []}
    for instance in plan["instances"]:
        if instance["name"] in by_name:
            instance["network_info"] = by_name[instance["name"]]["network_info"]
            instance["ips"] = by_name[instance["name"]]["ips"]
    return plan


def attempt_hosts(plan: Mapping) -> List[str]:
    """The hosts that build something in the current attempt."""
    return sorted({i["host"] for i in plan["instances"]
                   if i["status"] == "pending" and i["attempt"] == plan["attempt"]})


def host_work(plan: Mapping, host: str) -> List[dict]:
    """What ``host`` builds in the current attempt."""
    return [i for i in plan["instances"] if i["status"] == "pending" and i["host"] == host
            and i["attempt"] == plan["attempt"]]


def _fault_text(instance: Mapping, last: Optional[str] = None) -> str:
    parts = ["attempt %d on %s failed at %s: %s" % (f["attempt"], f["host"], f["step"], f["reason"])
             for f in instance["failures"]]
    if last:
        parts.append(last)
    return "; ".join(parts)


def boot_collect(plan: Mapping, reports: Mapping) -> dict:
    """Read the hosts' reports of the current attempt: ``{host: {uuid: report}}`` where a
    report is ``{attempt, ok, step, reason, cleanup}``. A pending instance without a report
    failed too (its host was unreachable or stopped)."""
    plan = _copy(plan)
    attempt = plan["attempt"]
    for instance in plan["instances"]:
        if instance["status"] != "pending" or instance["attempt"] != attempt:
            continue
        report = ((reports or {}).get(instance["host"]) or {}).get(instance["uuid"])
        if not isinstance(report, Mapping) or report.get("attempt") != attempt:
            report = {"ok": False, "step": "unknown",
                      "reason": "the host did not report the build (unreachable, or the play "
                                "stopped there)"}
        if report.get("ok"):
            instance["status"] = "active"
            instance["power_state"] = report.get("power_state")
            instance["console"] = report.get("console")
            instance["checked_only"] = bool(report.get("checked_only"))
            continue
        failure = {"attempt": attempt, "host": instance["host"], "step": report.get("step"),
                   "reason": report.get("reason") or "unknown error"}
        if report.get("cleanup"):
            # The cleanup failed too: what it left stays on that host until a later boot or
            # delete of the server finishes it (Nova's _run_pending_deletes).
            failure["cleanup"] = _cleanup_problem(report["cleanup"], instance["host"])
            plan["leftovers"].append(leftover_entry(
                dict(instance, host=instance["host"], vm_state=None, task_state=None,
                     marked=bool(failure["cleanup"].get("marked"))),
                "this run", status="remains", problem=failure["cleanup"]))
        instance["failures"].append(failure)
        instance["tried"].append(instance["host"])
        instance.update(host=None, limits={}, alternates=[], availability_zone=None)
        if len(instance["tried"]) >= plan["max_attempts"]:
            instance["status"] = "error"
            instance["fault"] = _fault_text(
                instance, "gave up after %d attempts (max_attempts)" % plan["max_attempts"])
        else:
            instance["status"] = "unplaced"
    return plan


def needs_work(plan: Mapping) -> bool:
    return any(i["status"] in ALIVE for i in plan["instances"])


# --------------------------------------------------------------------------- leftovers and drift

DRIFT_MODES = ("report", "sync", "start")
# Power states of a domain that exists and does not run; "absent" means there is no domain.
OFF_POWER_STATES = ("shutdown", "crashed", "suspended")
# The steps of roles/server_boot/tasks/cleanup_instance.yml, in order (server_boot_cleanup_step).
CLEANUP_STEPS = ("domain", "vif", "disks", "record")


def cleanup_pending(record: Mapping) -> bool:
    """A record whose removal started and did not finish: task_state ``deleting``. A failed
    build whose cleanup fails too is marked so (vm_state ``error``), the way Nova leaves an
    instance whose delete failed; the next boot or delete of the server finishes it."""
    return record.get("task_state") == "deleting"


def split_leftovers(records: List[Mapping]):
    """The records of one name, as ``(live, leftovers)``.

    Leftovers are the records marked by a failed cleanup (:func:`cleanup_pending`) and, when
    the mark could not be written (a read-only or full filesystem), a ``building`` or ``error``
    record of a uuid that is settled on another host with no migration in flight: the ghost of
    a build that was rescheduled. Neither counts as the server."""
    leftovers = [dict(r, marked=True) for r in records if cleanup_pending(r)]
    live = [r for r in records if not cleanup_pending(r)]
    if len(live) > 1 and not any(r.get("migration") for r in live):
        settled = {r.get("uuid") for r in live if r.get("vm_state") in SETTLED_STATES}
        ghosts = [r for r in live if r.get("uuid") in settled
                  and r.get("vm_state") in ("building", "error")]
        leftovers += [dict(r, marked=False) for r in ghosts]
        live = [r for r in live if not any(r is g for g in ghosts)]
    return live, leftovers


def _fault_message(fault) -> Optional[str]:
    return fault.get("message") if isinstance(fault, Mapping) else fault


def leftover_entry(record: Mapping, origin: str, status: str = "found",
                   problem: Optional[Mapping] = None) -> dict:
    """A leftover in the plan: ``found`` (to clean in this run), ``cleaned``, ``remains``."""
    return {"name": record.get("name"), "uuid": record.get("uuid"), "host": record.get("host"),
            "network_info": list(record.get("network_info") or []),
            "vm_state": record.get("vm_state"), "task_state": record.get("task_state"),
            "marked": bool(record.get("marked")), "fault": _fault_message(record.get("fault")),
            "origin": origin, "status": status, "problem": dict(problem) if problem else None}


def _cleanup_problem(value, host: Optional[str]) -> dict:
    """The ``cleanup`` of a host's build report: what failed and what is left."""
    if not isinstance(value, Mapping):
        return {"host": host, "step": None, "task": None, "reason": str(value), "files": [],
                "record": None, "marked": False}
    problem = {"host": value.get("host") or host, "step": value.get("step"),
               "task": value.get("task"), "reason": str(value.get("reason") or "failed"),
               "files": sorted(str(f) for f in value.get("files") or []),
               "record": value.get("record"), "marked": bool(value.get("marked"))}
    return problem


def leftover_remains(leftover: Mapping) -> List[str]:
    """What a leftover still holds on its host, in words: the domain and VIFs when the
    cleanup stopped before them, the files of its directory, the record and its claim."""
    problem = leftover.get("problem") or {}
    step = problem.get("step")
    remains = []
    if step == "domain":
        remains.append("the domain (if it was defined)")
    if step in ("domain", "vif") and leftover.get("network_info"):
        remains.append("VIFs")
    if problem.get("files"):
        remains.append("files " + ", ".join(problem["files"]))
    if problem.get("record") or (not problem and leftover.get("status") != "cleaned"):
        marked = problem.get("marked", leftover.get("marked"))
        remains.append("record instance.json (%s)" % (
            "marked vm_state error, task_state deleting" if marked
            else "not marked: it could not be written"))
        remains.append("claim")
    return remains


def power_drift(record: Mapping, mode: str = "sync") -> Optional[dict]:
    """Whether an existing instance's domain matches its record, and what to do about it.

    Nova's ``_sync_instance_power_state``: an instance whose vm_state is active and whose
    domain is shut off (or crashed, suspended) is stopped (vm_state ``stopped``); here a
    missing domain puts it in ``error`` with a fault. Nova never starts an instance by itself;
    ``mode`` ``start`` does, when asked - also a ``stopped`` one whose domain is off or
    missing (defined again from libvirt.xml). ``report`` changes nothing. A record with a task
    in progress or a migration in flight is left alone. None when there is no drift.
    """
    if record.get("task_state") or record.get("migration"):
        return None
    vm_state, power = record.get("vm_state"), record.get("power_state")
    off, missing = power in OFF_POWER_STATES, power == "absent"
    what = "the domain is missing" if missing else "the domain is %s" % power
    if vm_state == "active" and (off or missing):
        reason = "%s while the record says active" % what
        if mode == "start":
            action, target = "start", "active"
        elif mode == "sync":
            action, target = "sync", "stopped" if off else "error"
        else:
            action, target = "report", None
    elif vm_state == "stopped" and (off or missing) and mode == "start":
        reason, action, target = "stopped (%s)" % what, "start", "active"
    elif vm_state == "stopped" and power == "running":
        # Nova powers such a domain off; a boot never does.
        reason, action, target = "the domain runs while the record says stopped", "report", None
    else:
        return None
    return {"host": record.get("host"), "vm_state": vm_state, "power_state": power,
            "reason": reason, "action": action, "target": target,
            "status": "reported" if action == "report" else "found", "problem": None,
            "network_info": list(record.get("network_info") or [])}


def host_fixes(plan: Mapping, host: str) -> List[dict]:
    """What ``host`` repairs before it builds, in attempt 1: the leftovers it holds (the steps
    of a failed build's cleanup, again) and the drifted instances it runs (sync or start)."""
    if plan.get("attempt") != 1:
        return []
    work = [{"kind": "leftover", "uuid": left["uuid"], "name": left["name"],
             "network_info": left["network_info"]}
            for left in plan.get("leftovers") or []
            if left["host"] == host and left["status"] == "found"]
    for instance in plan["instances"]:
        drift = instance.get("drift")
        if drift and drift["host"] == host and drift["status"] == "found":
            work.append({"kind": "drift", "uuid": instance["uuid"], "name": instance["name"],
                         "network_info": drift["network_info"], "action": drift["action"],
                         "target": drift["target"], "reason": drift["reason"],
                         "power_state": drift["power_state"]})
    return work


def fix_hosts(plan: Mapping) -> List[str]:
    """The hosts that have something to repair in this attempt."""
    hosts = {left["host"] for left in plan.get("leftovers") or [] if left["status"] == "found"}
    hosts |= {i["drift"]["host"] for i in plan["instances"]
              if i.get("drift") and i["drift"]["status"] == "found"}
    return sorted(h for h in hosts if host_fixes(plan, h))


def boot_fixed(plan: Mapping, reports: Mapping) -> dict:
    """Read what the hosts repaired: ``{host: {uuid: report}}``, a report being
    ``{kind, ok, cleanup}`` for a leftover and ``{kind, ok, vm_state, power_state, problem}``
    for a drift. A repair without a report did not happen (the host failed or stopped)."""
    plan = _copy(plan)
    silent = "the host did not report it (unreachable, or the play stopped there)"
    for left in plan["leftovers"]:
        if left["status"] != "found":
            continue
        report = ((reports or {}).get(left["host"]) or {}).get(left["uuid"])
        if isinstance(report, Mapping) and report.get("ok"):
            left.update(status="cleaned", problem=None)
        else:
            cleanup = report.get("cleanup") if isinstance(report, Mapping) else None
            left.update(status="remains",
                        problem=_cleanup_problem(cleanup or silent, left["host"]))
    for instance in plan["instances"]:
        drift = instance.get("drift")
        if not drift or drift["status"] != "found":
            continue
        report = ((reports or {}).get(drift["host"]) or {}).get(instance["uuid"])
        if not isinstance(report, Mapping):
            drift.update(status="failed", problem=silent)
            continue
        drift["status"] = "done" if report.get("ok") else "failed"
        drift["problem"] = None if report.get("ok") else str(report.get("problem") or "failed")
        drift["vm_state_after"] = report.get("vm_state") or drift["vm_state"]
        drift["power_state_after"] = report.get("power_state") or drift["power_state"]
        instance["vm_state"] = drift["vm_state_after"]
        instance["power_state"] = drift["power_state_after"]
    return plan


def _drift_text(drift: Mapping) -> str:
    text = "drift on %s: %s" % (drift["host"], drift["reason"])
    if drift["status"] == "reported":
        hint = "" if drift["action"] != "report" or drift["vm_state"] != "active" else (
            "; server_boot_drift=sync records it, server_boot_drift=start starts it")
        return text + "; reported only" + hint
    if drift["status"] == "found":
        return text + "; would %s (check mode)" % (
            "start it" if drift["action"] == "start" else "record vm_state %s" % drift["target"])
    if drift["status"] == "failed":
        return text + "; could not %s: %s; vm_state %s" % (
            "start it" if drift["action"] == "start" else "sync the record",
            drift["problem"], drift.get("vm_state_after"))
    if drift["action"] == "start":
        return text + "; started it (server_boot_drift=start): %s" % drift.get("power_state_after")
    if drift["target"] == "error":
        return text + "; record synced to error: delete the server and boot it again, or " \
                      "boot it with server_boot_drift=start to define and start it again"
    return text + "; record synced to %s (boot with server_boot_drift=start to start it)" \
        % drift["target"]


def _leftover_public(left: Mapping) -> dict:
    problem = left.get("problem") or {}
    return {"name": left["name"], "uuid": left["uuid"], "host": left["host"],
            "status": left["status"], "origin": left["origin"],
            "step": problem.get("step"), "reason": problem.get("reason") or left.get("fault"),
            "remains": leftover_remains(left) if left["status"] != "cleaned" else []}


def _leftover_text(left: Mapping) -> str:
    where = "%s: leftover on %s (uuid %s) of a failed build" % (left["name"], left["host"],
                                                                left["uuid"])
    if left["status"] == "cleaned":
        return "%s: finished its cleanup (domain, VIFs, files, record and claim removed)" % where
    if left["status"] == "found":
        return "%s: would finish its cleanup (check mode)" % where
    reason = " at %s" % left["step"] if left.get("step") else ""
    return ("%s: cleanup failed%s: %s; remains: %s; boot %s again or delete it "
            "(playbooks/delete.yml) once %s works to finish the cleanup"
            % (where, reason, left["reason"], ", ".join(left["remains"]) or "unknown",
               left["name"], left["host"]))


def boot_summary(plan: Mapping) -> dict:
    """Per instance what happened, for the report and for callers (AWX, tests).

    Besides the servers: ``leftovers`` (what failed cleanups left on hosts and this run could
    not remove, each with its host and what remains), ``cleaned`` (leftovers removed by this
    run), ``drifted`` (servers whose domain did not match their record) and ``changed``."""
    servers = []
    leftovers = [_leftover_public(left) for left in plan.get("leftovers") or []]
    for instance in plan["instances"]:
        state = {"exists": instance.get("vm_state"), "active": "active", "error": "error",
                 "dropped": None}.get(instance["status"], instance["status"])
        drift = instance.get("drift") if instance["status"] == "exists" else None
        results = {"exists": "drifted" if drift else "unchanged", "active": "booted",
                   "error": "failed", "dropped": "not created"}
        result = "placed (check mode)" if instance.get("checked_only") else results.get(
            instance["status"], instance["status"])
        servers.append({
            "name": instance["name"], "uuid": instance["uuid"], "host": instance["host"],
            "result": result, "vm_state": state, "ips": instance.get("ips") or [],
            "attempts": [dict({"host": f["host"], "step": f["step"], "reason": f["reason"]},
                              **({"cleanup": f["cleanup"]} if f.get("cleanup") else {}))
                         for f in instance["failures"]],
            "fault": instance.get("fault"), "console": instance.get("console"),
            "power_state": instance.get("power_state"),
            "drift": {k: v for k, v in drift.items() if k != "network_info"} if drift else None,
            "leftovers": [left for left in leftovers if left["name"] == instance["name"]],
        })
    failed = [s for s in servers if s["result"] == "failed"
              or (s["result"] == "drifted" and s["vm_state"] == "error")]
    made = [s for s in servers if s["result"] == "booted"]
    lines = []
    for server in servers:
        where = " on %s" % server["host"] if server["host"] else ""
        ips = " (%s)" % ", ".join(server["ips"]) if server["ips"] else ""
        retried = " after %d failed attempt(s)" % len(server["attempts"]) \
            if server["attempts"] and server["result"] == "booted" else ""
        text = "%s: %s%s%s%s" % (server["name"], server["result"], where, ips, retried)
        if server["fault"]:
            text += ": " + server["fault"]
        if server["drift"]:
            text += "; " + _drift_text(server["drift"])
        if server["console"]:
            text += "; console: " + server["console"]
        lines.append(text)
        lines += [_leftover_text(left) for left in server["leftovers"]]
    remaining = [left for left in leftovers if left["status"] == "remains"]
    errors = "; ".join("%s: %s" % (s["name"], s["fault"] or _drift_text(s["drift"] or {}))
                       for s in failed)
    errors_msg = "%d of %d server(s) are in ERROR. %s" % (len(failed), len(servers), errors)
    return {"servers": servers, "failed": [s["name"] for s in failed],
            "booted": [s["name"] for s in made], "lines": lines,
            "msg": "%s: %s" % (plan["request"]["name"], "; ".join(lines)),
            "errors_msg": errors_msg if failed else "",
            "leftovers": remaining,
            "leftovers_msg": "Failed builds left things behind on %s: %s" % (
                ", ".join(sorted({left["host"] for left in remaining})),
                " | ".join(_leftover_text(left) for left in remaining)) if remaining else "",
            "cleaned": ["%s on %s" % (left["name"], left["host"]) for left in leftovers
                        if left["status"] == "cleaned"],
            "drifted": [s["name"] for s in servers if s["drift"]],
            "changed": bool(made) or any(left["status"] == "cleaned" for left in leftovers)
            or any(s["drift"] and s["drift"]["status"] == "done" for s in servers)}


def _copy(plan: Mapping) -> dict:
    """A deep enough copy: the plan's instances are changed, the request is not."""
    copy = dict(plan)
    copy["instances"] = [dict(i, tried=list(i["tried"]), failures=list(i["failures"]),
                              drift=dict(i["drift"]) if i.get("drift") else None)
                         for i in plan["instances"]]
    copy["leftovers"] = [dict(left) for left in plan.get("leftovers") or []]
    return copy
