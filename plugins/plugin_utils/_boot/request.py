# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot request: ``server`` (Nova's POST /servers body) checked against the catalogs.

Nova's API checks a request before the conductor schedules it; :func:`boot_request` does the
same on the controller, with the model the hosts use (the flavor, the user_data limit), so a
request the hosts would refuse is refused before any host is claimed. The plan's state
machine (plan.py) takes the checked request from here.
"""
from __future__ import annotations

import json
from typing import Dict, List, Mapping, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._model.image import (
    BOOT_FILE_FORMATS, IMAGE_KEYS, IMAGE_REF_KEYS, ImageSource)
from ansible_collections.virtops.compute.plugins.module_utils._model.instance import (
    META_ITEM_MAX, METADATA_MAX_ITEMS, check_user_data)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    INSTANCE_NAME_MAX, validate_instance_name)

MULTI_INSTANCE_NAME_TEMPLATE = "%(name)s-%(count)d"     # Nova's default, as the scheduler's
SERVER_KEYS = ("name", "flavor", "image", "networks", "min_count", "max_count",
               "availability_zone", "key_name", "user_data", "metadata", "admin_pass",
               "config_drive", "scheduler_hints")
HINT_KEYS = ("group", "same_host", "different_host")
GROUP_POLICIES = ("affinity", "anti-affinity")


# The survey-friendly variables every playbook reads besides ``server`` (an AWX survey answers
# with strings and numbers, never a mapping), and the server key each fills.
FLAT_KEYS = {"server_name": "name", "flavor": "flavor", "image": "image", "network": "networks",
             "key_name": "key_name", "count": "max_count", "min_count": "min_count",
             "config_drive": "config_drive"}
SECRET_KEYS = ("admin_pass", "user_data")
WHICH_SERVER = ("say which server: -e server=NAME, a survey's server_name, or server as a mapping "
                "with a name (-e @server.yml)")


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


def whole_number(value, what: str, minimum: int = 0) -> int:
    """A count or size of the request or the plan: an int, a whole float (``2.0``) or the text
    of one (``"02"``); never a bool."""
    return strict_int(value, what, minimum=minimum, text="loose", floats=True)


def instance_names(base: str, count: int) -> List[str]:
    """``web``, or ``web-1`` ... ``web-N`` for a multiple create (Nova's template)."""
    if count == 1:
        return [base]
    return [MULTI_INSTANCE_NAME_TEMPLATE % {"name": base, "count": n} for n in range(1, count + 1)]


def _flavor(name: str, flavors: Mapping) -> dict:
    """The catalog's flavor ``name``, read by the model's Flavor (the hosts read it so too)."""
    if name not in flavors:
        raise _fail("server.flavor: there is no flavor %r in flavors (known: %s)"
                    % (name, _known(flavors)))
    return Flavor.from_catalog(str(name), flavors[name]).to_dict()


def _image(name: str, images: Mapping) -> dict:
    """The catalog's image ``name``, read by the model's ImageSource (the hosts read it so too)."""
    if name not in images:
        raise _fail("server.image: there is no image %r in images (known: %s)"
                    % (name, _known(images)))
    return ImageSource.from_catalog(str(name), images[name]).to_dict()


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
    return {k: image[k] for k in IMAGE_REF_KEYS}


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
        if not key or len(key) > META_ITEM_MAX or len(item) > META_ITEM_MAX:
            raise _fail("server.metadata %r: keys must be 1 to %d characters and values at "
                        "most %d" % (key, META_ITEM_MAX, META_ITEM_MAX))
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

    min_count = whole_number(server.get("min_count") or 1, "server.min_count", 1)
    max_count = whole_number(server.get("max_count") or 1, "server.max_count", 1)
    if min_count > max_count:
        raise _fail("server.min_count (%d) is more than server.max_count (%d)"
                    % (min_count, max_count))
    name = str(server["name"])
    try:
        validate_instance_name(name)
        for instance_name in instance_names(name, max_count)[-1:]:
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


def boot_requests(server, flavors=None, images=None, networks=None, keypairs=None,
                  server_groups=None) -> List[dict]:
    """:func:`boot_request` of each server of ``server``: one mapping, or a list of them (several
    servers in one boot, as the desired state of ``playbooks/converge.yml`` asks). Instance names
    must be unique across the list: Nova's API would refuse the second request of a name (when
    ``osapi_compute_unique_server_name_scope`` is set; we always keep names unique)."""
    servers = list(server) if isinstance(server, (list, tuple)) else [server]
    requests = [boot_request(one, flavors, images, networks, keypairs, server_groups)
                for one in servers]
    seen: Dict[str, str] = {}
    for request in requests:
        for name in instance_names(request["name"], request["max_count"]):
            if name in seen:
                raise _fail("server %s is asked for twice (%s and %s): give each server once"
                            % (name, seen[name], request["name"]))
            seen[name] = request["name"]
    return requests


def _server_mapping(server) -> dict:
    """``server`` as a mapping: a mapping as it is, a JSON object given as text (an AWX extra
    variable typed as a string), a plain name; nothing for no server."""
    if server is None or (isinstance(server, str) and not server.strip()):
        return {}
    if isinstance(server, Mapping):
        return dict(server)
    if isinstance(server, str):
        text = server.strip()
        if not text.startswith("{"):
            return {"name": text}
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise _fail("server looks like JSON but is not: %s. Give a name, or a mapping" % exc)
        if not isinstance(parsed, Mapping):
            raise _fail("server must be a name or a mapping")
        return dict(parsed)
    raise _fail("server must be a name or a mapping, not %s" % type(server).__name__)


def _flat_value(key: str, value):
    if key == "network":
        names = value.split(",") if isinstance(value, str) else list(value)
        return [n if isinstance(n, Mapping) else {"network": str(n).strip()}
                for n in names if isinstance(n, Mapping) or str(n).strip()]
    if key in ("count", "min_count"):
        return whole_number(value, key, 1)
    if key == "config_drive":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "yes", "on", "1"):
            return True
        if str(value).strip().lower() in ("false", "no", "off", "0"):
            return False
        raise _fail("config_drive must be true or false, not %r" % value)
    return str(value).strip()


def _given(flat: Optional[Mapping]) -> Dict[str, object]:
    given = {}
    for key, value in (flat or {}).items():
        if key not in FLAT_KEYS:
            raise _fail("unknown survey variable %r (known: %s)" % (key, ", ".join(FLAT_KEYS)))
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        given[key] = value
    return given


def server_request(server, flat: Optional[Mapping] = None, required: bool = True):
    """The server a playbook is asked about, whatever form it came in: ``server`` as a mapping
    (``-e @web.yml``), as a JSON object in text, or as a plain name (``-e server=web1``), with
    the flat survey variables (:data:`FLAT_KEYS`: ``server_name``, ``flavor``, ``image``,
    ``network`` (names, comma-separated), ``key_name``, ``count``, ``min_count``,
    ``config_drive``) filling what it does not say. Empty answers count as not given; a flat
    variable that contradicts the mapping is refused. The secrets are left out
    (:func:`server_secrets`).

    ``server`` may also be a list of those (several servers at once, as
    ``playbooks/converge.yml`` passes them): the result is then a list of mappings, possibly
    empty (nothing to do), and the flat variables, which say one server, are refused."""
    several = isinstance(server, (list, tuple))
    # The server before the survey variables: when both are wrong, the server is reported.
    result = {} if several else _server_mapping(server)
    given = _given(flat)
    if several:
        if given:
            raise _fail("server is a list of servers; the survey variables %s say one server: "
                        "give them inside each entry" % ", ".join(sorted(given)))
        return [server_request(one, None, required=True) for one in server]
    for key, value in given.items():
        target, value = FLAT_KEYS[key], _flat_value(key, value)
        if result.get(target) not in (None, "", []) and result[target] != value:
            raise _fail("server.%s is %r but %s is %r: give it once"
                        % (target, result[target], key, value))
        result[target] = value
    for key in SECRET_KEYS:
        result.pop(key, None)
    if required and not (result.get("name") or result.get("uuid")):
        raise _fail(WHICH_SERVER)
    return result


def server_secrets(server, admin_pass=None, user_data=None, each: bool = False):
    """``admin_pass`` and ``user_data``: the top-level variables (an AWX survey's password and
    textarea fields, kept out of ``server``), else the keys of a ``server`` mapping. For a list
    of servers, a list of those, in order (the top-level variables serve every server that does
    not say its own); ``each`` makes it a list for a single server too (the boot's requests)."""
    if isinstance(server, (list, tuple)):
        return [_secrets_of(_server_mapping(one), admin_pass, user_data, prefer_own=True)
                for one in server]
    secrets = _secrets_of(_server_mapping(server), admin_pass, user_data)
    return [secrets] if each else secrets


def _secrets_of(mapping: Mapping, admin_pass, user_data, prefer_own: bool = False) -> dict:
    given = {"admin_pass": admin_pass, "user_data": user_data}
    if prefer_own:
        return {key: mapping.get(key) if mapping.get(key) not in (None, "") else given[key]
                for key in SECRET_KEYS}
    return {key: given[key] if given[key] not in (None, "") else mapping.get(key)
            for key in SECRET_KEYS}
