"""Writes a report bundle folder and re-renders its markdown/HTML from summary.json.

Files: summary.json, report.md, report.html, TARGET.yaml, evidence/<name>.json (junit.xml comes from pytest).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.common.scrub import scrub, scrub_text
from mig_conformance.common.yaml_source import load_yaml_file
from mig_conformance.report.model import ReportFormatError, RunSummary, canonical
from mig_conformance.report.render_html import render_html
from mig_conformance.report.render_md import render_md
from mig_conformance.report.target import build_target, target_yaml

SUMMARY_JSON = "summary.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TARGET_YAML = "TARGET.yaml"
EVIDENCE_DIR = "evidence"
JUNIT_XML = "junit.xml"  # written by pytest (--junitxml), named here so the plugin and docs agree


def _write(path: Path, text: str) -> Path:
    """Write atomically (temporary file + rename), UTF-8 with '\\n' line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def evidence_name(name: str) -> str:
    """A safe relative file name for an evidence key: `nodes/before` -> `nodes/before.json`."""
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip(".") or "_" for p in str(name).split("/") if p]
    parts = parts or ["_"]
    parts[-1] = parts[-1].removesuffix(".json") + ".json"
    return "/".join(parts)


def evidence_json(value: Any) -> str:
    """Canonical, scrubbed JSON of one evidence object."""
    return json.dumps(scrub(canonical(value)), indent=2, ensure_ascii=False) + "\n"


def write_bundle(directory: str | os.PathLike[str], summary: RunSummary, target: Mapping[str, Any] | None = None,
                 evidence: Mapping[str, object] | None = None) -> Path:
    """Write the bundle into `directory` (created if needed); returns its path.

    `target` is the backend's Cluster.describe() dict; TARGET.yaml adds the run's instance types, GPU
    models, kit, Python and pytest versions to it. Evidence and target are scrubbed of tokens.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    target_doc = build_target(summary, target)
    _write(d / SUMMARY_JSON, summary.to_json())
    _write(d / TARGET_YAML, target_yaml(target_doc))
    for stale in (d / EVIDENCE_DIR).rglob("*.json"):  # a reused folder: evidence is this run's only
        stale.unlink()
    used: set[str] = set()
    for key in sorted(evidence or {}, key=str):
        name = evidence_name(key)
        stem, n = name.removesuffix(".json"), 2
        while name in used:
            name, n = f"{stem}-{n}.json", n + 1
        used.add(name)
        _write(d / EVIDENCE_DIR / name, evidence_json((evidence or {})[key]))
    _render(d, summary, target_doc)
    scrub_junit(d / JUNIT_XML)
    return d


def scrub_junit(path: Path) -> None:
    """pytest's junit.xml holds failure texts and captured output: redact secrets in every text and attribute."""
    if not path.is_file():
        return
    from xml.etree import ElementTree

    try:
        tree = ElementTree.parse(path)
    except ElementTree.ParseError:
        return  # not pytest's file: leave it
    changed = False
    for element in tree.iter():
        for name, value in element.attrib.items():
            if (clean := scrub_text(value)) != value:
                element.set(name, clean)
                changed = True
        for part in ("text", "tail"):
            value = getattr(element, part)
            if value and (clean := scrub_text(value)) != value:
                setattr(element, part, clean)
                changed = True
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)


def _render(d: Path, summary: RunSummary, target_doc: Mapping[str, Any] | None) -> list[Path]:
    return [_write(d / REPORT_MD, render_md(summary, target_doc)),
            _write(d / REPORT_HTML, render_html(summary, target_doc))]


def load_summary(directory: str | os.PathLike[str]) -> RunSummary:
    """summary.json of a bundle; ReportFormatError says what is missing or wrong."""
    path = Path(directory) / SUMMARY_JSON
    if not Path(directory).exists():
        raise ReportFormatError(f"{directory}: no such folder")
    if not Path(directory).is_dir():
        raise ReportFormatError(f"{directory}: not a folder (give the report bundle's folder)")
    if not path.is_file():
        raise ReportFormatError(f"{path}: no summary.json here (is this a report bundle?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportFormatError(f"{path}: cannot read: {exc}") from None
    try:
        return RunSummary.from_json(text)
    except ReportFormatError as exc:
        raise ReportFormatError(f"{path}: {exc}") from None


def load_target(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """TARGET.yaml of a bundle, or None when there is none."""
    path = Path(directory) / TARGET_YAML
    if not path.is_file():
        return None
    try:
        doc = load_yaml_file(path).data  # bounded: a bundle may come from someone else
    except InputError as exc:
        raise ReportFormatError(f"not readable YAML: {exc}") from None
    if doc is not None and not isinstance(doc, dict):
        raise ReportFormatError(f"{path}: expected a mapping")
    return doc


def rerender(directory: str | os.PathLike[str]) -> list[Path]:
    """Re-create report.md and report.html from summary.json (and TARGET.yaml if present)."""
    summary = load_summary(directory)
    return _render(Path(directory), summary, load_target(directory))
