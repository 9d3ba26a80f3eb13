"""Safety on real clusters: journal before every change, restore on SIGINT/SIGTERM/failure and after SIGKILL with
`mig-conformance restore`, the run namespace deleted and leaks reported, no secret in any bundle.

The interrupted runs are pytest subprocesses on the kubeconfig backend attached to one local control plane
(real kube-apiserver, simulated GPU Operator agents), connected as the kit's least-privilege ServiceAccount. The
journal and restore in process (sim backend) and the `mig-conformance restore` input handling:
tests/unit/test_safety_journal.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mig_conformance.cluster.base import ChangeNotAllowed
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.common.run import RUN_LABEL
from mig_conformance.k8s import labels as L
from support.control_plane import control_plane_assets
from support.kit_runs import start_pytest

FAKE_TOKEN = "decoy-token-5e1d7c3b9a0f2e4d6c8b"
FAKE_AWS_SECRET = "fakeAwsSecret/9Q2w3E4r5T6y7U8i9O0p"
FAKE_ENV_TOKEN = "env-token-1a2b3c4d5e6f7a8b9c0d"
MIG_MANAGER_DELAY = 2.0  # long enough to interrupt a reconfiguration wait reliably
NEW_CONFIG = "all-1g.10gb"


# ---- the local control plane shared by the subprocess runs ---------------------------------------------------------
@pytest.fixture(scope="module")
def local() -> Iterator[Any]:
    control_plane_assets()
    cluster = LocalCluster.start("p5.48xlarge", mig_manager_delay=MIG_MANAGER_DELAY)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def kubeconfig(local: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's kubeconfig: context `kit` (the kit's ServiceAccount token) and a decoy user with a fake token."""
    kit = yaml.safe_load((local.state_dir / "mig-conformance.kubeconfig").read_text())
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "local", "cluster": kit["clusters"][0]["cluster"]}],
           "users": [{"name": "kit", "user": kit["users"][0]["user"]},
                     {"name": "decoy", "user": {"token": FAKE_TOKEN}}],
           "contexts": [{"name": "kit", "context": {"cluster": "local", "user": "kit"}},
                        {"name": "decoy", "context": {"cluster": "local", "user": "decoy"}}],
           "current-context": "decoy"}
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sa_token(kubeconfig: Path) -> str:
    return yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]


def _state(local: Any) -> dict[str, Any]:
    node = local.list_gpu_nodes()[0]
    return {"name": node.name, "labels": dict(node.labels), "strategy": local.get_mig_strategy(),
            "config": local.get_mig_config()}


def _settled(local: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The cluster's state once mig-manager reports success (it re-applies a restored config)."""
    deadline = time.monotonic() + timeout
    while True:
        state = _state(local)
        if state["labels"].get(L.MIG_CONFIG_STATE) == "success" or time.monotonic() >= deadline:
            return state
        time.sleep(0.2)


def _eventually(fn: Callable[[], Any], want: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want or time.monotonic() >= deadline:
            return got
        time.sleep(0.2)


def _run_namespaces(local: Any, run_id: str | None = None) -> list[str]:
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    with local.admin() as admin:
        return [ns["metadata"]["name"] for ns in admin.list("Namespace", labelSelector=selector)]


INTERRUPTED_TEST = f'''
def test_reconfigure_everything(mig_cluster, mig_nodes, mig_reconfigure, mig_pods):
    node = mig_nodes[0]
    name, text = mig_cluster.get_mig_config()
    mig_cluster.set_mig_config(text + "\\n# changed by the kit's safety test\\n")
    mig_pods.create({{"cpu": 1}}, node=node.name)
    mig_reconfigure(node, "{NEW_CONFIG}", "single")
'''


def _start_interrupted_run(local: Any, kubeconfig: Path, folder: Path) -> tuple[subprocess.Popen, list[dict]]:
    """Start the run and return once its reconfiguration wait is in progress (with the journal read then)."""
    (folder / "test_interrupt.py").write_text(INTERRUPTED_TEST)
    proc = start_pytest(folder, kubeconfig, "--mig-allow-reconfigure", "--mig-timeout=120", "test_interrupt.py")
    node = local.list_gpu_nodes()[0].name
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        labels = local.get_node(node).labels
        if labels.get(L.MIG_CONFIG) == NEW_CONFIG and labels.get(L.MIG_CONFIG_STATE) != "success":
            return proc, json.loads((folder / "out" / "journal.json").read_text())["changes"]
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run never reached its reconfiguration wait:\n{(folder / 'output.txt').read_text()[-3000:]}")


def _assert_restored(local: Any, original: dict[str, Any], run_id: str) -> None:
    assert _run_namespaces(local, run_id) == [], "the run namespace is left"
    assert local.get_mig_strategy() == original["strategy"]
    assert local.get_mig_config() == original["config"]
    labels = _eventually(lambda: _state(local)["labels"], original["labels"])
    assert labels == original["labels"]


@pytest.mark.parametrize("sigs", [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-then-SIGTERM"])
def test_a_signal_during_a_reconfiguration_wait_restores_everything(local: Any, kubeconfig: Path, tmp_path: Path,
                                                                    sigs: tuple[signal.Signals, ...]) -> None:
    original = _settled(local)
    assert original["strategy"] == "mixed" and original["labels"][L.MIG_CONFIG] != NEW_CONFIG
    proc, journal = _start_interrupted_run(local, kubeconfig, tmp_path)
    # the journal held every original value before the cluster showed the change; on the newest stack (GPU Operator
    # v26.3.0+) a custom config is a ConfigMap of the kit's that spec.migManager.config.name points at
    assert [c["kind"] for c in journal] == ["config-map", "mig-config-name", "namespace", "mig-strategy",
                                            "mig-config-label"]
    assert journal[0]["original"] is None and journal[1]["original"] is None
    assert journal[3]["original"] == "mixed" and journal[4]["original"] == original["labels"][L.MIG_CONFIG]
    assert journal[4]["original_state"] == "success"
    for sig in sigs:  # a second signal (impatient user, a supervisor's SIGTERM) must not skip the restore
        proc.send_signal(sig)
        time.sleep(0.2)
    assert proc.wait(120) == 2  # pytest's "interrupted"
    output = (tmp_path / "output.txt").read_text()
    if len(sigs) > 1:
        assert "restoring the cluster's original settings, please wait" in output
    assert "mig-conformance mode: kubeconfig: RECONFIGURE allowed (every change is journaled to" in output
    assert "restored 5 change(s)" in output and "leak check: nothing of this run is left" in output, output[-3000:]
    assert f"mig-manager re-applied node {original['name']}: {original['labels'][L.MIG_CONFIG]}: success" in output
    assert "NOT RESTORED" not in output and "LEAK:" not in output
    bundle = tmp_path / "out"
    assert json.loads((bundle / "journal.json").read_text())["changes"] == []
    cleanup = json.loads((bundle / "evidence" / "cleanup.json").read_text())
    assert len(cleanup["restored"]) == 5 and cleanup["leaks"] == [] and cleanup["mode"] == "reconfigure"
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["exitstatus"] == 2 and summary["settings"]["mode"]["value"] == "reconfigure"
    _assert_restored(local, original, summary["run_id"])


def test_restore_command_after_a_killed_run(local: Any, kubeconfig: Path, tmp_path: Path) -> None:
    original = _settled(local)
    proc, _ = _start_interrupted_run(local, kubeconfig, tmp_path)
    proc.kill()
    proc.wait(30)
    journal_file = tmp_path / "out" / "journal.json"
    journal = json.loads(journal_file.read_text())
    assert len(journal["changes"]) == 5
    assert journal["target"]["options"]["kubeconfig"] == str(kubeconfig)
    assert local.get_mig_strategy() == "single", "the killed run had not changed the cluster"
    assert _run_namespaces(local, journal["run_id"]) != []

    def restore(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MIG_CLUSTER")}
        return subprocess.run([sys.executable, "-m", "mig_conformance", "restore", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120)

    dry = restore("--dry-run", str(journal_file))
    assert dry.returncode == 0 and "would restore ClusterPolicy MIG strategy=mixed" in dry.stdout
    assert json.loads(journal_file.read_text())["changes"] == journal["changes"]
    done = restore(str(journal_file))
    assert done.returncode == 0, done.stdout + done.stderr
    node = local.list_gpu_nodes()[0].name
    for line in (f"restored node {node} label {L.MIG_CONFIG}={original['labels'][L.MIG_CONFIG]} "
                 "(mig-manager re-applies it)", f"mig-manager on {node}: {original['labels'][L.MIG_CONFIG]}: success",
                 "restored ClusterPolicy MIG strategy=mixed", "restored ClusterPolicy spec.migManager.config.name "
                 "(removed)", "restored ConfigMap mig-conformance-config (deleted)",
                 f"restored namespace mig-conformance-{journal['run_id'].split('-')[-1]} (deleted)"):
        assert line in done.stdout, done.stdout
    assert json.loads(journal_file.read_text())["changes"] == []
    _eventually(lambda: _run_namespaces(local, journal["run_id"]), [])
    _assert_restored(local, original, journal["run_id"])
    again = restore(str(tmp_path / "out"))  # a report folder works too; nothing is left
    assert again.returncode == 0 and f"{journal_file}: nothing to restore" in again.stdout


FAILING_TEST = '''
def test_fails_after_changing(mig_cluster, mig_nodes):
    mig_cluster.set_mig_strategy("single")
    mig_cluster.set_node_label(mig_nodes[0].name, "example.com/probe", "1")
    assert False, "deliberate failure"
'''


def test_a_failing_test_still_restores(local: Any, kubeconfig: Path, tmp_path: Path) -> None:
    original = _settled(local)
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    proc = start_pytest(tmp_path, kubeconfig, "--mig-allow-reconfigure", "test_failing.py")
    assert proc.wait(120) == 1
    output = (tmp_path / "output.txt").read_text()
    assert "deliberate failure" in output and "restored 2 change(s)" in output, output[-3000:]
    assert local.get_mig_strategy() == "mixed"
    assert "example.com/probe" not in local.list_gpu_nodes()[0].labels
    assert _settled(local)["labels"] == original["labels"]


# ---- a complete run: leaks are reported, no secret reaches the bundle or the terminal ------------------------------
LEAKY_TEST = '''
from mig_conformance.k8s.model import PodRequest
from mig_conformance.plugin.hooks import session_key


def test_leaves_a_pod_behind(request, mig_cluster):
    run_id = request.config.stash[session_key].run_id
    mig_cluster.create_pod("default", PodRequest("leaky", {"cpu": 1}, labels={"mig-conformance/run": run_id}))
'''


@pytest.fixture(scope="module")
def full_run(local: Any, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("full")
    (folder / "test_leaky.py").write_text(LEAKY_TEST)
    from mig_conformance.plugin.hooks import suites_dir

    suites = str(suites_dir())
    proc = start_pytest(folder, kubeconfig, "--mig-allow-reconfigure", "--mig-timeout=12", "-o", "junit_logging=all",
                   "--log-level=DEBUG", "-k", "catalog or label_change or leaves", suites, "test_leaky.py",
                   env={"AWS_SECRET_ACCESS_KEY": FAKE_AWS_SECRET, "MIG_TEST_TOKEN": FAKE_ENV_TOKEN,
                        "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKEFAKE"})
    proc.wait(300)
    output = (folder / "output.txt").read_text()
    yield folder, output
    with local.admin() as admin:
        admin.request("DELETE", "/api/v1/namespaces/default/pods/leaky")


def test_a_complete_run_passes_and_reports_the_leak(full_run: tuple[Path, str]) -> None:
    folder, output = full_run
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["totals"]["failed"] == 0 and summary["totals"]["passed"] >= 3, output[-3000:]
    assert "LEAK: pod default/leaky" in output
    cleanup = json.loads((folder / "out" / "evidence" / "cleanup.json").read_text())
    assert [x for x in cleanup["leaks"] if x.startswith("pod default/leaky ")], cleanup
    assert not [x for x in cleanup["leaks"] if x.startswith("namespace ")], "the run namespace was not deleted"


def test_no_secret_in_the_bundle_or_the_output(full_run: tuple[Path, str], sa_token: str) -> None:
    folder, output = full_run
    files = [p for p in (folder / "out").rglob("*") if p.is_file()]
    names = {p.relative_to(folder / "out").as_posix() for p in files}
    assert {"summary.json", "junit.xml", "report.md", "report.html", "TARGET.yaml", "journal.json",
            "evidence/cleanup.json"} <= names, names
    junit = (folder / "out" / "junit.xml").read_text()
    assert "test_leaves_a_pod_behind" in junit and "DEBUG" in junit  # junit holds the captured debug logs
    secrets = {"fake kubeconfig token": FAKE_TOKEN, "ServiceAccount token": sa_token,
               "AWS secret": FAKE_AWS_SECRET, "env token": FAKE_ENV_TOKEN, "AWS key id": "AKIAFAKEFAKEFAKEFAKE"}
    for path in files:
        data = path.read_bytes()
        for what, secret in secrets.items():
            assert secret.encode() not in data, f"{what} found in {path}"
    for what, secret in secrets.items():
        assert secret not in output, f"{what} printed on the terminal"


def test_read_only_runs_cannot_change_anything(local: Any, kubeconfig: Path, monkeypatch) -> None:
    from mig_conformance.cluster.registry import open_cluster

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cluster = open_cluster("kubeconfig:kit")
    try:
        node = cluster.list_gpu_nodes()[0].name
        for change in (lambda: cluster.set_mig_strategy("single"), lambda: cluster.set_mig_config("x"),
                       lambda: cluster.set_node_label(node, "example.com/a", "1"),
                       lambda: cluster.request_mig_config(node, "all-balanced"),
                       lambda: cluster.create_run_namespace("mig-conformance-ro", {RUN_LABEL: "r"})):
            with pytest.raises(ChangeNotAllowed, match="read-only"):
                change()
        assert cluster.journal.changes == []
    finally:
        cluster.close()
