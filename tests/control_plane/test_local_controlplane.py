"""The local backend against a real control plane: kubectl and the official client, kwok GPU nodes, operator
objects, the kit's least-privilege identity, and teardown that leaves no process or port (also after a failed or
interrupted start). Skipped when the binaries are missing, unless CI=true (then that is a failure)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.local import kit_rbac, processes
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.cluster.local.controlplane import ControlPlane, port_listening
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.mig.default_config import default_config_text
from support.control_plane import control_plane_assets

ASSETS = control_plane_assets(module_level=True)
SPEC = "p5.48xlarge,p4d.24xlarge"
NAME = re.compile(r"^ip-10-0-\d+-\d+\.us-west-2\.compute\.internal$")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    cluster = LocalCluster.start(SPEC, state_dir=tmp_path_factory.mktemp("local"), assets=ASSETS)
    yield cluster
    cluster.close()


def kubectl(local: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ASSETS["kubectl"]), "--kubeconfig", str(local.admin_kubeconfig), *args],
                          capture_output=True, text=True, timeout=30, check=check)


def test_kubectl_and_the_official_client_see_the_same_nodes(local: LocalCluster) -> None:
    from kubernetes import client, config

    out = json.loads(kubectl(local, "get", "nodes", "-o", "json").stdout)
    by_kubectl = sorted(n["metadata"]["name"] for n in out["items"])
    api = config.new_client_from_config(config_file=str(local.admin_kubeconfig))
    try:
        by_client = sorted(n.metadata.name for n in client.CoreV1Api(api).list_node().items)
        version = client.VersionApi(api).get_code().git_version
    finally:
        api.close()
    assert by_kubectl == by_client and len(by_client) == 2
    assert version == local.plane.versions["kubernetes"] and version.startswith("v1.")


def test_nodes_are_eks_like_kwok_nodes_and_ready(local: LocalCluster) -> None:
    from kubernetes.utils import parse_quantity

    raw = {n["metadata"]["name"]: n for n in local.admin().list("Node")}
    types = set()
    for name, node in raw.items():
        labels = node["metadata"]["labels"]
        assert NAME.match(name), name
        assert labels["kubernetes.io/hostname"] == name
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["topology.kubernetes.io/zone"].startswith("us-west-2")
        itype = labels["node.kubernetes.io/instance-type"]
        types.add(itype)
        assert labels["eks.amazonaws.com/nodegroup"] == f"gpu-{itype.replace('.', '-')}"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        it = get_instance_type(itype)
        cap = node["status"]["capacity"]
        assert (cap["cpu"], parse_quantity(cap["memory"]), cap["pods"]) == (str(it.vcpus), it.memory_mib * 2**20, "110")
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
    assert types == {"p5.48xlarge", "p4d.24xlarge"}
    assert local.describe()["platform"] == "local"


def test_cluster_policy_json_patch_with_kubectl(local: LocalCluster) -> None:
    def patch(value: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        op = json.dumps([{"op": "replace", "path": "/spec/mig/strategy", "value": value}])
        return kubectl(local, "patch", "clusterpolicies.nvidia.com/cluster-policy", "--type=json", "-p", op,
                       check=check)

    assert local.get_mig_strategy() == "mixed"
    patch("single")
    assert local.get_mig_strategy() == "single"
    bad = patch("sideways", check=False)
    assert bad.returncode != 0 and "sideways" in bad.stderr
    patch("mixed")
    assert local.get_mig_strategy() == "mixed"


def test_config_map_is_the_shipped_default(local: LocalCluster) -> None:
    name, text = local.get_mig_config()
    assert name == "default-mig-parted-config"
    assert text == default_config_text()


def test_kit_identity_reads_and_reconfigures_but_cannot_delete_nodes(local: LocalCluster) -> None:
    user = local.api_client.configuration.api_key  # a bearer token, not the admin certificate
    assert user and not local.api_client.configuration.cert_file
    node = local.list_gpu_nodes()[0].name
    local.set_node_label(node, "example.com/probe", "1")
    assert local.get_node(node).labels["example.com/probe"] == "1"
    local.restore()
    assert "example.com/probe" not in local.get_node(node).labels
    with pytest.raises(ClusterError, match=r"access denied.*cannot delete resource \"nodes\""):
        local._call(local.core.delete_node, node)


def test_real_scheduler_binds_and_reports_insufficient(local: LocalCluster) -> None:
    from mig_conformance.k8s.model import PodRequest

    local.create_namespace("sched-probe", {})
    try:
        local.create_pod("sched-probe", PodRequest("fits", {"cpu": 1}))
        local.create_pod("sched-probe", PodRequest("too-big", {"nvidia.com/gpu": 1000}))
        running = local.wait_for_pod("sched-probe", "fits", lambda p: p.phase == "Running", 20, "pod running")
        assert running.node and NAME.match(running.node)
        pending = local.wait_for_pod("sched-probe", "too-big", lambda p: p.reason == "Unschedulable", 20,
                                     "pod unschedulable")
        assert pending.node is None and "Insufficient nvidia.com/gpu" in (pending.message or "")
    finally:
        local.delete_namespace("sched-probe")


def test_dropping_one_rule_of_deploy_rbac_denies_exactly_that(local: LocalCluster) -> None:
    """The plumbing of the least-privilege proof: re-apply deploy/rbac.yaml without one rule, see it denied."""
    rule = next(r for r in kit_rbac.rules() if r.role == kit_rbac.READ and "nodes" in r.rule.get("resources", []))
    assert rule.describe() == "ClusterRole mig-conformance-read: get,list,watch nodes"
    with local.admin() as admin:
        kit_rbac.apply(admin, kit_rbac.documents(without=rule))
        try:
            _wait_for(lambda: _denied(local), 5, "the RBAC change to take effect")
            with pytest.raises(ClusterError, match="access denied: the kit needs permission to list nodes"):
                local.list_gpu_nodes()
            assert local.get_mig_strategy() == "mixed"  # other rules still apply
        finally:
            kit_rbac.apply(admin, kit_rbac.documents())
    _wait_for(lambda: not _denied(local), 5, "the full RBAC to take effect")
    assert len(local.list_gpu_nodes()) == 2


def _denied(local: LocalCluster) -> bool:
    try:
        local.list_gpu_nodes()
    except ClusterError:
        return True
    return False


def test_kube_apiserver_restart_keeps_address_and_credentials(local: LocalCluster) -> None:
    """Plumbing for fault tests: restart() brings a component back on the same port; clients reconnect."""
    before = local.plane.procs["kube-apiserver"].pid
    local.plane.restart("kube-apiserver")
    assert local.plane.procs["kube-apiserver"].pid != before
    assert local.plane.health()["kube-apiserver"] == "ok"
    _wait_for(lambda: not _denied(local), 10, "the kit to reach the restarted API server")
    assert local.get_mig_strategy() == "mixed"


def _listening(ports: dict[str, int]) -> list[str]:
    return [f"{n}:{p}" for n, p in ports.items() if port_listening(p)]


def test_close_leaves_no_process_and_no_port(local: LocalCluster) -> None:
    """Runs last in this module: it stops the shared cluster."""
    procs = list(local.plane.procs.values())
    ports = dict(local.plane.ports)
    assert len(procs) >= 5 and all(processes.alive(p) for p in procs)
    assert _listening(ports)
    local.close()
    assert [p.name for p in procs if Path(f"/proc/{p.pid}").exists()] == []
    assert _listening(ports) == []
    assert not (local.state_dir / "etcd").exists()
    assert (local.state_dir / "logs" / "kube-apiserver.log").stat().st_size > 0


def test_failed_start_cleans_up(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path, ASSETS, extra_args={"kube-scheduler": ["--no-such-flag"]})
    with pytest.raises(ClusterError, match=r"(?s)kube-scheduler exited.*unknown flag: --no-such-flag"):
        plane.start()
    assert set(plane.procs) >= {"etcd", "kube-apiserver", "kube-scheduler"}
    assert [n for n, p in plane.procs.items() if processes.alive(p)] == []
    assert _listening(plane.ports) == []
    assert not (tmp_path / "etcd").exists()


def test_a_port_taken_meanwhile_is_retried_on_new_ports(tmp_path: Path, monkeypatch) -> None:
    """free_ports() cannot reserve ports: if one is taken before etcd binds it, start once more on new ones."""
    from mig_conformance.cluster.local import controlplane

    real = controlplane.free_ports
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    calls = []

    def ports(n: int) -> list[int]:
        calls.append(n)
        got = real(n)
        return [taken, *got[1:]] if len(calls) == 1 else got

    monkeypatch.setattr(controlplane, "free_ports", ports)
    plane = ControlPlane(tmp_path, ASSETS)
    try:
        plane.start()
        assert len(calls) == 2 and plane.ports["etcd"] != taken
        assert plane.health()["kube-apiserver"] == "ok"
    finally:
        plane.stop()
        squatter.close()
    assert "address already in use" in (tmp_path / "logs" / "etcd.log").read_text()


_STARTER = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C works also when the test run ignores SIGINT
    from pathlib import Path
    from mig_conformance.cluster.local.controlplane import ControlPlane
    ControlPlane(Path(sys.argv[1]), tie_to_parent=sys.argv[2] == "tie").start()
    print("READY", flush=True)
    import time; time.sleep(120)
""")


def _starter(state: Path, tie: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "MIG_K8S_ASSETS": str(ASSETS["kube-apiserver"].parent)}
    return subprocess.Popen([sys.executable, "-c", _STARTER, str(state), "tie" if tie else "free"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _recorded(state: Path) -> list[processes.Managed]:
    return processes.load(state / "processes.json")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_start_cleans_up(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM) while the API server is starting: every process started so far is stopped."""
    proc = _starter(tmp_path, tie=False)  # not tied to the parent: cleanup must come from the start itself
    try:
        _wait_for(lambda: any(p.name == "kube-apiserver" for p in _recorded(tmp_path)), 30, "kube-apiserver")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "READY" not in out
    recorded = _recorded(tmp_path)
    assert {p.name for p in recorded} >= {"etcd", "kube-apiserver"}
    assert [p.name for p in recorded if processes.alive(p)] == [], err
    ports = json.loads((tmp_path / "controlplane.json").read_text())["ports"]
    assert _listening(ports) == []


def test_killed_owner_takes_its_processes_along(tmp_path: Path) -> None:
    """SIGKILL leaves no time for cleanup: the kernel stops the children of a tied plane (PR_SET_PDEATHSIG)."""
    proc = _starter(tmp_path, tie=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        recorded = _recorded(tmp_path)
        assert all(processes.alive(p) for p in recorded) and len(recorded) == 5
        proc.kill()
        proc.wait(timeout=10)
        _wait_for(lambda: not any(processes.alive(p) for p in recorded), 10, "children to die")
    finally:
        proc.kill()
        processes.stop(_recorded(tmp_path), grace=1)
