"""The API server's checks on a pod's extended resources and kube-scheduler's verdict (bound, or Pending + message).

Sources (kubernetes/kubernetes, stored copies read through the code index):
* `pkg/apis/core/validation/validation.go` ValidateResourceRequirements: quantities >= 0 ("must be greater than or
  equal to 0"), extended resources integers ("must be an integer"), non-overcommitable resources (everything but
  native non-hugepage ones) need request == limit ("must be equal to <name> limit of <limit>") and a limit ("Limit must
  be set for non overcommitable resources"). Defaulting first copies a limit into a missing request.
* Filter plugins in default order (`pkg/scheduler/apis/config/v1/default_plugins.go`), first failure per node only:
  TaintToleration "node(s) had untolerated taint {key: value}" (NoSchedule/NoExecute taints) and NodeAffinity
  "node(s) didn't match Pod's node affinity/selector" (both UnschedulableAndUnresolvable), then NodeResourcesFit
  ("Too many pods", "Insufficient <resource>", all of them; Unschedulable, but UnschedulableAndUnresolvable when a
  request exceeds the node's whole allocatable: `plugins/noderesources/fit.go` InsufficientResource.Unresolvable).
* `pkg/scheduler/framework/types.go` FitError.Error(): "0/N nodes are available: " + "<count> <reason>" strings sorted
  as strings and joined with ", " + "." + " " + the PostFilter message. DefaultPreemption's PostFilter message is
  "preemption: " + a FitError over all nodes: nodes that failed Unschedulable get "No preemption victims found for
  incoming pod" (no lower-priority pods: this model has no priorities), the others "Preemption is not helpful for
  scheduling" (`pkg/scheduler/framework/preemption/preemption.go`). Some releases end the message with ".." (they
  formatted the PostFilter part with " %v."); current upstream ends with one ".".

Binding choice (documented simplification): kube-scheduler scores cpu/memory only by default and breaks ties at
random; this model binds each pod, in the given order, to the feasible node with the most free capacity left in the
resources the pod requests (sum of free fractions), ties by node name. percentageOfNodesToScore is not modelled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mig_conformance.k8s.model import GpuNode, PodRequest, PodStatus, Toleration

CONTAINER = "spec.containers[0].resources"
STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
NO_NODES = "no nodes available to schedule pods"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
UNSCHEDULABLE = "Unschedulable"


def is_native(name: str) -> bool:
    """helper.IsNativeResource: no domain, or a kubernetes.io domain."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    return not is_native(name) and not name.startswith("requests.")


def overcommit_allowed(name: str) -> bool:
    return is_native(name) and not name.startswith("hugepages-")


def quantity(value: float) -> str:
    """resource.Quantity canonical text for a plain number: 2 -> "2", 0.5 -> "500m"."""
    if float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _quantity_errors(name: str, value: float, path: str) -> list[str]:
    errors = []
    if "/" not in name and name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
        errors.append(f'{path}: Invalid value: "{name}": must be a standard resource for containers')
    if value < 0:
        errors.append(f'{path}: Invalid value: "{quantity(value)}": must be greater than or equal to 0')
    if is_extended(name) and not float(value).is_integer():
        errors.append(f'{path}: Invalid value: "{quantity(value)}": must be an integer')
    return errors


def effective_requests(pod: PodRequest) -> dict[str, float]:
    """Requests after API defaulting: a resource with only a limit gets request = limit."""
    limits = pod.resources if pod.limits is None else pod.limits
    return {**{k: v for k, v in limits.items() if k not in pod.resources}, **pod.resources}


def resource_errors(pod: PodRequest) -> list[str]:
    """Field errors of the pod's one container, limits first, each map in name order (Go iterates at random)."""
    limits = dict(pod.resources if pod.limits is None else pod.limits)
    requests = effective_requests(pod)
    errors: list[str] = []
    for name in sorted(limits):
        errors += _quantity_errors(name, limits[name], f"{CONTAINER}.limits[{name}]")
    for name in sorted(requests):
        q = requests[name]
        errors += _quantity_errors(name, q, f"{CONTAINER}.requests[{name}]")
        if name in limits:
            lim = limits[name]
            if q != lim and not overcommit_allowed(name):
                errors.append(f'{CONTAINER}.requests: Invalid value: "{quantity(q)}": must be equal to {name} '
                              f"limit of {quantity(lim)}")
            elif q > lim:
                errors.append(f'{CONTAINER}.requests: Invalid value: "{quantity(q)}": must be less than or equal to '
                              f"{name} limit of {quantity(lim)}")
        elif not overcommit_allowed(name):
            errors.append(f"{CONTAINER}.limits: Required value: Limit must be set for non overcommitable resources")
    return list(dict.fromkeys(errors))  # field.ErrorList.ToAggregate drops duplicates


def validate_pod(pod: PodRequest) -> str | None:
    """The API server's rejection message (HTTP 422, reason Invalid) for this pod, or None if it is accepted."""
    errors = resource_errors(pod)
    if not errors:
        return None
    body = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    return f'Pod "{pod.name}" is invalid: {body}'


@dataclass
class _Use:
    node: GpuNode
    used: dict[str, float] = field(default_factory=dict)
    pods: int = 0

    def add(self, requests: Mapping[str, float]) -> None:
        for k, v in requests.items():
            self.used[k] = self.used.get(k, 0) + v
        self.pods += 1

    def free(self, name: str) -> float:
        return self.node.allocatable.get(name, 0) - self.used.get(name, 0)


def _static_reason(pod: PodRequest, node: GpuNode) -> str | None:
    """TaintToleration then NodeAffinity: the first reason, or None. Both are UnschedulableAndUnresolvable."""
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(t.tolerates(taint) for t in pod.tolerations):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if any(node.labels.get(k) != v for k, v in pod.node_selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def _fit_reasons(requests: Mapping[str, float], use: _Use) -> tuple[list[str], bool]:
    """NodeResourcesFit: every shortage on this node, and whether preemption could resolve them. A request larger
    than the node's whole allocatable (e.g. `nvidia.com/gpu` on a node advertising 0 under mixed) makes the node
    UnschedulableAndUnresolvable; other shortages, "Too many pods" included, are Unschedulable."""
    reasons = []
    if "pods" in use.node.allocatable and use.pods + 1 > use.node.allocatable["pods"]:
        reasons.append("Too many pods")
    short = [r for r, q in requests.items() if q > 0 and q > use.free(r)]
    reasons += [f"Insufficient {r}" for r in short]
    return reasons, not any(requests[r] > use.node.allocatable.get(r, 0) for r in short)


def _histogram(reasons: Sequence[str]) -> str:
    return ", ".join(sorted(f"{n} {r}" for r, n in Counter(reasons).items()))


def fit_error_message(total: int, failures: Sequence[tuple[list[str], bool]]) -> str:
    """kube-scheduler's FailedScheduling text for a pod no node fits, preemption part included."""
    if total == 0:
        return NO_NODES
    filtered = _histogram([r for reasons, _ in failures for r in reasons])
    preemption = _histogram([NO_VICTIMS if resolvable else NOT_HELPFUL for _, resolvable in failures])
    return f"0/{total} nodes are available: {filtered}. preemption: 0/{total} nodes are available: {preemption}."


def _score(requests: Mapping[str, float], use: _Use) -> float:
    total = 0.0
    for r, q in requests.items():
        alloc = use.node.allocatable.get(r, 0)
        if q > 0 and alloc > 0:
            total += (use.free(r) - q) / alloc
    return total


def schedule(pods: Sequence[PodRequest], nodes: Sequence[GpuNode], bound: Mapping[str, str] | None = None,
             existing: Sequence[tuple[PodRequest, str]] = ()) -> list[PodStatus]:
    """Statuses of `pods`, scheduled first-come in order onto `nodes`.

    `existing` pods already run on the named nodes; pods named in `bound` keep their node. Both use capacity before
    the others are placed. Invalid pods (see validate_pod) are never created: they come back as phase "Failed",
    reason "Invalid" and the API server's message. Bound pods come back as phase "Running".
    """
    bound = dict(bound or {})
    uses = {n.name: _Use(n) for n in sorted(nodes, key=lambda n: n.name)}
    for pod, node_name in existing:
        if node_name in uses:
            uses[node_name].add(effective_requests(pod))
    for pod in pods:
        if pod.name in bound and bound[pod.name] in uses:
            uses[bound[pod.name]].add(effective_requests(pod))
    statuses: list[PodStatus] = []
    # pods with equal tolerations/selector share filter results
    static: dict[tuple[tuple[Toleration, ...], tuple[tuple[str, str], ...]], dict[str, str | None]] = {}
    for pod in pods:
        if pod.name in bound:
            statuses.append(PodStatus(pod.name, bound[pod.name], "Running"))
            continue
        invalid = validate_pod(pod)
        if invalid:
            statuses.append(PodStatus(pod.name, None, "Failed", "Invalid", invalid))
            continue
        requests = effective_requests(pod)
        key = (pod.tolerations, tuple(sorted(pod.node_selector.items())))
        if key not in static:
            static[key] = {name: _static_reason(pod, use.node) for name, use in uses.items()}
        failures: list[tuple[list[str], bool]] = []
        best: tuple[float, str] | None = None
        for name, reason in static[key].items():
            if reason is not None:
                failures.append(([reason], False))
                continue
            use = uses[name]
            reasons, resolvable = _fit_reasons(requests, use)
            if reasons:
                failures.append((reasons, resolvable))
                continue
            score = _score(requests, use)
            if best is None or score > best[0]:
                best = (score, name)
        if best is None:
            statuses.append(PodStatus(pod.name, None, "Pending", UNSCHEDULABLE,
                                      fit_error_message(len(uses), failures)))
            continue
        uses[best[1]].add(requests)
        bound[pod.name] = best[1]
        statuses.append(PodStatus(pod.name, best[1], "Running"))
    return statuses
