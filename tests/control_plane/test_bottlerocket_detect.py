"""Real clusters: a Bottlerocket node is told apart by `status.nodeInfo.osImage`, read through the kit's kube client
from a real API server (the local backend's control plane), as the session and the suites use it."""

from __future__ import annotations

from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import path_of
from mig_conformance.k8s import bottlerocket
from support.control_plane import control_plane_assets

OS_IMAGE = "Bottlerocket OS 1.34.0 (aws-k8s-1.33-nvidia)"


def test_os_image_marks_bottlerocket_nodes() -> None:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge*2")
    try:
        first, second = sorted(n.name for n in cluster.list_gpu_nodes())
        assert not bottlerocket.is_bottlerocket(cluster.get_node(first).os_image)
        with cluster.admin() as admin:
            admin.request("PATCH", path_of("Node", first, sub="status"),
                          {"status": {"nodeInfo": {"osImage": OS_IMAGE}}},
                          content_type="application/merge-patch+json")
        node = cluster.get_node(first)
        assert node.os_image == OS_IMAGE and bottlerocket.is_bottlerocket(node.os_image)
        assert not bottlerocket.is_bottlerocket(cluster.get_node(second).os_image)
        listed = {n.name: n.os_image for n in cluster.list_gpu_nodes()}
        assert listed[first] == OS_IMAGE
    finally:
        cluster.close()
