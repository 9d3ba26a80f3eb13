"""The kit's own RBAC (deploy/rbac.yaml): load it, bind it to a subject, drop one rule (the least-privilege
proof removes each rule in turn), and apply it with an admin client."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mig_conformance.cluster.base import ClusterError

KIT_NAMESPACE = "mig-conformance"
KIT_SA = "mig-conformance"
READ, RECONFIGURE = "mig-conformance-read", "mig-conformance-reconfigure"
ROLE_KINDS = ("ClusterRole", "Role")
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
Obj = dict[str, Any]


@dataclass(frozen=True)
class RuleRef:
    """One rule of a role: where it is and what it grants."""

    kind: str  # ClusterRole | Role
    role: str
    index: int
    rule: Mapping[str, Any]

    def describe(self) -> str:
        verbs = ",".join(self.rule.get("verbs", []))
        if "nonResourceURLs" in self.rule:
            return f"{self.kind} {self.role}: {verbs} {','.join(self.rule['nonResourceURLs'])}"
        groups = [g or "core" for g in self.rule.get("apiGroups", [])]
        what = ",".join(f"{r}.{g}" if g != "core" else r for g in groups for r in self.rule.get("resources", []))
        return f"{self.kind} {self.role}: {verbs} {what}"


def rbac_file() -> Path:
    """deploy/rbac.yaml, as installed (`mig_conformance.deploy`) or in the checkout."""
    from importlib import resources

    path = Path(str(resources.files("mig_conformance.deploy").joinpath("rbac.yaml")))
    if not path.is_file():
        raise ClusterError(f"the kit's RBAC file {path} is missing (deploy/rbac.yaml, shipped as "
                           "mig_conformance.deploy)")
    return path


def load(path: Path | None = None) -> list[Obj]:
    return [d for d in yaml.safe_load_all((path or rbac_file()).read_text()) if d]


def documents(*, subjects: Sequence[Mapping[str, str]] | None = None, operator_namespace: str = "gpu-operator",
              reconfigure: bool = True, without: RuleRef | None = None, path: Path | None = None) -> list[Obj]:
    """deploy/rbac.yaml bound to `subjects` (default: SA mig-conformance/mig-conformance, with its Namespace and
    ServiceAccount), Roles in `operator_namespace`, the reconfigure roles only if asked, one rule dropped."""
    out = []
    for doc in load(path):
        doc = copy.deepcopy(doc)
        kind, meta = doc["kind"], doc["metadata"]
        if subjects is not None and kind in ("Namespace", "ServiceAccount"):
            continue
        if not reconfigure and meta["name"] == RECONFIGURE:
            continue
        if kind in ("Role", "RoleBinding"):
            meta["namespace"] = operator_namespace
        if kind in BINDING_KINDS and subjects is not None:
            doc["subjects"] = [dict(s) for s in subjects]
        if without is not None and kind == without.kind and meta["name"] == without.role:
            doc["rules"] = [r for i, r in enumerate(doc["rules"]) if i != without.index]
        out.append(doc)
    return out


def rules(docs: Iterable[Obj] | None = None) -> list[RuleRef]:
    """Every rule of every role, in file order."""
    return [RuleRef(d["kind"], d["metadata"]["name"], i, r)
            for d in (load() if docs is None else docs) if d["kind"] in ROLE_KINDS
            for i, r in enumerate(d.get("rules", []))]


def apply(api: Any, docs: Iterable[Obj]) -> None:
    """Create or overwrite every document (rest.Rest admin client)."""
    for doc in docs:
        api.replace(doc)
