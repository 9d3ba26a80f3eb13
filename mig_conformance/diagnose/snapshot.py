"""A read-only snapshot of the cluster objects the diagnoses look at, gathered by one reader on every backend."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import GpuNode

Obj = dict[str, Any]

#: What the reader asks for, in order. Namespaced kinds are read in the operator namespace only.
KINDS = ("Node", "ClusterPolicy", "Pod", "DaemonSet", "ConfigMap", "ResourceSlice", "Event")


class ObjectSource(Protocol):
    """What a backend offers the reader: raw objects of one kind (Kubernetes JSON), read with get/list only."""

    def list_objects(self, kind: str) -> list[Obj]: ...

    def get_object(self, kind: str, name: str) -> Obj | None: ...

    def wall_clock(self) -> float: ...


@dataclass(frozen=True)
class Snapshot:
    """The objects, as the API server returned them, and the time they were read (seconds since the epoch on the
    clock the objects' timestamps use)."""

    objects: Mapping[str, Sequence[Obj]]
    now: float
    operator_namespace: str = "gpu-operator"
    problems: tuple[str, ...] = field(default=())  # kinds that could not be read, and why

    def of(self, kind: str) -> Sequence[Obj]:
        return self.objects.get(kind, ())

    @property
    def nodes(self) -> Sequence[Obj]:
        return self.of("Node")

    @property
    def cluster_policy(self) -> Obj | None:
        """The ClusterPolicy (the operator keeps one; the first by name when there are more)."""
        policies = sorted(self.of("ClusterPolicy"), key=name_of)
        return policies[0] if policies else None

    def config_map(self, name: str) -> Obj | None:
        return self._config_maps.get(name)

    def daemon_set(self, app: str) -> Obj | None:
        """The operator DaemonSet of a component by its `app` label (nvidia-device-plugin-daemonset, ...)."""
        return next((d for d in self.of("DaemonSet") if labels_of(d).get("app") == app or name_of(d) == app), None)

    def pods_on(self, node: str, app: str) -> list[Obj]:
        return self._pods.get((node, app), [])

    @functools.cached_property
    def _pods(self) -> dict[tuple[str, str], list[Obj]]:
        """Pods by (node, app label), indexed once (a fleet has thousands of nodes)."""
        index: dict[tuple[str, str], list[Obj]] = {}
        for pod in self.of("Pod"):
            key = (str((pod.get("spec") or {}).get("nodeName") or ""), labels_of(pod).get("app", ""))
            index.setdefault(key, []).append(pod)
        return index

    @functools.cached_property
    def _config_maps(self) -> dict[str, Obj]:
        return {name_of(c): c for c in self.of("ConfigMap")}


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """The object's labels (not a copy: read them, do not change them)."""
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def timestamp(text: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as the API server writes it; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def gpu_node(node: Mapping[str, Any]) -> GpuNode:
    """The kit's node model of a raw node (labels, whole-number capacity/allocatable)."""
    status = node.get("status") or {}
    return GpuNode(name_of(node), labels_of(node),
                   {k: _int(v) for k, v in (status.get("capacity") or {}).items()},
                   {k: _int(v) for k, v in (status.get("allocatable") or {}).items()})


def label_changed_at(node: Mapping[str, Any], key: str) -> float | None:
    """When a label was last written, as far as the API server's managedFields tell: the newest entry that owns it."""
    times = [timestamp(entry.get("time")) for entry in (node.get("metadata") or {}).get("managedFields") or ()
             if f"f:{key}" in ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels", {})]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def condition(node: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == kind), None)


def is_gpu_node(node: Mapping[str, Any]) -> bool:
    labels = labels_of(node)
    capacity = (node.get("status") or {}).get("capacity") or {}
    return (labels.get(L.GPU_PRESENT) == "true" or L.GPU_PRODUCT in labels
            or any(k.startswith("nvidia.com/") for k in capacity))


def read_snapshot(source: ObjectSource, operator_namespace: str = "gpu-operator") -> Snapshot:
    """Every kind in KINDS from `source`. Nodes are required; any other kind that cannot be read (not served, or not
    permitted) is read as empty and named in `problems`, except ConfigMaps: when listing them is not permitted (the
    kit's deploy/rbac.yaml grants get only), the ones the diagnoses look at are read by name."""
    from mig_conformance.common.errors import MigConformanceError

    objects: dict[str, list[Obj]] = {}
    problems: list[str] = []
    for kind in KINDS:
        try:
            objects[kind] = source.list_objects(kind)
        except MigConformanceError as error:
            if kind == "Node":
                raise
            reason: Exception | None = error
            objects[kind] = []
            if kind == "ConfigMap":
                objects[kind], reason = _config_maps_by_name(source, objects)
                if reason is None:
                    continue
            problems.append(f"{kind}: {unreadable(reason)}")
    return normalized(objects, source.wall_clock(), operator_namespace, problems)


def normalized(objects: Mapping[str, Sequence[Any]], now: float, operator_namespace: str = "gpu-operator",
               problems: Sequence[str] = ()) -> Snapshot:
    """A snapshot of raw objects with every field the diagnoses read of the type the API defines (normalize.py):
    a field of another type is dropped and named in `problems`."""
    from mig_conformance.diagnose.normalize import normalize

    clean: dict[str, list[Obj]] = {}
    found = list(problems)
    for kind in KINDS:
        clean[kind], dropped = normalize(kind, list(objects.get(kind, ())))
        found += dropped
    return Snapshot(clean, now, operator_namespace, tuple(found))


RBAC_HINT = "deploy/rbac-diagnose.yaml grants every read of the diagnosis"


def unreadable(reason: Exception | None) -> str:
    """Why a kind was not read: a denial says which role grants it (deploy/rbac.yaml's read roles hold the reads
    of the other suites; the diagnosis works with less evidence there, checks needing the kind are skipped)."""
    text = str(reason)
    if "access denied" in text or "forbidden" in text.lower():
        return f"not permitted for this identity, checks that need it were skipped ({RBAC_HINT})"
    return text


def _config_maps_by_name(source: ObjectSource,
                         objects: Mapping[str, Sequence[Obj]]) -> tuple[list[Obj], Exception | None]:
    """(the ConfigMaps the diagnoses read, got one by one; the error that stopped it, or None)."""
    from mig_conformance.common.errors import MigConformanceError

    names = ["default-mig-parted-config"]
    for policy in objects.get("ClusterPolicy", ()):
        spec = policy.get("spec") or {}
        for section in ("migManager", "devicePlugin"):
            name = ((spec.get(section) or {}).get("config") or {}).get("name")
            if name:
                names.append(str(name))
    names += [f"{name_of(n)}-mig-config" for n in objects.get("Node", ()) if is_gpu_node(n)]
    found: list[Obj] = []
    for name in dict.fromkeys(names):
        try:
            cm = source.get_object("ConfigMap", name)
        except MigConformanceError as exc:
            return found, exc
        if cm is not None:
            found.append(cm)
    return found, None
