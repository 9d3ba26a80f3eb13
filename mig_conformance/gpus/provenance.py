"""Where a GPU entry or instance type came from, and how much of it was observed: what every output that shows one
says beside it (issue 13: a vendor signs off a table only when they can see which rows were read from a GPU).

A row is `captured` when its entry was written by `capture` (or is an NVML capture) and the row is confirmed,
`unconfirmed` when the catalog says so, and `published` when it rests on public sources (cited in its `source:`);
apart from that, a row is `derived` when some value of it was worked out from observed ones by a documented rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mig_conformance.gpus.catalog import GiProfile, GpuModel, catalog_dir, user_catalog_dirs, user_gpu_dir

ROW_STATES = ("captured", "published", "unconfirmed")


def _captured(model: GpuModel) -> bool:
    source = model.source.lower()
    return source.startswith("capture ") or "nvml capture" in source


def row_state(model: GpuModel, row: GiProfile) -> str:
    """One of ROW_STATES for a GI profile row."""
    if not row.confirmed:
        return "unconfirmed"
    return "captured" if _captured(model) else "published"


def row_derived(row: GiProfile) -> bool:
    """Whether a value of the row was worked out by a documented rule (`derived:` or `[DERIVED]` in its source)."""
    return bool(row.derived) or "[derived]" in row.source.lower()


def _origin(file: str) -> str:
    if not file:
        return "built in code"
    path = Path(file).resolve()
    if path.parent == Path(catalog_dir()).resolve():
        return "shipped"
    if any(path.parent == Path(user_gpu_dir(d)).resolve() for d in user_catalog_dirs()):
        return "user catalog"
    return "extra folder"


@dataclass(frozen=True)
class GpuProvenance:
    """The file a GPU entry came from, whether it was captured (on which driver) and the state of each row."""

    key: str
    origin: str  # shipped | user catalog | extra folder | built in code
    file: str
    captured: bool
    driver: str | None
    rows: dict[str, str]  # GI profile name -> ROW_STATES
    derived: tuple[str, ...] = ()  # GI profiles with a derived value

    def rows_in(self, state: str) -> list[str]:
        return [name for name, s in self.rows.items() if s == state]

    @property
    def how(self) -> str:
        """'captured on driver 580.159.04', or 'from public sources'."""
        if self.captured:
            return f"captured on driver {self.driver or '(not recorded)'}"
        return "from public sources"

    def line(self) -> str:
        """One line for text outputs: origin, file, how, and the row counts by state."""
        counts = ", ".join(f"{len(self.rows_in(s))} {s}" for s in ROW_STATES if self.rows_in(s))
        if self.derived:
            counts += f" ({len(self.derived)} with derived values)"
        return f"{self.key}: {self.origin} {self.file or '-'}; {self.how}" + (f"; rows: {counts}" if counts else "")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "origin": self.origin, "file": self.file, "captured": self.captured,
                "driver": self.driver, "how": self.how,
                **{f"{s}_rows": self.rows_in(s) for s in ROW_STATES}, "derived_rows": list(self.derived)}


def gpu_provenance(model: GpuModel) -> GpuProvenance:
    return GpuProvenance(key=model.key, origin=_origin(model.file), file=model.file, captured=_captured(model),
                         driver=model.driver, rows={p.name: row_state(model, p) for p in model.gi_profiles},
                         derived=tuple(p.name for p in model.gi_profiles if row_derived(p)))
