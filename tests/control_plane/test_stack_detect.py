"""Stack detection against the real local API server: the objects a GPU Operator cluster has (DaemonSets, the
ClusterPolicy, GFD's driver label, kubelet's nodeInfo, DRA's ResourceSlices, a GPUCluster) are created, and
detection reads each back with its source; reads only, and a missing permission is a note, never an error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.stack_detect import detect, detect_profile
from mig_conformance.k8s import stack
from support.control_plane import control_plane_assets
from support.kit_runs import kit_kubeconfig, run_pytest

NS = "gpu-operator"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalCluster]:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge", agents=False,
                                 stack=stack.resolve([({"gpu_operator": "v25.10.1"}, "test")]))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def admin(local: LocalCluster) -> Iterator[KubeCluster]:
    """The cluster as an admin reads it (the kit's least-privilege identity may not list DaemonSets)."""
    from kubernetes import config as kconfig

    cluster = KubeCluster("admin", kconfig.new_client_from_config(config_file=str(local.admin_kubeconfig)))
    yield cluster
    cluster.close()


def daemonset(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "nodeSelector": {"example.com/no-such-node": "true"},  # nothing runs: only the image is read
                "containers": [{"name": name, "image": image}]}}}}


def test_a_real_clusters_stack_is_unknown_until_detected(local: LocalCluster) -> None:
    from kubernetes import config as kconfig

    cluster = KubeCluster("fresh", kconfig.new_client_from_config(config_file=str(local.admin_kubeconfig)))
    try:
        assert cluster.stack.gpu_operator.value is None and cluster.stack.driver.value is None
        assert cluster.describe()["stack"]["gpu_operator"]["value"] is None
        assert cluster.detect_stack().gpu_operator.value == "v25.10.1"
        assert cluster.describe()["stack"]["gpu_operator"]["value"] == "v25.10.1"
    finally:
        cluster.close()


def test_detection_reads_each_object_with_its_source(local: LocalCluster, admin: KubeCluster) -> None:
    found = detect(admin)
    # the ClusterPolicy the local backend wrote for GPU Operator v25.10.1 (Helm chart label, spec versions)
    assert found.components["gpu_operator"] == stack.Sourced("v25.10.1", "detected from ClusterPolicy cluster-policy "
                                                                         "(Helm chart label or operator image)")
    assert found.components["device_plugin"].value == "v0.18.1"
    assert "spec.devicePlugin.version" in found.components["device_plugin"].source
    assert found.components["kubernetes"].source.endswith("status.nodeInfo.kubeletVersion")
    assert found.allocation is None

    with local.admin() as api:
        apps = f"/apis/apps/v1/namespaces/{NS}/daemonsets"
        api.request("POST", apps, daemonset("nvidia-device-plugin-daemonset",
                                            "nvcr.io/nvidia/k8s-device-plugin:v0.17.4-ubi9"))
        api.request("POST", apps, daemonset("nvidia-mig-manager", "nvcr.io/nvidia/cloud-native/k8s-mig-manager:"
                                                                  "v0.12.3-ubuntu20.04"))
        node = local.list_gpu_nodes()[0].name
        api.request("PATCH", f"/api/v1/nodes/{node}",
                    {"metadata": {"labels": {"nvidia.com/cuda.driver-version.full": "550.54.15"}}},
                    content_type="application/merge-patch+json")
        try:
            profile = detect_profile(admin)
        finally:
            for name in ("nvidia-device-plugin-daemonset", "nvidia-mig-manager"):
                api.request("DELETE", f"{apps}/{name}")
            api.request("PATCH", f"/api/v1/nodes/{node}",
                        {"metadata": {"labels": {"nvidia.com/cuda.driver-version.full": None}}},
                        content_type="application/merge-patch+json")
    # what runs beats what is configured: the DaemonSets' image tags over the ClusterPolicy's spec
    assert profile.device_plugin == stack.Sourced(
        "v0.17.4", f"detected from DaemonSet {NS}/nvidia-device-plugin-daemonset image "
                   "nvcr.io/nvidia/k8s-device-plugin:v0.17.4-ubi9")
    assert profile.mig_manager.value == "v0.12.3" and profile.device_plugin_model == "v0.17.4"
    assert profile.driver == stack.Sourced("550.54.15", f"detected from node {node} label "
                                                        "nvidia.com/cuda.driver-version.full")
    assert not profile.generates_per_node_config()  # mig-manager v0.12.3 < v0.14.0


def test_a_choice_overrides_what_was_detected(admin: KubeCluster) -> None:
    profile = detect_profile(admin, [({"device_plugin": "v0.19.3"}, "option --mig-stack")])
    assert profile.device_plugin == stack.Sourced("v0.19.3", "option --mig-stack")
    assert any("overrides v0.18.1" in n for n in profile.notes)


def test_dra_and_bottlerocket_are_detected(local: LocalCluster, admin: KubeCluster) -> None:
    node = local.list_gpu_nodes()[0].name
    slices = "/apis/resource.k8s.io/v1/resourceslices"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gpuclusters.nvidia.com"},
           "spec": {"group": "nvidia.com", "scope": "Cluster",
                    "names": {"kind": "GPUCluster", "plural": "gpuclusters", "singular": "gpucluster"},
                    "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    with local.admin() as api:
        api.request("PATCH", f"/api/v1/nodes/{node}/status",
                    {"status": {"nodeInfo": {"osImage": "Bottlerocket OS 1.50.0 (aws-k8s-1.33-nvidia)"}}},
                    content_type="application/merge-patch+json")
        found = detect(admin)
        assert found.allocation is not None and found.allocation.value == stack.BOTTLEROCKET
        assert "osImage 'Bottlerocket OS 1.50.0" in found.allocation.source
        api.request("POST", slices, {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "gpu-slice-0"},
            "spec": {"driver": "gpu.nvidia.com", "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": "gpu-0"}]}})
        try:
            found = detect(admin)
        finally:
            api.request("DELETE", f"{slices}/gpu-slice-0")
        assert found.allocation == stack.Sourced(stack.DRA, "detected from ResourceSlice gpu-slice-0 (driver "
                                                            "gpu.nvidia.com, 1 slice(s))")
        api.create(crd)
        try:
            for _ in range(100):  # the CRD serves once established
                try:
                    api.request("POST", "/apis/nvidia.com/v1alpha1/gpuclusters", {
                        "apiVersion": "nvidia.com/v1alpha1", "kind": "GPUCluster", "metadata": {"name": "default"}})
                    break
                except Exception:
                    import time

                    time.sleep(0.1)
            found = detect(admin)
        finally:
            api.delete("CustomResourceDefinition", "gpuclusters.nvidia.com")
        assert found.allocation == stack.Sourced(stack.DRA, "detected from GPUCluster default (nvidia.com/v1alpha1)")


def test_the_kits_least_privilege_identity_gets_notes_not_errors(local: LocalCluster) -> None:
    profile = detect_profile(local)
    assert profile.gpu_operator.value == "v25.10.1"
    assert any(n.startswith(f"DaemonSets in {NS}: not read (not permitted") for n in profile.notes)
    assert not any("access denied" in n for n in profile.notes)


def test_a_run_against_a_real_cluster_records_what_it_detected(local: LocalCluster, tmp_path: Path) -> None:
    """Through the plugin: `--mig-cluster=kubeconfig:kit` detects the stack (the session, once), `--mig-stack`
    overrides a component, and summary.json and TARGET.yaml keep each version's source."""
    kubeconfig = kit_kubeconfig(local, tmp_path / "kube" / "config")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "test_one.py").write_text("def test_one(mig_cluster):\n    assert mig_cluster.stack\n")
    code, out = run_pytest(tmp_path / "run", kubeconfig, "--mig-stack=driver=550.54.15", "test_one.py")
    assert code == 0, out[-3000:]
    assert "mig-conformance stack: detected when the cluster is opened" in out
    assert "stack: kubernetes v" in out and "gpu-operator v25.10.1 (detected from ClusterPolicy" in out
    summary = json.loads((tmp_path / "run" / "out" / "summary.json").read_text())
    assert summary["settings"]["stack.driver"] == {"value": "550.54.15", "source": "option --mig-stack"}
    assert summary["settings"]["stack.gpu_operator"]["source"].startswith("detected from ClusterPolicy")
    target = yaml.safe_load((tmp_path / "run" / "out" / "TARGET.yaml").read_text())
    assert target["versions"]["gpu_operator"] == "v25.10.1" and target["versions"]["driver"] == "550.54.15"
    assert target["stack"]["device_plugin"]["value"] == "v0.18.1"
    assert "access denied" not in out
