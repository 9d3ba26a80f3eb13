"""One diagnosis: what is wrong where, the evidence read from the cluster, the upstream issue, and the way out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLUSTER = ""  #: the node of a cluster-wide finding (a DaemonSet, the ClusterPolicy)


@dataclass(frozen=True)
class Finding:
    """A known failure mode seen on one node (or cluster-wide: node == CLUSTER)."""

    id: str  # stable, e.g. "mig-manager-wedged"
    node: str
    title: str
    evidence: Mapping[str, Any]
    upstream: tuple[str, ...]  # issue URLs or repository#number / file references
    recovery: str
    severity: str = "error"  # error | warning
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "node": self.node or None, "severity": self.severity, "title": self.title,
                "evidence": dict(self.evidence), "upstream": list(self.upstream), "recovery": self.recovery,
                "notes": list(self.notes)}

    def line(self) -> str:
        where = self.node or "(cluster)"
        return f"{self.severity.upper():7} {self.id} on {where}: {self.title}"


def gh(repo: str, number: int, kind: str = "issues") -> str:
    return f"https://github.com/{repo}/{kind}/{number}"
