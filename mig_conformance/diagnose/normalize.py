"""Objects as the diagnoses read them: every field they look at has the type the API defines, or is dropped and
named. A cluster's objects are input like any other (a webhook, a CRD without a schema, a hand-edited ClusterPolicy
can put a list where a string belongs); no check has to guard against a wrong type, and none crashes on one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Shape = Any  # a type (str, int, bool), a dict of key -> Shape, a _List or a _Map


@dataclass(frozen=True)
class _List:
    item: Shape


@dataclass(frozen=True)
class _Map:
    """A mapping from strings to `value` (None: any JSON value)."""

    value: Shape


ANY = _Map(None)
STATE = _Map({"reason": str, "message": str})
META = {"name": str, "namespace": str, "labels": _Map(str), "annotations": _Map(str),
        "managedFields": _List({"manager": str, "operation": str, "time": str,
                                "fieldsV1": {"f:metadata": {"f:labels": ANY}}})}
ENV = _List({"name": str, "value": str})
SHAPES: dict[str, Shape] = {
    "Node": {"metadata": META, "spec": {"taints": _List({"key": str, "value": str, "effect": str})},
             "status": {"capacity": _Map(str), "allocatable": _Map(str),
                        "conditions": _List({"type": str, "status": str, "reason": str, "message": str,
                                             "lastTransitionTime": str, "lastHeartbeatTime": str}),
                        "nodeInfo": {"osImage": str, "kubeletVersion": str}}},
    "Pod": {"metadata": META, "spec": {"nodeName": str},
            "status": {"phase": str, "containerStatuses": _List({"name": str, "ready": bool, "restartCount": int,
                                                                 "state": _Map(STATE.value),
                                                                 "lastState": _Map(STATE.value)})}},
    "DaemonSet": {"metadata": META, "spec": {"template": {"metadata": META, "spec": {
        "nodeSelector": _Map(str), "containers": _List({"name": str, "image": str, "env": ENV})}}}},
    "ConfigMap": {"metadata": META, "data": _Map(str)},
    "ClusterPolicy": {"metadata": META, "spec": {
        "mig": {"strategy": str},
        "migManager": {"enabled": bool, "config": {"name": str, "default": str}, "env": ENV},
        "devicePlugin": {"version": str, "config": {"name": str, "default": str}}, "driver": {"version": str}}},
    "ResourceSlice": {"metadata": META, "spec": {"driver": str, "nodeName": str, "devices": _List(ANY)}},
    "Event": {"metadata": META, "involvedObject": {"kind": str, "name": str, "namespace": str}, "message": str,
              "reason": str, "type": str, "source": {"component": str, "host": str}},
}
MAX_PROBLEMS = 20


def _what(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _want(shape: Shape) -> str:
    if isinstance(shape, (dict, _Map)):
        return "a mapping"
    if isinstance(shape, _List):
        return "a list"
    return {str: "a string", bool: "a boolean", int: "a whole number"}[shape]


def _clean(value: Any, shape: Shape, path: str, problems: list[str]) -> tuple[bool, Any]:
    """(kept, the value reduced to `shape`); a value of the wrong type is not kept and named in `problems`."""
    if shape is None:
        return True, value
    if isinstance(shape, dict):
        if not isinstance(value, Mapping):
            problems.append(f"{path}: {_what(value)}, not {_want(shape)}")
            return False, None
        out = {}
        for key, sub in shape.items():
            if key in value:
                kept, cleaned = _clean(value[key], sub, f"{path}.{key}", problems)
                if kept:
                    out[key] = cleaned
        return True, out
    if isinstance(shape, _Map):
        if not isinstance(value, Mapping):
            problems.append(f"{path}: {_what(value)}, not {_want(shape)}")
            return False, None
        if shape.value is str and all(type(k) is str and type(v) is str for k, v in value.items()):
            return True, dict(value)  # the common case (labels, capacity, data), checked in one pass
        out = {}
        for key, item in value.items():
            kept, cleaned = _clean(item, shape.value, f"{path}.{key}", problems)
            if kept and isinstance(key, str):
                out[key] = cleaned
        return True, out
    if isinstance(shape, _List):
        if not isinstance(value, list):
            problems.append(f"{path}: {_what(value)}, not {_want(shape)}")
            return False, None
        items = [_clean(item, shape.item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
        return True, [cleaned for kept, cleaned in items if kept]
    if shape is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return True, str(value)  # quantities and versions written as numbers
    if shape is int and isinstance(value, str) and value.isdigit():
        return True, int(value)
    if isinstance(value, shape) and not (shape is int and isinstance(value, bool)):
        return True, value
    problems.append(f"{path}: {_what(value)}, not {_want(shape)}")
    return False, None


def normalize(kind: str, objects: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The objects of `kind` reduced to the fields the diagnoses read, and what was dropped (at most MAX_PROBLEMS
    lines, each naming the object and the key). Objects without a name are dropped."""
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, obj in enumerate(objects):
        name = obj.get("metadata", {}).get("name") if isinstance(obj, dict) and isinstance(obj.get("metadata"),
                                                                                           dict) else None
        where = f"{kind} {name}" if isinstance(name, str) and name else f"{kind} #{i}"
        found: list[str] = []
        kept, cleaned = _clean(obj, SHAPES[kind], where, found)
        if kept and isinstance(name, str) and name:
            out.append(cleaned)
        elif not found:
            found.append(f"{where}: no metadata.name")
        problems += found
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"{kind}: {len(problems) - MAX_PROBLEMS} more fields dropped"]
    return out, problems
