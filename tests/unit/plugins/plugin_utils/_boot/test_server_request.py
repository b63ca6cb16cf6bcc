# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One input convention for every playbook: server as a name, a mapping or JSON text, and the
flat variables an AWX survey sets; the secrets apart."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot.request import (
    server_request, server_secrets)


def test_a_plain_name_is_the_server_of_that_name():
    assert server_request("web1") == {"name": "web1"}


def test_a_mapping_is_taken_as_it_is_without_its_secrets():
    server = {"name": "web1", "flavor": "m1.small", "admin_pass": "Sesame", "user_data": "#!"}
    assert server_request(server) == {"name": "web1", "flavor": "m1.small"}


def test_a_json_object_given_as_text_is_read_as_the_mapping():
    assert server_request('{"name": "web1", "max_count": 2}') == {"name": "web1", "max_count": 2}


def test_survey_answers_make_the_whole_request_and_empty_answers_count_as_not_given():
    answers = {"server_name": "web1", "flavor": "m1.small", "image": "cirros", "network": "private, public",
               "key_name": "", "count": "2", "min_count": None, "config_drive": "true"}
    assert server_request(None, answers) == {
        "name": "web1", "flavor": "m1.small", "image": "cirros", "max_count": 2, "config_drive": True,
        "networks": [{"network": "private"}, {"network": "public"}]}


def test_survey_answers_fill_what_a_name_does_not_say():
    assert server_request("web1", {"flavor": "m1.small"}) == {"name": "web1", "flavor": "m1.small"}


def test_a_survey_answer_that_contradicts_the_mapping_is_refused_naming_both():
    with pytest.raises(VirtopsError, match=r"server.name is 'web1' but server_name is 'web2': give it once"):
        server_request({"name": "web1"}, {"server_name": "web2"})


def test_nothing_naming_a_server_says_how_to_name_one():
    with pytest.raises(VirtopsError, match="say which server: -e server=NAME"):
        server_request(None, {"flavor": "m1.small"})
    assert server_request("", required=False) == {}


@pytest.mark.parametrize("server, message", [
    ("{not json", "server looks like JSON but is not"),
    (42, "server must be a name or a mapping, not int"),
])
def test_a_server_of_another_shape_is_refused(server, message):
    with pytest.raises(VirtopsError, match=message):
        server_request(server)


def test_a_server_of_another_shape_is_reported_before_an_unknown_survey_variable():
    with pytest.raises(VirtopsError, match="server looks like JSON but is not"):
        server_request("{not json", {"colour": "blue"})
    with pytest.raises(VirtopsError, match="unknown survey variable 'colour'"):
        server_request("web1", {"colour": "blue"})
    with pytest.raises(VirtopsError, match="unknown survey variable 'colour'"):
        server_request(["web1"], {"colour": "blue"})


def test_a_config_drive_answer_must_be_a_boolean():
    with pytest.raises(VirtopsError, match="config_drive must be true or false"):
        server_request("web1", {"config_drive": "maybe"})


def test_secrets_come_from_their_own_variables_first_then_from_the_mapping():
    server = {"name": "web1", "admin_pass": "from-server", "user_data": "#cloud-config"}
    assert server_secrets(server, admin_pass="from-survey") == {
        "admin_pass": "from-survey", "user_data": "#cloud-config"}
    assert server_secrets("web1", admin_pass="", user_data=None) == {"admin_pass": None, "user_data": None}
