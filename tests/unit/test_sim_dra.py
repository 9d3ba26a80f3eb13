"""The sim backend with NVIDIA's DRA driver instead of the device plugin (cluster/sim/dra.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import dra
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.model import PodRequest

P5 = "sim-p5-48xlarge-0"
NS = "t"


def claim(name: str, profile: str | None, count: int = 1, match: str | None = None,
          kind: str = "ResourceClaim", cls: str = "mig.nvidia.com") -> dict:
    exact: dict = {"deviceClassName": cls, "count": count}
    if profile:
        exact["selectors"] = [{"cel": {"expression": dra.profile_selector(profile)}}]
    devices: dict = {"requests": [{"name": "gpu", "exactly": exact}]}
    if match:
        devices["constraints"] = [{"matchAttribute": match}]
    if kind == "ResourceClaimTemplate":
        return {"kind": kind, "metadata": {"name": name}, "spec": {"spec": {"devices": devices}}}
    return {"kind": kind, "metadata": {"name": name}, "spec": {"devices": devices}}


def balanced(**options) -> SimCluster:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, gpu_allocation="dra", **options)
    cluster.request_mig_config(P5, "all-balanced")
    cluster.wait_for_node(P5, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60, "success")
    cluster.create_namespace(NS, {})
    return cluster


def mig_counts(cluster: SimCluster) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in cluster.list_resource_slices(dra.DRIVER):
        for d in s["spec"].get("devices", []):
            key = d["attributes"]["profile"]["string"] if d["attributes"]["type"]["string"] == "mig" else "gpu"
            out[key] = out.get(key, 0) + 1
    return out


def test_dra_node_publishes_slices_and_registers_no_gpu_resources() -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, gpu_allocation="dra")
    assert mig_counts(cluster) == {"gpu": 8}  # the default label all-disabled
    assert not any(v for v in cluster.get_node(P5).extended().values())
    cluster.request_mig_config(P5, "all-balanced")
    cluster.wait_for_node(P5, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60, "success")
    assert mig_counts(cluster) == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}
    assert not any(v for v in cluster.get_node(P5).extended().values())
    names = [c["metadata"]["name"] for c in cluster.list_device_classes()]
    assert names[:2] == ["gpu.nvidia.com", "mig.nvidia.com"] and "mig-3g-40gb.gpu.nvidia.com" in names
    (s,) = cluster.list_resource_slices()
    dev = s["spec"]["devices"][0]
    assert dev["attributes"]["uuid"]["string"].startswith("MIG-")
    assert dev["attributes"]["parentUUID"]["string"].startswith("GPU-")
    assert s["spec"]["pool"]["generation"] == 2  # start; all-disabled changed nothing; all-balanced restarted it


def test_stale_slices_until_the_driver_restarts() -> None:
    cluster = balanced(dra_restart_on_reconfigure=False)
    assert mig_counts(cluster) == {"gpu": 8}
    cluster.restart_dra_driver(P5)
    assert mig_counts(cluster) == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}


def test_nine_3g_claims_eight_bound_ninth_pending() -> None:
    cluster = balanced()
    for i in range(9):
        cluster.create_resource_claim(NS, claim(f"c{i}", "3g.40gb"))
        cluster.create_pod(NS, PodRequest(f"p{i}", {}, claims=(f"c{i}",)))
    statuses = [cluster.get_pod(NS, f"p{i}") for i in range(9)]
    assert [s.phase for s in statuses] == ["Running"] * 8 + ["Pending"]
    assert statuses[8].message == ("0/1 nodes are available: 1 cannot allocate all claims. preemption: 0/1 nodes "
                                   "are available: 1 Preemption is not helpful for scheduling.")
    c0 = cluster.get_resource_claim(NS, "c0")
    assert c0["status"]["reservedFor"] == [{"resource": "pods", "name": "p0"}]
    (result,) = c0["status"]["allocation"]["devices"]["results"]
    assert result["driver"] == "gpu.nvidia.com" and result["pool"] == P5 and "-mig-3g40gb-" in result["device"]
    assert "allocation" not in cluster.get_resource_claim(NS, "c8")["status"]
    cluster.delete_pod(NS, "p0")  # frees c0's device: the pending pod takes it
    assert cluster.get_pod(NS, "p8").phase == "Running"
    assert "allocation" not in cluster.get_resource_claim(NS, "c0")["status"]


def test_templates_and_match_attribute() -> None:
    cluster = balanced()
    cluster.create_resource_claim(NS, claim("two", None, 2, "gpu.nvidia.com/parentUUID",
                                            kind="ResourceClaimTemplate"))
    cluster.create_pod(NS, PodRequest("p", {}, claim_templates=("two",)))
    assert cluster.get_pod(NS, "p").phase == "Running"
    got = cluster.get_resource_claim(NS, "p-two")
    parents = {r["device"].split("-mig-")[0] for r in got["status"]["allocation"]["devices"]["results"]}
    assert len(parents) == 1
    cluster.delete_pod(NS, "p")
    with pytest.raises(ClusterError, match="not found"):
        cluster.get_resource_claim(NS, "p-two")


def test_extended_resource_bridge_and_its_absence_before_1_35() -> None:
    cluster = balanced()
    for i in range(9):
        cluster.create_pod(NS, PodRequest(f"x{i}", {"nvidia.com/mig-3g.40gb": 1}))
    phases = [cluster.get_pod(NS, f"x{i}").phase for i in range(9)]
    assert phases == ["Running"] * 8 + ["Pending"]
    bridged = cluster.get_resource_claim(NS, "x0-extended-resources")
    assert bridged["metadata"]["annotations"][dra.EXTENDED_RESOURCE_CLAIM] == "true"
    old = balanced(stack=replace(S.default(), kubernetes=S.Sourced("v1.34.3", "test")))
    old.create_pod(NS, PodRequest("x", {"nvidia.com/mig-3g.40gb": 1}))
    status = old.get_pod(NS, "x")
    assert status.phase == "Pending" and "Insufficient nvidia.com/mig-3g.40gb" in (status.message or "")


def test_dynamic_mig_never_overlaps() -> None:
    cluster = SimCluster("H100-80GB", allow_changes=True, gpu_allocation="dra", dynamic_mig=True,
                         default_config=None)
    cluster.create_namespace(NS, {})
    wanted = ["4g.40gb", "4g.40gb", "3g.40gb", "1g.10gb"]
    for i, p in enumerate(wanted):
        cluster.create_resource_claim(NS, claim(f"c{i}", p))
        cluster.create_pod(NS, PodRequest(f"p{i}", {}, claims=(f"c{i}",)))
    assert [cluster.get_pod(NS, f"p{i}").phase for i in range(4)] == ["Running", "Pending", "Running", "Pending"]


def test_claims_need_a_dra_cluster_and_valid_specs() -> None:
    plain = SimCluster("p5.48xlarge", allow_changes=True)
    plain.create_namespace(NS, {})
    with pytest.raises(ClusterError, match="device plugin"):
        plain.create_resource_claim(NS, claim("c", "3g.40gb"))
    cluster = balanced()
    with pytest.raises(ClusterError, match="is invalid"):
        cluster.create_resource_claim(NS, {"metadata": {"name": "bad"}, "spec": {}})
    with pytest.raises(ClusterError, match='"nope" not found'):
        cluster.create_pod(NS, PodRequest("p", {}, claims=("nope",)))
    cluster.create_resource_claim(NS, {"metadata": {"name": "cel"}, "spec": {"devices": {"requests": [
        {"name": "r", "exactly": {"deviceClassName": "mig.nvidia.com",
                                  "selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].x"}}]}}]}}})
    cluster.create_pod(NS, PodRequest("q", {}, claims=("cel",)))
    status = cluster.get_pod(NS, "q")
    assert status.phase == "Pending" and "CEL runtime error" in (status.message or "")


def test_describe_detects_the_dra_driver() -> None:
    cluster = balanced()
    facts = cluster.describe()["dra"]
    assert facts["present"] and facts["nodes"] == {P5: 32} and not facts["dynamic_mig"]
    assert "mig.nvidia.com" in facts["device_classes"] and facts["advertised_by_both"] == []
    assert "dra" not in SimCluster("p5.48xlarge").describe()


def test_gpu_allocation_from_the_clusters_file_and_the_option(tmp_path) -> None:
    from mig_conformance.cluster.registry import open_cluster
    from mig_conformance.cluster.targets import load_clusters_file
    from mig_conformance.plugin.settings import Settings

    path = tmp_path / "clusters.yaml"
    path.write_text("lab:\n  backend: sim\n  nodes: p5.48xlarge\n  gpu_allocation: dra\n  dynamic_mig: true\n")
    lab = open_cluster(load_clusters_file(path)["lab"], allow_changes=False)
    assert isinstance(lab, SimCluster) and lab.dra is not None and lab.dra.dynamic
    opt = open_cluster("sim:p5.48xlarge", allow_changes=False, settings=Settings(gpu_allocation="dra"))
    assert isinstance(opt, SimCluster) and opt.gpu_allocation == "dra"
    with pytest.raises(ClusterError, match="unknown GPU allocation 'both'"):
        open_cluster("sim:p5.48xlarge", allow_changes=False, settings=Settings(gpu_allocation="both"))
    path.write_text("lab:\n  backend: sim\n  gpu_allocation: 3\n")
    with pytest.raises(Exception, match="gpu_allocation"):
        load_clusters_file(path)


def test_a_node_advertising_gpus_through_both_is_detected() -> None:
    cluster = balanced()
    cluster._node(P5).resources["nvidia.com/mig-3g.40gb"] = 8  # a device plugin left running beside the driver
    assert cluster.describe()["dra"]["advertised_by_both"] == [P5]
