"""A Cluster over a real Kubernetes API server (official Python client): the base of local, kind, kubeconfig, eks."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from mig_conformance.cluster import objects
from mig_conformance.cluster.base import Cluster, ClusterError, Missing, TransientError, append_new
from mig_conformance.cluster.journal import Journal
from mig_conformance.common.run import RUN_LABEL
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.model import GpuNode, PodRequest, PodStatus, Taint
from mig_conformance.k8s.stack import StackProfile

log = logging.getLogger("mig_conformance.cluster")
#: how long a closing label watch may take to deliver the value a read of the node already showed
CATCH_UP_S = 5.0

CLUSTER_POLICY = ("nvidia.com", "v1", "clusterpolicies")
DEFAULT_CONFIG_MAP = "default-mig-parted-config"
DEFAULT_OPERATOR_NAMESPACE = "gpu-operator"
DEFAULT_POD_IMAGE = "busybox:1.36"
#: set by the local backend's simulated mig-manager when it starts (simulators/agents/mig_manager.py)
MIG_MANAGER_ANNOTATION = "mig-conformance.io/mig-manager-config"
#: the operator's mig-manager DaemonSet pods (NVIDIA/gpu-operator assets/state-mig-manager/0600_daemonset.yaml
#: @a22dbf67); the operator rolls them out again when spec.migManager.config.name changes (CONFIG_FILE and the
#: mounted ConfigMap are in their template: controllers/object_controls.go @a22dbf67, L2070-2091)
MIG_MANAGER_PODS = "app=nvidia-mig-manager"

# What each call needs, for access-denied messages (matches deploy/rbac.yaml).
PERMISSIONS = {
    "list_node": "list nodes", "read_node": "get nodes", "patch_node": "patch nodes",
    "get_cluster_custom_object": "get clusterpolicies.nvidia.com",
    "list_cluster_custom_object": "list clusterpolicies.nvidia.com",
    "patch_cluster_custom_object": "patch clusterpolicies.nvidia.com",
    "read_namespaced_config_map": "get configmaps",
    "patch_namespaced_config_map": "patch configmaps", "create_namespace": "create namespaces",
    "create_namespaced_config_map": "create configmaps", "delete_namespaced_config_map": "delete configmaps",
    "delete_namespace": "delete namespaces", "create_namespaced_pod": "create pods",
    "read_namespaced_pod": "get pods", "delete_namespaced_pod": "delete pods", "list_namespaced_pod": "list pods",
    "get_code": "get /version", "list_namespace": "list namespaces", "read_namespace": "get namespaces",
    "list_pod_for_all_namespaces": "list pods in all namespaces",
    "list_namespaced_deployment": "list deployments", "watch_node": "watch nodes",
    "list_resource_slice": "list resourceslices.resource.k8s.io",
    "list_device_class": "list deviceclasses.resource.k8s.io",
    "create_namespaced_resource_claim": "create resourceclaims.resource.k8s.io",
    "create_namespaced_resource_claim_template": "create resourceclaimtemplates.resource.k8s.io",
    "read_namespaced_resource_claim": "get resourceclaims.resource.k8s.io",
    "list_namespaced_resource_claim": "list resourceclaims.resource.k8s.io",
}


def _quantity(value: Any) -> int | None:
    """Integer value of a Kubernetes quantity ('8', '1Gi', '96'); None when it is not whole."""
    try:
        from kubernetes.utils import parse_quantity

        q = Decimal(parse_quantity(value))
    except Exception:
        return None
    return int(q) if q == q.to_integral_value() else None


class KubeCluster(Cluster):
    """Cluster backed by a kubernetes.client.ApiClient."""

    kind = "kubeconfig"

    def __init__(self, name: str, api_client: Any, allow_changes: bool = False, journal: Journal | None = None,
                 operator_namespace: str | None = None, config_map: str | None = None,
                 pod_image: str | None = None, facts: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, allow_changes, journal)
        from kubernetes import client

        self._client = client
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.operator_namespace = operator_namespace or DEFAULT_OPERATOR_NAMESPACE
        self._config_map = config_map
        self.pod_image = pod_image or DEFAULT_POD_IMAGE
        self.facts = dict(facts or {})
        #: unknown until `detect_stack` reads it (a real cluster's versions are never assumed)
        self.stack = stack_profile.resolve(simulated=False)
        self._pods_before_rollout: dict[str, bool] | None = None  # mig-manager pods before a config-name change

    def detect_stack(self, layers: Sequence[tuple[Mapping[str, str], str]] = ()) -> StackProfile:
        """Read the cluster's GPU stack (cluster/stack_detect.py; reads only), with `layers` (chosen versions) over
        what was found; kept as `self.stack`."""
        from mig_conformance.cluster.stack_detect import detect_profile

        self.stack = detect_profile(self, list(layers))
        return self.stack

    # ---- error translation ------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        name = getattr(fn, "__name__", str(fn))
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise self._api_error(exc, name) from None
        except (HTTPError, OSError) as exc:
            raise TransientError(f"{self.name}: cannot reach the API server ({type(exc).__name__}: {exc})") from None

    def _api_error(self, exc: Any, call: str) -> ClusterError:
        status = getattr(exc, "status", 0)
        reason = _message(exc)
        need = PERMISSIONS.get(call, call)
        if status == 401:
            return ClusterError(f"{self.name}: the API server rejected the credentials (expired or invalid token): "
                                f"{reason}")
        if status == 403:
            return ClusterError(f"{self.name}: access denied: the kit needs permission to {need} "
                                f"(see deploy/rbac.yaml): {reason}")
        if status == 404:
            return NotFound(f"{self.name}: not found while trying to {need}: {reason}")
        if status == 409:
            return Conflict(f"{self.name}: conflict while trying to {need}: {reason}")
        if status in (0, 500, 502, 503, 504, 429):
            return TransientError(f"{self.name}: API server error {status} while trying to {need}: {reason}")
        return ClusterError(f"{self.name}: API error {status} while trying to {need}: {reason}")

    # ---- reading ------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Facts for TARGET.yaml. `versions` uses the canonical names of report.target.VERSION_KEYS: Kubernetes
        (/version), the NVIDIA driver the nodes run (GFD's `nvidia.com/cuda.driver*` labels; several are joined),
        the GPU Operator (the ClusterPolicy's Helm chart label, else the operator Deployment's image tag) and its
        components (the ClusterPolicy's `spec.<component>.version`, what the operator deploys)."""
        info: dict[str, Any] = {"backend": self.kind, "cluster": self.name, **self.facts}
        versions: dict[str, Any] = {}
        try:
            v = self._call(self._client.VersionApi(self.api_client).get_code)
            info["kubernetes_version"] = versions["kubernetes"] = v.git_version
        except ClusterError as exc:
            info["kubernetes_version_error"] = str(exc)
        try:
            policy = self._cluster_policy()
            spec = policy.get("spec", {})
            info["gpu_operator"] = {k: spec.get(k, {}).get("version") for k in
                                    ("operator", "driver", "devicePlugin", "migManager", "gfd") if spec.get(k)}
            info["mig_strategy"] = spec.get("mig", {}).get("strategy")
            for key, name in (("devicePlugin", "device_plugin"), ("migManager", "mig_manager"),
                              ("gfd", "gpu_feature_discovery")):
                if (spec.get(key) or {}).get("version"):
                    versions[name] = spec[key]["version"]
            versions["gpu_operator"] = self._operator_version(policy)
        except ClusterError as exc:
            info["gpu_operator_error"] = str(exc)
        nodes = []
        for n in self.list_gpu_nodes():
            labels = n.labels
            driver = labels.get("nvidia.com/cuda.driver-version.full") or ".".join(
                labels[k] for k in ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor",
                                    "nvidia.com/cuda.driver.rev") if k in labels)
            nodes.append({"name": n.name, "instance_type": n.instance_type, "driver": driver or None,
                          "gpu_product": labels.get("nvidia.com/gpu.product")})
        info["nodes"] = nodes
        try:
            from mig_conformance.cluster.dra_detect import detect

            info["dra"] = detect(self)
            if info["dra"]["version"]:
                versions["dra_driver"] = info["dra"]["version"]
        except ClusterError as exc:
            info["dra_error"] = str(exc)
        drivers = sorted({n["driver"] for n in nodes if n["driver"]})
        if drivers:
            versions["driver"] = ", ".join(drivers)
        info["versions"] = {k: v for k, v in versions.items() if v}
        info["stack"] = self.stack.as_dict()
        return info

    def _operator_version(self, policy: Mapping[str, Any]) -> str | None:
        """The GPU Operator release: its Helm chart label on the ClusterPolicy (`helm.sh/chart: gpu-operator-vX`),
        else the tag of the operator Deployment's image (best effort: read access to deployments is optional)."""
        labels: Mapping[str, str] = (policy.get("metadata") or {}).get("labels") or {}
        chart = labels.get("helm.sh/chart", "")
        if chart.startswith("gpu-operator-"):
            return chart.removeprefix("gpu-operator-")
        if labels.get("app.kubernetes.io/version"):
            return labels["app.kubernetes.io/version"]
        try:
            apps = self._client.AppsV1Api(self.api_client)
            items = self._call(apps.list_namespaced_deployment, self.operator_namespace).items
        except ClusterError as exc:
            log.debug("GPU Operator version: cannot list deployments in %s: %s", self.operator_namespace, exc)
            return None
        for deployment in items:
            for container in deployment.spec.template.spec.containers or []:
                image = container.image or ""
                if "/gpu-operator:" in image or image.startswith("gpu-operator:"):
                    return image.rsplit(":", 1)[1]
        return None

    def _node(self, raw: Any) -> GpuNode:
        status = raw.status
        taints = tuple(Taint(t.key, t.value or "", t.effect) for t in (raw.spec.taints or []))
        cap = {k: q for k, v in (status.capacity or {}).items() if (q := _quantity(v)) is not None}
        alloc = {k: q for k, v in (status.allocatable or {}).items() if (q := _quantity(v)) is not None}
        info = getattr(status, "node_info", None)
        return GpuNode(raw.metadata.name, dict(raw.metadata.labels or {}), cap, alloc, taints,
                       os_image=getattr(info, "os_image", None) or None)

    def list_gpu_nodes(self, selector: Mapping[str, str] | None = None) -> list[GpuNode]:
        label_selector = ",".join(f"{k}={v}" for k, v in (selector or {}).items()) or None
        raw = self._call(self.core.list_node, label_selector=label_selector)
        nodes = [self._node(n) for n in raw.items]
        return [n for n in nodes if _is_gpu_node(n)]

    def get_node(self, name: str) -> GpuNode:
        return self._node(self._call(self.core.read_node, name))

    @contextlib.contextmanager
    def observe_label(self, node: str, key: str) -> Iterator[list[str | None]]:
        """A watch on the node (its own thread) from the resourceVersion read first; it resumes after a dropped
        connection and relists after `410 Gone` (values between the two may then be missed)."""
        raw = self._call(self.core.read_node, node)
        values: list[str | None] = [(raw.metadata.labels or {}).get(key)]
        watcher = _NodeLabelWatch(self, node, key, raw.metadata.resource_version, values)
        watcher.start()
        try:
            watcher.opened.wait(10)
            if watcher.refused is not None:  # e.g. no `watch nodes` permission: say so, never wait blind
                raise self._api_error(watcher.refused, "watch_node")
            yield values
            self._catch_up(node, key, values)
        finally:
            watcher.stop()

    def _catch_up(self, node: str, key: str, values: list[str | None]) -> None:
        """Before the watch stops, let it deliver what the caller saw by polling: a wait that ended on a read of
        the node may be ahead of the watch stream, and the last state (e.g. `success`) must not be lost."""
        try:
            current = (self._call(self.core.read_node, node).metadata.labels or {}).get(key)
        except ClusterError:
            return
        deadline = time.monotonic() + CATCH_UP_S
        while values[-1] != current and time.monotonic() < deadline:
            time.sleep(0.02)

    def _cluster_policy(self) -> dict[str, Any]:
        try:
            items = self._call(self.custom.list_cluster_custom_object, *CLUSTER_POLICY).get("items", [])
        except NotFound:
            raise ClusterError(f"{self.name}: GPU Operator absent: the ClusterPolicy resource "
                               "(clusterpolicies.nvidia.com) is not served; install the NVIDIA GPU Operator "
                               "first") from None
        if not items:
            raise ClusterError(f"{self.name}: GPU Operator absent: no ClusterPolicy (clusterpolicies.nvidia.com) "
                               "exists; install the NVIDIA GPU Operator first")
        return cast(dict[str, Any], items[0])

    def get_mig_strategy(self) -> str:
        return self._cluster_policy().get("spec", {}).get("mig", {}).get("strategy") or "single"

    def _config_map_name(self) -> str:
        if self._config_map:
            return self._config_map
        try:
            spec = self._cluster_policy().get("spec", {})
        except ClusterError:
            return DEFAULT_CONFIG_MAP
        return (spec.get("migManager", {}).get("config", {}) or {}).get("name") or DEFAULT_CONFIG_MAP

    def get_mig_config(self) -> tuple[str, str]:
        name = self._config_map_name()
        cm = self._call(self.core.read_namespaced_config_map, name, self.operator_namespace)
        data = cm.data or {}
        key = "config.yaml" if "config.yaml" in data else next(iter(data), None)
        if key is None:
            raise ClusterError(f"{self.name}: ConfigMap {self.operator_namespace}/{name} has no mig-parted file")
        return name, data[key]

    # ---- per-node configs and custom configs by name (k8s/mig_config.py) ---------------------------------------
    def policy_config_name(self) -> str | None:
        if self._config_map:
            return self._config_map
        try:
            spec = self._cluster_policy().get("spec", {})
        except ClusterError:
            return None
        return (spec.get("migManager", {}).get("config", {}) or {}).get("name") or None

    def custom_config_needs_name(self) -> bool | None:
        return self.stack.custom_config_needs_name().value

    def read_config_map(self, name: str) -> tuple[str, dict[str, str]] | None:
        try:
            cm = self._call(self.core.read_namespaced_config_map, name, self.operator_namespace)
        except NotFound:
            return None
        return (cm.data or {}).get("config.yaml", ""), dict(cm.metadata.labels or {})

    def _write_config_map(self, name: str, text: str | None) -> None:
        if text is None:
            with contextlib.suppress(NotFound):
                self._call(self.core.delete_namespaced_config_map, name, self.operator_namespace)
            return
        body = {"metadata": {"name": name, "namespace": self.operator_namespace,
                             "labels": {"app.kubernetes.io/managed-by": "mig-conformance"}},
                "data": {"config.yaml": text}}
        try:
            self._call(self.core.create_namespaced_config_map, self.operator_namespace, body)
        except Conflict:
            self._call(self.core.patch_namespaced_config_map, name, self.operator_namespace,
                       {"data": {"config.yaml": text}})

    def _mig_manager_pods(self) -> dict[str, bool] | None:
        """uid -> Ready of the operator's mig-manager pods; None when they cannot be listed (said in the log)."""
        try:
            pods = self._call(self.core.list_namespaced_pod, self.operator_namespace,
                              label_selector=MIG_MANAGER_PODS).items
        except ClusterError as exc:
            log.warning("cannot list the mig-manager pods (%s): not waiting for their rollout", exc)
            return None
        return {p.metadata.uid: any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                for p in pods if p.metadata.deletion_timestamp is None}

    def _write_policy_config_name(self, name: str | None) -> None:
        self._pods_before_rollout = self._mig_manager_pods()
        policy = self._cluster_policy()
        self._call(self.custom.patch_cluster_custom_object, *CLUSTER_POLICY, policy["metadata"]["name"],
                   {"spec": {"migManager": {"config": {"name": name}}}})

    def node_mig_config(self, node: str) -> MC.EffectiveConfig:
        """What mig-manager reads on `node`, from what the cluster shows: the ConfigMap the ClusterPolicy names
        (on operators before v26.3.0 an empty name means default-mig-parted-config), else the node's generated
        `<node>-mig-config`, else the static map (mig-manager's fallback, or a mig-manager before v0.14.0)."""
        name = MC.config_file_name(self.stack, self.policy_config_name())
        if name is not None:
            found = self.read_config_map(name)
            if found is None:
                raise ClusterError(f"{self.name}: ConfigMap {self.operator_namespace}/{name} (named by the "
                                   "ClusterPolicy) does not exist")
            kind = MC.STATIC if name == MC.STATIC_CONFIG_MAP else MC.CUSTOM
            policy = self.policy_config_name()
            why = f"spec.migManager.config.name={policy}" if policy else \
                f"no spec.migManager.config.name: {self.stack.custom_config_needs_name().why}"
            return MC.EffectiveConfig(kind, name, found[0], why)
        generated = self.read_config_map(MC.node_config_map(node))
        if generated is not None:
            return MC.EffectiveConfig(MC.GENERATED, MC.node_config_map(node), generated[0],
                                      "no spec.migManager.config.name: mig-manager generated it")
        static = self.read_config_map(MC.STATIC_CONFIG_MAP)
        return MC.EffectiveConfig(MC.FALLBACK, MC.STATIC_CONFIG_MAP, static[0] if static else "",
                                  f"no spec.migManager.config.name and no {MC.node_config_map(node)}")

    def wait_mig_manager_restarted(self, timeout: float) -> None:
        """After spec.migManager.config.name changed: until the operator has replaced every mig-manager pod that
        ran before the change (`app=nvidia-mig-manager` in the operator namespace) and as many new ones are Ready,
        and every node that runs the local backend's simulated mig-manager (annotation
        `mig-conformance.io/mig-manager-config`; it has no pods) reports the file the ClusterPolicy now implies
        and a verdict for its label."""
        name = self.policy_config_name()
        before, self._pods_before_rollout = self._pods_before_rollout, None
        if before:
            def rolled_out(now: dict[str, bool] | None) -> bool:
                return now is not None and not (now.keys() & before.keys()) and sum(now.values()) >= len(before)

            def pods_text(now: dict[str, bool] | None) -> str:
                if now is None:
                    return "mig-manager pods cannot be listed"
                old = len(now.keys() & before.keys())
                return f"{old} of {len(before)} old mig-manager pods left, {sum(now.values())} new ones Ready"

            self._wait(self._mig_manager_pods, rolled_out, timeout,
                       f"the operator to roll out mig-manager with {name or 'no config name'}", pods_text)

        def state(raw: Any) -> tuple[str | None, dict[str, str]]:
            return (raw.metadata.annotations or {}).get(MIG_MANAGER_ANNOTATION), dict(raw.metadata.labels or {})

        def restarted(seen: tuple[str | None, dict[str, str]]) -> bool:
            started, labels = seen
            if started is None:
                return True
            kind, _, config_map = started.partition(":")
            matches = config_map == name if name else kind in (MC.GENERATED, MC.FALLBACK, MC.STATIC)
            return matches and (L.MIG_CONFIG not in labels or labels.get(L.MIG_CONFIG_STATE) in ("success", "failed"))

        def describe(seen: tuple[str | None, dict[str, str]]) -> str:
            return f"mig-manager started with {seen[0]}, state={seen[1].get(L.MIG_CONFIG_STATE, '-')}"

        for node in self.list_gpu_nodes():
            fetch: Callable[[], tuple[str | None, dict[str, str]]] = functools.partial(
                lambda n: state(self._call(self.core.read_node, n)), node.name)
            self._wait(fetch, restarted, timeout,
                       f"mig-manager on {node.name} to restart with {name or 'its generated config'}", describe)

    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        """Raw objects of `kind` (cluster/objects.py), read with paged GET requests only."""
        url, need = objects.path(kind, self.operator_namespace)
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", objects.PAGE)] + ([("continue", token)] if token else [])
            items, token = objects.items_of(self._get_json(url, query, need))
            out += items
            if not token or len(out) >= objects.MAX_OBJECTS:
                return out[:objects.MAX_OBJECTS]

    def get_object(self, kind: str, name: str) -> dict[str, Any] | None:
        """One raw object of `kind` by name (GET), None when it does not exist."""
        url, need = objects.path(kind, self.operator_namespace)
        try:
            page = self._get_json(f"{url}/{name}", [], need.replace("list ", "get ", 1))
        except NotFound:
            return None
        return page if isinstance(page, dict) else None

    def _get_json(self, url: str, query: list[tuple[str, Any]], need: str) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            method, full, headers, _, _ = self.api_client.param_serialize(
                "GET", url, query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"])
            response = self.api_client.call_api(method, full, header_params=headers)
            response.read()
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response)
            return json.loads(response.data)
        except ApiException as exc:
            raise self._api_error(exc, need) from None
        except (HTTPError, OSError) as exc:
            raise TransientError(f"{self.name}: cannot reach the API server ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:  # not JSON
            raise ClusterError(f"{self.name}: unreadable answer while trying to {need}: {exc}") from None

    # ---- writing ------------------------------------------------------------------------------------
    def _write_node_label(self, node: str, key: str, value: str | None) -> None:
        self._call(self.core.patch_node, node, {"metadata": {"labels": {key: value}}})

    def _write_mig_strategy(self, strategy: str) -> None:
        policy = self._cluster_policy()
        self._call(self.custom.patch_cluster_custom_object, *CLUSTER_POLICY, policy["metadata"]["name"],
                   {"spec": {"mig": {"strategy": strategy}}})

    def _write_mig_config(self, text: str) -> None:
        name = self._config_map_name()
        self._call(self.core.patch_namespaced_config_map, name, self.operator_namespace,
                   {"data": {"config.yaml": text}})

    # ---- pods ---------------------------------------------------------------------------------------
    def _create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        body = self._client.V1Namespace(metadata=self._client.V1ObjectMeta(name=name, labels=dict(labels)))
        with contextlib.suppress(Conflict):
            self._call(self.core.create_namespace, body)

    def _delete_namespace(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(self.core.delete_namespace, name)

    def _create_pod(self, namespace: str, pod: PodRequest) -> None:
        c = self._client
        limits = {k: str(v) for k, v in (pod.limits if pod.limits is not None else pod.resources).items()}
        # DRA: spec.resourceClaims names each claim (or template) once; the container uses all of them
        pod_claims = [c.V1PodResourceClaim(name=f"claim-{i}", resource_claim_name=n) for i, n in enumerate(pod.claims)]
        pod_claims += [c.V1PodResourceClaim(name=f"template-{i}", resource_claim_template_name=n)
                       for i, n in enumerate(pod.claim_templates)]
        claim_refs = [c.CoreV1ResourceClaim(name=pc.name) for pc in pod_claims]
        requests = {k: str(v) for k, v in pod.resources.items()}
        container = c.V1Container(name="main", image=self.pod_image, command=["sleep", "3600"],
                                  resources=c.V1ResourceRequirements(limits=limits, requests=requests,
                                                                     claims=claim_refs or None))
        tolerations = [c.V1Toleration(key=t.key or None, operator=t.operator, value=t.value or None,
                                      effect=t.effect or None) for t in pod.tolerations]
        body = c.V1Pod(metadata=c.V1ObjectMeta(name=pod.name, labels=dict(pod.labels)),
                       spec=c.V1PodSpec(containers=[container], node_selector=dict(pod.node_selector) or None,
                                        tolerations=tolerations or None, restart_policy="Never",
                                        termination_grace_period_seconds=0,
                                        resource_claims=pod_claims or None))
        self._call(self.core.create_namespaced_pod, namespace, body)

    def get_pod(self, namespace: str, name: str) -> PodStatus:
        return _pod_status(self._call(self.core.read_namespaced_pod, name, namespace))

    # ---- DRA ----------------------------------------------------------------------------------------
    def _raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The JSON document of a call (DRA objects stay in API form)."""
        resp = self._call(fn, *args, _preload_content=False, **kwargs)
        return json.loads(resp.data)

    @property
    def _resource(self) -> Any:
        return self._client.ResourceV1Api(self.api_client)

    def list_resource_slices(self, driver: str | None = None) -> list[dict[str, Any]]:
        """ResourceSlices; [] where the API server does not serve resource.k8s.io/v1 (404)."""
        selector = f"spec.driver={driver}" if driver else None
        try:
            doc = self._raw(self._resource.list_resource_slice, field_selector=selector)
        except NotFound:
            return []
        return list(doc.get("items") or [])

    def list_device_classes(self) -> list[dict[str, Any]]:
        try:
            return list(self._raw(self._resource.list_device_class).get("items") or [])
        except NotFound:
            return []

    def _create_resource_claim(self, namespace: str, claim: Mapping[str, Any]) -> None:
        body = {"apiVersion": "resource.k8s.io/v1", **claim}
        body["metadata"] = {**(claim.get("metadata") or {}), "namespace": namespace}
        if claim.get("kind") == "ResourceClaimTemplate":
            self._raw(self._resource.create_namespaced_resource_claim_template, namespace, body)
        else:
            body["kind"] = "ResourceClaim"
            self._raw(self._resource.create_namespaced_resource_claim, namespace, body)

    def get_resource_claim(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._raw(self._resource.read_namespaced_resource_claim, name, namespace))

    def list_resource_claims(self, namespace: str) -> list[dict[str, Any]]:
        return list(self._raw(self._resource.list_namespaced_resource_claim, namespace).get("items") or [])

    def _delete_pod(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(self.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0)

    def list_pods(self, namespace: str) -> list[PodStatus]:
        return [_pod_status(p) for p in self._call(self.core.list_namespaced_pod, namespace).items]

    def leftovers(self, run_id: str, namespaces: tuple[str, ...] = ()) -> list[str]:
        """Namespaces and pods labelled with this run's id still present anywhere in the cluster.

        Without permission to list namespaces, the run's own `namespaces` are checked one by one."""
        selector = f"{RUN_LABEL}={run_id}"
        try:
            found = [f"namespace {n.metadata.name} ({n.status.phase or 'Active'})" for n in
                     self._call(self.core.list_namespace, label_selector=selector).items]
        except ClusterError as exc:
            log.debug("cannot list namespaces (%s); checking the run's namespaces one by one", exc)
            found = [f"namespace {name} ({phase})" for name in namespaces if (phase := self._namespace_phase(name))]
        try:
            pods = self._call(self.core.list_pod_for_all_namespaces, label_selector=selector).items
        except ClusterError as exc:
            log.debug("cannot list pods in all namespaces (%s); listing the run's namespaces", exc)
            return found + super().leftovers(run_id, namespaces)
        return found + [f"pod {p.metadata.namespace}/{p.metadata.name} ({p.status.phase or 'Pending'})" for p in pods]

    def _namespace_phase(self, name: str) -> str | None:
        """Phase of one of the run's namespaces, None when it is gone. The kit's least-privilege role may not read
        namespaces but may delete them: deleting the run's own namespace again is idempotent and answers 404 once
        it is gone."""
        try:
            return self._call(self.core.read_namespace, name).status.phase or "Active"
        except NotFound:
            return None
        except ClusterError as exc:
            log.debug("cannot read namespace %s (%s); asking by deleting it again", name, exc)
        try:
            self._call(self.core.delete_namespace, name)
        except NotFound:
            return None
        except ClusterError as exc:
            log.warning("cannot check whether namespace %s is gone: %s", name, exc)
            return "state unknown: the kit may neither read nor delete it"
        return "Terminating"

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # closing a pool that is already gone is not an error
            log.debug("closing the API client failed", exc_info=True)


class NotFound(Missing):
    pass


class Conflict(ClusterError):
    pass


def _message(exc: Any) -> str:
    import json

    try:
        return cast(str, json.loads(exc.body).get("message") or exc.reason)
    except Exception:
        return str(getattr(exc, "reason", exc))


class _NodeLabelWatch(threading.Thread):
    """Follows one node's label through watch events until stopped (see KubeCluster.observe_label). The stream is
    read by hand, so that stop() can end a blocked read at once (urllib3's HTTPResponse.shutdown)."""

    def __init__(self, cluster: KubeCluster, node: str, key: str, resource_version: str | None,
                 values: list[str | None]) -> None:
        super().__init__(name=f"watch-{node}-{key}", daemon=True)
        self.cluster, self.node, self.key, self.rv, self.values = cluster, node, key, resource_version, values
        self._stopped = threading.Event()
        self._response: Any = None
        self.opened = threading.Event()  # the first watch request was answered (or refused)
        self.refused: Any = None  # the ApiException the first request got (4xx): the watch is not possible

    def run(self) -> None:
        from kubernetes.client.exceptions import ApiException

        while not self._stopped.is_set():
            try:
                self._follow()
            except ApiException as exc:
                if not self.opened.is_set() and 400 <= (exc.status or 0) < 500:
                    self.refused = exc
                    self.opened.set()
                    return
                self._retry_after(exc)
            except Exception as exc:  # connection dropped (API server restarting): resume from self.rv
                self._retry_after(exc)
            finally:
                self.opened.set()

    def _retry_after(self, exc: Exception) -> None:
        if not self._stopped.is_set():
            log.debug("watch of node %s: %s; resuming", self.node, exc)
            self._stopped.wait(0.5)

    def _follow(self) -> None:
        self._response = self.cluster.core.list_node(
            watch=True, field_selector=f"metadata.name={self.node}", resource_version=self.rv,
            allow_watch_bookmarks=True, timeout_seconds=60, _preload_content=False)
        self.opened.set()
        for line in self._response:
            if self._stopped.is_set():
                return
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                if obj.get("code") == 410:  # too old: start again from the node as it is now
                    raw = self.cluster.core.read_node(self.node)
                    assert raw.metadata is not None  # the API server always sets a node's metadata
                    self.rv = raw.metadata.resource_version
                    append_new(self.values, (raw.metadata.labels or {}).get(self.key))
                return
            meta = obj.get("metadata") or {}
            self.rv = meta.get("resourceVersion", self.rv)
            if event.get("type") in ("ADDED", "MODIFIED"):
                append_new(self.values, (meta.get("labels") or {}).get(self.key))

    def stop(self) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        self.join(timeout=5)


def _is_gpu_node(node: GpuNode) -> bool:
    return (node.labels.get("nvidia.com/gpu.present") == "true"
            or any(k.startswith("nvidia.com/") for k in node.capacity)
            or "nvidia.com/mig.config" in node.labels)


def _pod_status(raw: Any) -> PodStatus:
    reason = message = None
    for cond in raw.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status != "True":
            reason, message = cond.reason, cond.message
    return PodStatus(raw.metadata.name, raw.spec.node_name, raw.status.phase or "Pending", reason, message)
