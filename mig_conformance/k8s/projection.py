"""One node end to end: mig-manager run -> GPU state -> device-plugin allocatable and GFD labels.

A projection starts from what the kit knows of the node (`NodeState`: its GPUs' MIG state, its
`nvidia.com/mig.config` label and verdict, the resource names its device plugin registered so far) and answers
what the node shows once the label is set to a value: the states mig-manager writes, allocatable and labels, and the
`NodeState` afterwards, so that a sequence of reconfigurations is projected step by step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.k8s import device_plugin, gfd
from mig_conformance.k8s.labels import INSTANCE_TYPE, MIG_CONFIG, MIG_CONFIG_STATE
from mig_conformance.k8s.mig_manager import MigManagerOutcome, reconcile
from mig_conformance.mig.reconfigure import PENDING, SUCCESS
from mig_conformance.mig.spec import Spec
from mig_conformance.mig.state import GpuMigState, initial_states

NO_MIG_MANAGER = ("no mig-manager runs on this node: none of its GPUs is MIG capable (the GPU Operator deploys it "
                  "only on nodes labelled nvidia.com/gpu.deploy.mig-manager=true), so nvidia.com/mig.config is ignored "
                  "and no nvidia.com/mig.config.state appears")
SAME_LABEL = ("the node carries this nvidia.com/mig.config value already: mig-manager acts only on a change of the "
              "value, so nothing runs and the state stays as it is")


@dataclass(frozen=True)
class NodeState:
    """What the kit knows of a node between reconfigurations."""

    gpus: tuple[GpuMigState, ...]
    label: str | None = None  # nvidia.com/mig.config
    verdict: str | None = None  # nvidia.com/mig.config.state
    registered: frozenset[str] = field(default=frozenset())  # resources kubelet keeps (at 0 when gone)

    @classmethod
    def fresh(cls, gpus: Sequence[GpuModel]) -> NodeState:
        """A node as it boots: MIG disabled, no label, nothing registered yet."""
        return cls(initial_states(gpus))

    @classmethod
    def applied(cls, gpus: Sequence[GpuModel], spec: Spec | None, label: str | None, verdict: str | None,
                registered: frozenset[str] = frozenset()) -> NodeState:
        """A node first seen carrying `label` with `verdict`: after `success` its GPUs are taken to hold what the
        config creates on a fresh node (the kit cannot read a real node's NVML); otherwise they are taken fresh."""
        states = initial_states(gpus)
        if label is not None and verdict == SUCCESS and any(g.mig_capable for g in gpus):
            states = reconcile(gpus, spec, label).gpus
        return cls(states, label, verdict, registered)

    def advertised(self, strategy: str, version: str) -> NodeState:
        """The device plugin restarted under `strategy`: what it registers joins what kubelet keeps."""
        now = device_plugin.advertise(strategy, self.gpus, version=version).resources
        return replace(self, registered=self.registered | frozenset(now))


@dataclass(frozen=True)
class NodeProjection:
    """What the API server shows for a GPU node once the GPU Operator components have run."""

    node: str
    instance_type: str | None
    gpus: tuple[GpuMigState, ...]
    state: str | None
    states: tuple[str, ...]
    reason: str | None
    allocatable: dict[str, int]
    labels: dict[str, str]
    plugin_error: str | None
    notes: tuple[str, ...] = ()
    mode_change: bool = False
    after: NodeState | None = field(default=None, compare=False, repr=False)
    #: labels GFD writes whose values the catalog does not know (left out of `labels`; a check must not compare them)
    unknown_labels: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "instance_type": self.instance_type, "state": self.state,
                "states": list(self.states), "reason": self.reason, "mode_change": self.mode_change,
                "plugin_error": self.plugin_error, "notes": list(self.notes),
                "allocatable": dict(self.allocatable), "labels": dict(self.labels),
                "unknown_labels": list(self.unknown_labels),
                "gpus": [{"index": i, **g.as_dict()} for i, g in enumerate(self.gpus)]}


def _before(gpus: Sequence[GpuModel], current: NodeState | Sequence[GpuMigState] | None, strategy: str,
            version: str) -> NodeState:
    if isinstance(current, NodeState):
        return current
    states = tuple(current) if current is not None else initial_states(gpus)
    return NodeState(states).advertised(strategy, version)


_Current = NodeState | Sequence[GpuMigState] | None


def _at_driver(current: _Current, driver: str) -> _Current:
    """A starting state whose GPUs are the models as `driver` reports them (a state first built from the catalog's
    rows, e.g. from a node's labels, must compare equal to what the projection makes of it)."""
    if current is None:
        return None
    states = current.gpus if isinstance(current, NodeState) else tuple(current)
    moved = tuple(replace(g, model=g.model.at_driver(driver)) for g in states)
    return replace(current, gpus=moved) if isinstance(current, NodeState) else moved


def _run(gpus: Sequence[GpuModel], spec: Spec | None, selected: str | None, before: NodeState, with_reboot: bool,
         gpu_reset_works: bool) -> MigManagerOutcome:
    if not any(g.mig_capable for g in gpus):  # the GPU Operator deploys mig-manager only on MIG-capable nodes
        outcome = reconcile(gpus, spec, None, before.gpus)
        return replace(outcome, notes=(NO_MIG_MANAGER,)) if selected is not None else outcome
    if selected is not None and selected == before.label:
        return MigManagerOutcome((), before.verdict, None, before.gpus, False, (SAME_LABEL,))
    return reconcile(gpus, spec, selected, before.gpus, with_reboot, gpu_reset_works)


def project_node(gpus: Sequence[GpuModel], strategy: str, spec: Spec | None, selected: str | None, node: str = "",
                 instance_type: str | None = None, with_reboot: bool = False,
                 current: NodeState | Sequence[GpuMigState] | None = None, *, driver: str | None = None,
                 device_plugin_version: str = device_plugin.DEFAULT_VERSION,
                 gpu_reset_works: bool = True, names: Sequence[str] | None = None) -> NodeProjection:
    """Project a node whose GPUs are `gpus` (PCI order) once its `nvidia.com/mig.config` label is `selected`.

    `current`: where the node starts — a `NodeState`, just its GPU states, or None for a fresh node. `spec` None =
    the shipped default ConfigMap. Labels are GFD's, plus `nvidia.com/mig.config`/`nvidia.com/mig.config.state` and
    the instance-type label when those apply. Under a strategy other than the one `current` was advertised with,
    pass `current.advertised(strategy, version)`: the device plugin restarts on a strategy change. `names`: the GPUs'
    NVML names when boards differ from their models' primary board (`gfd.labels`).
    """
    if driver is not None:  # the GPUs as this driver reports them (profile memory differs by driver branch)
        gpus = [g.at_driver(driver) for g in gpus]
        current = _at_driver(current, driver)
    before = _before(gpus, current, strategy, device_plugin_version)
    outcome = _run(gpus, spec, selected, before, with_reboot, gpu_reset_works)
    driver_notes = tuple(dict.fromkeys(n for g in gpus for n in g.driver_notes))
    after = before
    if PENDING in outcome.states:  # mig-manager restarted the device plugin and GFD
        after = replace(before, gpus=outcome.gpus).advertised(strategy, device_plugin_version)
    after = replace(after, label=before.label if selected is None else selected, verdict=outcome.state)
    advertised = device_plugin.advertise(strategy, outcome.gpus, version=device_plugin_version)
    allocatable = {**dict.fromkeys(after.registered, 0), **advertised.resources}
    labels = gfd.labels(strategy, outcome.gpus, driver, names, version=device_plugin_version)
    if instance_type:
        labels[INSTANCE_TYPE] = instance_type
    if selected is not None:
        labels[MIG_CONFIG] = selected
    if outcome.state is not None:
        labels[MIG_CONFIG_STATE] = outcome.state
    return NodeProjection(node, instance_type, outcome.gpus, outcome.state, outcome.states, outcome.reason,
                          dict(sorted(allocatable.items())), dict(sorted(labels.items())), advertised.error,
                          (*outcome.notes, *driver_notes), outcome.mode_change, after,
                          gfd.unknown_labels(strategy, outcome.gpus, names, version=device_plugin_version))
