"""API-server validation of extended resources and kube-scheduler's verdicts and messages."""

from __future__ import annotations

from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.k8s.model import GpuNode, PodRequest, Taint, Toleration
from mig_conformance.k8s.projection import project_node
from mig_conformance.k8s.scheduling import effective_requests, fit_error_message, schedule, validate_pod

GPU_TAINT = Taint("nvidia.com/gpu", "", "NoSchedule")
MIG3 = "nvidia.com/mig-3g.40gb"
PREEMPT_NONE = "preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod."
PREEMPT_USELESS = "preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."


def p5_node(name: str, config: str = "all-balanced", strategy: str = "mixed",
            taints: tuple[Taint, ...] = (GPU_TAINT,)) -> GpuNode:
    p = project_node(get_instance_type("p5.48xlarge").gpus(), strategy, None, config, node=name,
                     instance_type="p5.48xlarge")
    return GpuNode(name, p.labels, dict(p.allocatable), dict(p.allocatable), taints)


def pods(n: int, resource: str = MIG3, prefix: str = "p") -> list[PodRequest]:
    return [PodRequest(f"{prefix}-{i}", {resource: 1}) for i in range(n)]


def test_eight_3g_pods_fit_a_p5_and_the_ninth_is_pending() -> None:
    node = p5_node("gpu-0")
    assert node.allocatable[MIG3] == 8
    statuses = schedule(pods(9), [node])
    assert [s.node for s in statuses[:8]] == ["gpu-0"] * 8 and all(s.phase == "Running" for s in statuses[:8])
    last = statuses[8]
    assert (last.bound, last.phase, last.reason) == (False, "Pending", "Unschedulable")
    assert last.message == f"0/1 nodes are available: 1 Insufficient {MIG3}. {PREEMPT_NONE.format(n=1)}"


def test_mixed_mig_resources_are_not_nvidia_com_gpu() -> None:
    node = p5_node("gpu-0")
    assert node.allocatable.get("nvidia.com/gpu", 0) == 0
    (status,) = schedule(pods(1, "nvidia.com/gpu"), [node])
    # more than the node's whole allocatable (none): UnschedulableAndUnresolvable, as in kube-scheduler v1.37
    assert status.message == f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu. {PREEMPT_USELESS.format(n=1)}"


def test_single_strategy_mig_devices_are_nvidia_com_gpu() -> None:
    node = p5_node("gpu-0", "all-1g.10gb", "single")
    statuses = schedule(pods(57, "nvidia.com/gpu"), [node])
    assert sum(s.bound for s in statuses) == 56 and not statuses[-1].bound


def test_requests_must_equal_limits() -> None:
    pod = PodRequest("p", {"nvidia.com/gpu": 2}, limits={"nvidia.com/gpu": 1})
    assert validate_pod(pod) == ('Pod "p" is invalid: spec.containers[0].resources.requests: Invalid value: "2": '
                                 "must be equal to nvidia.com/gpu limit of 1")
    cpu = PodRequest("c", {"cpu": 1}, limits={"cpu": 2})  # native resources may overcommit
    assert validate_pod(cpu) is None
    over = PodRequest("o", {"cpu": 3}, limits={"cpu": 2})
    assert validate_pod(over) and "must be less than or equal to cpu limit of 2" in validate_pod(over)


def test_limit_required_and_limit_defaults_request() -> None:
    no_limit = PodRequest("p", {MIG3: 1}, limits={})
    assert validate_pod(no_limit) == ('Pod "p" is invalid: spec.containers[0].resources.limits: Required value: '
                                      "Limit must be set for non overcommitable resources")
    only_limit = PodRequest("q", {}, limits={MIG3: 2})
    assert validate_pod(only_limit) is None and effective_requests(only_limit) == {MIG3: 2}


def test_fractions_and_negatives() -> None:
    half = PodRequest("h", {"nvidia.com/gpu": 0.5})  # type: ignore[dict-item]
    assert validate_pod(half) == (
        'Pod "h" is invalid: [spec.containers[0].resources.limits[nvidia.com/gpu]: Invalid value: "500m": must be an '
        'integer, spec.containers[0].resources.requests[nvidia.com/gpu]: Invalid value: "500m": must be an integer]')
    neg = PodRequest("n", {MIG3: -1})
    message = validate_pod(neg)
    assert message and f'limits[{MIG3}]: Invalid value: "-1": must be greater than or equal to 0' in message
    bad_name = validate_pod(PodRequest("b", {"gpu": 1}))
    assert bad_name and 'Invalid value: "gpu": must be a standard resource for containers' in bad_name


def test_invalid_pods_are_not_scheduled() -> None:
    (status,) = schedule([PodRequest("p", {MIG3: 2}, limits={MIG3: 1})], [p5_node("gpu-0")])
    assert (status.node, status.phase, status.reason) == (None, "Failed", "Invalid")
    assert status.message and "must be equal to" in status.message


def test_untolerated_taint() -> None:
    pod = PodRequest("p", {MIG3: 1}, tolerations=())
    (status,) = schedule([pod], [p5_node("gpu-0")])
    assert status.message == ("0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: }. "
                              "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    tolerated = PodRequest("q", {MIG3: 1}, tolerations=(Toleration("nvidia.com/gpu", effect="NoSchedule"),))
    assert schedule([tolerated], [p5_node("gpu-0")])[0].bound
    soft = p5_node("soft", taints=(Taint("nvidia.com/gpu", "", "PreferNoSchedule"),))
    assert schedule([pod], [soft])[0].bound  # only NoSchedule/NoExecute taints filter


def test_node_selector() -> None:
    pod = PodRequest("p", {MIG3: 1}, node_selector={"nvidia.com/mig.config": "all-1g.10gb"})
    (status,) = schedule([pod], [p5_node("gpu-0")])
    assert status.message == ("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                              "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    ok = PodRequest("q", {MIG3: 1}, node_selector={"nvidia.com/mig.config.state": "success"})
    assert schedule([ok], [p5_node("gpu-0")])[0].bound


def test_reasons_are_counted_and_sorted_as_strings() -> None:
    full = [p5_node(f"full-{i}") for i in range(10)]
    tainted = [p5_node(f"t-{i}", taints=(Taint("dedicated", "infer"),)) for i in range(2)]
    existing = [(PodRequest(f"e-{n.name}-{j}", {MIG3: 1}), n.name) for n in full for j in range(8)]
    (status,) = schedule(pods(1), [*full, *tainted], existing=existing)
    assert status.message == (
        "0/12 nodes are available: 10 Insufficient nvidia.com/mig-3g.40gb, 2 node(s) had untolerated taint "
        "{dedicated: infer}. preemption: 0/12 nodes are available: 10 No preemption victims found for incoming "
        "pod, 2 Preemption is not helpful for scheduling.")


def test_several_insufficient_resources_on_one_node() -> None:
    busy = [(PodRequest(f"e-{i}", {MIG3: 1, "nvidia.com/mig-2g.20gb": 1}), "gpu-0") for i in range(4)]
    pod = PodRequest("p", {MIG3: 5, "nvidia.com/mig-2g.20gb": 5})  # within allocatable (8), above what is free (4)
    (status,) = schedule([pod], [p5_node("gpu-0")], existing=busy)
    assert status.message == ("0/1 nodes are available: 1 Insufficient nvidia.com/mig-2g.20gb, 1 Insufficient "
                              f"nvidia.com/mig-3g.40gb. {PREEMPT_NONE.format(n=1)}")


def test_a_request_above_the_whole_allocatable_is_not_helped_by_preemption() -> None:
    pod = PodRequest("p", {MIG3: 9, "nvidia.com/mig-2g.20gb": 1})  # one resource out of reach makes the node so
    busy = [(PodRequest(f"e-{i}", {"nvidia.com/mig-2g.20gb": 1}), "gpu-0") for i in range(8)]
    (status,) = schedule([pod], [p5_node("gpu-0")], existing=busy)
    assert status.message == ("0/1 nodes are available: 1 Insufficient nvidia.com/mig-2g.20gb, 1 Insufficient "
                              f"nvidia.com/mig-3g.40gb. {PREEMPT_USELESS.format(n=1)}")


def test_bound_and_existing_pods_use_capacity() -> None:
    node = p5_node("gpu-0")
    first = schedule(pods(6), [node])
    bound = {s.name: s.node for s in first if s.node}
    later = schedule([*pods(6), *pods(3, prefix="new")], [node], bound=bound)
    assert [s.bound for s in later] == [True] * 8 + [False]
    assert later[0].node == "gpu-0" and later[-1].phase == "Pending"


def test_pods_spread_over_equal_nodes_and_ties_go_by_name() -> None:
    nodes = [p5_node("b"), p5_node("a")]
    statuses = schedule(pods(3), nodes)
    assert [s.node for s in statuses] == ["a", "b", "a"]


def test_too_many_pods_and_no_nodes() -> None:
    node = GpuNode("small", {}, {"pods": 1, MIG3: 4}, {"pods": 1, MIG3: 4})
    statuses = schedule(pods(2), [node])
    assert statuses[1].message == f"0/1 nodes are available: 1 Too many pods. {PREEMPT_NONE.format(n=1)}"
    (none,) = schedule(pods(1), [])
    assert (none.phase, none.reason) == ("Pending", "Unschedulable")
    assert none.message == "no nodes available to schedule pods"
    assert fit_error_message(0, []) == "no nodes available to schedule pods"
