"""Every citation a user sees can be followed: nothing cites research notes that do not ship with the kit, and every
`docs/reference/*.md` file and anchor cited from code, data or docs exists (docs/reference/sources.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("mig_conformance", "simulators", "suites", "fixtures", "docs", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cfg", ".json", ".sh", ".html", ".j2"}

# Citations of documents outside the repository: the research notes, their section signs, and their source tags.
EXTERNAL = re.compile("|".join((
    r"mig-profiles\.md", r"python-ecosystem\.md", r"k8s-mig-semantics\.md", r"\bpeers\.md", r"shared/reference",
    r"reference\s*§", r"§\s*\d",
    r"\bREF\b", r"\bG580\b", r"\bGNEW\b", r"\bGDEP\b", r"\bNVLIB\b", r"\bNVMLH\b", r"\bMP\b", r"\bGCP\b",
    r"\bGO (?:ConfigMap|HEAD|all-balanced|also)\b", r"\(GO\b",  # `GO` alone is also a Go toolchain name
)))
REFERENCE_CITATION = re.compile(r"docs/reference/([\w.-]+\.md)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
            continue
        files += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and "__pycache__" not in p.parts and not any(part.endswith(".egg-info") for part in p.parts)]
    return files


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_scan_covers_the_kit() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    assert "README.md" in files and "fixtures/gpus/H100-80GB.yaml" in files
    assert "docs/reference/sources.md" in files and "simulators/nvml.py" in files


def test_no_citation_of_documents_outside_the_repository() -> None:
    hits = []
    for path in scanned_files():
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = EXTERNAL.search(line)
            if m:
                hits.append(f"{path.relative_to(ROOT)}:{no}: {m.group(0)!r} in {line.strip()[:100]}")
    assert not hits, "citations a user cannot follow:\n" + "\n".join(hits)


def cited_reference_targets() -> list[tuple[str, Path, str | None]]:
    """(where, file, anchor) for each docs/reference citation and each Markdown link into docs/reference/."""
    reference = ROOT / "docs" / "reference"
    out: list[tuple[str, Path, str | None]] = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT).as_posix()
        for m in REFERENCE_CITATION.finditer(text):
            out.append((where, reference / m.group(1), m.group(2)))
        if path.suffix != ".md":
            continue
        for m in MARKDOWN_LINK.finditer(text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if reference in resolved.parents or (path.parent == reference and not file_part):
                out.append((where, resolved, anchor or None))
    return out


def test_reference_citations_resolve() -> None:
    targets = cited_reference_targets()
    assert len(targets) > 100  # the catalog alone cites docs/reference hundreds of times
    broken = sorted({f"{where}: {file.relative_to(ROOT)}#{anchor or ''}" for where, file, anchor in targets
                     if not file.is_file() or (anchor is not None and anchor not in anchors(file))})
    assert not broken, "docs/reference citations that do not resolve:\n" + "\n".join(broken)


@pytest.mark.parametrize(("heading", "anchor"), [
    ("GI IDs and placement choice", "gi-ids-and-placement-choice"),
    ('The "gb" number', "the-gb-number"),
    ("mig-manager (`mig_manager.py`)", "mig-manager-mig_managerpy"),
])
def test_slug_is_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
