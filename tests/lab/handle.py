# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tests use to drive a lab: the `lab` CLI, run as a subprocess, and its state file."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

LAB_SCRIPT = Path(__file__).resolve().parent / "lab.py"


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    netns: str


class LabHandle:
    def __init__(self, state_dir: Path, prefix: str = "vo", subnet: str = "10.77.0"):
        self.state_dir = Path(state_dir)
        self.prefix = prefix
        self.subnet = subnet

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(LAB_SCRIPT), "--state-dir", str(self.state_dir),
                "--prefix", self.prefix, "--subnet", self.subnet] + list(args)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("lab %s failed (rc=%d):\n%s\n%s"
                                 % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def up(self, count: int, *extra: str) -> None:
        self.cli("up", str(count), *extra)

    def down(self) -> subprocess.CompletedProcess:
        return self.cli("down", check=False)

    def state(self) -> dict:
        return json.loads((self.state_dir / "lab.json").read_text())

    @property
    def hosts(self) -> Dict[str, LabHost]:
        return {name: LabHost(name, h["address"], h["netns"])
                for name, h in sorted(self.state()["hosts"].items())}

    @property
    def gateway(self) -> str:
        """The machine's own address on the lab bridge (serves images, answers pings)."""
        return self.subnet + ".1"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    def run(self, host: str, argv: Sequence[str], check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run argv inside a lab host (its mount and network namespaces)."""
        return self.cli("exec", host, "--", *argv, check=check, timeout=timeout)

    def virsh(self, host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(host, ["virsh", "-c", "qemu:///system"] + list(args), check=check)

    def domains(self, host: str) -> List[str]:
        return [n for n in self.virsh(host, "list", "--all", "--name").stdout.split() if n]
