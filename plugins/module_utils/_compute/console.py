# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's serial console log, read on its host (Nova's ``get_console_output``).

Nova's libvirt driver finds the log file in the domain's XML (the serial port's ``<log>``, or a
``file`` type port) and returns its tail (``MAX_CONSOLE_BYTES``, 100 KiB). The log is found
here as ``vm_domain`` finds it when it waits for a console line (:func:`console_log_path` over
``libvirt.xml``), and only the last ``lines`` lines are read, from the end of the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import read_text
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    console_log_path, parse_domain_xml)
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    CONSOLE_LOG, DOMAIN_XML, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_uuid

MAX_CONSOLE_BYTES = 100 * 1024      # Nova's libvirt driver reads at most this much
BLOCK = 8192


@dataclass
class ConsoleTail(Outcome):
    """The last lines of an instance's console log (``Outcome``: never changed)."""
    path: str = ""
    exists: bool = False
    lines: List[str] = field(default_factory=list)


def log_path(instances_path: str, uuid: str) -> str:
    """Where the instance's console is logged: the definition's serial log, else console.log."""
    instance_dir = InstanceLayout(os.path.normpath(instances_path)).instance_dir(
        validate_uuid(uuid))
    xml_path = os.path.join(instance_dir, DOMAIN_XML)
    text = read_text(xml_path)
    if text is None:
        return os.path.join(instance_dir, CONSOLE_LOG)
    return console_log_path(parse_domain_xml(text, xml_path), instance_dir)


def tail(path: str, lines: int, max_bytes: int = MAX_CONSOLE_BYTES) -> List[str]:
    """The last ``lines`` lines of ``path``, read backwards in blocks, never more than
    ``max_bytes``; carriage returns and a last partial line's newline are dropped."""
    if lines < 1:
        raise VirtopsError("lines must be 1 or more, not %r" % lines)
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        start = end
        data = b""
        while start > 0 and data.count(b"\n") <= lines and end - start < max_bytes:
            start = max(0, start - BLOCK, end - max_bytes)
            handle.seek(start)
            data = handle.read(end - start)
    text = data.decode("utf-8", errors="replace").replace("\r", "")
    found = text.split("\n")
    if found and found[-1] == "":
        found.pop()
    if start > 0 and len(found) > lines:
        found = found[1:]           # the first line read is (maybe) cut
    return found[-lines:]


def console_tail(instances_path: str, uuid: str, lines: int = 50) -> ConsoleTail:
    """The console log's last ``lines`` lines; an instance without a log yet has none."""
    path = log_path(instances_path, uuid)
    result = ConsoleTail(path=path)
    try:
        result.lines = tail(path, lines)
    except FileNotFoundError:
        return result
    except OSError as exc:
        raise VirtopsError("cannot read the console log %s: %s" % (path, exc.strerror or exc))
    result.exists = True
    return result
