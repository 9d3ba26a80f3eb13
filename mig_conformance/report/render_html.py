"""report.html: one self-contained page (inline CSS and SVG, no JavaScript, no external URLs).

The markup is also well-formed XML (void elements self-closed, only XML entities), so it can be checked
with any XML parser. Outcome marks are CSS shapes, not characters: an emoji or dingbat glyph is an empty box on a
machine without a font that has it. Every character the page shows is in `SAFE_TEXT`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from mig_conformance.report import view
from mig_conformance.report.model import NodeSummary, RunSummary, TestResult
from mig_conformance.report.svg import colour_for, gpu_svg, gpus_caption, group_gpus, text_colour
from mig_conformance.report.values import checks, show

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; background: #FFFFFF;
       margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; } h2 { border-bottom: 1px solid #E5E7EB; padding-bottom: 0.2rem; }
header.verdict { border-radius: 8px; padding: 0.8rem 1.2rem; margin: 1rem 0; }
header.Passed { background: #ECFDF5; border: 2px solid #059669; }
header.Failed { background: #FEF2F2; border: 2px solid #DC2626; }
.badge { font-weight: bold; font-size: 1.3rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #E5E7EB; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #F9FAFB; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { width: 11rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85rem; }
pre { background: #F9FAFB; border: 1px solid #E5E7EB; padding: 0.5rem; white-space: pre-wrap; }
.passed, .Passed { color: #047857; } .failed, .error, .Failed { color: #B91C1C; font-weight: bold; }
.skipped, .Skipped { color: #6B7280; }
tr.mismatch td { background: #FEF2F2; }
table.tests { width: 100%; } table.tests th:last-child { width: 40%; }
table.tests td details { overflow-wrap: anywhere; } table.tests td:first-child { overflow-wrap: anywhere; }
span.passed, span.failed, span.error, span.skipped, span.unknown, span.badge, td.check { white-space: nowrap; }
details.node { border: 1px solid #E5E7EB; border-radius: 6px; padding: 0.3rem 0.8rem; margin: 0.6rem 0; }
details.node > summary { font-weight: bold; cursor: pointer; }
figure { margin: 0.6rem 0; } figcaption { font-size: 0.85rem; color: #374151; margin-bottom: 0.3rem; }
svg.gpu { margin: 0.2rem 1rem 0.4rem 0; max-width: 100%; height: auto; }
.legend span { display: inline-block; padding: 0 0.5rem; margin: 0.1rem 0.3rem 0.1rem 0; border-radius: 3px;
               white-space: nowrap; }
.mark { display: inline-block; position: relative; box-sizing: border-box; width: 0.95em; height: 0.95em;
        margin-right: 0.35em; vertical-align: -0.12em; border-radius: 50%; background: #6B7280;
        -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.mark::before, .mark::after { content: ""; position: absolute; }
.mark.passed { background: #059669; }
.mark.passed::after { left: 35%; top: 17%; width: 22%; height: 45%; border: solid #FFFFFF;
                      border-width: 0 0.13em 0.13em 0; transform: rotate(45deg); }
.mark.failed { background: #DC2626; }
.mark.error { background: #9A3412; border-radius: 0.15em; }
.mark.failed::before, .mark.failed::after, .mark.error::before, .mark.error::after {
    left: 43%; top: 18%; width: 14%; height: 64%; background: #FFFFFF; }
.mark.failed::before, .mark.error::before { transform: rotate(45deg); }
.mark.failed::after, .mark.error::after { transform: rotate(-45deg); }
.mark.skipped { background: #9CA3AF; }
.mark.skipped::after { left: 22%; top: 43%; width: 56%; height: 14%; background: #FFFFFF; }
#cleanup li.problem { color: #B91C1C; font-weight: bold; }
#cleanup li li { font-weight: normal; color: #111827; }
footer { margin-top: 2rem; color: #6B7280; font-size: 0.8rem; }
"""


def e(text: Any) -> str:
    """Escaped text or attribute value."""
    return escape(str(text), quote=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", raw: bool = False) -> str:
    """A table; cells are escaped unless `raw` (already HTML). Numeric cells are right-aligned."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            num = ' class="num"' if str(c).isdigit() else ""
            cells.append(f"<td{num}>{c if raw else e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attr = f' class="{e(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def mark(result: str) -> str:
    """The outcome's mark: a CSS shape (green tick, red cross, brown square cross for an error, grey dash)."""
    return f'<span class="mark {view.outcome_class(result)}"></span>'


def outcome(result: str) -> str:
    return f'<span class="{e(result)}">{mark(result)}{e(result)}</span>'


def render_html(summary: RunSummary, target: Mapping[str, Any] | None = None) -> str:
    """The whole report.html text."""
    v = summary.verdict
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
           '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
           f"<title>MIG conformance report: {e(v)} ({e(summary.cluster or summary.run_id)})</title>",
           f"<style>{CSS}</style>", "</head>", "<body>",
           f'<header class="verdict {e(v)}"><h1>MIG conformance report</h1>',
           f'<p><span class="badge {e(v)}">{mark(v)}{e(v)}</span> &#8212; '
           f"{e(view.totals_text(summary.totals))}</p>",
           *(f'<p class="question"><span class="{e(verdict)}">{e(name)}: {e(verdict)}</span> &#8212; {e(meaning)}</p>'
             for name, verdict, meaning in view.questions(summary)),
           "</header>",
           '<nav><a href="#run">Run</a>'
           + ('<a href="#config-verdicts">Config verdicts</a>' if _has_config_section(summary) else "")
           + '<a href="#settings">Settings</a><a href="#categories">Categories</a>'
           '<a href="#nodes">Nodes</a><a href="#failures">Failures</a>'
           + ('<a href="#cleanup">Cleanup</a>' if summary.cleanup else "")
           + ('<a href="#skipped">Skipped</a>' if view.skipped(summary) else "") + "</nav>"]
    if summary.signoff:  # the vendor's page comes first
        from mig_conformance.report.render_signoff import signoff_html

        out += signoff_html(summary)

    facts = [[f"<th>{e(k)}</th>", f"<code>{e(val)}</code>" if k in ("Run ID", "Command line") else e(val)]
             for k, val in view.facts(summary, target)]
    out += ['<section id="run"><h2>Run and target</h2><table class="facts"><tbody>',
            *(f"<tr>{k}<td>{val}</td></tr>" for k, val in facts), "</tbody></table></section>"]

    out += _config_verdicts(summary)
    rows = view.settings_rows(summary)
    out += ['<section id="settings"><h2>Settings</h2>',
            table(["Setting", "Value", "Source"], rows) if rows else "<p>No settings recorded.</p>", "</section>"]

    rows = [[e(r[0]), outcome(r[1]), *r[2:]] for r in view.category_rows(summary)]
    out += ['<section id="categories"><h2>Results by category</h2>',
            table(["Category", "Result", *view.COUNT_HEADERS], rows, raw=True) if rows else "<p>No tests ran.</p>",
            "</section>"]

    rows = [[f'<a href="#node-{_anchor(r[0])}">{e(r[0])}</a>', e(r[1]), e(r[2]), outcome(r[3]), *r[4:]]
            for r in view.node_rows(summary)]
    out += ['<section id="nodes"><h2>Nodes</h2>',
            table(["Node", "Instance type", "GPU", "Result", *view.COUNT_HEADERS], rows, raw=True)
            if rows else "<p>No node results.</p>", _legend(summary)]
    for node in sorted(summary.nodes, key=lambda n: n.node):
        is_open = ' open="open"' if node.verdict == "Failed" else ""
        out += [f'<details class="node" id="node-{_anchor(node.node)}"{is_open}>',
                f"<summary>{e(view.node_title(node))}: {outcome(node.verdict)}</summary>",
                _tests_table(node.results, node), *_pictures(node.results, node), "</details>"]
    others = view.unattached(summary)
    if others:
        # like a node's section: open as loaded only when something there failed
        is_open = ' open="open"' if any(r.outcome in ("failed", "error") for r in others) else ""
        out += [f'<details class="node" id="node-without"{is_open}><summary>Tests without a node</summary>',
                _tests_table(others), *_pictures(others), "</details>"]
    out.append("</section>")

    out.append('<section id="failures"><h2>Failures</h2>')
    if not summary.failures:
        out.append("<p>None.</p>")
    for t in sorted(summary.failures, key=lambda t: t.nodeid):
        out += [f"<h3><code>{e(t.nodeid)}</code></h3>", f"<p>{outcome(t.outcome)}: {e(view.where(t))}</p>"]
        if t.message:
            out.append(f"<pre>{e(t.message)}</pre>")
    out.append("</section>")
    if summary.cleanup:
        out += ['<section id="cleanup"><h2>Cleanup</h2><ul>', *_cleanup_items(summary), "</ul></section>"]
    skipped = view.skipped(summary)
    if skipped:
        rows = [[f"<code>{e(t.nodeid)}</code>", e(view.skip_reason(t))] for t in skipped]
        out += ['<section id="skipped"><h2>Skipped</h2>', table(["Test", "Reason"], rows, raw=True), "</section>"]
    out += [f"<footer>Rendered from summary.json by mig-conformance {e(summary.kit_version or '')}, run "
            f"<code>{e(summary.run_id)}</code>; re-render with <code>mig-conformance report DIR</code>.</footer>",
            "</body>", "</html>", ""]
    return "\n".join(out)


def _cleanup_items(summary: RunSummary) -> list[str]:
    """One list item per cleanup line, the changes a restore put back nested under it; problems in red."""
    out = []
    for head, subs in view.cleanup_items(summary):
        cls = ' class="problem"' if view.is_cleanup_problem(head) else ""
        nested = f"<ul>{''.join(f'<li>{e(sub)}</li>' for sub in subs)}</ul>" if subs else ""
        out.append(f"<li{cls}>{e(head)}{nested}</li>")
    return out


def _has_config_section(summary: RunSummary) -> bool:
    return bool(summary.config_verdicts or view.config_file(summary))


def _config_verdicts(summary: RunSummary) -> list[str]:
    """Does the user's config work, per config and node it targets: a section of its own, apart from conformance."""
    if not _has_config_section(summary):
        return []
    rows = [[e(cells[0]), e(cells[1]), e(cells[2]), f'<span class="{"passed" if ok else "failed"}">{e(cells[3])}'
             "</span>", e(cells[4]), _lines(cells[5]), _lines(cells[6])]
            for ok, cells in view.config_verdict_rows(summary)]
    question = f"{view.CONFIG_QUESTION[0].upper()}{view.CONFIG_QUESTION[1:]}?"
    return ['<section id="config-verdicts"><h2>Config verdicts</h2>',
            f"<p>{e(question)} Apart from conformance ({e(view.CONFORMANCE_QUESTION)}): the results below.</p>",
            table(view.CONFIG_VERDICT_HEADERS, rows, raw=True) if rows else
            "<p>No config was tried: every custom test was skipped (see Skipped).</p>", "</section>"]


def _lines(text: str) -> str:
    """Escaped text with its line breaks kept."""
    return "<br/>".join(e(line) for line in text.splitlines()) or "-"


def _anchor(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _tests_table(results: list[TestResult], node: NodeSummary | None = None) -> str:
    rows = []
    for r in view.test_rows(results, node=node):
        t = r.result
        rows.append([f'<code title="{e(t.nodeid)}">{e(r.name)}</code>', e(t.category), e(t.config or "-"),
                     e(t.strategy or "-"), outcome(t.outcome), e(view.duration_text(t.duration_s)),
                     _comparison(t, r.comparison)])
    return table(["Test", "Category", "Config", "Strategy", "Result", "Duration", "Measured vs expected"], rows,
                 cls="tests", raw=True)


def _comparison(t: TestResult, short: str) -> str:
    """The short form, expandable to one row per key (no JavaScript: <details>)."""
    found = checks(t.expected, t.measured)
    if not found:
        return "-"
    rows = []
    for c in found:
        check = "-" if not c.checked else f"{mark('passed')}equal" if c.ok else f"{mark('failed')}differs"
        cls = ' class="mismatch"' if c.checked and not c.ok else ""
        rows.append(f"<tr{cls}><td><code>{e(c.key)}</code></td><td>{e(show(c.measured))}</td>"
                    f'<td>{e(show(c.expected))}</td><td class="check">{check}</td></tr>')
    return (f"<details><summary>{e(short)}</summary><table><thead><tr><th>Key</th><th>Measured</th>"
            f"<th>Expected</th><th>Check</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


def _pictures(results: list[TestResult], node: NodeSummary | None = None) -> list[str]:
    """One figure per distinct layout; GPUs with the same instances share a picture."""
    out = []
    for label, layout, names in view.layouts(results, node):
        svgs = [gpu_svg(entry, gpus_caption(indices), standalone=False) for indices, entry in group_gpus(layout)]
        tests = ", ".join(names)
        out.append(f'<figure><figcaption>{e(label)} (tests: {e(tests)})</figcaption>{"".join(svgs)}</figure>')
    return out


def _legend(summary: RunSummary) -> str:
    """Colour key: GPU instances are coloured by their number of compute slices."""
    sizes = sorted({int(i.get("slices", 1)) for t in summary.tests for g in t.layout
                    for i in g.get("instances") or [] if isinstance(i, dict) and isinstance(i.get("slices"), int)})
    if not sizes:
        return ""
    spans = "".join(f'<span style="background:{colour_for(s)};color:{text_colour(colour_for(s))}">{s} slice'
                    f'{"s" if s != 1 else ""}</span>' for s in sizes)
    return (f'<p class="legend">GPU pictures: top row memory slots, bottom row compute slices; '
            f"each GPU instance is coloured by its compute slices: {spans}</p>")
