"""The `sim` backend: a whole GPU cluster in memory, deterministic, on a simulated clock.

Every node has its own NVML simulator; the GPU Operator agents on it (sim_node.py) are driven by the mig-parted
simulator and the Kubernetes projection (`k8s/`). Labelling a MIG-capable node with `nvidia.com/mig.config` runs
mig-manager there (`pending` -> (`rebooting`) -> `success`|`failed`), then the device plugin and GFD restart and
publish allocatable and labels. The GPU Operator's default label (`migManager.config.default`, all-disabled) is
set on MIG-capable nodes at start; nodes without a MIG-capable GPU run no mig-manager, so their label is ignored.
Pods are validated like the API server does and placed by the simulated scheduler; Pending pods are retried
whenever capacity changes or a pod goes away.

Time: with `mig_manager_delay` > 0 the `pending` and `rebooting` states each last that many simulated seconds.
Simulated time only moves in `sleep()`/`advance()` (and so in `wait_for_*`); nothing ever sleeps for real.
"""

from __future__ import annotations

import contextlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from mig_conformance.cluster import diagnose_faults, objects
from mig_conformance.cluster.base import Cluster, ClusterError, Missing, append_new
from mig_conformance.cluster.dra_detect import detect as detect_dra
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.sim import objects as sim_objects
from mig_conformance.cluster.sim.dra import SimDra
from mig_conformance.cluster.sim.fleet import parse_fleet
from mig_conformance.cluster.sim.node import ActiveRun, RunRecord, SimNode
from mig_conformance.common.errors import InputError
from mig_conformance.k8s import bottlerocket, device_plugin, scheduling
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import mig_config as MC
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.dra_alloc import CANNOT_ALLOCATE
from mig_conformance.k8s.model import GpuNode, PodRequest, PodStatus
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig import generate as G
from mig_conformance.mig.default_config import CONFIG_MAP, DEFAULT_LABEL, default_config_text
from mig_conformance.mig.reconfigure import PENDING
from mig_conformance.mig.spec import Spec
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.command_cache import CommandCache

DRIVER = nv.DRIVER_580


@dataclass
class _Pod:
    request: PodRequest
    status: PodStatus


class SimCluster(Cluster):
    """An in-memory cluster of simulated GPU nodes (see the module doc)."""

    kind = "sim"
    poll_interval = 1.0

    def __init__(self, fleet: str = "", *, name: str | None = None, allow_changes: bool = False,
                 journal: Journal | None = None, strategy: str = "mixed", config_text: str | None = None,
                 config_map: str = CONFIG_MAP, mig_manager_delay: float = 0.0, with_reboot: bool = False,
                 gpu_reset_works: bool = True, gpu_taint: bool = False, default_config: str | None = DEFAULT_LABEL,
                 driver: str | None = None, device_plugin_version: str | None = None,
                 stack: StackProfile | None = None,
                 fleet_progress: Callable[[str, int, int], None] | None = None,
                 bottlerocket_settings: str | None = None,
                 diagnose_faults: Mapping[str, str] | str | None = None,
                 gpu_allocation: str = "device-plugin", dynamic_mig: bool = False,
                 dra_restart_on_reconfigure: bool = True) -> None:
        """`stack` (default: the newest GA releases; `driver`/`device_plugin_version` over it) decides the versions
        the cluster behaves as, and which file mig-manager reads (k8s/mig_config.py): `config_text` is the ConfigMap
        the ClusterPolicy names (`config_map`); without it, a stack whose operator needs spec.migManager.config.name
        for a custom file leaves the name empty and mig-manager generates `<node>-mig-config` per node (mig-manager
        >= v0.14.0), else it reads the static map. `diagnose_faults`: cluster/diagnose_faults.py. `gpu_allocation`
        "dra": the nodes run NVIDIA's DRA driver instead of the device plugin (cluster/sim/dra.py)."""
        super().__init__(name or (f"sim:{fleet}" if fleet else "sim"), allow_changes, journal)
        self.fleet_progress = fleet_progress
        _check_strategy(strategy)
        if mig_manager_delay < 0:
            raise ClusterError(f"mig-manager delay must be >= 0 seconds, got {mig_manager_delay}")
        if device_plugin_version is not None:
            device_plugin.parse_version(device_plugin_version)
        #: the versions this cluster behaves as: the session's profile, the backend's own options over it
        self.stack = stack_profile.overlay(stack or stack_profile.default(),
                                           {"driver": driver, "device_plugin": device_plugin_version},
                                           "sim backend option")
        driver = self.stack.driver.value or DRIVER
        device_plugin_version = self.stack.device_plugin_model
        self._strategy = strategy
        self._default_config = default_config
        self.diagnose_faults: dict[str, str] = {}
        self._config_map = config_map
        self._config_text = default_config_text() if config_text is None else config_text
        #: the ClusterPolicy's spec.migManager.config.name (None: empty)
        self._policy_name: str | None = config_map
        if config_text is None and config_map == CONFIG_MAP and self.stack.custom_config_needs_name():
            self._policy_name = None
        #: ConfigMaps of the operator namespace: name -> (config.yaml, labels)
        self.config_maps: dict[str, tuple[str, dict[str, str]]] = {
            CONFIG_MAP: (default_config_text(), {}), config_map: (self._config_text, {})}
        self.delay = float(mig_manager_delay)
        self.with_reboot = with_reboot
        self.driver = driver
        self.plugin_version = device_plugin_version
        self._now = 0.0
        self._seq = 0
        self._events: list[tuple[float, int, str]] = []
        self._runs: dict[str, Iterator[float]] = {}
        self._namespaces: dict[str, dict[str, str]] = {}
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._nodes: dict[str, SimNode] = {}
        self._watchers: dict[tuple[str, str], list[list[str | None]]] = {}
        #: equal nodes in equal NVML states replay each other's mig-parted commands (simulators/command_cache.py)
        self.command_cache = CommandCache()
        if gpu_allocation not in ("device-plugin", "dra"):
            raise ClusterError(f"unknown GPU allocation '{gpu_allocation}' (device-plugin or dra)")
        if dynamic_mig and gpu_allocation != "dra":
            raise ClusterError("dynamic MIG needs gpu_allocation dra")
        self.gpu_allocation = gpu_allocation
        #: the DRA driver instead of the device plugin (cluster/sim/dra.py); None with the device plugin
        self.dra: SimDra | None = None
        if gpu_allocation == "dra":
            self.dra = SimDra(self.stack, dynamic_mig, dra_restart_on_reconfigure)
        specs = parse_fleet(fleet)
        #: the user data of every Bottlerocket node (`NODE@bottlerocket`), applied when the node boots
        self.bottlerocket_settings = bottlerocket.load_settings(bottlerocket_settings) if bottlerocket_settings \
            else bottlerocket.DEFAULT_SETTINGS
        for count, spec in enumerate(specs, 1):
            node = SimNode(spec, driver, gpu_taint, self.clock, gpu_reset_works, self.command_cache)
            if node.bottlerocket:
                node.boot_bottlerocket(self.bottlerocket_settings)
            node.advertise(strategy, driver, device_plugin_version, device_plugin=self.dra is None)
            self._nodes[node.name] = node
            if self.dra is not None:
                self.dra.publish(node.name, node, spec.gpus)
            if node.mig_capable and not node.bottlerocket:
                self._start_mig_manager(node)
            if default_config and node.mig_capable and not node.bottlerocket:  # the GPU Operator's default label
                self._set_mig_config_label(node, default_config)
            self._count("creating the simulated nodes", count, len(specs))
        #: {node: fault} of cluster/diagnose_faults.py, applied to the objects list_objects renders
        self.diagnose_faults = self._faults(diagnose_faults)

    # ---- clock ---------------------------------------------------------------------------------------
    def clock(self) -> float:
        """Simulated seconds since the cluster was created."""
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward, running every mig-manager step that falls due."""
        until = self._now + max(0.0, seconds)
        while self._events and self._events[0][0] <= until:
            when, _, name = heapq.heappop(self._events)
            self._now = max(self._now, when)
            self._step(self._nodes[name])
        self._now = until

    # ---- reading -------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        types = Counter(n.spec.instance_type or "+".join(g.key for g in n.spec.gpus) for n in self._nodes.values())
        return {"kubernetes_version": "sim", "backend": "sim", "gpu_operator": "simulated",
                "driver": f"{self.driver} (simulated)", "device_plugin": f"{self.plugin_version} (simulated)",
                "mig_strategy": self._strategy,
                "config_map": self._policy_name or "(none: mig-manager generates <node>-mig-config)",
                "mig_manager": {"delay_s": self.delay, "with_reboot": self.with_reboot},
                "stack": self.stack.as_dict(),
                "nodes": {"count": len(self._nodes), "gpus": sum(len(n.spec.gpus) for n in self._nodes.values()),
                          "by_type": dict(sorted(types.items()))},
                "gpu_allocation": self.gpu_allocation,
                **({"dra": {**detect_dra(self), "version": "simulated"}} if self.dra is not None else {}),
                **self._bottlerocket_facts()}

    def _bottlerocket_facts(self) -> dict[str, Any]:
        nodes = sorted(n.name for n in self._nodes.values() if n.bottlerocket)
        if not nodes:
            return {}
        return {"bottlerocket": {"nodes": nodes, "settings": self.bottlerocket_settings.file,
                                 "os_image": nodes and self._nodes[nodes[0]].os_image}}

    def bottlerocket_plan(self, name: str) -> bottlerocket.Plan | None:
        """What a Bottlerocket node's migmanager applied at its last boot (None: not a Bottlerocket node)."""
        return self._node(name).boot_plan

    def list_gpu_nodes(self, selector: Mapping[str, str] | None = None) -> list[GpuNode]:
        wanted = dict(selector or {})
        return [n.view() for n in self._nodes.values()
                if all(n.labels.get(k) == v for k, v in wanted.items())]

    def get_node(self, name: str) -> GpuNode:
        return self._node(name).view()

    def get_mig_strategy(self) -> str:
        return self._strategy

    def get_mig_config(self) -> tuple[str, str]:
        return self._config_map, self._config_text

    def node_mig_config(self, name: str) -> MC.EffectiveConfig:
        node = self._node(name)
        if node.effective is None:
            return super().node_mig_config(name)
        if node.effective.kind in (MC.CUSTOM, MC.STATIC, MC.FALLBACK):  # mounted files follow their ConfigMap
            text = self.config_maps.get(node.effective.config_map, (node.effective.text, {}))[0]
            return MC.EffectiveConfig(node.effective.kind, node.effective.config_map, text, node.effective.why)
        return node.effective

    def read_config_map(self, name: str) -> tuple[str, dict[str, str]] | None:
        """A ConfigMap of the operator namespace: (config.yaml, labels), None when absent."""
        found = self.config_maps.get(name)
        return None if found is None else (found[0], dict(found[1]))

    def policy_config_name(self) -> str | None:
        return self._policy_name

    def custom_config_needs_name(self) -> bool | None:
        return self.stack.custom_config_needs_name().value

    def _write_config_map(self, name: str, text: str | None) -> None:
        if text is None:
            self.config_maps.pop(name, None)
        else:
            self.config_maps[name] = (text, self.config_maps.get(name, ("", {}))[1])
        if name == self._config_map and text is not None:
            self._config_text = text

    def _write_policy_config_name(self, name: str | None) -> None:
        """The operator rolls mig-manager out again: each starts over (a new file, generated or named) and, as its
        informer's AddFunc does, runs once more for the node's current label."""
        self._policy_name = name
        if name is not None:
            self._config_map = name
            self._config_text = self.config_maps.get(name, ("", {}))[0]
        else:
            self._config_map, self._config_text = CONFIG_MAP, self.config_maps[CONFIG_MAP][0]
        for node in self._nodes.values():
            if not node.mig_capable:
                continue
            self._start_mig_manager(node)
            node.applied = None
            if node.current is None and node.labels.get(L.MIG_CONFIG):
                self._start_run(node)

    def _faults(self, wanted: Mapping[str, str] | str | None) -> dict[str, str]:
        """`all` (every fault on a node of its kind: diagnose_faults.PLAN) or {node: fault}, checked."""
        if not wanted:
            return {}
        if isinstance(wanted, str):
            if wanted != "all":
                raise ClusterError(f"diagnose_faults: 'all' or a mapping of node -> fault, got '{wanted}'")
            try:
                return diagnose_faults.assign(self.list_objects("Node"))
            except InputError as exc:
                raise ClusterError(f"diagnose_faults: all: {exc} (use the fleet {diagnose_faults.FLEET})") from None
        out = {str(k): str(v) for k, v in wanted.items()}
        for node, fault in out.items():
            self._node(node)
            if fault not in diagnose_faults.FAULTS:
                raise ClusterError(f"diagnose_faults: node {node}: unknown fault '{fault}' (one of: "
                                   f"{', '.join(diagnose_faults.FAULTS)})")
        return out

    def wall_clock(self) -> float:
        return sim_objects.EPOCH + self._now

    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        """The objects an API server would list for the diagnose reader (cluster/sim/objects.py), with the
        clusters file's `diagnose_faults` applied."""
        if kind not in objects.PATHS:
            raise ClusterError(f"{self.name}: cannot list {kind} objects")
        mig_manager = self.stack.mig_manager.value or sim_objects.MIG_MANAGER_VERSION
        rendered = sim_objects.render(self._nodes, strategy=self._strategy, policy_name=self._policy_name,
                                      config_maps=self.config_maps, driver=self.driver,
                                      plugin_version=self.plugin_version, with_reboot=self.with_reboot, now=self._now,
                                      kinds=None if self.diagnose_faults else frozenset({kind}),
                                      default_config=self._default_config,
                                      mig_manager_version=mig_manager)
        if self.dra is not None:  # the DRA driver's pools, as the API server serves them
            rendered["ResourceSlice"] = [*self.list_resource_slices(), *rendered.get("ResourceSlice", [])]
        if self.diagnose_faults:
            rendered = diagnose_faults.inject(rendered, self.diagnose_faults, self.wall_clock())
        return rendered.get(kind, [])

    def node_nvml(self, name: str) -> nv.NvmlSimulator:
        """The NVML simulator of a node (for nvidia-smi renderings and evidence)."""
        return self._node(name).nvml

    def device_plugin_error(self, name: str) -> str | None:
        """The error the node's device plugin exits with under the current strategy, or None."""
        return self._node(name).plugin_error

    def mig_manager_runs(self, name: str) -> list[RunRecord]:
        """mig-manager runs on a node, oldest first (label value, timed states, failure reason)."""
        node = self._node(name)
        return [*node.runs, *([node.current.record()] if node.current else [])]

    def _node(self, name: str) -> SimNode:
        try:
            return self._nodes[name]
        except KeyError:
            raise Missing(f'nodes "{name}" not found') from None

    # ---- writing -------------------------------------------------------------------------------------
    def _write_node_label(self, node: str, key: str, value: str | None) -> None:
        n = self._node(node)
        self._observed(node, key, value)
        if key == L.MIG_CONFIG:
            self._set_mig_config_label(n, value)
        elif value is None:
            n.labels.pop(key, None)
        else:
            n.labels[key] = value

    @contextlib.contextmanager
    def observe_label(self, node: str, key: str) -> Iterator[list[str | None]]:
        self._node(node)
        values: list[str | None] = [self._nodes[node].labels.get(key)]
        watchers = self._watchers.setdefault((node, key), [])
        watchers.append(values)
        try:
            yield values
        finally:
            watchers.remove(values)

    def _observed(self, node: str, key: str, value: str | None) -> None:
        for values in self._watchers.get((node, key), ()):
            append_new(values, value)

    def _write_mig_strategy(self, strategy: str) -> None:
        _check_strategy(strategy)
        if strategy == self._strategy:
            return
        self._strategy = strategy
        changed = [n.advertise(strategy, self.driver, self.plugin_version, device_plugin=self.dra is None)
                   for n in self._nodes.values()]
        if any(changed):
            self._reschedule()

    def _write_mig_config(self, text: str) -> None:
        self._config_text = text  # mig-manager re-reads the mounted file at its next run
        self.config_maps[self._config_map] = (text, self.config_maps.get(self._config_map, ("", {}))[1])

    def _start_mig_manager(self, node: SimNode) -> None:
        """mig-manager's start on a node (setupMigConfig): the file it will read, generated `<node>-mig-config`
        stored like the real one (no owner reference: the sim has no pods)."""
        def read(name: str) -> str | None:
            found = self.config_maps.get(name)
            return None if found is None else found[0]

        def discover() -> G.Configs:
            if node.cache is None or node.nvml.faults.active:
                return node.generated_configs()
            return node.cache.get_or_run(("generated", node.nvml.state_key()), node.generated_configs)

        node.effective = MC.effective_config(node.name, self.stack, self._policy_name, read, discover)
        if node.effective.kind == MC.GENERATED:
            self.config_maps[node.effective.config_map] = (node.effective.text, MC.node_config_labels(node.name))

    # ---- mig-manager ---------------------------------------------------------------------------------
    def _set_mig_config_label(self, node: SimNode, value: str | None) -> None:
        if value is None:
            node.labels.pop(L.MIG_CONFIG, None)
            if node.current is None:
                node.applied = None  # mig-manager ignores an empty value; setting the old one again runs it again
            return
        if node.labels.get(L.MIG_CONFIG) == value:
            return  # no change, no watch event
        node.labels[L.MIG_CONFIG] = value
        if node.mig_capable and node.current is None and not node.bottlerocket:  # no mig-manager on Bottlerocket
            self._start_run(node)

    def _start_run(self, node: SimNode) -> None:
        selected = node.labels[L.MIG_CONFIG]
        node.applied = selected
        node.current = ActiveRun(selected, self._now)

        def set_state(value: str) -> None:
            node.labels[L.MIG_CONFIG_STATE] = value
            node.state_since = self._now
            self._observed(node.name, L.MIG_CONFIG_STATE, value)

        spec: Spec = self.node_mig_config(node.name).spec
        self._runs[node.name] = node.mig_manager_run(spec, selected, self.with_reboot, self.delay, set_state)
        self._step(node)

    def _step(self, node: SimNode) -> None:
        """Run the node's mig-manager until it waits (an event is queued) or ends (agents restart)."""
        run = self._runs[node.name]
        while True:
            try:
                wait = next(run)
            except StopIteration:
                break
            if wait > 0:
                self._seq += 1
                heapq.heappush(self._events, (self._now + wait, self._seq, node.name))
                return
        del self._runs[node.name]
        assert node.current is not None
        record = node.current.record()
        node.runs.append(record)
        node.current = None
        # mig-manager stops and restarts the GPU clients (device plugin, GFD) only when it changed something;
        # a run that ends at its first assert (success) or at --valid-config (failed) leaves them alone.
        touched = any(state == PENDING for _, state in record.states)
        changed = touched and node.advertise(self._strategy, self.driver, self.plugin_version,
                                             device_plugin=self.dra is None)
        if touched and self.dra is not None and self.dra.restart_on_reconfigure:
            self.dra.publish(node.name, node, node.spec.gpus)
            changed = True
        if changed:
            self._reschedule()
        latest = node.labels.get(L.MIG_CONFIG)
        if latest is not None and latest != node.applied:
            self._start_run(node)  # the label changed while mig-manager was busy
        elif latest is None:
            node.applied = None

    # ---- namespaces and pods -------------------------------------------------------------------------
    def _create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        if name in self._namespaces:
            raise ClusterError(f'namespaces "{name}" already exists')
        self._namespaces[name] = dict(labels)

    def _delete_namespace(self, name: str) -> None:
        self._namespaces.pop(name, None)
        if self.dra is not None:
            self.dra.namespace_gone(name)
        gone = [key for key in self._pods if key[0] == name]
        for key in gone:
            del self._pods[key]
        if gone:
            self._reschedule()

    def _create_pod(self, namespace: str, pod: PodRequest) -> None:
        if namespace not in self._namespaces:
            raise ClusterError(f'namespaces "{namespace}" not found')
        if (namespace, pod.name) in self._pods:
            raise ClusterError(f'pods "{pod.name}" already exists')
        invalid = scheduling.validate_pod(pod)
        if invalid:
            raise ClusterError(invalid)
        if self.dra is not None:
            self.dra.pod_claims(namespace, pod)  # refuses a pod whose claims do not exist
        elif pod.claims or pod.claim_templates:
            raise ClusterError(f"pod {pod.name}: this sim cluster runs the device plugin, not a DRA driver")
        entry = _Pod(pod, PodStatus(pod.name, None, "Pending"))
        self._pods[(namespace, pod.name)] = entry
        entry.status = self._schedule([(namespace, entry)])[0]

    def get_pod(self, namespace: str, name: str) -> PodStatus:
        try:
            return self._pods[(namespace, name)].status
        except KeyError:
            raise ClusterError(f'pods "{name}" not found') from None

    def _delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; deleting one that does not exist is not an error (kubectl --ignore-not-found)."""
        if self._pods.pop((namespace, name), None) is not None:
            if self.dra is not None:
                self.dra.pod_gone(namespace, name)
            self._reschedule()

    def list_pods(self, namespace: str) -> list[PodStatus]:
        return [p.status for (ns, _), p in self._pods.items() if ns == namespace]

    def _views(self) -> list[GpuNode]:
        return [n.view() for n in self._nodes.values()]

    def _bound(self) -> list[tuple[PodRequest, str]]:
        return [(p.request, p.status.node) for p in self._pods.values() if p.status.node is not None]

    def _reschedule(self) -> None:
        """Retry every Pending pod, oldest first (the scheduler's queue after a cluster event)."""
        pending = [(key[0], p) for key, p in self._pods.items() if p.status.node is None]
        if not pending:
            return
        statuses = self._schedule(pending)
        for (_, pod), status in zip(pending, statuses, strict=True):
            pod.status = status

    # ---- DRA -----------------------------------------------------------------------------------------
    def _schedule(self, pods: list[tuple[str, _Pod]]) -> list[PodStatus]:
        """Pods without claims go to the scheduler model; a pod with claims (or with extended resources a
        DeviceClass bridges) goes, in order, to the first node by name whose taints and selector it passes and
        where all its claims can be allocated (cluster/sim/dra.py)."""
        out: list[PodStatus] = []
        for namespace, entry in pods:
            pod = entry.request
            dra = self.dra
            bridged = dra.bridged_resources(pod) if dra is not None else set()
            if dra is None or not (pod.claims or pod.claim_templates or bridged):
                out.append(scheduling.schedule([pod], self._views(), existing=self._bound())[0])
                continue
            records = dra.pod_claims(namespace, pod)
            rest = replace(pod, resources={k: v for k, v in pod.resources.items() if k not in bridged})
            views = sorted(self._views(), key=lambda n: n.name)
            failures: list[tuple[list[str], bool]] = []
            bound: PodStatus | None = None
            for view in views:
                fit = scheduling.schedule([rest], [view], existing=self._bound())[0]
                if fit.node is None:
                    failures.append(([fit.message or "node(s) didn't fit"], False))
                    continue
                verdict = dra.try_allocate(pod.name, records, view.name)
                if verdict is True:
                    bound = PodStatus(pod.name, view.name, "Running")
                    break
                failures.append(([CANNOT_ALLOCATE if verdict is False else str(verdict)], False))
            if bound is None:
                out.append(PodStatus(pod.name, None, "Pending", scheduling.UNSCHEDULABLE,
                                     scheduling.fit_error_message(len(views), failures)))
            else:
                out.append(bound)
        return out

    def list_resource_slices(self, driver: str | None = None) -> list[dict[str, Any]]:
        return self.dra.list_slices(driver) if self.dra is not None else []

    def list_device_classes(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.dra.classes] if self.dra is not None else []

    def _create_resource_claim(self, namespace: str, claim: Mapping[str, Any]) -> None:
        if namespace not in self._namespaces:
            raise ClusterError(f'namespaces "{namespace}" not found')
        if self.dra is None:
            raise ClusterError("this sim cluster runs the device plugin, not a DRA driver (gpu_allocation: dra)")
        self.dra.create(namespace, claim)

    def get_resource_claim(self, namespace: str, name: str) -> dict[str, Any]:
        if self.dra is None:
            raise ClusterError(f'resourceclaims.resource.k8s.io "{name}" not found')
        return self.dra.get(namespace, name)

    def list_resource_claims(self, namespace: str) -> list[dict[str, Any]]:
        return self.dra.list_claims(namespace) if self.dra is not None else []

    def restart_dra_driver(self, name: str) -> None:
        """Restart the DRA kubelet plugin on a node: it publishes what NVML shows now."""
        if self.dra is None:
            raise ClusterError("this sim cluster runs no DRA driver")
        node = self._node(name)
        self.dra.publish(name, node, node.spec.gpus)
        self._reschedule()


def _check_strategy(strategy: str) -> None:
    if strategy not in L.STRATEGIES:
        raise ClusterError(f"unknown MIG strategy '{strategy}' (one of: {', '.join(L.STRATEGIES)})")
