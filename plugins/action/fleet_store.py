# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_store action: the playbooks' one way to the fleet store, on the controller.

Documentation: ``plugins/modules/fleet_store.py``. The work is
``plugins/plugin_utils/_store/``; this file is the argument spec, check mode and the edge
where errors become a failed result.
"""
from __future__ import annotations

import os
import re
import socket
import sqlite3

from ansible.plugins.action import ActionBase

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._store import db as store_db
from ansible_collections.virtops.compute.plugins.plugin_utils._store import fleet_store
from ansible_collections.virtops.compute.plugins.plugin_utils._store import reconcile as store_reconcile

OPERATIONS = ("report", "stale", "locate", "fleet", "lease", "release", "claim", "ports", "forget",
              "mark_stale", "reconcile")

ARGUMENT_SPEC = {
    "store": {"type": "str", "required": True, "no_log": True},
    "operation": {"type": "str", "required": True, "choices": list(OPERATIONS)},
    "inventory": {"type": "list", "elements": "str", "default": []},
    "facts": {"type": "list", "elements": "dict", "default": []},
    "servers": {"type": "list", "elements": "str", "default": []},
    "uuids": {"type": "list", "elements": "str", "default": []},
    "instances": {"type": "list", "elements": "dict", "default": []},
    "networks": {"type": "dict", "default": {}},
    "flavor": {"type": "dict"},
    "max_age": {"type": "float", "default": 300.0},
    "ttl": {"type": "float", "default": 3600.0},
    "limit": {"type": "int", "default": fleet_store.MAX_PLACEMENT_RESULTS},
    "spread": {"type": "bool", "default": True},
    "holder": {"type": "str"},
    "lease_operation": {"type": "str", "default": "an operation"},
}


def default_holder(task_vars) -> str:
    """Who takes a lease: the AWX job, else this ansible-playbook process on this controller
    (a task runs in a worker process whose parent is ansible-playbook)."""
    job = (task_vars or {}).get("awx_job_id") or (task_vars or {}).get("tower_job_id")
    if job:
        return "AWX job %s" % job
    return "ansible-playbook pid %d on %s" % (os.getppid(), socket.gethostname())


_LOCAL_HOLDER = re.compile(r"^ansible-playbook pid (\d+) on (\S+)$")


def holder_alive(holder: str) -> bool:
    """False only for a holder known to be gone: an ansible-playbook of this controller whose
    process no longer exists (killed). Anything else (an AWX job, another controller) is taken
    to be alive until its lease expires."""
    match = _LOCAL_HOLDER.match(holder or "")
    if not match or match.group(2) != socket.gethostname():
        return True
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ActionModule(ActionBase):
    """Run one fleet store operation in the controller's process."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        valid, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        del valid
        check = bool(self._task.check_mode)
        holder = args["holder"] or default_holder(task_vars)
        try:
            database = store_db.connect(args["store"])
        except VirtopsError as exc:
            return dict(result, failed=True, msg=exc.msg)
        try:
            store = fleet_store.FleetStore(database)
            result.update(_run(store, args, holder, check))
        except VirtopsError as exc:
            result.update(failed=True, msg=exc.msg, **exc.details)
        except (sqlite3.Error, OSError) as exc:
            result.update(failed=True, msg="the fleet store %s failed: %s"
                          % (store_db.redact(args["store"]), exc))
        except Exception as exc:  # psycopg's errors, when it is the engine
            if not (store_db.HAS_PSYCOPG and isinstance(exc, store_db.psycopg.Error)):
                raise
            result.update(failed=True, msg="the fleet store %s failed: %s"
                          % (store_db.redact(args["store"]), str(exc).strip()))
        finally:
            database.close()
        return result


def _run(store: fleet_store.FleetStore, args: dict, holder: str, check: bool) -> dict:
    operation = args["operation"]
    write = not check
    if operation == "report":
        changed = store.report(args["facts"]) if write else []
        return {"changed": bool(changed), "reported": [f.get("hostname") for f in args["facts"]],
                "changed_hosts": changed}
    if operation == "stale":
        return {"changed": False, "hosts": store.stale(args["inventory"], args["max_age"])}
    if operation == "locate":
        # The hosts that may hold the servers: where the store has them, and every host whose
        # report is stale (a server could be there without the store knowing).
        where = set(store.hosts_of(args["servers"]).values()) & set(args["inventory"])
        hosts = sorted(where | set(store.stale(args["inventory"], args["max_age"])))
        return {"changed": False, "hosts": hosts}
    if operation == "fleet":
        changed = store.report(args["facts"]) if write and args["facts"] else []
        fleet = store.fleet(args["inventory"], flavor=args["flavor"], servers=args["servers"],
                            limit=args["limit"], spread=args["spread"])
        if not write and args["facts"]:
            # Check mode reported nothing: what this run gathered wins over the store's copy.
            given = {f.get("hostname"): f for f in args["facts"]}
            fleet = [given.pop(f.get("hostname"), f) for f in fleet] + list(given.values())
        return {"changed": bool(changed), "fleet": fleet,
                "store_hosts": store.host_count()}
    if operation == "lease":
        if write:
            leases = store.take(args["servers"], holder, args["lease_operation"], args["ttl"],
                                alive=holder_alive)
        else:
            leases = store.check_free(args["servers"], holder, alive=holder_alive)
        # A lease is the run's own bookkeeping: taking and giving it back change no server.
        return {"changed": False, "holder": holder, "leases": [lease.server for lease in leases]}
    if operation == "release":
        released = store.give_back(args["servers"], holder) if write else []
        return {"changed": False, "released": released}
    if operation == "claim":
        if write:
            store.claim(args["instances"])
        return {"changed": write and bool(args["instances"])}
    if operation == "ports":
        allocations = fleet_store.allocate_ports(store, args["networks"], args["instances"],
                                                 hosts=args["facts"], write=write)
        return {"changed": write and bool(allocations), "allocations": allocations}
    if operation == "forget":
        forgotten = store.forget(args["uuids"]) if write else 0
        return {"changed": bool(forgotten), "forgotten": forgotten}
    if operation == "mark_stale":
        if write:
            store.mark_stale(args["inventory"])
        return {"changed": write and bool(args["inventory"])}
    fixed = store_reconcile.reconcile(store, args["facts"], write=write)
    return {"changed": write and fixed.changed, "fixed": fixed.to_dict(), "lines": fixed.lines()}
