"""A journal of every change the kit makes to a cluster, so it can be put back (also after a killed run)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Change:
    """One original value, recorded before the first change of that target."""

    kind: str  # node-label | mig-strategy | mig-config
    target: str  # node name / "cluster-policy" / ConfigMap name
    key: str | None
    original: str | None  # None = did not exist


class Journal:
    """Original values in order of first change; persisted as JSON after every record when a path is set."""

    def __init__(self, path: str | Path | None = None, run_id: str = "", cluster: str = "") -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id
        self.cluster = cluster
        self.changes: list[Change] = []

    def record(self, kind: str, target: str, key: str | None, original: str | None) -> None:
        if any((c.kind, c.target, c.key) == (kind, target, key) for c in self.changes):
            return  # only the first original counts
        self.changes.append(Change(kind, target, key, original))
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2))
        os.replace(tmp, self.path)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "cluster": self.cluster, "changes": [asdict(c) for c in self.changes]}

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        data = json.loads(Path(path).read_text())
        j = cls(path, data.get("run_id", ""), data.get("cluster", ""))
        j.changes = [Change(**c) for c in data.get("changes", [])]
        return j

    def clear(self) -> None:
        self.changes.clear()
        self.save()
