"""What suites and the session hand to the report: a test's result record and the end-of-run cleanup outcome.

Both are plain data that travel between processes: a result record as one `user_properties` entry of the test
report (so it survives xdist), the cleanup outcome inside the session's evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

#: the `user_properties` key of a result record
RECORD_PROPERTY = "mig_result"
#: how the cleanup lines that say the cluster was not put back begin (the terminal and the report show them in red)
CLEANUP_PROBLEMS = ("LEAK", "NOT RESTORED", "NOT SETTLED", "restore later", "leak check failed")


class Category(StrEnum):
    """The report's categories; every shipped suite declares one with `@pytest.mark.mig_category`."""

    CATALOG = "catalog"
    SINGLE = "single"
    MIXED = "mixed"
    ALL_BALANCED = "all-balanced"
    CUSTOM = "custom"
    SCHEDULING = "scheduling"
    RECONFIGURATION = "reconfiguration"
    DIAGNOSE = "diagnose"  # read-only field diagnostics (suites/test_diagnose.py)
    DRA = "dra"  # NVIDIA's DRA driver: ResourceSlices and claims (suites/test_dra.py)
    OTHER = "other"  # a test of the user's own that declares none


@dataclass(frozen=True)
class ResultRecord:
    """One test's result: where it ran, what was asked (config, strategy), what the projection expected and what the
    cluster showed, and the GPU layouts to draw. Every field is optional: a base record from the plugin (category,
    node) is merged with the test's own."""

    category: str | None = None
    node: str | None = None
    instance_type: str | None = None
    gpu_model: str | None = None
    config: str | None = None
    strategy: str | None = None
    expected: Mapping[str, Any] | None = None
    measured: Mapping[str, Any] | None = None
    layout: list[Mapping[str, Any]] | None = None
    #: the custom suite's answer to "does the user's config work here" (`validation.verdict.ConfigVerdict.as_dict()`
    #: plus `as_predicted`: whether the cluster also did what the kit predicted), kept apart from the conformance
    config_verdict: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, **values: Any) -> ResultRecord:
        """A record from keyword values; an unknown name is a TypeError naming it and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"mig_record: unknown field(s) {', '.join(unknown)} (fields: {', '.join(sorted(known))})")
        if values.get("category") is not None:
            values["category"] = str(values["category"])
        return cls(**values)

    def as_property(self) -> tuple[str, dict[str, Any]]:
        """The `user_properties` entry: the fields that are set."""
        return RECORD_PROPERTY, {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Settled:
    """A node whose original `nvidia.com/mig.config` was put back: what mig-manager reported, and whether that
    leaves the cluster changed."""

    state: str
    problem: bool


@dataclass
class CleanupOutcome:
    """What the end-of-run cleanup did: the changes restored, those that could not be, the nodes mig-manager had to
    re-apply, and what of the run was left behind."""

    mode: str = ""
    restored: list[str] | None = None  # None under xdist's controller: the workers restored
    restore_failures: list[str] = field(default_factory=list)
    settled: dict[str, Settled] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    journal: str = ""
    restore_command: str | None = None

    @property
    def failed(self) -> bool:
        """The run left the cluster changed: something not restored, not re-applied, or leaked."""
        return bool(self.restore_failures or self.leaks or any(s.problem for s in self.settled.values()))

    def lines(self) -> list[str]:
        """Terminal and report lines: what was restored, what was not, what leaked."""
        lines = []
        if self.restored is not None:
            lines.append(f"restored {len(self.restored)} change(s)" + "".join(f"\n  {r}" for r in self.restored))
        lines += [f"NOT RESTORED: {failure}" for failure in self.restore_failures]
        if self.restore_command:
            lines.append(f"restore later with: {self.restore_command}")
        for node, settled in self.settled.items():
            if settled.problem:
                lines.append(f"NOT SETTLED: node {node}: mig-manager did not bring back the original config: "
                             f"{settled.state}")
            else:
                lines.append(f"mig-manager re-applied node {node}: {settled.state}")
        lines += [leak if leak.startswith("leak check failed") else f"LEAK: {leak} is still present"
                  for leak in self.leaks]
        if not self.leaks:
            lines.append("leak check: nothing of this run is left")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
