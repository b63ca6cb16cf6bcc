# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/<page>.md -> docs/docsite/rst/<page>.rst for the pages docs/docsite/extra-docs.yml lists.

The Markdown pages are the one source; antsibull-docs takes extra docs only as RST, so this
writes the RST (with pandoc, from pypandoc-binary in the tools venv) and the docsite, the
collection tarball and `antsibull-docs lint-collection-docs` read that. Links between docsite
pages become :ref: links to the page's label; links to other files of the repository become
links to the repository (galaxy.yml's `repository`); a link to a docs/*.md page that is not in
the docsite (docs/lab.md is for developers only) is refused.

Usage: docs_rst.py ROOT [--check]   (--check: write nothing, fail when an .rst is stale)
"""
from __future__ import annotations

import json
import pathlib
import posixpath
import sys

import pypandoc
import yaml

LABEL = "ansible_collections.virtops.compute.docsite.%s"


def pages(root: pathlib.Path) -> list:
    index = yaml.safe_load((root / "docs/docsite/extra-docs.yml").read_text())
    refs = []
    for section in index.get("sections") or []:
        for entry in section.get("toctree") or []:
            refs.append(entry["ref"] if isinstance(entry, dict) else entry)
    return refs


def _text(inlines) -> str:
    """The plain text of pandoc inlines (enough for link texts: words, code, emphasis)."""
    out = []
    for node in inlines:
        kind, content = node["t"], node.get("c")
        if kind == "Str":
            out.append(content)
        elif kind in ("Space", "SoftBreak", "LineBreak"):
            out.append(" ")
        elif kind == "Code":
            out.append(content[1])
        elif kind in ("Emph", "Strong", "Strikeout", "Underline", "SmallCaps"):
            out.append(_text(content))
        elif kind == "Quoted":
            out.append('"%s"' % _text(content[1]))
        elif kind == "Span":
            out.append(_text(content[1]))
    return "".join(out)


class Converter:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.pages = pages(root)
        galaxy = yaml.safe_load((root / "galaxy.yml").read_text())
        self.blob = galaxy["repository"].rstrip("/") + "/blob/main/"
        self.problems = []

    def _link(self, page: str, node: dict):
        attr, inlines, (target, title) = node["c"]
        if "://" in target or target.startswith(("mailto:", "#")):
            return node
        path, anchor = (target.split("#", 1) + [""])[:2]
        in_repo = posixpath.normpath(posixpath.join("docs", path))
        stem = posixpath.basename(in_repo)[:-3] if in_repo.endswith(".md") else None
        if posixpath.dirname(in_repo) == "docs" and stem in self.pages:
            text = _text(inlines).replace("<", r"\<").replace("`", "")
            return {"t": "RawInline", "c": ["rst", ":ref:`%s <%s>`" % (text, LABEL % stem)]}
        if posixpath.dirname(in_repo) == "docs" and stem is not None:
            self.problems.append(
                "docs/%s.md links to %s, which is not a page of the docsite (extra-docs.yml): "
                "link a docsite page, or say the file's name without a link" % (page, in_repo))
            return node
        if in_repo.startswith("..") or not (self.root / in_repo).exists():
            self.problems.append("docs/%s.md links to %s, which is not in the repository"
                                 % (page, target))
            return node
        url = self.blob + in_repo + ("#" + anchor if anchor else "")
        return {"t": "Link", "c": [attr, inlines, [url, title]]}

    def _walk(self, page: str, value):
        if isinstance(value, list):
            return [self._walk(page, item) for item in value]
        if isinstance(value, dict):
            if value.get("t") == "Header":
                # No explicit targets: antsibull-docs allows only labels with the docsite prefix.
                value = {"t": "Header", "c": [value["c"][0], ["", [], []], value["c"][2]]}
            if value.get("t") == "Link":
                value = self._link(page, value)
                if value.get("t") != "Link":
                    return value
            return {key: self._walk(page, item) for key, item in value.items()}
        return value

    def rst(self, page: str) -> str:
        source = self.root / "docs" / ("%s.md" % page)
        if not source.is_file():
            self.problems.append("docs/docsite/extra-docs.yml lists %s, but there is no %s"
                                 % (page, source.relative_to(self.root)))
            return ""
        doc = json.loads(pypandoc.convert_file(str(source), "json", format="gfm"))
        # The copyright comment at the top of each page is said again in the RST header.
        doc["blocks"] = [block for block in doc["blocks"]
                         if not (block["t"] == "RawBlock" and block["c"][1].startswith("<!--"))]
        doc["blocks"] = self._walk(page, doc["blocks"])
        body = pypandoc.convert_text(json.dumps(doc), "rst", format="json",
                                     extra_args=["--wrap=preserve"])
        return ("..\n"
                "  Copyright: (c) 2026, virtops.compute contributors\n"
                "  GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)\n"
                "\n"
                "..\n"
                "  Generated from docs/%s.md by scripts/docs.sh (make docs): edit that page, not\n"
                "  this file.\n"
                "\n"
                ".. _%s:\n\n%s" % (page, LABEL % page, body))


def main(argv) -> int:
    root = pathlib.Path(argv[1]).resolve()
    check = "--check" in argv[2:]
    converter = Converter(root)
    out_dir = root / "docs/docsite/rst"
    wanted = {}
    for page in converter.pages:
        wanted[out_dir / ("%s.rst" % page)] = converter.rst(page)
    if converter.problems:
        print("\n".join(converter.problems), file=sys.stderr)
        return 1
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    extra = [p for p in out_dir.glob("*.rst") if p not in wanted
             and "Generated from docs/" in p.read_text()]
    if check:
        if stale or extra:
            print("docs/docsite/rst is not what docs/*.md give (%s): run `make docs` and commit "
                  "the result" % ", ".join(str(p.relative_to(root)) for p in stale + extra),
                  file=sys.stderr)
            return 1
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path])
    for path in extra:
        path.unlink()
    print("docs: %d page(s) from docs/*.md, %d rewritten" % (len(wanted), len(stale) + len(extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
