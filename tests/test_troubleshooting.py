"""docs/troubleshooting.md documents every Problem code the package can print.

The codes are collected from the source, not from a list kept by hand, so adding a ``Problem("new-code", ...)``
without a section headed ``## `new-code` `` in docs/troubleshooting.md fails here.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "darknet_magics"
PAGE = ROOT / "docs" / "troubleshooting.md"

_CODE = r"""["']([a-z][a-z0-9]*(?:-[a-z0-9]+)*)["']"""
# How codes are written in the package today:
#   Problem("missing-file", ...)   Problem(\n    "nan-loss", ...)   Problem(code="...", ...)   code="..."
#   add("unsupported-gpu-arch", "message", ...)   (buildlog.diagnose_build's local helper; not `obj.add(`)
PATTERNS = (
    re.compile(r"\bProblem\(\s*(?:code\s*=\s*)?" + _CODE),
    re.compile(r"\bcode\s*=\s*" + _CODE),
    re.compile(r"(?<![\w.])add\(\s*" + _CODE + r"\s*,"),
)


def source_codes() -> dict[str, set[str]]:
    """code -> the modules that write it."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in PATTERNS:
            for m in pattern.finditer(text):
                found.setdefault(m.group(1), set()).add(path.name)
    return found


def documented_codes() -> set[str]:
    return set(re.findall(r"^#{2,4}\s+`([^`]+)`\s*$", PAGE.read_text(encoding="utf-8"), flags=re.M))


def anchors(text: str) -> set[str]:
    """GitHub-style anchors of the headings of a markdown page."""
    out = set()
    for title in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).strip().replace(" ", "-")
        out.add(slug)
    return out


def test_the_scan_still_finds_the_codes():
    # A guard against a regex that silently stops matching (the test below would then pass on nothing).
    codes = source_codes()
    assert len(codes) >= 40, sorted(codes)
    for known in ("missing-file", "filters-mismatch", "nan-loss", "unsupported-gpu-arch", "class-out-of-range",
                  "truncated-weights", "already-trained"):
        assert known in codes


def test_diagnose_codes_table_is_in_the_scan():
    from darknet_magics.output.diagnose import CODES

    assert set(CODES) <= set(source_codes())


@pytest.mark.parametrize("code", sorted(source_codes()))
def test_every_problem_code_has_a_section(code):
    where = ", ".join(sorted(source_codes()[code]))
    assert code in documented_codes(), (
        f"Problem code {code!r} (written in {where}) has no section in docs/troubleshooting.md: "
        f"add a '## `{code}`' heading with what the user sees, the cause and the fix")


def test_the_page_documents_no_code_that_no_longer_exists():
    stale = documented_codes() - set(source_codes())
    assert not stale, f"docs/troubleshooting.md has sections for codes the package no longer writes: {sorted(stale)}"


def test_links_to_troubleshooting_sections_resolve():
    targets = anchors(PAGE.read_text(encoding="utf-8"))
    pages = [PAGE, *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        own = r"\(#([\w-]+)\)" if page == PAGE else r"troubleshooting\.md#([\w-]+)\)"
        for anchor in re.findall(own, text):
            if anchor not in targets:
                broken.append(f"{page.relative_to(ROOT)}: #{anchor}")
    assert not broken, broken
