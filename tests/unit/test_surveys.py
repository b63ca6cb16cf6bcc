# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX surveys the collection ships (docs/awx/surveys/*.json) ask for what their playbooks
read, in AWX's question types, with the administrator password as a password field.
tests/integration/test_surveys.py runs them under ansible-runner."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SURVEYS = REPO / "docs" / "awx" / "surveys"


def test_every_survey_asks_only_for_variables_its_playbook_reads():
    known = {"server_name", "flavor", "image", "network", "key_name", "count", "admin_pass",
             "user_data", "target_host", "reboot_type", "shutdown_timeout", "console_lines"}
    paths = sorted(SURVEYS.glob("*.json"))
    assert [p.stem for p in paths] == ["boot", "cold_migrate", "confirm_resize", "console_log",
                                       "delete", "reboot", "resize", "revert_resize", "start",
                                       "stop"]
    for path in paths:
        survey = json.loads(path.read_text())
        assert (REPO / "playbooks" / (path.stem + ".yml")).is_file(), path.name
        assert {q["variable"] for q in survey["spec"]} <= known, path.name
        assert all(q["type"] in ("text", "textarea", "password", "integer", "multiplechoice")
                   for q in survey["spec"]), path.name
        secrets = {q["variable"] for q in survey["spec"] if q["type"] == "password"}
        assert secrets <= {"admin_pass"} and ("admin_pass" not in {q["variable"] for q in survey["spec"]}
                                              or secrets == {"admin_pass"}), path.name


def test_a_multiple_choice_question_offers_its_default_among_its_choices():
    for path in sorted(SURVEYS.glob("*.json")):
        for question in json.loads(path.read_text())["spec"]:
            if question["type"] == "multiplechoice":
                choices = question["choices"]
                choices = choices.split("\n") if isinstance(choices, str) else choices
                assert question["default"] in choices, (path.name, question["variable"])
