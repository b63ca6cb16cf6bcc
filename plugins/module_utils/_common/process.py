# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running host commands: argv lists only, never a shell string."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError


@dataclass(frozen=True)
class Result:
    argv: tuple
    rc: int
    stdout: str
    stderr: str


def find_binary(name: str, extra_dirs: Sequence[str] = ("/usr/sbin", "/sbin")) -> str:
    """Absolute path of ``name`` or a VirtopsError naming the package to install."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(extra_dirs))
    if not path:
        raise VirtopsError("'%s' was not found on this host; install it (see bindep.txt) "
                           "or run playbooks/prepare_hosts.yml" % name)
    return path


def run(argv: Sequence[str], check: bool = True, timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None, input_text: Optional[str] = None) -> Result:
    """Run ``argv`` (a list, no shell). On failure with ``check`` raise VirtopsError with stderr."""
    argv = tuple(str(a) for a in argv)
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=full_env, input=input_text, check=False)
    except FileNotFoundError:
        raise VirtopsError("command not found: %s" % argv[0])
    except subprocess.TimeoutExpired:
        raise VirtopsError("command timed out after %ss: %s" % (timeout, " ".join(argv)))
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise VirtopsError("command failed (rc=%d): %s: %s"
                           % (proc.returncode, " ".join(argv), proc.stderr.strip()[-2000:]),
                           rc=proc.returncode, stderr=proc.stderr[-4000:])
    return result
