"""The diagnose findings on the sim backend: every fault of cluster/diagnose_faults.py is reported once, on its
node, and a healthy fleet of every MIG-capable instance type reports nothing. The same faults against a real API
server: tests/control_plane/test_diagnose_local.py."""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.diagnose import effective
from mig_conformance.diagnose.finding import Finding
from mig_conformance.diagnose.run import IDS, diagnose
from mig_conformance.diagnose.snapshot import Snapshot, normalized, read_snapshot
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack

CUSTOM = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  too-many:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 8
"""


def _findings(cluster: SimCluster, **kwargs: Any) -> list[Finding]:
    return diagnose(read_snapshot(cluster), **kwargs)


@pytest.mark.parametrize("strategy", ["mixed", "single", "none"])
def test_a_healthy_fleet_of_every_mig_capable_instance_type_reports_nothing(strategy: str) -> None:
    cluster = SimCluster("", strategy=strategy)
    assert {n.instance_type for n in cluster.list_gpu_nodes()} >= {"p4d.24xlarge", "p5.48xlarge", "p6-b200.48xlarge"}
    assert _findings(cluster) == []


def test_nodes_of_mixed_boards_and_without_mig_report_nothing() -> None:
    """GFD's product and count name one model: a node of H100s and an A10G is not compared with a layout."""
    assert _findings(SimCluster("p5.48xlarge,g5.xlarge,g6e.xlarge,H100-80GBx2+A10G-24GB,GH200-96GBx1")) == []


def test_bottlerocket_nodes_are_not_held_to_mig_manager_checks() -> None:
    """Bottlerocket's own MIG manager applies settings at boot: no mig-manager, no GFD, no nvidia.com/mig.config
    label. The mig-manager findings (1, 2, 6, 7) do not apply there; the same node without its osImage is finding 2."""
    cluster = SimCluster("p5.48xlarge@bottlerocket,p4d.24xlarge@bottlerocket")
    assert _findings(cluster) == []
    snapshot = read_snapshot(cluster)
    nodes = copy.deepcopy(list(snapshot.nodes))
    for node in nodes:
        node["status"].pop("nodeInfo")
    bare = Snapshot({**snapshot.objects, "Node": nodes}, snapshot.now, snapshot.operator_namespace)
    assert sorted(f.id for f in diagnose(bare)) == ["mig-manager-absent"] * 2


def test_dra_nodes_are_not_held_to_device_plugin_checks() -> None:
    """A node that runs NVIDIA's DRA driver registers no nvidia.com resource: the device-plugin findings (3, 4, 5, 8,
    9) do not apply there, before or after a reconfiguration."""
    cluster = SimCluster("p5.48xlarge,p4d.24xlarge", allow_changes=True, gpu_allocation="dra")
    assert _findings(cluster) == []
    for node in cluster.list_gpu_nodes():
        cluster.set_node_label(node.name, L.MIG_CONFIG, "all-balanced")
    cluster.advance(60)
    assert all(n.labels[L.MIG_CONFIG_STATE] == "success" for n in cluster.list_gpu_nodes())
    assert _findings(cluster) == []


def test_a_healthy_fleet_after_reconfigurations_reports_nothing() -> None:
    cluster = SimCluster(F.FLEET + ",p5.4xlarge,p4de.24xlarge,p5e.48xlarge", allow_changes=True)
    for i, node in enumerate(sorted(n.name for n in cluster.list_gpu_nodes())):
        cluster.set_node_label(node, L.MIG_CONFIG, ("all-balanced", "all-disabled", "all-balanced")[i % 3])
    cluster.advance(60)
    assert _findings(cluster) == []


def _fleet_with_faults() -> tuple[SimCluster, dict[str, str]]:
    cluster = SimCluster(F.FLEET)
    plan = F.assign(cluster.list_objects("Node"))
    cluster.diagnose_faults = plan
    return cluster, plan


def test_every_fault_is_reported_exactly_once_on_its_node() -> None:
    cluster, plan = _fleet_with_faults()
    findings = _findings(cluster)
    got = sorted((f.node, f.id) for f in findings)
    assert got == sorted((node, F.FAULTS[fault][0]) for node, fault in plan.items())
    assert len(plan) == 13 and {F.FAULTS[f][0] for f in plan.values()} <= set(IDS)
    for f in findings:  # every finding says where, why, which upstream issue and what to do
        assert f.node and f.evidence and f.upstream and f.recovery, f


@pytest.mark.parametrize("fault", sorted(F.FAULTS))
def test_each_fault_alone_gives_its_finding_only(fault: str) -> None:
    cluster = SimCluster(F.FLEET)
    node = next(n for n, f in F.assign(cluster.list_objects("Node")).items() if f == fault)
    cluster.diagnose_faults = {node: fault}
    assert [(f.node, f.id) for f in _findings(cluster)] == [(node, F.FAULTS[fault][0])]


def test_a_pending_state_younger_than_the_threshold_is_not_a_wedge() -> None:
    cluster, plan = _fleet_with_faults()
    node = next(n for n, f in plan.items() if f == "wedged")
    wedged = [f for f in _findings(cluster) if f.id == "mig-manager-wedged"]
    assert [f.node for f in wedged] == [node] and wedged[0].evidence["pending_s"] == 3600
    assert not [f for f in _findings(cluster, pending_threshold_s=7200) if f.id == "mig-manager-wedged"]


def test_an_h200_without_gfd_is_explained_by_the_operators_product_fallback() -> None:
    cluster, _ = _fleet_with_faults()
    absent = next(f for f in _findings(cluster) if f.id == "mig-manager-absent")
    assert absent.evidence["gpus"] == ["H200-141GB"]
    assert any("a100/h100/a30 only" in n for n in absent.notes)
    assert any("nvidia-mig-manager pod" in m for m in absent.evidence["missing"])


@pytest.mark.parametrize(("version", "severity"),
                         [("v0.15.0", "error"), ("v0.16.0", "warning"), ("v0.20.0", "warning")])
def test_an_empty_mig_gpu_is_an_error_or_a_warning_by_device_plugin_version(version: str, severity: str) -> None:
    cluster = SimCluster("p5.48xlarge", device_plugin_version=version)
    cluster.diagnose_faults = {"sim-p5-48xlarge-0": "empty-mig-gpus"}
    [finding] = _findings(cluster)
    assert finding.id == "mig-enabled-without-devices" and finding.severity == severity
    assert finding.evidence["device_plugin"].startswith(f"{version} (DaemonSet")


def test_a_failed_config_is_classified_as_placement_impossible() -> None:
    cluster = SimCluster("p5.48xlarge", config_text=CUSTOM, allow_changes=True)
    cluster.set_node_label("sim-p5-48xlarge-0", L.MIG_CONFIG, "too-many")
    cluster.advance(60)
    [finding] = _findings(cluster)
    assert (finding.id, finding.evidence["reason"]) == ("mig-config-failed", "placement impossible")
    assert "all orderings failed" in finding.evidence["detail"]


def test_a_profile_on_no_gpu_of_the_node_is_cleared_with_success_and_shows_as_empty_mig_gpus() -> None:
    """mig-parted skips a profile no GPU of the node knows and reports success (apply_model.py): finding 4."""
    cluster = SimCluster("p5.48xlarge", allow_changes=True, config_text=CUSTOM.replace('"1g.10gb": 8', '"1g.5gb": 7'))
    cluster.set_node_label("sim-p5-48xlarge-0", L.MIG_CONFIG, "too-many")
    cluster.advance(60)
    assert [f.id for f in _findings(cluster)] == ["mig-enabled-without-devices"]


def test_an_unknown_name_from_a_real_run_is_reported_once() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    cluster.set_node_label("sim-p5-48xlarge-0", L.MIG_CONFIG, "no-such-config")
    cluster.advance(60)
    assert [f.id for f in _findings(cluster)] == ["mig-config-unknown"]


def _snapshot(config_maps: list[dict[str, Any]], policy_config: dict[str, str]) -> Snapshot:
    policy = {"metadata": {"name": "cluster-policy"}, "spec": {"mig": {"strategy": "mixed"},
                                                              "migManager": {"config": policy_config}}}
    return Snapshot({"ConfigMap": config_maps, "ClusterPolicy": [policy]}, 0.0)


def _cm(name: str, text: str = CUSTOM) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"config.yaml": text}}


def test_the_effective_config_is_custom_then_generated_then_static() -> None:
    default = stack.default()
    maps = [_cm("default-mig-parted-config"), _cm("n1-mig-config"), _cm("custom")]
    assert effective.effective_config(_snapshot(maps, {"name": "custom"}), "n1", default).config_map == "custom"
    assert effective.effective_config(_snapshot(maps, {}), "n1", default).config_map == "n1-mig-config"
    assert effective.effective_config(_snapshot(maps, {}), "n2", default).config_map == "default-mig-parted-config"
    missing = effective.effective_config(_snapshot(maps, {"name": "gone"}), "n1", default)
    assert missing.config_map is None and "does not exist" in missing.why


class _Source:
    """A sim cluster whose reads of some kinds fail (as a missing API or a missing permission does)."""

    def __init__(self, fail: dict[str, str], cluster: SimCluster | None = None) -> None:
        self.fail = fail
        self.cluster = cluster or SimCluster("p5.48xlarge")
        self.got: list[str] = []

    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        if kind in self.fail:
            raise ClusterError(self.fail[kind])
        return self.cluster.list_objects(kind)

    def get_object(self, kind: str, name: str) -> dict[str, Any] | None:
        self.got.append(name)
        if f"get {kind}" in self.fail:
            raise ClusterError(self.fail[f"get {kind}"])
        return self.cluster.get_object(kind, name)

    def wall_clock(self) -> float:
        return self.cluster.wall_clock()


def test_the_reader_reads_unreadable_kinds_as_empty_and_names_them_but_needs_nodes() -> None:
    snap = read_snapshot(_Source({"ResourceSlice": "not found", "DaemonSet": "access denied: list daemonsets"}))
    assert snap.of("ResourceSlice") == [] and snap.of("DaemonSet") == [] and snap.of("Pod")
    assert [p.split(":")[0] for p in snap.problems] == ["DaemonSet", "ResourceSlice"]
    assert "deploy/rbac-diagnose.yaml" in snap.problems[0] and "access denied" not in snap.problems[0]
    with pytest.raises(ClusterError, match="access denied"):
        read_snapshot(_Source({"Node": "access denied"}))


def test_config_maps_are_read_by_name_when_listing_them_is_not_allowed() -> None:
    """deploy/rbac.yaml grants `get configmaps` only: the static, custom and generated maps are read one by one."""
    cluster, plan = _fleet_with_faults()
    source = _Source({"ConfigMap": "access denied: list configmaps"}, cluster)
    snap = read_snapshot(source)
    assert snap.problems == ()
    assert {"default-mig-parted-config", "device-plugin-config", "sim-p5-48xlarge-0-mig-config"} <= set(source.got)
    assert sorted((f.node, f.id) for f in diagnose(snap)) == sorted((n, F.FAULTS[f][0]) for n, f in plan.items())
    denied = read_snapshot(_Source({"ConfigMap": "denied", "get ConfigMap": "access denied: get configmaps"}))
    assert denied.problems == ("ConfigMap: not permitted for this identity, checks that need it were skipped "
                               "(deploy/rbac-diagnose.yaml grants every read of the diagnosis)",)


def test_sim_lists_only_the_kinds_the_reader_knows() -> None:
    with pytest.raises(ClusterError):
        SimCluster("p5.48xlarge").list_objects("Secret")


def test_the_suite_leaves_out_what_this_run_changed_and_has_not_restored() -> None:
    from mig_conformance.suites.test_diagnose import _changed_by_this_run

    cluster = SimCluster("p5.48xlarge*2", allow_changes=True)
    assert _changed_by_this_run(cluster, "sim-p5-48xlarge-0") == []
    cluster.set_node_label("sim-p5-48xlarge-0", L.MIG_CONFIG, "all-balanced")
    assert _changed_by_this_run(cluster, "sim-p5-48xlarge-0") and not _changed_by_this_run(cluster, "sim-p5-48xlarge-1")
    cluster.set_mig_strategy("single")
    assert _changed_by_this_run(cluster, "sim-p5-48xlarge-1") and _changed_by_this_run(cluster, None)
    cluster.restore()
    assert _changed_by_this_run(cluster, None) == []


def _objects_with(cluster: SimCluster, node: str, change: Any) -> SimCluster:
    """`cluster` whose rendered objects get `change(objects, node)` on top of its faults."""
    real = cluster.list_objects

    def list_objects(kind: str) -> list[dict[str, Any]]:
        objs = {k: real(k) for k in ("Node", "Pod", "DaemonSet", "ConfigMap", "ClusterPolicy")}
        change(objs, node)
        return objs.get(kind, [])
    cluster.list_objects = list_objects  # type: ignore[method-assign]
    return cluster


def test_a_node_notready_since_long_before_its_last_mig_change_is_not_this_failure() -> None:
    cluster = SimCluster("p5.48xlarge", diagnose_faults={"sim-p5-48xlarge-0": "not-ready"})
    assert [f.id for f in _findings(cluster)] == ["node-not-ready-after-reconfiguration"]
    cluster.advance(7200)  # the fault's NotReady began 120 s before "now"; mig-manager's last write is 2 h older

    def earlier(objs: dict[str, Any], node: str) -> None:
        for c in objs["Node"][0]["status"]["conditions"]:
            c["lastTransitionTime"] = "2025-06-01T00:00:00Z"
    assert _findings(_objects_with(cluster, "sim-p5-48xlarge-0", earlier)) == []


def test_shared_gpus_are_not_compared_with_the_layout() -> None:
    cluster = SimCluster("p4d.24xlarge", diagnose_faults={"sim-p4d-24xlarge-0": "mode-change-not-taken"})
    assert [f.id for f in _findings(cluster)] == ["success-counts-mismatch"]

    def time_sliced(objs: dict[str, Any], node: str) -> None:
        objs["Node"][0]["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "4"
    assert _findings(_objects_with(cluster, "sim-p4d-24xlarge-0", time_sliced)) == []


def test_no_mig_config_label_is_expected_only_when_the_policy_sets_no_default() -> None:
    assert _findings(SimCluster("p5.48xlarge", default_config=None)) == []

    def unlabelled(objs: dict[str, Any], node: str) -> None:
        labels = objs["Node"][0]["metadata"]["labels"]
        labels.pop(L.MIG_CONFIG)
        labels.pop(L.MIG_CONFIG_STATE)
    [finding] = _findings(_objects_with(SimCluster("p5.48xlarge"), "sim-p5-48xlarge-0", unlabelled))
    assert finding.id == "mig-manager-absent" and finding.evidence["missing"][0].startswith(L.MIG_CONFIG)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, (*prefix, i))


@pytest.mark.slow  # 500 diagnoses of a 13-node fleet (6 s)
def test_objects_with_fields_of_any_wrong_type_never_crash_the_diagnosis() -> None:
    """500 seeded mutations of the faulty fleet's objects (up to 3 fields each set to null, a string, a number, a
    list, a mapping or a boolean): the diagnosis always runs; each dropped field is named."""
    cluster = SimCluster(F.FLEET, diagnose_faults="all")
    base = {k: cluster.list_objects(k) for k in ("Node", "Pod", "DaemonSet", "ConfigMap", "ClusterPolicy",
                                                 "ResourceSlice", "Event")}
    where = [(kind, p) for kind, objs in base.items() for i, o in enumerate(objs[:3]) for p in _paths(o, (i,)) if p]
    values: list[Any] = [None, "x", 7, [], {}, ["a"], {"a": 1}, True]
    rng = random.Random(14)
    for _ in range(500):
        objs = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            kind, path = rng.choice(where)
            target: Any = objs[kind]
            with contextlib.suppress(KeyError, IndexError, TypeError):
                for step in path[:-1]:
                    target = target[step]
                target[path[-1]] = rng.choice(values)
        diagnose(normalized(objs, 1.8e9))


def test_a_field_of_the_wrong_type_is_dropped_and_named() -> None:
    cluster = SimCluster("p5.48xlarge")
    objs = {k: cluster.list_objects(k) for k in ("Node", "ClusterPolicy", "ConfigMap")}
    objs["Node"][0]["metadata"]["labels"][L.GPU_PRODUCT] = ["NVIDIA-H100-80GB-HBM3"]
    objs["ClusterPolicy"][0]["spec"]["mig"] = "mixed"
    snap = normalized(objs, 1.8e9)
    assert snap.problems == (f"Node sim-p5-48xlarge-0.metadata.labels.{L.GPU_PRODUCT}: a list, not a string",
                             "ClusterPolicy cluster-policy.spec.mig: a string, not a mapping")
    assert L.GPU_PRODUCT not in snap.nodes[0]["metadata"]["labels"]
