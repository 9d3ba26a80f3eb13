"""Safety, in process: the journal is on disk before each change reaches the cluster, restore tries everything and
keeps what failed, signals during a restore, the cleanup lines; `mig-conformance restore` input handling. The runs
interrupted on a real control plane: tests/control_plane/test_safety.py."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mig_conformance.cluster.base import ClusterError, RestoreIncomplete, TransientError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.common.run import RUN_LABEL
from mig_conformance.k8s import stack as stack_mod
from mig_conformance.plugin.signals import DeferSignals
from mig_conformance.report.records import CleanupOutcome, Settled


# ---- journal and restore, in process (sim backend) -------------------------------------------------------------
def test_journal_is_on_disk_before_each_change_reaches_the_cluster(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    static = stack_mod.resolve([({"gpu_operator": "v25.10.1"}, "test")])  # the config by name: below
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(path, "r1", "sim"), stack=static)
    node = cluster.list_gpu_nodes()[0].name
    seen: list[list[dict[str, Any]]] = []
    for name in ("_write_node_label", "_write_mig_strategy", "_write_mig_config"):
        real = getattr(cluster, name)

        def spy(*args: Any, _real: Callable = real) -> None:
            seen.append(json.loads(path.read_text())["changes"])
            _real(*args)
        setattr(cluster, name, spy)
    cluster.set_node_label(node, "example.com/a", "1")
    cluster.set_mig_strategy("single")
    cluster.set_mig_config(cluster.get_mig_config()[1] + "\n# changed\n")
    assert [len(s) for s in seen] == [1, 2, 3]
    assert [c["kind"] for c in seen[-1]] == ["node-label", "mig-strategy", "mig-config"]
    assert seen[0][0] == {"kind": "node-label", "target": node, "key": "example.com/a", "original": None}
    assert not list(tmp_path.glob(".*.tmp")), "temporary journal file left behind"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_journal_is_on_disk_before_a_config_name_change(tmp_path: Path) -> None:
    """GPU Operator v26.3.0+: the custom ConfigMap's absence and the unset config name are on disk before either
    is written."""
    path = tmp_path / "journal.json"
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(path, "r1", "sim"))
    seen: list[list[str]] = []
    for name in ("_write_config_map", "_write_policy_config_name"):
        real = getattr(cluster, name)

        def spy(*args: Any, _real: Callable = real) -> None:
            seen.append([c["kind"] for c in json.loads(path.read_text())["changes"]])
            _real(*args)
        setattr(cluster, name, spy)
    cluster.set_mig_config(cluster.get_mig_config()[1])
    assert seen == [["config-map", "mig-config-name"]] * 2
    assert json.loads(path.read_text())["changes"][0] == {"kind": "config-map", "target": "mig-conformance-config",
                                                         "key": None, "original": None}


def test_a_journal_that_cannot_be_written_stops_the_change(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(blocker / "journal.json"))
    node = cluster.list_gpu_nodes()[0]
    with pytest.raises(OSError):
        cluster.set_node_label(node.name, "example.com/a", "1")
    assert "example.com/a" not in cluster.get_node(node.name).labels
    assert cluster.journal.changes == []


def test_restore_tries_everything_and_keeps_what_failed(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(path))
    node = cluster.list_gpu_nodes()[0].name
    cluster.set_node_label(node, "example.com/a", "1")
    cluster.set_mig_strategy("single")
    cluster.set_node_label(node, "example.com/b", "2")

    def broken(strategy: str) -> None:
        raise ClusterError("access denied: the kit needs permission to patch clusterpolicies.nvidia.com")
    cluster._write_mig_strategy = broken  # type: ignore[method-assign]
    with pytest.raises(RestoreIncomplete) as err:
        cluster.restore()
    assert err.value.restored == [f"node {node} label example.com/b(removed)",
                                  f"node {node} label example.com/a(removed)"]
    assert err.value.failures == ["ClusterPolicy MIG strategy=mixed: access denied: the kit needs permission to "
                                  "patch clusterpolicies.nvidia.com"]
    labels = cluster.get_node(node).labels
    assert "example.com/a" not in labels and "example.com/b" not in labels
    left = json.loads(path.read_text())["changes"]
    assert left == [{"kind": "mig-strategy", "target": "cluster-policy", "key": None, "original": "mixed"}]


def test_a_restore_in_the_middle_of_a_run_keeps_the_run_namespace(tmp_path: Path) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(tmp_path / "journal.json"))
    node = cluster.list_gpu_nodes()[0].name
    cluster.create_run_namespace("mig-conformance-abc", {RUN_LABEL: "r1"})
    cluster.set_node_label(node, "example.com/a", "1")
    assert cluster.restore() == [f"node {node} label example.com/a(removed)"]
    assert [c.kind for c in cluster.journal.changes] == ["namespace"]
    assert cluster.list_pods("mig-conformance-abc") == []  # still there: a suite may go on creating pods
    cluster.create_namespace("other", {})
    assert cluster.restore(namespaces=True) == ["namespace mig-conformance-abc (deleted)"]
    assert cluster.journal.changes == []
    cluster.create_run_namespace("mig-conformance-abc", {RUN_LABEL: "r1"})  # gone: can be created again


@pytest.mark.parametrize(("error", "journaled"), [
    (ClusterError("forbidden: cannot create namespaces"), False),  # the API server said no
    (TransientError("timed out reading the response"), True),  # it may exist: restore deletes it (or finds none)
    (KeyboardInterrupt(), True),
])
def test_a_namespace_whose_create_may_have_gone_through_stays_journaled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, journaled: bool) -> None:
    cluster = SimCluster("p5.48xlarge", allow_changes=True, journal=Journal(tmp_path / "journal.json"))

    def fail(name: str, labels: dict) -> None:
        raise error

    monkeypatch.setattr(cluster, "create_namespace", fail)
    with pytest.raises(type(error)):
        cluster.create_run_namespace("mig-conformance-abc", {RUN_LABEL: "r1"})
    assert [c.target for c in cluster.journal.changes] == (["mig-conformance-abc"] if journaled else [])
    monkeypatch.undo()
    assert cluster.restore(namespaces=True) == (["namespace mig-conformance-abc (deleted)"] if journaled else [])
    assert cluster.journal.changes == []


def test_a_second_signal_during_restore_aborts_it_the_first_only_warns(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="during restore"), DeferSignals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        pytest.fail("the second signal did not interrupt")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_cleanup_lines_report_failures_and_leaks() -> None:
    lines = CleanupOutcome(restored=["node n label a(removed)"], restore_failures=["x: denied"],
                           restore_command="mig-conformance restore out/journal.json",
                           leaks=["pod default/p (Running)"]).lines()
    assert lines == ["restored 1 change(s)\n  node n label a(removed)", "NOT RESTORED: x: denied",
                     "restore later with: mig-conformance restore out/journal.json",
                     "LEAK: pod default/p (Running) is still present"]
    assert CleanupOutcome(restored=[]).lines()[-1] == "leak check: nothing of this run is left"
    assert CleanupOutcome(restore_failures=["x"]).failed and CleanupOutcome(leaks=["pod a/b"]).failed
    assert not CleanupOutcome(restored=["y"], settled={"n": Settled("a: success", problem=False)}).failed


def test_cleanup_lines_say_what_mig_manager_brought_back() -> None:
    settled = {"n1": Settled("all-disabled: success", problem=False),
               "n2": Settled("all-disabled: failed", problem=True)}
    lines = CleanupOutcome(restored=[], settled=settled).lines()
    assert "mig-manager re-applied node n1: all-disabled: success" in lines
    assert ("NOT SETTLED: node n2: mig-manager did not bring back the original config: all-disabled: failed"
            in lines)
    assert CleanupOutcome(settled=settled).failed


# ---- `mig-conformance restore` input handling -------------------------------------------------------------------
def test_restore_of_an_unreachable_cluster_keeps_the_journal(tmp_path: Path, capsys) -> None:
    from mig_conformance.cli import main

    path = tmp_path / "journal.json"
    j = Journal(path, "r1", "kubeconfig:gone", {"name": "kubeconfig:gone", "kind": "kubeconfig", "arg": "gone",
                                                 "options": {"context": "gone", "kubeconfig": str(tmp_path / "kc")}})
    j.record("mig-strategy", "cluster-policy", None, "mixed")
    assert main(["restore", str(path)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert len(Journal.load(path).changes) == 1


def test_restore_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.cli import main

    assert main(["restore", str(tmp_path / "absent.json")]) == 2
    assert "no such journal file or folder" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["restore", str(bad)]) == 2
    assert "not a journal" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["restore", str(tmp_path / "empty")]) == 2
    assert "no *journal*.json in this folder" in capsys.readouterr().err


def test_restore_of_a_sim_journal_has_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.cli import main

    path = tmp_path / "journal.json"
    j = Journal(path, "r1", "sim", {"name": "sim", "kind": "sim", "arg": "", "options": {}})
    j.record("mig-strategy", "cluster-policy", None, "mixed")
    assert main(["restore", str(path)]) == 0
    assert "a sim cluster lived only as long as its run" in capsys.readouterr().out
    assert main(["restore", "--dry-run", str(path)]) == 0
    assert "would restore ClusterPolicy MIG strategy=mixed" in capsys.readouterr().out


def test_restore_options_for_an_eks_journal_reach_the_eks_backend(tmp_path: Path) -> None:
    import argparse

    from mig_conformance.cli.restore import target_of
    from mig_conformance.cluster.targets import backend_options

    j = Journal(tmp_path / "journal.json", "r1", "eks-prod",
                {"name": "eks-prod", "kind": "eks", "arg": "prod-gpu@us-west-2",
                 "options": {"cluster": "prod-gpu", "region": "us-west-2", "profile": "gpu-admin"}})
    args = argparse.Namespace(cluster=None, clusters_file=None, kubeconfig=str(tmp_path / "kc"), context="admin")
    target = target_of(j, args)
    assert target.kind == "eks" and target.options["kubeconfig_context"] == "admin"
    assert target.options["kubeconfig"] == str(tmp_path / "kc") and "context" not in target.options
    assert set(target.options) <= backend_options("eks")
