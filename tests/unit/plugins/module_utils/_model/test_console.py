# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VNC listen address (Nova's [vnc] server_listen) and the console URL servers.yml shows."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.console import (
    DEFAULT_VNC_LISTEN, Graphics, console_url, valid_vnc_listen)


@pytest.mark.parametrize("address", ["127.0.0.1", "192.0.2.11", "0.0.0.0", "::", "::1",
                                     "fd00::11", " 10.0.0.1 "])
def test_an_ipv4_or_ipv6_address_is_a_valid_listen_address(address):
    assert valid_vnc_listen(address) == address.strip()


def test_the_default_listen_address_is_the_loopback_as_in_nova():
    assert DEFAULT_VNC_LISTEN == "127.0.0.1"


@pytest.mark.parametrize("value", ["compute1", "localhost", "eth0", "", None, 5900,
                                   "192.0.2.300", "0.0.0.0; rm", "fe80::1%eth0", "10.0.0.1/24"])
def test_anything_but_an_ip_address_is_refused_naming_the_setting_and_the_value(value):
    with pytest.raises(VirtopsError) as caught:
        valid_vnc_listen(value, "virtops_vnc_listen")
    assert caught.value.msg.startswith("virtops_vnc_listen must be an IP address")
    assert repr(value) in caught.value.msg


def test_a_console_url_is_the_type_the_listen_address_and_the_port():
    assert Graphics("vnc", "192.0.2.11", 5900).url == "vnc://192.0.2.11:5900"
    assert Graphics("vnc", "fd00::11", 5901).url == "vnc://[fd00::11]:5901"
    assert Graphics("spice", "127.0.0.1", 5902).url == "spice://127.0.0.1:5902"


def test_a_console_without_a_port_an_address_or_a_known_type_has_no_url():
    assert Graphics("vnc", "127.0.0.1", None).url is None
    assert Graphics("vnc", "127.0.0.1", -1).url is None
    assert Graphics("vnc", None, 5900).url is None
    assert Graphics("egl-headless").url is None


def test_the_console_of_a_server_is_its_first_vnc_console_with_a_url():
    assert console_url([{"type": "spice", "listen": "10.0.0.1", "port": 5901},
                        {"type": "vnc", "listen": "10.0.0.1", "port": 5900}]) == \
        "vnc://10.0.0.1:5900"
    assert console_url([{"type": "vnc", "listen": "10.0.0.1", "port": None},
                        {"type": "spice", "listen": "10.0.0.1", "port": 5901}]) == \
        "spice://10.0.0.1:5901"
    assert console_url([]) is None and console_url(None) is None
    assert console_url([{"type": "vnc", "listen": "10.0.0.1", "port": True}]) is None
