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

from mig_conformance.cluster.base import Cluster, ClusterError, Missing, append_new
from mig_conformance.cluster.dra_detect import detect as detect_dra
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.sim.dra import SimDra
from mig_conformance.cluster.sim.fleet import parse_fleet
from mig_conformance.cluster.sim.node import ActiveRun, RunRecord, SimNode
from mig_conformance.k8s import device_plugin, scheduling
from mig_conformance.k8s import labels as L
from mig_conformance.k8s.dra_alloc import CANNOT_ALLOCATE
from mig_conformance.k8s.model import GpuNode, PodRequest, PodStatus
from mig_conformance.k8s.stack import Sourced, StackProfile
from mig_conformance.k8s.stack import default as default_stack
from mig_conformance.mig.default_config import CONFIG_MAP, DEFAULT_LABEL, default_config_text
from mig_conformance.mig.reconfigure import PENDING
from mig_conformance.mig.spec import Spec, parse_installed_config
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
                 driver: str = DRIVER, device_plugin_version: str = device_plugin.DEFAULT_VERSION,
                 fleet_progress: Callable[[str, int, int], None] | None = None,
                 gpu_allocation: str = "device-plugin", dynamic_mig: bool = False,
                 stack: StackProfile | None = None, dra_restart_on_reconfigure: bool = True) -> None:
        super().__init__(name or (f"sim:{fleet}" if fleet else "sim"), allow_changes, journal)
        self.fleet_progress = fleet_progress
        _check_strategy(strategy)
        if mig_manager_delay < 0:
            raise ClusterError(f"mig-manager delay must be >= 0 seconds, got {mig_manager_delay}")
        device_plugin.parse_version(device_plugin_version)
        self._strategy = strategy
        self._config_map = config_map
        self._config_text = default_config_text() if config_text is None else config_text
        self._spec: Spec | None = None  # parsed once per config version, at the first run that needs it
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
            profile = (stack or default_stack())
            self.dra = SimDra(replace(profile, driver=Sourced(driver, "sim backend")), dynamic_mig,
                              dra_restart_on_reconfigure)
        specs = parse_fleet(fleet)
        for count, spec in enumerate(specs, 1):
            node = SimNode(spec, driver, gpu_taint, self.clock, gpu_reset_works, self.command_cache)
            node.advertise(strategy, driver, device_plugin_version, device_plugin=self.dra is None)
            self._nodes[node.name] = node
            if self.dra is not None:
                self.dra.publish(node.name, node, spec.gpus)
            if default_config and node.mig_capable:  # the GPU Operator's default label: mig-manager runs once
                self._set_mig_config_label(node, default_config)
            self._count("creating the simulated nodes", count, len(specs))

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
                "mig_strategy": self._strategy, "config_map": self._config_map,
                "mig_manager": {"delay_s": self.delay, "with_reboot": self.with_reboot},
                "nodes": {"count": len(self._nodes), "gpus": sum(len(n.spec.gpus) for n in self._nodes.values()),
                          "by_type": dict(sorted(types.items()))},
                "gpu_allocation": self.gpu_allocation,
                **({"dra": {**detect_dra(self), "version": "simulated"}} if self.dra is not None else {})}

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
        if text != self._config_text:
            self._config_text = text
            self._spec = None  # mig-manager re-reads the file at its next run

    def _current_spec(self) -> Spec:
        if self._spec is None:
            self._spec = parse_installed_config(self._config_text, f"ConfigMap {self._config_map}")
        return self._spec

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
        if node.mig_capable and node.current is None:
            self._start_run(node)

    def _start_run(self, node: SimNode) -> None:
        selected = node.labels[L.MIG_CONFIG]
        node.applied = selected
        node.current = ActiveRun(selected, self._now)

        def set_state(value: str) -> None:
            node.labels[L.MIG_CONFIG_STATE] = value
            self._observed(node.name, L.MIG_CONFIG_STATE, value)

        self._runs[node.name] = node.mig_manager_run(self._current_spec(), selected, self.with_reboot, self.delay,
                                                     set_state)
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
