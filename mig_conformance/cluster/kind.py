"""The `kind` backend (extra `mig-conformance[kind]`): a kind cluster on the user's Docker, with the simulated
GPU Operator agents attached to its worker nodes. See docs/kind.md.

`kind` and `kubectl` come from the clusters file (`kind_bin`, `kubectl_bin`) or PATH; nothing is downloaded. The
kubeconfig kind writes goes to a private temporary folder, never to the user's kubeconfig. A cluster the kit
created is deleted at the end unless `keep: true`; an existing cluster of the same name is reused and never deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.cluster.targets import check_backend_options
from mig_conformance.common.errors import InputError, Location, Problem
from mig_conformance.common.private_files import write_private
from mig_conformance.common.yaml_source import load_yaml_file
from mig_conformance.k8s import labels as L

log = logging.getLogger("mig_conformance.cluster")

DEFAULT_NAME = "mig-conformance"
DEFAULT_NODES = "p5.48xlarge"
WAIT = "180s"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
Runner = Callable[..., subprocess.CompletedProcess[str]]


class KindUnavailable(ClusterError):
    """kind, kubectl or a container engine is missing; the message names what and how to provide it."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the kind and kubectl binaries."""

    kind: str
    kubectl: str


def _which(name: str, given: str | None, path: str | None) -> str | None:
    if given:
        return given if os.path.isfile(given) and os.access(given, os.X_OK) else shutil.which(given, path=path)
    return shutil.which(name, path=path)


def find_tools(kind_bin: str | None = None, kubectl_bin: str | None = None, path: str | None = None) -> Tools:
    """kind and kubectl from the options or PATH; KindUnavailable names every missing binary."""
    found = {"kind": _which("kind", kind_bin, path), "kubectl": _which("kubectl", kubectl_bin, path)}
    given = {"kind": kind_bin, "kubectl": kubectl_bin}
    missing = []
    for name, at in found.items():
        if at is None:
            where = (f"'{given[name]}' (the clusters file's {name}_bin) is not an executable" if given[name]
                     else f"'{name}' is not on PATH")
            missing.append(f"{name}: {where}")
    if missing:
        raise KindUnavailable("kind backend: " + "; ".join(missing) + ". Install kind and kubectl (the kit never "
                              "downloads them) or set kind_bin/kubectl_bin in the clusters file; see docs/kind.md")
    return Tools(str(found["kind"]), str(found["kubectl"]))


def unavailable_reason(kind_bin: str | None = None, kubectl_bin: str | None = None, path: str | None = None,
                       runner: Runner = subprocess.run) -> str | None:
    """Why the kind backend cannot run here (missing binary, no container engine), or None when it can."""
    try:
        find_tools(kind_bin, kubectl_bin, path)
    except KindUnavailable as exc:
        return str(exc)
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker")
    engine = shutil.which(provider, path=path)
    if engine is None:
        return f"kind backend: the container engine '{provider}' is not on PATH (kind runs nodes as containers)"
    try:
        done = runner([engine, "info"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"kind backend: '{provider} info' failed: {exc}"
    if done.returncode != 0:
        last = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return f"kind backend: '{provider} info' failed (is the {provider} engine running?): {last[0]}"
    return None


# ---- command lines ------------------------------------------------------------------------------------------
def get_clusters_argv(tools: Tools) -> list[str]:
    return [tools.kind, "get", "clusters"]


def create_argv(tools: Tools, name: str, kubeconfig: str, config: str | None = None, image: str | None = None,
                wait: str = WAIT) -> list[str]:
    """`kind create cluster`, writing its kubeconfig to the kit's own file."""
    argv = [tools.kind, "create", "cluster", "--name", name, "--kubeconfig", kubeconfig]
    if config:
        argv += ["--config", config]
    if image:
        argv += ["--image", image]
    return [*argv, "--wait", wait]


def get_kubeconfig_argv(tools: Tools, name: str) -> list[str]:
    """Prints the kubeconfig of an existing cluster (reuse), without writing any file."""
    return [tools.kind, "get", "kubeconfig", "--name", name]


def delete_argv(tools: Tools, name: str, kubeconfig: str) -> list[str]:
    return [tools.kind, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig]


def wait_nodes_argv(tools: Tools, kubeconfig: str, timeout: str = WAIT) -> list[str]:
    return [tools.kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Ready", "nodes", "--all",
            f"--timeout={timeout}"]


# ---- GPU nodes ------------------------------------------------------------------------------------------
def gpu_labels(instance_type: str) -> dict[str, str]:
    """What a GPU node of `instance_type` carries before the GPU Operator runs (the agents add the rest)."""
    return {L.INSTANCE_TYPE: instance_type, L.GPU_PRESENT: "true"}


def assign_instance_types(nodes: Sequence[Mapping[str, Any]], fleet: str | None) -> dict[str, str]:
    """Worker node name -> instance type: from `fleet` (`p5.48xlarge*2,g5.xlarge`, in worker-name order), else from
    the instance-type labels the kind config already gave them, else one p5.48xlarge on the first worker."""
    from mig_conformance.cluster.sim.fleet import parse_fleet, refuse_flavours
    from mig_conformance.gpus.instance_types import load_instance_types

    workers = sorted(n["metadata"]["name"] for n in nodes
                     if CONTROL_PLANE_ROLE not in (n["metadata"].get("labels") or {}))
    labelled = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(L.INSTANCE_TYPE) for n in nodes}
    known = load_instance_types()
    if not fleet:
        preset = {name: t for name, t in labelled.items() if t in known and name in workers}
        if preset:
            return preset
        fleet = DEFAULT_NODES
    specs = parse_fleet(fleet)
    refuse_flavours(specs, "kind")
    untyped = [s.name for s in specs if s.instance_type is None]
    if untyped:
        raise ClusterError(f"kind nodes '{fleet}': only EC2 instance types can be used on kind (not GPU lists)")
    if not workers:
        raise ClusterError("the kind cluster has no worker nodes: add one `- role: worker` per GPU node to the kind "
                           "config (see docs/kind.md)")
    if len(specs) > len(workers):
        raise ClusterError(f"kind nodes '{fleet}' names {len(specs)} GPU nodes but the cluster has {len(workers)} "
                           f"worker(s) ({', '.join(workers)}); add workers to the kind config")
    return {w: str(s.instance_type) for w, s in zip(workers, specs, strict=False)}


#: On the GPU workers the kit set up: this kind cluster is a mig-conformance lab (reusing it changes nothing new).
LAB_LABEL = "mig-conformance/kind-lab"


def label_gpu_nodes(core: Any, assignment: Mapping[str, str]) -> None:
    """Patch each node with its instance type, `nvidia.com/gpu.present=true` and the lab marker."""
    for node, instance_type in sorted(assignment.items()):
        core.patch_node(node, {"metadata": {"labels": {**gpu_labels(instance_type), LAB_LABEL: "true"}}})


def is_lab(raw_nodes: list[Any]) -> bool:
    """A cluster the kit set up before (a kept lab): some node carries the lab marker."""
    return any(LAB_LABEL in ((n.get("metadata") or {}).get("labels") or {}) for n in raw_nodes)


def create_object(api_client: Any, obj: Mapping[str, Any], exist_ok: bool = True) -> None:
    """Create one of the GPU Operator's objects with the typed APIs of the official client (409 ignored)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    ns = obj["metadata"].get("namespace")
    body: Any = obj  # the client takes a plain mapping where its types name a model (V1Namespace, ...)
    create: dict[str, Callable[[], Any]] = {
        "Namespace": lambda: core.create_namespace(body),
        "ConfigMap": lambda: core.create_namespaced_config_map(ns, body),
        "ServiceAccount": lambda: core.create_namespaced_service_account(ns, body),
        "ClusterRole": lambda: rbac.create_cluster_role(body),
        "ClusterRoleBinding": lambda: rbac.create_cluster_role_binding(body),
        "Role": lambda: rbac.create_namespaced_role(ns, body),
        "RoleBinding": lambda: rbac.create_namespaced_role_binding(ns, body),
        "CustomResourceDefinition": lambda: client.ApiextensionsV1Api(api_client).create_custom_resource_definition(
            body),
        "ClusterPolicy": lambda: client.CustomObjectsApi(api_client).create_cluster_custom_object(
            "nvidia.com", "v1", "clusterpolicies", body),
    }
    try:
        create[obj["kind"]]()
    except ApiException as exc:
        if not (exist_ok and exc.status == 409):
            raise


def install_operator(api_client: Any, namespace: str, timeout: float = 60.0) -> bool:
    """Create the GPU Operator objects the agents and suites read (the local backend's installer's objects),
    unless a ClusterPolicy exists already. Returns whether anything was installed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from mig_conformance.cluster.local import operator

    try:
        try:
            if cast(dict[str, Any], client.CustomObjectsApi(api_client).list_cluster_custom_object(  # typed `object`
                    "nvidia.com", "v1", "clusterpolicies")).get("items"):
                return False
        except ApiException as exc:
            if exc.status != 404:  # 404: the CRD is not installed yet
                raise
        for obj in operator.objects(ns=namespace):
            create_object(api_client, obj)
        deadline = time.monotonic() + timeout
        while True:
            try:
                create_object(api_client, operator.cluster_policy())
                return True
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() >= deadline:  # 404: the CRD is not served yet
                    raise
                time.sleep(0.2)
    except ApiException as exc:
        raise ClusterError(f"installing the GPU Operator objects failed: {exc.status} {exc.reason}") from None


class AgentsProcess:
    """The simulated GPU Operator agents (`python -m mig_conformance.simulators.agents`) as a child process."""

    def __init__(self, kubeconfig: Path, folder: Path, namespace: str = "gpu-operator",
                 extra: Sequence[str] = (), python: str = sys.executable) -> None:
        self.kubeconfig = kubeconfig
        self.folder = folder
        self.namespace = namespace
        self.extra = list(extra)
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.folder / "agents.log"

    @property
    def ready_file(self) -> Path:
        return self.folder / "ready"

    def argv(self) -> list[str]:
        return [self.python, "-m", "mig_conformance.simulators.agents", "--kubeconfig", str(self.kubeconfig),
                "--namespace", self.namespace, "--state-dir", str(self.folder / "state"), "--log",
                str(self.log_file), "--ready-file", str(self.ready_file), *self.extra]

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until every GPU node has been reconciled once; ClusterError with the log's tail."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        with open(self.folder / "agents.stderr", "wb") as err:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            code = self.proc.poll()
            if code is not None or time.monotonic() >= deadline:
                self.stop()
                what = f"exited {code}" if code is not None else f"not ready after {timeout:.0f}s"
                raise ClusterError(f"simulated GPU Operator agents {what}: {self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 5) -> str:
        text = ""
        for f in (self.folder / "agents.stderr", self.log_file):
            if f.is_file():
                text += f.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:]) or "no output"

    def stop(self, grace: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- running kind ---------------------------------------------------------------------------------------
class Kind:
    """Runs kind/kubectl commands; `runner` is subprocess.run (tests pass a recorder)."""

    def __init__(self, tools: Tools, runner: Runner = subprocess.run) -> None:
        self.tools = tools
        self.runner = runner

    def run(self, argv: list[str], timeout: float = 600.0) -> str:
        log.info("running %s", " ".join(argv))
        try:
            done = self.runner(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"`{' '.join(argv)}` failed: {exc}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
            raise ClusterError(f"`{' '.join(argv)}` exited {done.returncode}: {tail}")
        return done.stdout or ""

    def clusters(self) -> list[str]:
        return [line.strip() for line in self.run(get_clusters_argv(self.tools)).splitlines() if line.strip()]

    def create(self, name: str, kubeconfig: str, config: str | None, image: str | None) -> None:
        self.run(create_argv(self.tools, name, kubeconfig, config, image))

    def write_kubeconfig(self, name: str, path: Path) -> None:
        write_private(path, self.run(get_kubeconfig_argv(self.tools, name)))

    def wait_nodes(self, kubeconfig: str) -> None:
        self.run(wait_nodes_argv(self.tools, kubeconfig))

    def delete(self, name: str, kubeconfig: str) -> None:
        self.run(delete_argv(self.tools, name, kubeconfig))


def kubeconfig_context(path: Path) -> str:
    """The current context of a kubeconfig kind wrote (`kind-NAME`)."""
    doc = yaml.safe_load(path.read_text()) or {}
    return str(doc.get("current-context") or "")


def _client(path: Path) -> Any:
    from kubernetes.config import new_client_from_config

    return new_client_from_config(config_file=str(path), context=kubeconfig_context(path) or None,
                                  persist_config=False)


class KindCluster(KubeCluster):
    """A kind cluster with simulated GPU nodes; owns the temporary folder, the agents and (maybe) the cluster."""

    kind = "kind"

    def __init__(self, name: str, api_client: Any, *, cluster_name: str, kind: Kind, workdir: Path,
                 created: bool, keep: bool, agents: AgentsProcess | None = None, **kwargs: Any) -> None:
        super().__init__(name, api_client, **kwargs)
        self.cluster_name = cluster_name
        self.kind_runner = kind
        self.workdir = workdir
        self.created = created
        self.keep = keep
        self.agents = agents

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @classmethod
    def open(cls, name: str, cluster_name: str = DEFAULT_NAME, *, config: str | None = None, keep: bool = False,
             kind_bin: str | None = None, kubectl_bin: str | None = None, nodes: str | None = None,
             image: str | None = None, attach_only: bool = False, agents: bool = True,
             allow_changes: bool = False, journal: Journal | None = None, config_map: str | None = None,
             operator_namespace: str | None = None, pod_image: str | None = None,
             runner: Runner = subprocess.run) -> KindCluster:
        """Create (or reuse) the kind cluster, install the operator objects, label GPU nodes, start the agents.

        `attach_only` (used by `mig-conformance restore`) reuses an existing cluster and changes nothing else."""
        kind = Kind(find_tools(kind_bin, kubectl_bin), runner)
        workdir = Path(tempfile.mkdtemp(prefix=f"mig-kind-{cluster_name}-"))
        kubeconfig = workdir / "kubeconfig"
        created = False
        try:
            if cluster_name in kind.clusters():
                kind.write_kubeconfig(cluster_name, kubeconfig)
            elif attach_only:
                raise ClusterError(f"kind cluster '{cluster_name}' does not exist (kind get clusters)")
            else:
                kind.create(cluster_name, str(kubeconfig), config, image)
                created = True
            kind.wait_nodes(str(kubeconfig))
            api_client = _client(kubeconfig)
            ns = operator_namespace or "gpu-operator"
            cluster = cls(name, api_client, cluster_name=cluster_name, kind=kind, workdir=workdir, created=created,
                          keep=keep, allow_changes=allow_changes, journal=journal, operator_namespace=ns,
                          config_map=config_map, pod_image=pod_image,
                          facts={"kind_cluster": cluster_name, "kind": kind.tools.kind})
        except BaseException:
            _discard(kind, cluster_name, kubeconfig, workdir, delete=created and not keep)
            raise
        if not attach_only:
            try:
                cluster.attach(nodes, agents)
            except BaseException:
                cluster.close()
                raise
        return cluster

    def attach(self, nodes: str | None, agents: bool = True) -> None:
        """Install the GPU Operator objects, label the GPU workers and start the simulated agents. A cluster the kit
        did not create and never set up (no lab marker) is someone else's: that needs --mig-allow-reconfigure."""
        raw = self.api_client.sanitize_for_serialization(self._call(self.core.list_node).items)
        if not (self.created or is_lab(raw) or self.allow_changes):
            raise ClusterError(f"kind cluster '{self.cluster_name}' exists and was not set up by mig-conformance: "
                               "using it would install GPU Operator objects and label its nodes; pass "
                               "--mig-allow-reconfigure to allow that, or name another cluster")
        install_operator(self.api_client, self.operator_namespace)
        label_gpu_nodes(self.core, assign_instance_types(raw, nodes))
        if agents:
            self.agents = AgentsProcess(self.kubeconfig, self.workdir / "agents", namespace=self.operator_namespace)
            self.agents.start()

    def close(self) -> None:
        if self.agents is not None:
            self.agents.stop()
            self.agents = None
        super().close()
        if self.workdir.exists():  # once: a second close() deletes nothing
            _discard(self.kind_runner, self.cluster_name, self.kubeconfig, self.workdir,
                     delete=self.created and not self.keep)


def _discard(kind: Kind, cluster_name: str, kubeconfig: Path, workdir: Path, delete: bool) -> None:
    try:
        if delete:
            kind.delete(cluster_name, str(kubeconfig))
    except ClusterError as exc:
        log.error("could not delete kind cluster %s: %s", cluster_name, exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_kind_config(path: str) -> None:
    """The clusters file's kind `config`, read through the kit's bounds before kind sees it: a file that is not
    YAML, too large, too deep or an alias bomb is an InputError naming file and line, not a hung `kind create`."""
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise InputError(Problem("a kind config must be a mapping (kind: Cluster, apiVersion: kind.x-k8s.io/...)",
                                 Location(path, doc.line())))


def open_kind(name: str, arg: str, allow_changes: bool, options: Mapping[str, Any]) -> KindCluster:
    """Registry entry point: `kind[:NAME]` or a clusters-file entry."""
    check_backend_options("kind", options)
    opts = dict(options)
    if opts.get("config"):
        check_kind_config(str(opts["config"]))
    cluster_name = opts.pop("name", None) or arg or DEFAULT_NAME
    return KindCluster.open(name, cluster_name, allow_changes=allow_changes, **opts)


