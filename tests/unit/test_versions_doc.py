"""docs/versions.md's tables are versions.RULES and versions.OPERATOR_RELEASES (MIG_UPDATE_DOCS=1 rewrites them),
and every rule names its version and an upstream source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mig_conformance.k8s import versions as V
from mig_conformance.k8s.versions_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "versions.md"


def test_the_document_is_the_rules() -> None:
    text = DOC.read_text()
    if os.environ.get("MIG_UPDATE_DOCS"):
        DOC.write_text(render(text))
        text = DOC.read_text()
    assert render(text) == text, "docs/versions.md is out of date: rerun with MIG_UPDATE_DOCS=1"
    for rule in V.RULES:
        assert f"| `{rule.id}` |" in text


@pytest.mark.parametrize("rule", V.RULES, ids=lambda r: r.id)
def test_every_rule_has_a_version_and_a_source(rule: V.Rule) -> None:
    assert rule.component in V.COMPONENTS
    V.release(rule.since)
    assert any(s in rule.source for s in ("NVIDIA/", "kubernetes", "tests/data/", "docs/reference/")), rule.source


def test_a_missing_marker_is_named() -> None:
    with pytest.raises(ValueError, match="no '<!-- generated: rules"):
        render("# nothing here\n")


def test_the_readme_links_the_stack_profile() -> None:
    assert "docs/versions.md" in (DOC.parents[1] / "README.md").read_text()
