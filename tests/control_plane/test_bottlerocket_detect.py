"""Real clusters: a Bottlerocket node is told apart by `status.nodeInfo.osImage`, read through the kit's kube client
from a real API server (the local backend's control plane), as the session and the suites use it; the local
backend's own `@bottlerocket` nodes keep their osImage through kwok's node stages."""

from __future__ import annotations

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import path_of
from mig_conformance.k8s import bottlerocket
from support.control_plane import control_plane_assets

OS_IMAGE = "Bottlerocket OS 1.34.0 (aws-k8s-1.33-nvidia)"


def test_os_image_marks_bottlerocket_nodes() -> None:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge*2,p5.48xlarge@bottlerocket")
    try:
        nodes = {n.name: n for n in cluster.list_gpu_nodes()}
        simulated = [n for n in nodes.values() if bottlerocket.is_bottlerocket(n.os_image)]
        assert [n.os_image for n in simulated] == [bottlerocket.SIMULATED_OS_IMAGE]
        assert cluster.wait_for_node(simulated[0].name, lambda n: n.extended() == {"nvidia.com/gpu": 8}, 30,
                                     "the Bottlerocket node's 8 whole-GPU MIG devices")
        first, second = sorted(n.name for n in nodes.values() if n not in simulated)
        assert cluster.get_node(first).os_image == "simulated (kwok)"
        with cluster.admin() as admin:
            admin.request("PATCH", path_of("Node", first, sub="status"),
                          {"status": {"nodeInfo": {"osImage": OS_IMAGE}}},
                          content_type="application/merge-patch+json")
        node = cluster.get_node(first)
        assert node.os_image == OS_IMAGE and bottlerocket.is_bottlerocket(node.os_image)
        assert not bottlerocket.is_bottlerocket(cluster.get_node(second).os_image)
    finally:
        cluster.close()
