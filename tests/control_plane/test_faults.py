"""Faults during a run, against a real local control plane, the kit run as users run it: pytest subprocesses with a
user's test file on `--mig-cluster=kubeconfig:kit` (the kit's least-privilege ServiceAccount) and
`--mig-allow-reconfigure`.

* kube-apiserver restarted while the kit waits for mig-manager: the kit reconnects and the test passes.
* the mig-manager agent killed while a config is pending: the state stays pending, the test fails at its deadline with
  a diagnosis naming the node and the state, and the cleanup still restores the label (and reports that mig-manager
  did not re-apply it).
* a node deleted while the kit waits on it: the test fails with a message saying so (no traceback), the cleanup
  restores the other node and reports the deleted one.
* a pod that never schedules: wait_unschedulable returns the scheduler's reason, wait_bound fails at its deadline
  naming the pod and that reason, and the pod is deleted.

The wait logic behind these (retry after an outage, the diagnosis of a stuck or deleted node) is also checked in
process on the sim backend, without a control plane (tests/unit/test_faults_sim.py).

Every control-plane test ends with the same check: no pod or namespace of the run left, no process of the run left,
node labels as before the run (after the fault is repaired: agents restarted, node registered again).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mig_conformance.cluster.local import nodes as local_nodes
from mig_conformance.cluster.local import processes
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets
from support.kit_runs import (
    assert_left_nothing,
    kit_kubeconfig,
    node_labels,
    output,
    settled_labels,
    start_pytest,
)

SPEC = "p5.48xlarge*2"
#: How long mig-manager's `pending` lasts: a window to inject a fault while the kit waits.
MIG_MANAGER_DELAY = 3.0
RUN_WAIT_S = 180
NO_TRACEBACK = ("Traceback (most recent call last)", "INTERNALERROR")

RECONFIGURE_TEST = '''
from mig_conformance.k8s import labels as L


def test_all_balanced(mig_nodes, mig_reconfigure, mig_expect):
    node = mig_nodes[0]
    expected = mig_expect(node, "all-balanced")
    done = mig_reconfigure(node, "all-balanced")
    assert done.labels[L.MIG_CONFIG_STATE] == "success"
    got = {k: v for k, v in done.allocatable.items() if k.startswith("nvidia.com/") and v}
    assert got == {k: v for k, v in expected.allocatable.items() if v}
'''

TWO_NODES_TEST = '''
from mig_conformance.k8s import labels as L


def test_both_nodes(mig_nodes, mig_reconfigure):
    kept, doomed = mig_nodes
    assert mig_reconfigure(kept, "all-1g.10gb").labels[L.MIG_CONFIG_STATE] == "success"
    mig_reconfigure(doomed, "all-balanced")
'''

UNSCHEDULABLE_TEST = '''
def test_the_scheduler_says_why(mig_nodes, mig_pods):
    pod = mig_pods.create({"nvidia.com/mig-7g.80gb": 1}, node=mig_nodes[0].name)
    status = mig_pods.wait_unschedulable(pod)
    assert not status.bound and status.reason == "Unschedulable"
    assert "Insufficient nvidia.com/mig-7g.80gb" in status.message


def test_wait_bound_gives_up_at_its_deadline(mig_nodes, mig_pods):
    pod = mig_pods.create({"nvidia.com/mig-7g.80gb": 1}, node=mig_nodes[0].name)
    mig_pods.wait_bound(pod)
'''


# ---- against a real control plane -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster.start(SPEC, state_dir=tmp_path_factory.mktemp("local"), assets=control_plane_assets(),
                                 mig_manager_delay=MIG_MANAGER_DELAY)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def kubeconfig(local: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kit_kubeconfig(local, tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def before(local: LocalCluster) -> dict[str, dict[str, str]]:
    """Every GPU node's labels before the run, once mig-manager has a verdict everywhere."""
    labels = settled_labels(local)
    assert len(labels) == 2 and all(v.get(L.MIG_CONFIG_STATE) == "success" for v in labels.values()), labels
    assert local.plane.health() == dict.fromkeys(local.plane.procs, "ok") | {"agents": "running"}
    return labels


def _run(folder: Path, kubeconfig: Path, test: str, *args: str) -> subprocess.Popen[bytes]:
    (folder / "test_user.py").write_text(test)
    return start_pytest(folder, kubeconfig, "--mig-allow-reconfigure", *args, "test_user.py")


def _await_pending(local: LocalCluster, node: str, config: str, proc: subprocess.Popen[bytes], folder: Path) -> None:
    """Return once the run has asked for `config` on `node` and mig-manager reports `pending` (the kit waits)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        labels = node_labels(local).get(node, {})
        if labels.get(L.MIG_CONFIG) == config and labels.get(L.MIG_CONFIG_STATE) == "pending":
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run never waited for {config} on {node}:\n{output(folder)[-3000:]}")


def _finish(proc: subprocess.Popen[bytes], folder: Path) -> tuple[int, str]:
    try:
        code = proc.wait(RUN_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"the run did not end:\n{output(folder)[-3000:]}")
    out = output(folder)
    for text in NO_TRACEBACK:
        assert text not in out, out[-4000:]
    return code, out


def test_kube_apiserver_restarted_during_a_wait_the_kit_reconnects_and_finishes(
        local: LocalCluster, kubeconfig: Path, tmp_path: Path, before: dict[str, dict[str, str]]) -> None:
    node = sorted(before)[0]
    proc = _run(tmp_path, kubeconfig, RECONFIGURE_TEST, "--mig-timeout=90", "-o", "log_cli=true",
                "--log-cli-level=WARNING")
    _await_pending(local, node, "all-balanced", proc, tmp_path)
    old = local.plane.procs["kube-apiserver"]
    local.plane.restart("kube-apiserver")  # same port, same certificates; the old process is gone
    assert not processes.alive(old) and local.plane.procs["kube-apiserver"].pid != old.pid
    code, out = _finish(proc, tmp_path)
    assert code == 0, out[-4000:]
    # the wait saw the API server go away, retried, and finished once it was back
    assert "cannot reach the API server" in out and "(retrying)" in out, out[-4000:]
    assert "1 passed" in out and "leak check: nothing of this run is left" in out
    assert f"mig-manager re-applied node {node}: {before[node][L.MIG_CONFIG]}: success" in out
    assert_left_nothing(local, tmp_path, before, pgid=proc.pid)


def test_mig_manager_killed_the_test_fails_at_its_deadline_naming_node_and_state_and_cleanup_runs(
        local: LocalCluster, kubeconfig: Path, tmp_path: Path, before: dict[str, dict[str, str]]) -> None:
    node = sorted(before)[0]
    original = before[node][L.MIG_CONFIG]
    proc = _run(tmp_path, kubeconfig, RECONFIGURE_TEST, "--mig-timeout=8")
    _await_pending(local, node, "all-balanced", proc, tmp_path)
    agents = local.plane.procs["agents"]
    os.killpg(agents.pid, signal.SIGKILL)  # no chance to write anything more
    try:
        code, out = _finish(proc, tmp_path)
        assert code == 1, out[-4000:]
        # the diagnosis: the node, what was awaited, the state it stayed in, and that it did not move
        assert (f"WaitTimeout: timed out after 8s waiting for node {node} to apply MIG config all-balanced; "
                f"last state: node {node} mig.config=all-balanced state=pending (unchanged for the last ") in out, \
            out[-4000:]
        assert "1 failed" in out
        # the cleanup still ran: the label is put back; that mig-manager did not re-apply it is reported
        assert f"restored 1 change(s)\n  node {node} label {L.MIG_CONFIG}={original} (mig-manager re-applies it)" \
            in out, out[-4000:]
        assert (f"NOT SETTLED: node {node}: mig-manager did not bring back the original config: not settled: "
                f"timed out after 8s waiting for mig-manager to re-apply on {node}") in out
        assert "leak check: nothing of this run is left" in out
        labels = node_labels(local)[node]
        assert labels[L.MIG_CONFIG] == original and L.MIG_CONFIG_STATE not in labels  # restored; no verdict yet
    finally:
        local.start_agents()  # repair the fault: mig-manager comes back and re-applies the restored config
    assert_left_nothing(local, tmp_path, before, pgid=proc.pid)


def test_a_node_deleted_mid_run_is_reported_and_the_rest_restored(
        local: LocalCluster, kubeconfig: Path, tmp_path: Path, before: dict[str, dict[str, str]]) -> None:
    kept, doomed = sorted(before)
    proc = _run(tmp_path, kubeconfig, TWO_NODES_TEST, "--mig-timeout=60")
    _await_pending(local, doomed, "all-balanced", proc, tmp_path)
    with local.admin() as admin:
        admin.delete("Node", doomed, missing_ok=False)
    try:
        code, out = _finish(proc, tmp_path)
        assert code == 1, out[-4000:]
        assert (f"Missing: kubeconfig:kit: node {doomed} is gone: it was deleted while the kit waited for node "
                f"{doomed} to apply MIG config all-balanced; last state seen: node {doomed} mig.config=all-balanced "
                "state=") in out, out[-4000:]
        # what could be restored was: the other node is back on its config, mig-manager re-applied it
        assert f"mig-manager re-applied node {kept}: {before[kept][L.MIG_CONFIG]}: success" in out, out[-4000:]
        # the rest is reported: the deleted node's change could not be put back
        assert f"node {doomed} label {L.MIG_CONFIG}={before[doomed][L.MIG_CONFIG]} (mig-manager re-applies it) " \
               f"(gone: kubeconfig:kit: not found while trying to get nodes" in out
        assert f"NOT SETTLED: node {doomed}: mig-manager did not bring back the original config: not settled: the " \
               "node was deleted during the run" in out
        assert "leak check: nothing of this run is left" in out
        assert node_labels(local)[kept] == before[kept]
    finally:  # repair the fault: the node registers again (as a replacement instance would) and is set up afresh
        body = next(n for n in local_nodes.plan(SPEC) if n.name == doomed)
        with local.admin() as admin:
            local_nodes.register(admin, [body])
            local_nodes.wait_ready(admin, [doomed], 60)
    assert_left_nothing(local, tmp_path, before, pgid=proc.pid)


def test_a_pod_that_never_schedules(local: LocalCluster, kubeconfig: Path, tmp_path: Path,
                                    before: dict[str, dict[str, str]]) -> None:
    # --mig-timeout also bounds the end-of-run wait for the run namespace to terminate, which takes ~5 s here
    proc = _run(tmp_path, kubeconfig, UNSCHEDULABLE_TEST, "--mig-timeout=12", "-v")
    code, out = _finish(proc, tmp_path)
    assert code == 1, out[-4000:]
    assert "test_user.py::test_the_scheduler_says_why PASSED" in out, out[-4000:]
    assert "test_user.py::test_wait_bound_gives_up_at_its_deadline FAILED" in out
    waited = [line for line in out.splitlines() if "WaitTimeout: timed out after 12s waiting for pod mig-" in line]
    assert waited, out[-4000:]
    assert " to be bound; last state: pod mig-conformance-" in waited[0]
    assert "Pending node=- Unschedulable 0/2 nodes are available:" in waited[0], waited[0]
    assert "Insufficient nvidia.com/mig-7g.80gb" in waited[0] and "(unchanged for the last " in waited[0]
    # the fixture deleted both pods, the session the namespace
    assert "leak check: nothing of this run is left" in out
    assert_left_nothing(local, tmp_path, before, pgid=proc.pid)
