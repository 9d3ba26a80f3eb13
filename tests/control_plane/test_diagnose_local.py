"""The diagnose findings against a real API server (local backend: etcd, kube-apiserver, controller-manager,
scheduler, kwok nodes, the simulated GPU Operator agents).

* A healthy fleet of every MIG-capable instance type (plus the fault fleet's nodes), reconfigured by the agents,
  reports nothing.
* With the agents stopped, all 13 faults of cluster/diagnose_faults.py are written through the API server the way
  the components leave them (node labels under mig-manager's field manager, node status, ConfigMaps, the
  ClusterPolicy, an event, a DRA ResourceSlice); `diagnose` then reports each exactly once, on its node.
* Read-only, proven: the diagnosis runs as a ServiceAccount bound only to deploy/rbac-diagnose.yaml (get, list,
  watch), through the kubeconfig backend as a user runs it, both the reader and `mig-conformance diagnose`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mig_conformance.cli import main
from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster.kubeconfig import KubeconfigCluster
from mig_conformance.cluster.local import faults, kubeconfig, operator
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.diagnose.run import diagnose
from mig_conformance.diagnose.snapshot import read_snapshot
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets

pytestmark = [pytest.mark.control_plane, pytest.mark.slow]

FLEET = F.FLEET + ",p4de.24xlarge,p5.4xlarge,p5e.48xlarge"  # the fault nodes and every MIG-capable instance type
SA = "mig-diagnose"
USER = f"system:serviceaccount:{operator.NAMESPACE}:{SA}"
CONTEXT = f"{USER}@{kubeconfig.CLUSTER}"
RBAC_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rbac-diagnose.yaml"


def _rbac(ns: str) -> list[dict[str, Any]]:
    """deploy/rbac-diagnose.yaml bound to this test's ServiceAccount (and nothing else)."""
    docs = [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]
    for doc in docs:
        if "subjects" in doc:
            doc["subjects"] = [{"kind": "ServiceAccount", "name": SA, "namespace": ns}]
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": ns}}, *docs]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    control_plane_assets()
    cluster = LocalCluster.start(FLEET, state_dir=tmp_path_factory.mktemp("diagnose"))
    try:
        names = [n.name for n in cluster.list_gpu_nodes()]
        cluster.wait_settled(names, 120)  # the operator's default label, applied by the agents' mig-manager
        with cluster.admin() as admin:
            admin.create_all(_rbac(operator.NAMESPACE))
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def reader_kubeconfig(local: LocalCluster) -> Path:
    assert local.plane.pki is not None
    with local.admin() as admin:
        token = admin.token_for(operator.NAMESPACE, SA, 3600)
    return kubeconfig.write(local.state_dir / "diagnose.kubeconfig", kubeconfig.build(
        local.plane.server, local.plane.pki.ca.cert, USER, token=token))


def _reader(path: Path) -> KubeconfigCluster:
    deadline = time.monotonic() + 10  # a new binding reaches the RBAC cache within a moment
    while True:
        cluster = KubeconfigCluster.open("diagnose", CONTEXT, str(path))
        try:
            cluster.list_objects("Event")
            return cluster
        except Exception:
            cluster.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _inject(local: LocalCluster, plan: dict[str, str]) -> None:
    """Every fault of `plan` written through the API server (cluster/local/faults.py, as the clusters file's
    diagnose_faults does), with the agents stopped first so that nothing repairs the objects meanwhile."""
    local.stop_agents()
    with local.admin() as admin:
        faults.inject(admin, plan)


def test_a_healthy_fleet_of_every_mig_capable_instance_type_reports_nothing(local: LocalCluster,
                                                                            reader_kubeconfig: Path) -> None:
    reader = _reader(reader_kubeconfig)
    try:
        snapshot = read_snapshot(reader)
    finally:
        reader.close()
    types = {n["metadata"]["labels"].get(L.INSTANCE_TYPE) for n in snapshot.nodes}
    assert {"p4d.24xlarge", "p4de.24xlarge", "p5.4xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge",
            "p6-b200.48xlarge"} <= types
    assert all(n["metadata"]["labels"].get(L.MIG_CONFIG_STATE) == "success" for n in snapshot.nodes)
    assert diagnose(snapshot) == []


def test_all_13_faults_are_reported_once_each_on_their_nodes_read_only(local: LocalCluster, reader_kubeconfig: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    plan = F.assign(local.list_objects("Node"))
    assert len(plan) == 13
    _inject(local, plan)
    time.sleep(2.0)  # the wedged node's pending state is older than the threshold below
    reader = _reader(reader_kubeconfig)
    try:
        snapshot = read_snapshot(reader)
    finally:
        reader.close()
    assert snapshot.problems == ()  # every kind was read, ResourceSlices and events included
    findings = diagnose(snapshot, pending_threshold_s=1.0)
    assert sorted((f.node, f.id) for f in findings) == sorted((n, F.FAULTS[f][0]) for n, f in plan.items())

    # the command a user runs, as the same read-only identity through the kubeconfig backend
    code = main(["diagnose", "--cluster", f"kubeconfig:{CONTEXT}", "--kubeconfig", str(reader_kubeconfig),
                 "--pending-threshold", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1, doc
    assert sorted((f["node"], f["id"]) for f in doc["findings"]) == sorted((f.node, f.id) for f in findings)


def test_the_reader_identity_cannot_write(local: LocalCluster, reader_kubeconfig: Path) -> None:
    """The proof's premise: deploy/rbac-diagnose.yaml grants no write (a label patch is denied)."""
    reader = _reader(reader_kubeconfig)
    node = reader.list_gpu_nodes()[0].name
    reader.allow_changes = True
    try:
        with pytest.raises(Exception, match="access denied"):
            reader.set_node_label(node, "mig-conformance.io/probe", "x")
    finally:
        reader.close()


def test_the_clusters_file_key_injects_every_fault_and_the_kits_own_rbac_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`diagnose_faults: all` on a local target, diagnosed by the command as the kit's ServiceAccount bound to
    deploy/rbac.yaml: ConfigMaps are read by name (get), ResourceSlices through the DRA read rule, so every finding is
    reported; DaemonSets and Events stay unread (named in the output, with the role that grants them)."""
    control_plane_assets()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIG_CLUSTER", raising=False)
    (tmp_path / "mig-clusters.yaml").write_text(f"faulty:\n  backend: local\n  nodes: \"{F.FLEET}\"\n"
                                                "  diagnose_faults: all\n")
    code = main(["diagnose", "--cluster", "faulty", "--json", "--pending-threshold", "0"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1, doc
    assert sorted(f["id"] for f in doc["findings"]) == sorted(fid for fid, _ in F.FAULTS.values())
    assert [u.split(":")[0] for u in doc["unread"]] == ["DaemonSet", "Event"]
    assert all("deploy/rbac-diagnose.yaml" in u for u in doc["unread"])


def test_the_reader_pages_through_long_lists(local: LocalCluster, reader_kubeconfig: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A list longer than a page comes back whole (the `continue` token followed), with GET requests only."""
    from mig_conformance.cluster import objects

    monkeypatch.setattr(objects, "PAGE", 3)
    reader = _reader(reader_kubeconfig)
    try:
        names = [n["metadata"]["name"] for n in reader.list_objects("Node")]
        assert reader.get_object("ConfigMap", "no-such-map") is None
    finally:
        reader.close()
    with local.admin() as admin:
        assert names == [n["metadata"]["name"] for n in admin.list("Node")] and len(names) > 3 * 4
