"""docs/versions.md's generated tables: `versions.RULES` (behaviour × versions, each with its upstream source) and
`versions.OPERATOR_RELEASES`. tests/unit/test_versions_doc.py keeps the document equal to them."""

from __future__ import annotations

from mig_conformance.k8s import versions as V

BEGIN, END = "<!-- generated: {name} (k8s/versions_doc.py) -->", "<!-- end: {name} -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rules_table() -> str:
    rows = ["| rule | component | since | before | from then on | source | modelled in |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| `{r.id}` | {V.SPELLINGS[r.component]} | {r.since} | {_cell(r.before)} | {_cell(r.after)} | "
             f"{_cell(r.source)} | {_cell(r.modelled)} |" for r in V.RULES]
    return "\n".join(rows)


def releases_table() -> str:
    rows = ["| GPU Operator | mig-manager | device plugin = GFD | driver (default) |", "|---|---|---|---|"]
    rows += [f"| {r.version} | {r.mig_manager} | {r.device_plugin} | {r.driver} |"
             for r in V.OPERATOR_RELEASES.values()]
    return "\n".join(rows)


TABLES = {"rules": rules_table, "releases": releases_table}


def render(text: str) -> str:
    """`text` with every generated block replaced by the current table."""
    for name, make in TABLES.items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        head, found, rest = text.partition(begin)
        if not found:
            raise ValueError(f"docs/versions.md has no '{begin}' marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"docs/versions.md has no '{end}' marker")
        text = f"{head}{begin}\n{make()}\n{end}{tail}"
    return text
