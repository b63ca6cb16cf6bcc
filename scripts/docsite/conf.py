# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sphinx configuration of the collection's docsite (scripts/docs.sh, `make docs`).

antsibull-docs writes the RST (plugins, roles, and the guides from docs/*.md); Sphinx builds
HTML from it with -W, so a broken reference or malformed RST fails the build. The build is
offline: no intersphinx inventory is fetched. The few labels antsibull-docs points at in the
Ansible documentation, and the ansible-core settings' environment variables that a doc fragment
names (the inventory cache's), become plain links to it; any other unknown label stays an error.
"""
from __future__ import annotations

from docutils import nodes

project = "virtops.compute"
copyright = "2026, virtops.compute contributors"  # pylint: disable=redefined-builtin
title = html_short_title = "virtops.compute collection documentation"
extensions = ["sphinx_antsibull_ext"]
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "alabaster"
html_show_sphinx = False
html_use_modindex = False
html_use_index = False
html_copy_source = False
default_role = "any"
nitpicky = True

ANSIBLE_DOCS = "https://docs.ansible.com/ansible/latest/"
ANSIBLE_LABELS = {
    "common_return_values": "reference_appendices/common_return_values.html",
    "ansible_configuration_settings": "reference_appendices/config.html",
    "action_plugins": "plugins/action.html",
}
# ansible-core settings whose environment variables the doc fragment inventory_cache names
# (the inventory plugin servers): anchors of the configuration reference.
ANSIBLE_ENVVARS = ("ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
                   "ANSIBLE_CACHE_PLUGIN_PREFIX", "ANSIBLE_CACHE_PLUGIN_TIMEOUT")


def _ansible_docs_url(label: str):
    if label in ANSIBLE_LABELS:
        return ANSIBLE_DOCS + ANSIBLE_LABELS[label]
    prefix = "ansible_collections.ansible.builtin."
    if label.startswith(prefix) and label.endswith("_module"):
        return ANSIBLE_DOCS + "collections/ansible/builtin/%s.html" % label[len(prefix):]
    return None


def _missing_reference(app, env, node, contnode):  # pylint: disable=unused-argument
    if node.get("refdomain") != "std":
        return None
    target = node.get("reftarget", "")
    if node.get("reftype") == "envvar" and target in ANSIBLE_ENVVARS:
        url = ANSIBLE_DOCS + ANSIBLE_LABELS["ansible_configuration_settings"] + "#envvar-" + target
    elif node.get("reftype") in ("ref", "any"):
        url = _ansible_docs_url(target)
    else:
        return None
    if url is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=url)
    reference.append(contnode)
    return reference


def setup(app):
    app.connect("missing-reference", _missing_reference)
