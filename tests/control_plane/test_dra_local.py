"""The local backend with NVIDIA's DRA driver (`gpu_allocation="dra"`): the simulated kubelet plugin publishes
ResourceSlices through the real API server, the real kube-scheduler allocates claims, kwok runs the pods; and `sim`
gives the same outcomes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import Rest
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import dra
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.model import PodRequest, PodStatus
from support.control_plane import control_plane_assets


def claim(name: str, profile: str) -> dict[str, Any]:
    return {"kind": "ResourceClaim", "metadata": {"name": name}, "spec": {"devices": {"requests": [
        {"name": "gpu", "exactly": {"deviceClassName": "mig.nvidia.com", "selectors": [
            {"cel": {"expression": dra.profile_selector(profile)}}]}}]}}}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge", state_dir=tmp_path_factory.mktemp("dra"), gpu_allocation="dra",
                                 mig_manager_delay=0.05, timeout=120)
    try:
        yield cluster
    finally:
        cluster.close()


def independent_counts(admin: Rest, node: str) -> dict[str, int]:
    """Devices per profile (`gpu` for type=gpu) in the node's gpu.nvidia.com slices, read with the admin client."""
    out: dict[str, int] = {}
    for s in admin.list("ResourceSlice", fieldSelector=f"spec.nodeName={node},spec.driver={dra.DRIVER}"):
        for d in s["spec"].get("devices") or []:
            attrs = d["attributes"]
            key = attrs["profile"]["string"] if attrs["type"]["string"] == "mig" else "gpu"
            out[key] = out.get(key, 0) + 1
    return out


def run_nine(cluster: Any, namespace: str, node: str, settle: float) -> list[PodStatus]:
    """9 pods, each with a claim for one 3g.40gb; the statuses once 8 run and the 9th has its scheduler reason."""
    cluster.create_namespace(namespace, {})
    for i in range(9):
        cluster.create_resource_claim(namespace, claim(f"c{i}", "3g.40gb"))
        cluster.create_pod(namespace, PodRequest(f"p{i}", {}, claims=(f"c{i}",),
                                                 node_selector={"kubernetes.io/hostname": node}))
    deadline = time.monotonic() + settle
    while True:
        statuses = [cluster.get_pod(namespace, f"p{i}") for i in range(9)]
        running = sum(s.phase == "Running" for s in statuses)
        if (running == 8 and statuses[8].message) or time.monotonic() > deadline:
            return statuses
        cluster.sleep(0.2)


def test_p5_all_balanced_32_devices_and_eight_of_nine_claims(local: LocalCluster) -> None:
    (node,) = local.list_gpu_nodes()
    NODE = node.name
    local.request_mig_config(NODE, "all-balanced")
    local.wait_for_node(NODE, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60, "success")
    with local.admin() as admin:
        assert independent_counts(admin, NODE) == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}
        names = {c["metadata"]["name"] for c in admin.list("DeviceClass")}
    assert {"gpu.nvidia.com", "mig.nvidia.com", "mig-3g-40gb.gpu.nvidia.com"} <= names
    assert not any(v for k, v in local.get_node(NODE).allocatable.items() if k.startswith("nvidia.com/"))
    facts = local.describe()["dra"]  # as TARGET.yaml gets it, through the kit's least-privilege identity
    assert facts["present"] and facts["nodes"] == {NODE: 32} and facts["advertised_by_both"] == []
    assert facts["version"] is None and facts["version_source"]  # no GPUCluster here: says why
    statuses = run_nine(local, "dra-nine", NODE, 60)
    assert [s.phase for s in statuses[:8]] == ["Running"] * 8, statuses
    assert statuses[8].phase == "Pending" and "cannot allocate all claims" in (statuses[8].message or ""), statuses[8]
    c0 = local.get_resource_claim("dra-nine", "c0")
    (result,) = c0["status"]["allocation"]["devices"]["results"]
    assert result["driver"] == dra.DRIVER and result["pool"] == NODE and "-mig-3g40gb-" in result["device"]
    assert c0["status"]["reservedFor"][0]["name"] == "p0"
    devices = {local.get_resource_claim("dra-nine", f"c{i}")["status"]["allocation"]["devices"]["results"][0]
               ["device"] for i in range(8)}
    assert len(devices) == 8
    # sim: the same outcome and the same scheduler message
    sim = SimCluster("p5.48xlarge", allow_changes=True, gpu_allocation="dra")
    sim_node = sim.list_gpu_nodes()[0].name
    sim.request_mig_config(sim_node, "all-balanced")
    sim.wait_for_node(sim_node, lambda n: n.labels.get(L.MIG_CONFIG_STATE) == "success", 60, "success")
    sim_statuses = run_nine(sim, "dra-nine", sim_node, 5)
    assert [s.phase for s in sim_statuses] == [s.phase for s in statuses]
    assert sim_statuses[8].message == statuses[8].message
    Path(local.state_dir / "dra-nine.json").write_text(json.dumps([s.message for s in statuses]))
