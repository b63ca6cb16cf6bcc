# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image sources with real parts (issue 11): vm_image run by ``ansible-playbook`` on this
machine (connection local) against a lying HTTP server on 127.0.0.1 (a thread of this test,
stopped afterwards), a real loop device (``losetup``, detached afterwards), and host files.

- a download that ends before its Content-Length, and one with no length that drops, are
  refused; ``_base`` gets no file and no ``.part``;
- a loop device is never read: not by its /dev path (even with /dev as an image root), not by
  a device node made inside a root, not through a symbolic link in a root;
- /etc/shadow without a root is refused with a message saying to add one; a link in a root
  to it is refused too;
- ``-vvv`` shows neither user_data nor an injected file's content.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fixtures.hostile_catalog import HostileServer, Layout

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
FLAVOR = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1}


@pytest.fixture()
def workdir():
    path = Path(tempfile.mkdtemp(prefix="vo-image-sources-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def layout(workdir):
    return Layout(workdir / "images")


def run_play(workdir: Path, tasks: list, verbose: bool = False) -> tuple:
    """Run tasks on localhost; returns (each task's result, ansible-playbook's whole output)."""
    playbook = workdir / "play.json"
    playbook.write_text(json.dumps([{"name": "image sources", "hosts": "localhost",
                                     "gather_facts": False, "tasks": tasks}]))
    argv = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    if verbose:
        argv.append("-vvv")
    else:
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent
                                                / "callback_plugins"),
                   ANSIBLE_STDOUT_CALLBACK="json_results")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(ROOT),
                          timeout=300, check=False)
    output = proc.stdout + proc.stderr
    if verbose:
        return [], output
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook gave no JSON (rc=%d):\n%s"
                             % (proc.returncode, output[-3000:]))
    return [task["hosts"]["localhost"] for task in out["plays"][0]["tasks"]], output


def vm_image(workdir: Path, image: dict, roots=(), **args) -> dict:
    args = dict(dict(instance={"uuid": str(uuid.uuid4()), "name": "src"}, image=image,
                     flavor=FLAVOR, virt_type="qemu", instances_path=str(workdir / "instances"),
                     image_roots=[str(root) for root in roots], libvirt_uri="test:///default"),
                **args)
    return {"virtops.compute.vm_image": args, "ignore_errors": True}


def base_files(workdir: Path) -> list:
    base = workdir / "instances" / "_base"
    return sorted(os.listdir(base)) if base.exists() else []


def assert_refused(result: dict, words: str) -> None:
    assert result.get("failed") is True, result
    assert words in result["msg"], result["msg"]


def test_a_truncated_download_is_refused_and_leaves_nothing(workdir, layout):
    server = HostileServer(layout.good)
    try:
        results, _out = run_play(workdir, [
            vm_image(workdir, {"url": server.base + "/long-length", "disk_format": "qcow2",
                               "allow_unverified": True}),
            vm_image(workdir, {"url": server.base + "/no-length-drop", "disk_format": "qcow2",
                               "allow_unverified": True}),
            vm_image(workdir, {"url": server.base + "/no-length-drop", "disk_format": "qcow2",
                               "checksum": layout.checksum}),
            vm_image(workdir, {"url": server.base + "/good", "disk_format": "qcow2"}),
        ])
    finally:
        server.close()
    assert_refused(results[0], "is truncated: %d of the %d bytes announced arrived"
                   % (len(layout.good), 2 * len(layout.good)))
    assert_refused(results[1], "sends no Content-Length, so a dropped connection could not be "
                               "told from the end of the image: declare its checksum")
    assert_refused(results[2], "checksum mismatch")
    assert_refused(results[3], "has no checksum")
    assert base_files(workdir) == []


def test_a_loop_device_is_never_read_even_inside_an_image_root(workdir, layout):
    backing = workdir / "loop-backing.img"
    backing.write_bytes(b"HOST-DEVICE-BYTES" * 4096)
    device = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                            text=True, check=True).stdout.strip()
    try:
        info = os.stat(device)
        node = layout.root / "loop-node"
        os.mknod(str(node), stat.S_IFBLK | 0o600, info.st_rdev)
        (layout.root / "loop-link").symlink_to(device)
        results, _out = run_play(workdir, [
            vm_image(workdir, {"url": "file://" + device, "disk_format": "raw",
                               "allow_unverified": True}, roots=[layout.root, "/dev"]),
            vm_image(workdir, {"url": "file://%s" % node, "disk_format": "raw",
                               "allow_unverified": True}, roots=[layout.root]),
            vm_image(workdir, {"url": str(layout.root / "loop-link"), "disk_format": "raw",
                               "allow_unverified": True}, roots=[layout.root]),
        ])
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
    assert_refused(results[0], "resolves to %s, in /dev, which holds the host's devices and "
                               "state, never an image" % device)
    assert_refused(results[1], "is not a regular file (a block device)")
    assert_refused(results[2], "never an image")
    assert base_files(workdir) == []


def test_host_files_are_refused_and_the_message_says_to_add_a_root(workdir, layout):
    (layout.root / "shadow").symlink_to("/etc/shadow")
    results, _out = run_play(workdir, [
        vm_image(workdir, {"url": "file:///etc/shadow", "disk_format": "raw",
                           "allow_unverified": True}),
        vm_image(workdir, {"url": "file://%s/shadow" % layout.root, "disk_format": "raw",
                           "allow_unverified": True}, roots=[layout.root]),
    ])
    assert_refused(results[0], "image source file:///etc/shadow is a file on the host, and no "
                               "image root is configured: add the directory that holds it to "
                               "image_roots (the role variable virtops_image_roots)")
    assert_refused(results[1], "(resolves to /etc/shadow) is outside the image roots")
    assert base_files(workdir) == []
    assert not (workdir / "instances").exists() or \
        [p.name for p in (workdir / "instances").iterdir()] in ([], ["locks"], ["_base"])


def test_a_verbose_run_shows_neither_user_data_nor_injected_files(workdir, layout):
    secret, content = "virtops-user-data-" + uuid.uuid4().hex, "virtops-file-" + uuid.uuid4().hex
    task = vm_image(workdir, {"url": "file://%s/good.qcow2" % layout.root, "disk_format": "qcow2",
                              "checksum": layout.checksum}, roots=[layout.root],
                    config_drive=True, user_data="#cloud-config\n# %s\n" % secret,
                    injected_files=[{"path": "/etc/motd", "content": content}])
    del task["ignore_errors"]
    _results, output = run_play(workdir, [task], verbose=True)
    assert "changed: [localhost]" in output, output[-3000:]
    assert "module_args" in output                     # -vvv shows the invocation ...
    assert secret not in output and content not in output   # ... without the secrets
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output
