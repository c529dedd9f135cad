"""docs/ tracks every directive: each has a page whose generated reference matches the spec, and an example."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from darknet_magics.directives import GRAMMAR

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_docs)

ALL = list(GRAMMAR.darknet.values()) + list(GRAMMAR.yolo.values())


@pytest.mark.parametrize("directive", ALL, ids=lambda s: f"{s.language}-{s.name}")
def test_every_directive_has_an_up_to_date_page(directive):
    page = ROOT / "docs" / "directives" / gen_docs.page_name(directive)
    assert page.exists(), f"missing {page}: run python scripts/gen_docs.py"
    text = page.read_text()
    assert gen_docs.reference_block(directive) in text, f"stale reference in {page}: run python scripts/gen_docs.py"
    assert directive.example and directive.example in text


def test_index_links_every_page():
    index = (ROOT / "docs" / "directives" / "README.md").read_text()
    for directive in ALL:
        assert f"({gen_docs.page_name(directive)})" in index
