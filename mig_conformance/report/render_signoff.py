"""The sign-off page of report.md and report.html (report/signoff.py builds its data): the first section of the
report when the run's summary has one, so a vendor reads what they sign before the run's details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mig_conformance.report import render_html as h
from mig_conformance.report import render_md as m
from mig_conformance.report.model import RunSummary
from mig_conformance.report.signoff import CATALOG_HEADERS
from mig_conformance.report.svg import gpu_svg

PROFILE_HEADERS = ["Profile", "ID", "Max", "Slices", "SM", "MiB", "CE/DEC/ENC/JPG/OFA", "Placements", "Row"]
CONFIG_HEADERS = ["Config", "Strategy", "Predicted", "Allocatable (predicted)", "This run"]
TEST_HEADERS = ["Test", "Node", "Config", "Strategy", "Result", "Expected (simulated) vs measured"]


def title(entry: Mapping[str, Any]) -> str:
    it, gpu = entry["instance_type"], entry["gpu"]
    return f"{it['name']}: {it['gpu_count']} x {gpu['key']}"


def facts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) lines a vendor signs: what was validated and how far each fact is observed."""
    it, gpu = entry["instance_type"], entry["gpu"]
    rows = [("Instance type", f"{it['name']}: {it['origin']} {it['file']} (source: {it['source'] or '-'})"),
            ("GPUs", f"{it['gpu_count']} x {gpu['key']} ({gpu['description'] or gpu['nvml_name']}; PCI "
                     f"{gpu['pci_device_id'] or '?'}; {gpu['memory_total_mib'] or '?'} MiB; "
                     f"{gpu['memory_slots'] or '-'} memory slots, {gpu['compute_slices'] or '-'} compute slices)"),
            ("GPU entry", f"{gpu['origin']} {gpu['file']}; {gpu['how']}"),
            ("Profile rows", row_counts(gpu)),
            ("MIG", "available" if it["mig_available"] else f"NOT available: {it['mig_unavailable']}")]
    if it.get("min_driver") or gpu.get("min_driver"):
        rows.append(("Minimum driver", it.get("min_driver") or gpu.get("min_driver") or "-"))
    rows += [("Note", n) for n in it.get("notes", [])]
    rows += [("Unconfirmed", n) for n in gpu.get("unconfirmed", [])]
    lay = entry["layouts"]
    rows.append(("Layouts", f"{lay['count']} possible layouts of GPU instances per GPU ({lay['maximal']} maximal)"))
    rows.append(("Predictions", prediction_counts(entry)))
    rows.append(("Scheduling", outcome_counts(entry["scheduling"]) or "no scheduling test ran"))
    rows.append(("Mismatches", f"{len(entry['mismatches'])} (expected beside measured below)"
                 if entry["mismatches"] else "none: every test measured what the kit predicted"))
    return rows


def row_counts(gpu: Mapping[str, Any]) -> str:
    parts = [f"{len(gpu.get(f'{s}_rows', []))} {s}" for s in ("captured", "published", "unconfirmed")
             if gpu.get(f"{s}_rows")]
    derived = gpu.get("derived_rows", [])
    text = ", ".join(parts) or "none"
    text += f"; with derived values: {', '.join(derived)}" if derived else ""
    return text + (f"; unconfirmed: {', '.join(gpu['unconfirmed_rows'])}" if gpu.get("unconfirmed_rows") else "")


def prediction_counts(entry: Mapping[str, Any]) -> str:
    configs = entry["configs"]
    verdicts: dict[str, int] = {}
    for row in configs:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    names = sorted({r["config"] for r in configs})
    text = (f"{len(names)} configs of {entry['config_file']} x {len({r['strategy'] for r in configs})} strategies: "
            + ", ".join(f"{n} {v}" for v, n in verdicts.items()))
    if entry["untargeted_configs"]:
        text += f"; {len(entry['untargeted_configs'])} configs select none of these GPUs"
    return text


def outcome_counts(rows: list[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))


def profile_cells(entry: Mapping[str, Any]) -> list[list[str]]:
    def cell(v: Any) -> str:
        return "?" if v is None else str(v)

    return [[p["profile"], str(p["id"]), str(p["max"]), str(p["slices"]), cell(p["sm"]), cell(p["memory_mib"]),
             p["engines"], p["placements"], p["state"] + (", derived" if p["derived"] else "")]
            for p in entry["profiles"]]


EMPTY = "no MIG devices"


def config_cells(entry: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the configs table; configs none of whose profiles exist on the GPU are listed apart (`empty_line`)."""
    return [[r["config"], r["strategy"], r["verdict"] + (f": {r['detail']}" if r["detail"] else ""),
             ", ".join(f"{k.removeprefix('nvidia.com/')}={v}" for k, v in r["allocatable"].items()) or "-",
             r["run"] or "-"] for r in entry["configs"] if r["verdict"] != EMPTY]


def empty_line(entry: Mapping[str, Any]) -> str | None:
    names = list(dict.fromkeys(r["config"] for r in entry["configs"] if r["verdict"] == EMPTY))
    if not names:
        return None
    return (f"{len(names)} configs select these GPUs but name none of their profiles (MIG enabled with no MIG "
            f"devices under every strategy): {', '.join(names)}")


def test_cells(rows: list[Mapping[str, Any]]) -> list[list[str]]:
    return [[r["test"], r["node"] or "-", r["config"] or "-", r["strategy"] or "-", r["outcome"],
             r["comparison"] or r["message"] or "-"] for r in rows]


def catalog_cells(entry: Mapping[str, Any]) -> list[list[str]]:
    """Where each instance type and GPU entry of the run came from, and its rows' states."""
    out = []
    for r in entry.get("catalog", []):
        states = ", ".join(f"{len(r.get(f'{s}_rows', []))} {s}" for s in ("captured", "published", "unconfirmed")
                           if r.get(f"{s}_rows"))
        out.append([str(r.get("instance_type")), f"{r.get('instance_type_origin')} {r.get('instance_type_file')}",
                    str(r.get("gpu")), f"{r.get('gpu_origin')} {r.get('gpu_file')}", str(r.get("captured")),
                    states or "-"])
    return out


SIGN = "Signed off by: ______________________  Organisation: ______________________  Date: ____________"


def signoff_md(summary: RunSummary) -> list[str]:
    """The sign-off sections of report.md (nothing when the summary has none)."""
    out: list[str] = []
    for entry in summary.signoff:
        if "note" in entry:
            out += [m.md_text(str(entry["note"])), ""]
            if entry.get("catalog"):
                out += ["## Catalog", "", m.md_table(CATALOG_HEADERS, catalog_cells(entry)), ""]
            continue
        out += [f"## Sign-off: {m.md_text(title(entry))}", "",
                m.md_table(["Fact", "Value"], [[m.md_text(k), m.md_text(v)] for k, v in facts(entry)],
                           raw_cols=(0, 1)), "",
                "### Profile table", "", m.md_table(PROFILE_HEADERS, profile_cells(entry)), "",
                "### Every config x strategy", "",
                m.md_table(CONFIG_HEADERS, config_cells(entry)) if config_cells(entry) else "No config makes MIG "
                "devices on these GPUs.", ""]
        if empty_line(entry):
            out += [m.md_text(empty_line(entry) or ""), ""]
        if entry["scheduling"]:
            out += ["### Scheduling", "", m.md_table(TEST_HEADERS, test_cells(entry["scheduling"])), ""]
        if entry["mismatches"]:
            out += ["### Mismatches: simulated expectation beside the measured value", "",
                    m.md_table(TEST_HEADERS, test_cells(entry["mismatches"])), ""]
        out += [m.md_text(SIGN), ""]
    return out


def signoff_html(summary: RunSummary) -> list[str]:
    """The sign-off sections of report.html (nothing when the summary has none)."""
    out: list[str] = []
    for i, entry in enumerate(summary.signoff):
        if "note" in entry:
            out.append(f'<p class="signoff-note">{h.e(entry["note"])}</p>')
            if entry.get("catalog"):
                out += ['<section id="catalog"><h2>Catalog</h2>', h.table(CATALOG_HEADERS, catalog_cells(entry)),
                        "</section>"]
            continue
        rows = "".join(f"<tr><th>{h.e(k)}</th><td>{h.e(v)}</td></tr>" for k, v in facts(entry))
        pictures = ["<figure>" + gpu_svg(p, caption=str(p["gpu"]) + ": every placement", standalone=False)
                    + "</figure>" for p in entry["pictures"]]
        out += [f'<section id="signoff-{i}" class="signoff"><h2>Sign-off: {h.e(title(entry))}</h2>',
                f'<table class="facts"><tbody>{rows}</tbody></table>',
                "<h3>Profile table</h3>", h.table(PROFILE_HEADERS, profile_cells(entry)),
                "<details><summary>Where each profile can be placed</summary>", *pictures, "</details>",
                "<h3>Every config x strategy</h3>",
                h.table(CONFIG_HEADERS, config_cells(entry)) if config_cells(entry) else
                "<p>No config makes MIG devices on these GPUs.</p>"]
        if empty_line(entry):
            out.append(f"<p>{h.e(empty_line(entry))}</p>")
        if entry["scheduling"]:
            out += ["<h3>Scheduling</h3>", h.table(TEST_HEADERS, test_cells(entry["scheduling"]))]
        if entry["mismatches"]:
            out += ["<h3>Mismatches: simulated expectation beside the measured value</h3>",
                    h.table(TEST_HEADERS, test_cells(entry["mismatches"]), cls="tests")]
        out += [f"<p>{h.e(SIGN)}</p>", "</section>"]
    return out
