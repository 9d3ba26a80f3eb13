"""The `kubeconfig` backend against a real API server (the local backend's control plane), connected as the kit's
least-privilege ServiceAccount through a context of a user's kubeconfig that must stay byte-identical."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mig_conformance.cluster.base import ChangeNotAllowed, ClusterError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.registry import open_cluster
from mig_conformance.cluster.targets import resolve_target
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets

FAKE_TOKEN = "decoy-token-7f3a9c1e5b2d4f6a8c0e"
HEADER = "# a user's kubeconfig: comments, key order and quoting must survive untouched\n"


def start_local(**kwargs):
    """LocalCluster.start, or a skip naming the missing binaries (a failure under CI)."""
    control_plane_assets()
    return LocalCluster.start("p5.48xlarge", **kwargs)


def user_kubeconfig(local, path: Path) -> Path:
    """A kubeconfig with the kit's context `kit` and a decoy context (current) holding a fake token."""
    kit = yaml.safe_load((local.state_dir / "mig-conformance.kubeconfig").read_text())
    cluster = kit["clusters"][0]["cluster"]
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "local", "cluster": cluster}],
           "users": [{"name": "kit", "user": kit["users"][0]["user"]},
                     {"name": "decoy", "user": {"token": FAKE_TOKEN}}],
           "contexts": [{"name": "kit", "context": {"cluster": "local", "user": "kit"}},
                        {"name": "decoy", "context": {"cluster": "local", "user": "decoy", "namespace": "x"}}],
           "current-context": "decoy"}
    path.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=True, width=200))
    path.chmod(0o600)
    return path


def digest(path: Path) -> tuple[str, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns


@pytest.fixture(scope="module")
def local() -> Iterator:
    cluster = start_local()
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def kubeconfig(local, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = user_kubeconfig(local, tmp_path_factory.mktemp("kube") / "config")
    before = digest(path)
    yield path
    assert digest(path) == before, "the user's kubeconfig was modified"


@pytest.fixture
def env_kubeconfig(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return kubeconfig


def test_open_a_context_from_kubeconfig_env(env_kubeconfig: Path, local) -> None:
    before = digest(env_kubeconfig)
    cluster = open_cluster("kubeconfig:kit")
    try:
        assert cluster.kind == "kubeconfig" and cluster.name == "kubeconfig:kit"
        assert [n.name for n in cluster.list_gpu_nodes()] == [n.name for n in local.list_gpu_nodes()]
        assert cluster.get_mig_strategy() == "mixed"
        info = cluster.describe()
        assert info["context"] == "kit" and info["kubeconfig"] == str(env_kubeconfig)
        assert info["nodes"][0]["instance_type"] == "p5.48xlarge"
        assert FAKE_TOKEN not in json.dumps(info, default=str)
    finally:
        cluster.close()
    assert digest(env_kubeconfig) == before


def test_the_chosen_context_is_used_not_the_current_one(env_kubeconfig: Path) -> None:
    decoy = open_cluster("kubeconfig:decoy")  # the fake token: the API server must refuse it
    try:
        with pytest.raises(ClusterError, match="rejected the credentials"):
            decoy.list_gpu_nodes()
    finally:
        decoy.close()
    kit = open_cluster("kubeconfig:kit")
    try:
        assert kit.list_gpu_nodes()
    finally:
        kit.close()


def test_clusters_file_entry_with_kubeconfig_path_and_namespace(kubeconfig: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back to
    (tmp_path / "kc").symlink_to(kubeconfig)
    clusters = tmp_path / "mig-clusters.yaml"
    clusters.write_text("staging:\n  backend: kubeconfig\n  context: kit\n  kubeconfig: kc\n"
                        "  namespace: gpu-operator\n  config_map: default-mig-parted-config\n")
    cluster = open_cluster(resolve_target("staging", clusters))
    try:
        name, text = cluster.get_mig_config()
        assert name == "default-mig-parted-config" and "version: v1" in text
        assert cluster.operator_namespace == "gpu-operator"
        assert cluster.facts["kubeconfig"] == str(tmp_path / "kc")
    finally:
        cluster.close()


def test_read_only_refuses_every_change(env_kubeconfig: Path, local) -> None:
    cluster = open_cluster("kubeconfig:kit")
    node = cluster.list_gpu_nodes()[0]
    strategy, (cm, text) = cluster.get_mig_strategy(), cluster.get_mig_config()
    try:
        assert cluster.allow_changes is False
        with pytest.raises(ChangeNotAllowed, match="read-only"):
            cluster.set_node_label(node.name, L.MIG_CONFIG, "all-1g.10gb")
        with pytest.raises(ChangeNotAllowed, match="--mig-allow-reconfigure"):
            cluster.set_mig_strategy("single")
        with pytest.raises(ChangeNotAllowed):
            cluster.set_mig_config("version: v1\nmig-configs: {}\n")
        assert cluster.journal.changes == []
        assert cluster.get_node(node.name).labels == node.labels
        assert (cluster.get_mig_strategy(), cluster.get_mig_config()) == (strategy, (cm, text))
    finally:
        cluster.close()


def test_allowed_changes_are_journaled_first_and_restored(env_kubeconfig: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json", "run-1", "kubeconfig:kit")
    cluster = open_cluster("kubeconfig:kit", allow_changes=True, journal=journal)
    node = cluster.list_gpu_nodes()[0].name
    try:
        cluster.set_node_label(node, "example.com/probe", "1")
        on_disk = json.loads((tmp_path / "journal.json").read_text())
        assert on_disk["changes"] == [{"kind": "node-label", "target": node, "key": "example.com/probe",
                                       "original": None}]
        assert cluster.get_node(node).labels["example.com/probe"] == "1"
        assert cluster.restore() == [f"node {node} label example.com/probe(removed)"]
        assert "example.com/probe" not in cluster.get_node(node).labels
        assert json.loads((tmp_path / "journal.json").read_text())["changes"] == []
    finally:
        cluster.close()


def test_unknown_context_names_the_contexts(env_kubeconfig: Path) -> None:
    with pytest.raises(ClusterError, match=r"no context 'prod' \(contexts there: kit, decoy\)"):
        open_cluster("kubeconfig:prod")


def test_missing_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ClusterError, match="no such file"):
        open_cluster("kubeconfig:kit")
    (tmp_path / "absent").write_text("- just a list\n")
    with pytest.raises(ClusterError, match="cannot read it"):
        open_cluster("kubeconfig:kit")


def test_read_only_run_skips_disruptive_suites_with_a_reason(tester: pytest.Pytester, env_kubeconfig: Path) -> None:
    before = digest(env_kubeconfig)
    result = tester.runpytest_subprocess("--mig-cluster=kubeconfig:kit", "-k", "catalog or reconfiguration",
                                         "--mig-report=out", "-rs", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    result.stdout.fnmatch_lines(["*mig-conformance mode: kubeconfig: read-only*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and outcomes.get("failed", 0) == 0, outcomes
    # both reconfiguration tests, skipped by the safety gate (not by anything else)
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *: changes the cluster kubeconfig:kit; run with "
                                 "--mig-allow-reconfigure to allow it*"])
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    assert summary["settings"]["mode"]["value"] == "read-only"
    assert not list((tester.path / "out").glob("journal*.json")) or all(
        json.loads(p.read_text())["changes"] == [] for p in (tester.path / "out").glob("journal*.json"))
    assert digest(env_kubeconfig) == before
