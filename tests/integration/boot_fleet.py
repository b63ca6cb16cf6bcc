# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the boot, delete and list playbooks against a lab, as an operator (or AWX) would.

A :class:`Fleet` is a lab plus an inventory directory of its own: ``hosts.yml`` (per-host
variables a test sets) and ``group_vars/all.yml`` (the example catalogs of
``tests/fixtures/group_vars``). Playbooks run with ``ansible-playbook`` and the test callback
``json_results``, or under ``ansible-runner`` with the private data directory AWX writes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from tests.integration.ansible_venv import VENV_BIN
from tests.integration.vif_lab import port_filters_of
from tests.lab.handle import LabHandle

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
CATALOGS = REPO / "tests" / "fixtures" / "group_vars" / "all.yml"
INSTANCES = "/var/lib/virtops/instances"
CONSOLE_META = r"VIRTOPS-META uuid=\S+ hostname=\S+"


@dataclass
class Run:
    """One playbook run: exit code, the per-task results and the recap."""
    rc: int
    plays: List[dict]
    stats: Dict[str, dict]
    output: str = ""
    stderr: str = ""
    artifact: Dict[str, object] = field(default_factory=dict)     # set_stats, under ansible-runner

    def task(self, name: str) -> Dict[str, dict]:
        """Per-host results of the last task whose name ends with ``name``."""
        found = None
        for play in self.plays:
            for task in play["tasks"]:
                if task["task"]["name"].endswith(name) and task["hosts"]:
                    found = task["hosts"]
        if found is None:
            raise AssertionError("no task %r ran:\n%s" % (name, self.failures()))
        return found

    def fact(self, task: str, name: str, host: str = "localhost"):
        return self.task(task)[host]["ansible_facts"][name]

    @property
    def boot(self) -> dict:
        return self.fact("Summarise the boot", "server_boot_result")

    @property
    def changed(self) -> Dict[str, int]:
        return {host: stats["changed"] for host, stats in self.stats.items() if stats["changed"]}

    def tasks_on(self, host: str) -> List[str]:
        """The names of the tasks that gave ``host`` a result, in order."""
        return [task["task"]["name"] for play in self.plays for task in play["tasks"]
                if host in task["hosts"]]

    def changed_tasks(self) -> List[str]:
        return ["%s: %s" % (host, task["task"]["name"]) for play in self.plays
                for task in play["tasks"] for host, result in task["hosts"].items()
                if result.get("changed")]

    def failures(self) -> str:
        lines = ["%s: %s: %s" % (host, task["task"]["name"], result.get("msg"))
                 for play in self.plays for task in play["tasks"]
                 for host, result in task["hosts"].items()
                 if result.get("failed")]
        return "rc=%d\n%s\n%s" % (self.rc, "\n".join(lines), self.stderr[-2000:])


@dataclass
class Fleet:
    lab: LabHandle
    workdir: Path
    host_vars: Dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self.inventory_dir.mkdir(parents=True, exist_ok=True)
        (self.inventory_dir / "group_vars").mkdir(exist_ok=True)
        shutil.copyfile(CATALOGS, self.inventory_dir / "group_vars" / "all.yml")
        self.set_host_vars()

    @property
    def inventory_dir(self) -> Path:
        return self.workdir / "inventory"

    @property
    def hosts(self) -> List[str]:
        return sorted(self.lab.hosts)

    def set_host_vars(self, **host_vars: dict) -> None:
        """Per-host inventory variables (they override the lab's); the rest are cleared."""
        self.host_vars = {host: dict(host_vars.get(host, {})) for host in self.hosts}
        text = json.dumps({"all": {"children": {"compute": {"hosts": self.host_vars}}}})
        (self.inventory_dir / "hosts.yml").write_text(text + "\n")

    def _env(self) -> dict:
        return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                    ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                    ANSIBLE_STDOUT_CALLBACK="json_results",
                    PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))

    def playbook(self, name: str, extra: Optional[dict] = None, *args: str,
                 timeout: float = 400) -> Run:
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory),
                "-i", str(self.inventory_dir), str(REPO / "playbooks" / name)]
        if extra is not None:
            argv += ["-e", json.dumps(extra)]
        proc = subprocess.run(argv + list(args), capture_output=True, text=True,
                              env=self._env(), cwd=REPO, timeout=timeout, check=False)
        try:
            doc = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            raise AssertionError("%s printed no JSON (rc=%d):\n%s\n%s" % (
                name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        return Run(proc.returncode, doc["plays"], doc["stats"], proc.stdout, proc.stderr)

    def boot(self, server: dict, *args: str, **extra) -> Run:
        return self.playbook("boot.yml", dict(extra, server=server), *args)

    def delete(self, server: dict, *args: str) -> Run:
        return self.playbook("delete.yml", {"server": server}, *args)

    def servers(self) -> List[dict]:
        run = self.playbook("servers.yml")
        assert run.rc == 0, run.failures()
        return run.fact("Collect the servers of every host", "virtops_servers")

    def runner(self, playbook: str, extravars: dict, ident: str) -> Run:
        """The playbook under ansible-runner, laid out as AWX lays out a job: project,
        inventory directory (with group_vars) and extra vars in the private data dir."""
        pdd = self.workdir / ("runner-" + ident)
        shutil.rmtree(pdd, ignore_errors=True)
        (pdd / "env").mkdir(parents=True)
        (pdd / "inventory" / "group_vars").mkdir(parents=True)
        shutil.copyfile(self.lab.inventory, pdd / "inventory" / "lab.yml")
        shutil.copyfile(self.inventory_dir / "hosts.yml", pdd / "inventory" / "hosts.yml")
        shutil.copyfile(CATALOGS, pdd / "inventory" / "group_vars" / "all.yml")
        (pdd / "project").symlink_to(REPO)
        (pdd / "env" / "extravars").write_text(json.dumps(extravars))
        (pdd / "env" / "envvars").write_text(json.dumps({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}))
        proc = subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", playbook,
                               "--ident", ident], capture_output=True, text=True, timeout=400,
                              env=dict(os.environ, PATH="%s:%s" % (VENV_BIN, os.environ["PATH"])),
                              check=False)
        artifacts = pdd / "artifacts" / ident
        events = [json.loads(p.read_text())
                  for p in sorted((artifacts / "job_events").glob("*.json"),
                                  key=lambda p: int(p.name.split("-", 1)[0]))]
        tasks: List[dict] = []
        stats: Dict[str, dict] = {}
        artifact: Dict[str, object] = {}
        for event in events:
            data = event.get("event_data", {})
            if event["event"] in ("runner_on_ok", "runner_on_failed"):
                tasks.append({"task": {"name": data.get("task", "")},
                              "hosts": {data["host"]: dict(data.get("res", {}),
                                                           failed=event["event"] == "runner_on_failed")}})
            elif event["event"] == "playbook_on_stats":
                artifact = data.get("artifact_data") or {}
                for key in ("ok", "changed", "failures", "unreachable", "rescued"):
                    for host, count in (data.get(key) or {}).items():
                        stats.setdefault(host, {"ok": 0, "changed": 0, "failures": 0,
                                                "unreachable": 0, "rescued": 0})[key] = count
        rc = int((artifacts / "rc").read_text().strip())
        return Run(rc, [{"play": {"name": "ansible-runner"}, "tasks": tasks}], stats,
                   proc.stdout, proc.stderr, artifact)

    # --- what the hosts hold --------------------------------------------------------------

    def instance_dirs(self, host: str) -> List[str]:
        out = self.lab.run(host, ["ls", "-1", INSTANCES], check=False).stdout.split()
        return sorted(n for n in out if n not in ("_base", "locks"))

    def bases(self, host: str) -> List[str]:
        return sorted(self.lab.run(host, ["ls", "-1", INSTANCES + "/_base"],
                                   check=False).stdout.split())

    def taps(self, host: str) -> List[str]:
        links = self.lab.run(host, ["ip", "-o", "link", "show"]).stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                      if line.split(":")[1].strip().startswith("tap"))

    def port_filters(self, host: str) -> List[str]:
        """Taps with anti-spoofing rules (nftables) on ``host``."""
        return port_filters_of(lambda h, *argv, check=True: self.lab.run(h, list(argv), check=check),
                               host)

    def record(self, host: str, uuid: str) -> dict:
        return json.loads(self.lab.run(host, ["cat", "%s/%s/instance.json" % (INSTANCES, uuid)]).stdout)

    def console(self, host: str, uuid: str) -> str:
        return self.lab.run(host, ["cat", "%s/%s/console.log" % (INSTANCES, uuid)],
                            check=False).stdout

    def vnc(self, host: str, domain: str) -> Tuple[str, int]:
        """``(listen, port)`` of the VNC console in the live XML of ``domain`` on ``host``."""
        from lxml import etree
        root = etree.fromstring(self.lab.virsh(host, "dumpxml", domain).stdout.encode())
        graphics = root.find("devices/graphics[@type='vnc']")
        return graphics.get("listen"), int(graphics.get("port"))


def ansible(fleet: Fleet, host: str, module: str, args: dict,
            oneline: bool = True) -> subprocess.CompletedProcess:
    """An ad-hoc module run on one lab host (``ansible HOST -m MODULE -a JSON``): one line per
    host with ``oneline``, else what an operator sees (the configured callback, warnings)."""
    module_args = dict(args, instances_path=INSTANCES) if module.endswith("instance") else args
    argv = [str(VENV_BIN / "ansible"), host, "-i", str(fleet.lab.inventory)]
    argv += ["-o"] if oneline else []
    argv += ["-m", module, "-a", json.dumps(module_args)]
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO, timeout=180, check=False,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))


def guest_fleet(lab: LabHandle, workdir: Path) -> Fleet:
    """A Fleet on ``lab`` for tests that boot the test guest; they skip where it cannot be built."""
    from tests.fixtures.guest import GuestBuildError, ensure_guest
    try:
        ensure_guest()
    except GuestBuildError as exc:
        pytest.skip("the test guest cannot be built here: %s" % exc)
    return Fleet(lab, workdir)
