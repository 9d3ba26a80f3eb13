"""The `report diff` page: one self-contained HTML file in report.html's style (its CSS and outcome marks, no
JavaScript, no external URLs, well-formed XML)."""

from __future__ import annotations

from collections.abc import Sequence

from mig_conformance.report.diff import NORMALISED, BundleDiff, Change, TestDiff, show_value
from mig_conformance.report.render_html import CSS, e, mark, outcome, table

_EXTRA_CSS = "td.a { background: #FEF2F2; } td.b { background: #ECFDF5; } td.path { overflow-wrap: anywhere; }"


def _changes(items: Sequence[Change], first: str = "Value") -> str:
    rows = [[f'<td class="path"><code>{e(c.where)}</code></td>', f'<td class="a">{e(show_value(c.a))}</td>',
             f'<td class="b">{e(show_value(c.b))}</td>'] for c in items]
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return (f"<table><thead><tr><th>{e(first)}</th><th>A</th><th>B</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _result(value: str | None) -> str:
    return outcome(value) if value else "<em>not run</em>"


def _tests(tests: Sequence[TestDiff]) -> str:
    rows = []
    for t in tests:
        details = _changes(t.values) if t.values else ""
        if t.verdict_changed and any(t.messages):
            details += "".join(f"<p>{side}: <code>{e(m)}</code></p>"
                               for side, m in zip("AB", t.messages, strict=True) if m)
        rows.append([e(t.category), f"<code>{e(t.test)}</code>", _result(t.a), _result(t.b), details])
    return table(["Category", "Test", "A", "B", "What changed"], rows, cls="tests", raw=True)


def render_diff_html(d: BundleDiff) -> str:
    verdict = "Failed" if d.verdicts_differ else "Passed"
    headline = ("verdicts differ" if d.verdicts_differ else
                "same verdicts" + (f", {d.count} value difference(s)" if d.count else ", no differences"))
    rows = [[e(side), e(f.path), e(f.cluster or "?"), e(f.backend or "?"), e(f.run_id), outcome(f.verdict)]
            for side, f in (("A", d.a), ("B", d.b))]
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
           '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
           f"<title>MIG conformance report diff: {e(headline)}</title>", f"<style>{CSS}{_EXTRA_CSS}</style>",
           "</head>", "<body>", f'<header class="verdict {verdict}"><h1>MIG conformance report diff</h1>',
           f'<p><span class="badge {verdict}">{mark(verdict)}{e(headline)}</span></p></header>',
           '<section id="bundles"><h2>Bundles</h2>',
           table(["", "Folder", "Cluster", "Backend", "Run ID", "Verdict"], rows, raw=True), "</section>"]
    for anchor, title, items in (("run", "Run verdicts", d.run), ("versions", "Versions", d.versions),
                                 ("config-verdicts", "Config verdicts", d.config_verdicts)):
        if items:
            out += [f'<section id="{anchor}"><h2>{e(title)}</h2>', _changes(items, "Field"), "</section>"]
    out.append('<section id="nodes"><h2>Nodes</h2>')
    shown = 0
    for n in d.nodes:
        if not (n.fields or n.tests or not (n.a_node and n.b_node)):
            continue
        shown += 1
        out += [f'<details class="node" open="open"><summary>{e(n.category)}: A {e(n.a_node or "(none)")}, '
                f'B {e(n.b_node or "(none)")} &#8212; {len(n.tests)} test(s) differ, {n.same_tests} the same'
                "</summary>", _changes(n.fields, "Node") if n.fields else "", _tests(n.tests) if n.tests else "",
                "</details>"]
    if d.other_tests:
        shown += 1
        out += ["<h3>Tests without a node</h3>", _tests(d.other_tests)]
    if not shown:
        out.append("<p>No node or test differs.</p>")
    out += ["</section>", '<section id="normalised"><h2>Not compared</h2><ul>',
            *(f"<li>{e(line)}</li>" for line in NORMALISED), "</ul></section>",
            "<footer>mig-conformance report diff</footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
