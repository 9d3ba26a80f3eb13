"""A journal of every change the kit makes to a cluster, so it can be put back (also after a killed run).

With a path, the journal is written to disk (temporary file, fsync, atomic rename, fsync of the folder) every
time a change is recorded, and `Cluster.set_*` record before they write: a run killed at any point leaves a
journal that holds every original value the cluster may have lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.common.private_files import write_private
from mig_conformance.common.yaml_source import decode_text, read_bytes

SCHEMA = "mig-conformance/journal/v1"


class ChangeKind(StrEnum):
    """What a journaled change is; the value is what the journal file says."""

    NODE_LABEL = "node-label"  # a node label (key) of a node (target)
    MIG_CONFIG_LABEL = "mig-config-label"  # a node's nvidia.com/mig.config with its state label
    MIG_STRATEGY = "mig-strategy"  # the ClusterPolicy's MIG strategy
    MIG_CONFIG = "mig-config"  # the mig-parted ConfigMap's text
    NAMESPACE = "namespace"  # a namespace the run created (its original: did not exist)
    CONFIG_MAP = "config-map"  # a ConfigMap of the operator namespace (target), its config.yaml (None: did not exist)
    MIG_CONFIG_NAME = "mig-config-name"  # the ClusterPolicy's spec.migManager.config.name (None: unset)


@dataclass(frozen=True)
class Change:
    """One original value, recorded before the first change of that target."""

    kind: ChangeKind
    target: str  # node name / "cluster-policy" / ConfigMap name / namespace name
    key: str | None
    original: str | None  # None = did not exist
    #: mig-config-label only: the node's `nvidia.com/mig.config.state` before the run cleared it.
    original_state: str | None = None


class Journal:
    """Original values in order of first change; persisted as JSON after every record when a path is set.

    `target` describes how to reopen the cluster (backend and its non-secret options) for
    `mig-conformance restore`.
    """

    def __init__(self, path: str | Path | None = None, run_id: str = "", cluster: str = "",
                 target: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id
        self.cluster = cluster
        self.target: dict[str, Any] = dict(target or {})
        self._changes: list[Change] = []
        self._keys: set[tuple[ChangeKind, str, str | None]] = set()

    @property
    def changes(self) -> list[Change]:
        return self._changes

    @changes.setter
    def changes(self, changes: list[Change]) -> None:
        self._changes = list(changes)
        self._keys = {(c.kind, c.target, c.key) for c in self._changes}

    def record(self, kind: ChangeKind, target: str, key: str | None, original: str | None,
               original_state: str | None = None) -> None:
        """Remember an original value (only the first one per kind/target/key) and flush it to disk."""
        if (kind, target, key) in self._keys:
            return  # only the first original counts
        self._changes.append(Change(kind, target, key, original, original_state))
        self._keys.add((kind, target, key))
        try:
            self.save()
        except BaseException:
            self._changes.pop()  # not on disk: the caller must not go on to change the cluster
            self._keys.discard((kind, target, key))
            raise

    def save(self) -> None:
        """Write atomically and durably: a reader (or a crash) sees the old or the new journal, never half."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(self.as_dict(), indent=2), durable=True)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "run_id": self.run_id, "cluster": self.cluster, "target": self.target,
                "changes": [_compact(asdict(c)) for c in self.changes]}

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        """Read a journal; ValueError says what is wrong with the file."""
        try:
            data = json.loads(decode_text(read_bytes(path), str(path)))  # bounded: a journal is a small file
        except InputError as exc:
            raise ValueError(f"not a journal: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a journal (invalid JSON: {exc})") from None
        except RecursionError:
            raise ValueError(f"{path}: not a journal (JSON nested too deep)") from None
        if not isinstance(data, dict) or not isinstance(data.get("changes", []), list):
            raise ValueError(f"{path}: not a mig-conformance journal (expected a mapping with 'changes')")
        j = cls(path, data.get("run_id", ""), data.get("cluster", ""), data.get("target") or {})
        try:
            j.changes = [Change(**{**c, "kind": ChangeKind(c.get("kind"))}) for c in data.get("changes", [])]
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: malformed change entry: {exc}") from None
        return j

    def forget(self, kind: ChangeKind, target: str, key: str | None) -> None:
        """Drop a record whose change never reached the cluster (the write failed), and save."""
        self.replace([c for c in self.changes if (c.kind, c.target, c.key) != (kind, target, key)])

    def replace(self, changes: list[Change]) -> None:
        """Keep only `changes` (those not restored yet) and save."""
        self.changes = changes
        self.save()


def _compact(change: dict[str, Any]) -> dict[str, Any]:
    """A change as JSON: `original_state` only where it applies (mig-config-label)."""
    if change["kind"] != ChangeKind.MIG_CONFIG_LABEL:
        change.pop("original_state", None)
    return change


def gone_with_the_run(kind: str, options: Mapping[str, Any]) -> bool:
    """sim clusters, and local ones a run started itself (not attached through `kubeconfig`), died with it: their
    journals have nothing left to restore."""
    return kind == "sim" or (kind == "local" and not options.get("kubeconfig"))
