"""mig-manager >= v0.14.0 on the `local` backend (real API server, simulated agents): the generated `<node>-mig-config`
with the newest stack, custom configs through spec.migManager.config.name (GPU Operator v26.3.0+) by the custom suite
with an exact restore, and the static path of an operator before v26.3.0."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mig_conformance.cluster.base import CUSTOM_CONFIG_MAP
from mig_conformance.cluster.journal import ChangeKind
from mig_conformance.cluster.local import operator
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.rest import RestError, path_of
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s import stack as stack_mod
from mig_conformance.mig import generate as G
from mig_conformance.mig.default_config import CONFIG_MAP, default_config_text
from support.control_plane import control_plane_assets
from support.kit_runs import kit_kubeconfig, run_pytest

OLD = stack_mod.resolve([({"gpu_operator": "v25.10.1"}, "test: an operator before v26.3.0")])
USER = yaml.safe_dump({"version": "v1", "mig-configs": {
    "all-disabled": [{"devices": "all", "mig-enabled": False}],
    "training": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 2}}]}})


def _start(folder: Path, stack: stack_mod.StackProfile | None = None) -> LocalCluster:
    return LocalCluster.start("p5.48xlarge", state_dir=folder, assets=control_plane_assets(), mig_manager_delay=0.05,
                              stack=stack)


@pytest.fixture(scope="module")
def newest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = _start(tmp_path_factory.mktemp("newest"))
    yield cluster
    cluster.close()


def _node(cluster: LocalCluster) -> str:
    return cluster.list_gpu_nodes()[0].name


def _snapshot(cluster: LocalCluster) -> tuple[Any, dict[str, Any]]:
    """The ClusterPolicy's spec and every ConfigMap of the operator namespace (data and labels), as the admin reads
    them."""
    with cluster.admin() as admin:
        policy = admin.request("GET", path_of("ClusterPolicy", operator.POLICY))["spec"]
        maps = admin.request("GET", f"/api/v1/namespaces/{operator.NAMESPACE}/configmaps")["items"]
    return policy, {m["metadata"]["name"]: (m.get("data"), m["metadata"].get("labels"))
                    for m in maps if m["metadata"]["name"] != "kube-root-ca.crt"}


def _nonzero(cluster: LocalCluster, node: str) -> dict[str, int]:
    return {k: v for k, v in cluster.get_node(node).allocatable.items() if k.startswith("nvidia.com/") and v}


def test_newest_stack_generates_node_config_and_all_1g_10gb_gives_56(newest: LocalCluster) -> None:
    node = _node(newest)
    newest.wait_mig_manager_restarted(60)
    found = newest.read_config_map(f"{node}-mig-config")
    assert found is not None, "no <node>-mig-config"
    text, labels = found
    assert labels == {"app.kubernetes.io/component": "nvidia-mig-manager", "nvidia.com/node-name": node}
    assert text == G.node_file(G.generate([(g, g.primary_variant.pci_device_id) for g in _p5()]))
    effective = newest.node_mig_config(node)
    assert (effective.kind, effective.config_map) == (MC.GENERATED, f"{node}-mig-config")
    assert newest.policy_config_name() is None
    assert newest.request_mig_config(node, "all-1g.10gb")
    done = newest.wait_for_node(node, lambda n: n.labels.get(L.MIG_CONFIG_STATE) in ("success", "failed"), 60,
                                "all-1g.10gb")
    assert done.labels[L.MIG_CONFIG_STATE] == "success"
    assert _nonzero(newest, node) == {"nvidia.com/mig-1g.10gb": 56}
    newest.restore()
    assert newest.wait_settled([node], 60) == {node: "all-disabled: success"}


def _p5() -> list[Any]:
    from mig_conformance.gpus.instance_types import get_instance_type

    return get_instance_type("p5.48xlarge").gpus()


def _custom_run(cluster: LocalCluster, folder: Path) -> str:
    (folder / "user.yaml").write_text(USER)
    kubeconfig = kit_kubeconfig(cluster, folder / "kube" / "config")
    code, out = run_pytest(folder, kubeconfig, "--mig-allow-reconfigure", "--mig-config-file=user.yaml",
                           "-k", "test_custom_config", "-s", "--mig-timeout=90")
    assert code == 0, out[-5000:]
    assert "passed" in out and "failed" not in out.split("passed")[-1][:40], out[-3000:]
    return out


def test_custom_suite_sets_config_name_and_restores_exactly(newest: LocalCluster, tmp_path: Path) -> None:
    newest.wait_mig_manager_restarted(60)
    before = _snapshot(newest)
    assert "name" not in before[0]["migManager"]["config"]
    out = _custom_run(newest, tmp_path)
    assert f"custom config from ConfigMap {CUSTOM_CONFIG_MAP}" in out  # the suite says which file it used
    newest.wait_mig_manager_restarted(60)
    assert _snapshot(newest) == before  # ClusterPolicy and ConfigMaps exactly as they were


def test_custom_config_by_name_is_journaled_first(newest: LocalCluster) -> None:
    node = _node(newest)
    newest.wait_mig_manager_restarted(60)
    before = _snapshot(newest)
    assert newest.set_mig_config(USER) == CUSTOM_CONFIG_MAP
    assert [(c.kind, c.original) for c in newest.journal.changes] == [(ChangeKind.CONFIG_MAP, None),
                                                                      (ChangeKind.MIG_CONFIG_NAME, None)]
    newest.wait_mig_manager_restarted(60)
    assert newest.node_mig_config(node).kind == MC.CUSTOM
    newest.request_mig_config(node, "training")
    newest.wait_for_node(node, lambda n: n.labels.get(L.MIG_CONFIG_STATE) in ("success", "failed"), 60, "training")
    assert _nonzero(newest, node) == {"nvidia.com/mig-3g.40gb": 16}
    newest.restore()
    newest.wait_mig_manager_restarted(60)
    assert newest.wait_settled([node], 60) == {node: "all-disabled: success"}
    assert _snapshot(newest) == before


def test_operator_before_v26_3_uses_the_static_path(tmp_path_factory: pytest.TempPathFactory,
                                                    tmp_path: Path) -> None:
    cluster = _start(tmp_path_factory.mktemp("old"), OLD)
    try:
        node = _node(cluster)
        cluster.wait_mig_manager_restarted(60)
        assert cluster.policy_config_name() == CONFIG_MAP
        assert cluster.read_config_map(f"{node}-mig-config") is None
        effective = cluster.node_mig_config(node)
        assert (effective.kind, effective.config_map, effective.text) == (MC.STATIC, CONFIG_MAP,
                                                                         default_config_text())
        before = _snapshot(cluster)
        out = _custom_run(cluster, tmp_path)
        assert f"static config from ConfigMap {CONFIG_MAP}" in out  # today's path: the named map's text replaced
        assert _snapshot(cluster) == before
    finally:
        cluster.close()


def _mig_manager_pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": operator.NAMESPACE, "labels": {"app": "nvidia-mig-manager"}},
            "spec": {"nodeName": node, "containers": [{"name": "nvidia-mig-manager", "image": "busybox:1.36"}],
                     "tolerations": [{"operator": "Exists"}]}}


def test_a_config_name_change_waits_for_the_mig_manager_rollout(newest: LocalCluster) -> None:
    """On a real cluster the operator replaces the mig-manager pods when config.name changes: the kit waits until
    none of the pods from before is left and as many new ones are Ready (pods on kwok nodes stand in for them)."""
    from mig_conformance.cluster.base import WaitTimeout

    node = _node(newest)
    newest.wait_mig_manager_restarted(60)
    with newest.admin() as admin:
        pods = f"/api/v1/namespaces/{operator.NAMESPACE}/pods"

        def delete(name: str) -> None:
            with contextlib.suppress(RestError):
                admin.request("DELETE", f"{pods}/{name}", query={"gracePeriodSeconds": "0"})

        admin.request("POST", pods, _mig_manager_pod("nvidia-mig-manager-old", node))
        newest.wait_for_pod(operator.NAMESPACE, "nvidia-mig-manager-old", lambda p: p.phase == "Running", 30, "old")
        try:
            newest.set_mig_config(USER)
            with pytest.raises(WaitTimeout, match="1 of 1 old mig-manager pods left"):
                newest.wait_mig_manager_restarted(2)
            newest.set_mig_config(USER)  # the name is set already: no rollout to wait for
            newest._pods_before_rollout = {"old-uid": True}  # as recorded before the change
            delete("nvidia-mig-manager-old")
            admin.request("POST", pods, _mig_manager_pod("nvidia-mig-manager-new", node))
            newest.wait_mig_manager_restarted(60)
            assert newest.node_mig_config(node).kind == MC.CUSTOM
        finally:
            delete("nvidia-mig-manager-old")
            delete("nvidia-mig-manager-new")
            newest.restore()
            newest._pods_before_rollout = None
            newest.wait_mig_manager_restarted(60)
