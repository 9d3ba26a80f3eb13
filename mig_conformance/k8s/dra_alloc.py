"""ResourceClaims allocated as kube-scheduler's structured allocator does, for the `sim` backend and offline checks.

Source: kubernetes/kubernetes v1.37.2, `staging/src/k8s.io/dynamic-resource-allocation/structured/internal/stable/
allocator_stable.go` (the module k8s.io/dynamic-resource-allocation@v0.37.2) and `pkg/scheduler/framework/plugins/
dynamicresources/dynamicresources.go`:

* the claims of one pod are allocated together on one node, request by request, device by device: for each device
  still wanted, every pool of the node (pool IDs sorted), every slice, every device in slice order is tried; a device
  is taken when it is not in use, the class's selectors and then the request's selectors accept it (CEL), its
  counters still fit the pool's counter sets (partitionable devices) and every `matchAttribute` constraint of the
  claim still holds; on a dead end the search backtracks (an exhaustive depth-first search, like upstream);
* `allocationMode: All` takes every matching device of the node, and fails when one of them cannot be taken;
* when no allocation exists the node fails with `cannot allocate all claims` (UnschedulableAndUnresolvable), so the
  pod stays Pending with `0/N nodes are available: N cannot allocate all claims. preemption: 0/N nodes are
  available: N Preemption is not helpful for scheduling.`; CEL errors fail the node with upstream's text.

CEL is evaluated by `common-expression-language` (import `cel`; docs/dra.md says why), with the device as upstream
exposes it: `device.driver`, `device.attributes[<domain>].<name>` and `device.capacity[<domain>].<name>`. Known
differences, kept small on purpose: version attributes are strings (upstream: semver values) and capacities integers
(upstream: quantities), so CEL that calls semver or quantity functions fails with a clear error instead of a verdict.
Upstream bounds the search by the scheduler's filter timeout; the kit by `MAX_STEPS` device trials per pod.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.common.extras import MissingExtra
from mig_conformance.k8s.dra import parse_quantity

EXACT, ALL = "ExactCount", "All"
CANNOT_ALLOCATE = "cannot allocate all claims"
MAX_STEPS = 200_000
MAX_DEVICES_PER_CLAIM = 32  # resourceapi.AllocationResultsMaxSize


class CelError(Exception):
    """A selector failed to compile or to evaluate: upstream's text for it."""


@functools.lru_cache(maxsize=4096)
def _program(expression: str) -> Any:
    try:
        import cel
    except ImportError:
        raise MissingExtra("CEL selectors of DRA claims", "cel") from None
    try:
        return cel.compile(expression)
    except ValueError as exc:
        raise CelError(f"CEL compile error: {exc}") from None


def cel_matches(expression: str, device: Mapping[str, Any]) -> bool:
    """Whether the selector accepts `device` (CEL activation `{"device": ...}`). CelError on errors or non-bool."""
    program = _program(expression)
    try:
        value = program.execute({"device": device})
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CelError(f"CEL runtime error: {exc}") from None
    if not isinstance(value, bool):
        raise CelError(f"CEL runtime error: expression must return bool, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Request:
    name: str
    device_class: str
    selectors: tuple[str, ...] = ()
    mode: str = EXACT
    count: int = 1


@dataclass(frozen=True)
class Constraint:
    requests: tuple[str, ...]
    match_attribute: str


@dataclass(frozen=True)
class Claim:
    """The `spec.devices` of a ResourceClaim (or of a template's claim)."""

    name: str
    requests: tuple[Request, ...]
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], where: str = "ResourceClaim") -> Claim:
        """From a ResourceClaim or its `spec`; InputError naming the field for anything the API would refuse."""
        name = str((obj.get("metadata") or {}).get("name") or where)
        spec = obj.get("spec", obj)
        devices = spec.get("devices") if isinstance(spec, Mapping) else None
        if not isinstance(devices, Mapping):
            raise InputError(f"{where}: spec.devices is missing or not a mapping")
        raw_requests = devices.get("requests")
        if not isinstance(raw_requests, list) or not raw_requests:
            raise InputError(f"{where}: spec.devices.requests must be a non-empty list")
        requests = []
        for i, r in enumerate(raw_requests):
            path = f"{where}: spec.devices.requests[{i}]"
            if not isinstance(r, Mapping) or not isinstance(r.get("name"), str) or not r["name"]:
                raise InputError(f"{path}.name is required")
            exact = r.get("exactly")
            if not isinstance(exact, Mapping):
                raise InputError(f"{path}.exactly is required (firstAvailable is not modelled)")
            if not isinstance(exact.get("deviceClassName"), str) or not exact["deviceClassName"]:
                raise InputError(f"{path}.exactly.deviceClassName is required")
            selectors = []
            for j, s in enumerate(exact.get("selectors") or []):
                expr = (s or {}).get("cel", {}).get("expression") if isinstance(s, Mapping) else None
                if not isinstance(expr, str) or not expr:
                    raise InputError(f"{path}.exactly.selectors[{j}].cel.expression is required")
                selectors.append(expr)
            mode = exact.get("allocationMode") or EXACT
            if mode not in (EXACT, ALL):
                raise InputError(f"{path}.exactly.allocationMode: unsupported value {mode!r} (ExactCount, All)")
            count = exact.get("count", 1 if mode == EXACT else 0)
            if isinstance(count, bool) or not isinstance(count, int) or (mode == EXACT and count < 1):
                raise InputError(f"{path}.exactly.count must be an integer >= 1")
            if mode == EXACT and count > MAX_DEVICES_PER_CLAIM:
                raise InputError(f"{path}.exactly.count: must be less than or equal to {MAX_DEVICES_PER_CLAIM}")
            requests.append(Request(r["name"], exact["deviceClassName"], tuple(selectors), mode, count))
        names = {r.name for r in requests}
        constraints = []
        for i, c in enumerate(devices.get("constraints") or []):
            attr = c.get("matchAttribute") if isinstance(c, Mapping) else None
            if not isinstance(attr, str) or "/" not in attr:
                raise InputError(f"{where}: spec.devices.constraints[{i}].matchAttribute must be a fully qualified "
                                 "name (domain/name)")
            listed = tuple(c.get("requests") or ())
            if unknown := [n for n in listed if n not in names]:
                raise InputError(f"{where}: spec.devices.constraints[{i}].requests: unknown request {unknown[0]!r}")
            constraints.append(Constraint(listed, attr))
        return cls(name, tuple(requests), tuple(constraints))


@dataclass(frozen=True)
class Allocated:
    """One device of an allocation result (status.allocation.devices.results[])."""

    request: str
    driver: str
    pool: str
    device: str

    def api(self) -> dict[str, str]:
        return {"request": self.request, "driver": self.driver, "pool": self.pool, "device": self.device}


@dataclass
class _Device:
    driver: str
    pool: str
    name: str
    node: str | None
    api: Mapping[str, Any]
    cel: dict[str, Any]
    consumes: tuple[tuple[str, dict[str, int]], ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.driver, self.pool, self.name)


def _cel_device(driver: str, device: Mapping[str, Any]) -> dict[str, Any]:
    attrs: dict[str, dict[str, Any]] = {}
    for name, value in (device.get("attributes") or {}).items():
        domain, _, short = name.rpartition("/")
        v = next(iter(value.values())) if isinstance(value, Mapping) and value else None
        attrs.setdefault(domain or driver, {})[short] = v
    caps: dict[str, dict[str, Any]] = {}
    for name, value in (device.get("capacity") or {}).items():
        domain, _, short = name.rpartition("/")
        caps.setdefault(domain or driver, {})[short] = parse_quantity(value["value"])
    attrs.setdefault(driver, {})
    caps.setdefault(driver, {})
    return {"driver": driver, "attributes": attrs, "capacity": caps}


@dataclass
class Inventory:
    """The devices of every published ResourceSlice, the DeviceClasses, and what is allocated."""

    classes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    devices: list[_Device] = field(default_factory=list)
    counter_sets: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)
    in_use: set[tuple[str, str, str]] = field(default_factory=set)
    consumed: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)

    @classmethod
    def build(cls, slices: Iterable[Mapping[str, Any]], classes: Iterable[Mapping[str, Any]]) -> Inventory:
        inv = cls({c["metadata"]["name"]: c for c in classes})
        for s in sorted(slices, key=lambda s: (s["spec"]["driver"], s["spec"]["pool"]["name"],
                                               s["metadata"]["name"])):
            spec = s["spec"]
            driver, pool, node = spec["driver"], spec["pool"]["name"], spec.get("nodeName")
            for cs in spec.get("sharedCounters") or []:
                inv.counter_sets[(driver, pool, cs["name"])] = {k: parse_quantity(v["value"])
                                                                 for k, v in cs["counters"].items()}
            for d in spec.get("devices") or []:
                consumes = tuple((c["counterSet"], {k: parse_quantity(v["value"]) for k, v in c["counters"].items()})
                                 for c in d.get("consumesCounters") or [])
                inv.devices.append(_Device(driver, pool, d["name"], node, d, _cel_device(driver, d), consumes))
        return inv

    def node_devices(self, node: str) -> list[_Device]:
        return [d for d in self.devices if d.node == node]

    # ---- allocation ---------------------------------------------------------------------------------------------
    def _selectable(self, device: _Device, claim: Claim, request: Request, cache: dict[Any, bool]) -> bool:
        key = (device.key, claim.name, request.name)
        if key not in cache:
            cls = self.classes[request.device_class]
            ok = True
            for i, sel in enumerate((s.get("cel") or {}).get("expression", "")
                                    for s in cls.get("spec", {}).get("selectors") or []):
                try:
                    ok = cel_matches(sel, device.cel)
                except CelError as exc:
                    raise CelError(f"class {request.device_class}: selector #{i} on device "
                                   f"{device.driver}/{device.pool}/{device.name}: {exc}") from None
                if not ok:
                    break
            if ok:
                for i, sel in enumerate(request.selectors):
                    try:
                        ok = cel_matches(sel, device.cel)
                    except CelError as exc:
                        raise CelError(f"claim {claim.name}: selector #{i} on device "
                                       f"{device.driver}/{device.pool}/{device.name}: {exc}") from None
                    if not ok:
                        break
            cache[key] = ok
        return cache[key]

    def _counters_fit(self, device: _Device) -> bool:
        for cset, counters in device.consumes:
            total = self.counter_sets.get((device.driver, device.pool, cset))
            if total is None:
                return False
            used = self.consumed.get((device.driver, device.pool, cset), {})
            if any(n not in total or used.get(n, 0) + v > total[n] for n, v in counters.items()):
                return False
        return True

    def _take(self, device: _Device, sign: int) -> None:
        if sign > 0:
            self.in_use.add(device.key)
        else:
            self.in_use.discard(device.key)
        for cset, counters in device.consumes:
            used = self.consumed.setdefault((device.driver, device.pool, cset), {})
            for n, v in counters.items():
                used[n] = used.get(n, 0) + sign * v

    def allocate(self, claims: Sequence[Claim], node: str) -> list[list[Allocated]] | None:
        """Allocate all `claims` of one pod on `node` (committed on success), or None. CelError or InputError for
        a claim that names an unknown class (upstream: `could not retrieve device class`)."""
        for c in claims:
            for r in c.requests:
                if r.device_class not in self.classes:
                    raise InputError(f"claim {c.name}, request {r.name}: could not retrieve device class "
                                     f"{r.device_class}: deviceclass.resource.k8s.io \"{r.device_class}\" not found")
        candidates = self.node_devices(node)
        cache: dict[Any, bool] = {}
        wanted: list[tuple[int, Request, list[_Device] | None]] = []  # (claim index, request, fixed devices for All)
        for ci, c in enumerate(claims):
            for r in c.requests:
                if r.mode == ALL:
                    matching = [d for d in candidates if self._selectable(d, c, r, cache)]
                    if not matching:
                        return None
                    wanted.append((ci, r, matching))
                else:
                    wanted.append((ci, r, None))
        plan: list[tuple[int, Request, _Device | None]] = []
        for ci, r, fixed in wanted:
            if fixed is not None:
                plan.extend((ci, r, d) for d in fixed)
            else:
                plan.extend((ci, r, None) for _ in range(r.count))
        chosen: list[_Device] = []
        matched: list[dict[int, Any]] = [dict() for _ in claims]  # constraint index -> (value, count)
        steps = [0]

        def constraint_ok(ci: int, r: Request, d: _Device) -> list[int] | None:
            added: list[int] = []
            for k, con in enumerate(claims[ci].constraints):
                if con.requests and r.name not in con.requests:
                    continue
                domain, _, short = con.match_attribute.rpartition("/")
                raw = d.api.get("attributes", {}).get(con.match_attribute)
                if raw is None and domain == d.driver:
                    raw = d.api.get("attributes", {}).get(short)
                if raw is None:
                    for j in added:
                        self._unmatch(matched[ci], j)
                    return None
                value = tuple(sorted(raw.items()))
                have = matched[ci].get(k)
                if have is not None and have[0] != value:
                    for j in added:
                        self._unmatch(matched[ci], j)
                    return None
                matched[ci][k] = (value, (have[1] if have else 0) + 1)
                added.append(k)
            return added

        def step(i: int) -> bool:
            if i == len(plan):
                return True
            ci, r, fixed = plan[i]
            options = [fixed] if fixed is not None else candidates
            for d in options:
                steps[0] += 1
                if steps[0] > MAX_STEPS:
                    raise TimeoutError
                if d.key in self.in_use:
                    if fixed is not None:
                        return False
                    continue
                if fixed is None and not self._selectable(d, claims[ci], r, cache):
                    continue
                if d.consumes and not self._counters_fit(d):
                    if fixed is not None:
                        return False
                    continue
                added = constraint_ok(ci, r, d)
                if added is None:
                    if fixed is not None:
                        return False
                    continue
                self._take(d, +1)
                chosen.append(d)
                if step(i + 1):
                    return True
                chosen.pop()
                self._take(d, -1)
                for k in added:
                    self._unmatch(matched[ci], k)
                if fixed is not None:
                    return False
            return False

        try:
            ok = step(0)
        except TimeoutError:
            ok = False
        if not ok:
            return None
        out: list[list[Allocated]] = [[] for _ in claims]
        for (ci, r, _), d in zip(plan, chosen, strict=True):
            out[ci].append(Allocated(r.name, d.driver, d.pool, d.name))
        return out

    @staticmethod
    def _unmatch(matched: dict[int, Any], k: int) -> None:
        value, count = matched[k]
        if count <= 1:
            del matched[k]
        else:
            matched[k] = (value, count - 1)

    def release(self, results: Iterable[Allocated]) -> None:
        by_key = {d.key: d for d in self.devices}
        for a in results:
            d = by_key.get((a.driver, a.pool, a.device))
            if d is not None and d.key in self.in_use:
                self._take(d, -1)


def unschedulable_message(nodes: int) -> str:
    """The pod's PodScheduled message when no node can allocate its claims (every node Unresolvable)."""
    return (f"0/{nodes} nodes are available: {nodes} {CANNOT_ALLOCATE}. preemption: 0/{nodes} nodes are available: "
            f"{nodes} Preemption is not helpful for scheduling.")
