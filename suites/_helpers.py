"""Shared steps of the suites (kept out of the plugin: they are what the suites assert)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from mig_conformance.k8s import labels as L
from mig_conformance.mig.plans import layout_pictures

if TYPE_CHECKING:
    from mig_conformance.cluster.base import Cluster
    from mig_conformance.k8s.model import GpuNode
    from mig_conformance.k8s.projection import NodeProjection
    from mig_conformance.mig.spec import Spec


def nvidia_resources(node: GpuNode) -> dict[str, int]:
    return {k: v for k, v in node.allocatable.items() if k.startswith("nvidia.com/") and v}


NOT_GFD = (L.MIG_CONFIG, L.MIG_CONFIG_STATE)  # set by the user / mig-manager, checked as the state


def state_sequence_ok(states: Sequence[str], final: str) -> bool:
    """What mig-manager writes: nothing but `final` when the config is applied already, else `pending` first,
    `rebooting` (then `pending` again) when a mode change needs a reboot, and `final` last."""
    *steps, last = states or ("",)
    return last == final and all(s in ("pending", "rebooting") for s in steps) and (not steps or steps[0] == "pending")


def label_mismatches(node: GpuNode, expected_labels: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """GFD's labels against the projection: every `nvidia.com/*` label the projection expects, and no
    `nvidia.com/mig-<profile>.*` label it does not (a profile published that the layout does not have).
    Other labels GFD may add (CUDA driver versions, ...) are not compared. Returns {label: (measured, expected)}."""
    want = {k: v for k, v in expected_labels.items() if k.startswith("nvidia.com/") and k not in NOT_GFD}
    out: dict[str, tuple[str | None, str | None]] = {k: (node.labels.get(k), v) for k, v in want.items()
                                                     if node.labels.get(k) != v}
    out.update({k: (v, None) for k, v in node.labels.items() if k.startswith(L.MIG_RESOURCE_PREFIX) and k not in want})
    return dict(sorted(out.items()))


def projection_problems(node: GpuNode, expected: NodeProjection, config: str, strategy: str | None
                        ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The conformance question for a reconfigured node: its state (and the states mig-manager wrote), allocatable
    and GFD labels against the projection. Returns (measured, expected, problems)."""
    labels = label_mismatches(node, expected.labels) if expected.state == "success" else {}
    measured: dict[str, Any] = {"state": node.labels.get(L.MIG_CONFIG_STATE), "allocatable": nvidia_resources(node)}
    want: dict[str, Any] = {"state": expected.state,
                            "allocatable": {k: v for k, v in expected.allocatable.items() if v}}
    if node.mig_states is not None:  # mig-manager ran: what it wrote, as watched (not when the label was set so)
        measured["states"] = list(node.mig_states)
    if labels:
        measured["labels"] = {k: got for k, (got, _) in labels.items()}
        want["labels"] = {k: exp for k, (_, exp) in labels.items()}
    problems = []
    if measured["state"] != want["state"]:
        problems.append(f"{node.name}: mig.config.state is {measured['state']}, expected {want['state']} "
                        f"({expected.reason or ''})")
    if node.mig_states is not None and not state_sequence_ok(node.mig_states, want["state"]):
        problems.append(f"{node.name}: mig-manager wrote {' -> '.join(node.mig_states) or 'nothing'}, not pending -> "
                        f"(rebooting ->) {want['state']}")
    if measured["allocatable"] != want["allocatable"]:
        problems.append(f"{node.name} with {config}/{strategy}: allocatable {measured['allocatable']} != expected "
                        f"{want['allocatable']}")
    if labels:
        problems.append(f"{node.name} with {config}/{strategy}: GFD labels (measured, expected) differ: {labels}")
    return measured, want, problems


def record_expectation(mig_node: GpuNode, mig_expect: Callable[..., NodeProjection], mig_record: Callable[..., None],
                       category: str, config: str, strategy: str | None) -> NodeProjection:
    """Record what the test asks, then what the projection expects, before anything that can fail."""
    mig_record(category=category, node=mig_node.name, instance_type=mig_node.instance_type, config=config,
               strategy=strategy)
    expected = mig_expect(mig_node, config, strategy)
    mig_record(gpu_model=expected.gpus[0].model.key if expected.gpus else None, layout=layout_pictures(expected.gpus),
               expected={"state": expected.state, "allocatable": {k: v for k, v in expected.allocatable.items() if v}})
    return expected


def apply_and_check(mig_node: GpuNode, mig_reconfigure: Callable[..., GpuNode],
                    mig_expect: Callable[..., NodeProjection], mig_record: Callable[..., None], category: str,
                    config: str, strategy: str | None) -> tuple[GpuNode, NodeProjection]:
    """Reconfigure a node, compare state, allocatable and GFD labels with the projection, record the result.

    What is known is recorded before each step that can fail (the projection, the reconfiguration: a timeout
    raises), so a failed test's row still names its node, config, strategy, expectation and layout."""
    expected = record_expectation(mig_node, mig_expect, mig_record, category, config, strategy)
    node = mig_reconfigure(mig_node, config, strategy)
    measured, want, problems = projection_problems(node, expected, config, strategy)
    mig_record(category=category, node=node.name, instance_type=node.instance_type,
               gpu_model=expected.gpus[0].model.key if expected.gpus else None, config=config,
               strategy=strategy, expected=want, measured=measured, layout=layout_pictures(expected.gpus))
    if problems:
        pytest.fail("\n".join(problems))
    return node, expected


def report_property(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """Adds a (name, value) report property of the test (pytest's record_property without its warning under
    junit_family xunit2: the kit's records travel the same way)."""
    return lambda name, value: request.node.user_properties.append((name, value))


def node_config(mig_cluster: Cluster, node: GpuNode, record_property: Callable[[str, object], None]) -> Spec:
    """The mig-parted file mig-manager reads on `node` (generated `<node>-mig-config`, custom or static: the suites
    pick config names from it), said in the test's report properties (`mig_config`) and output."""
    effective = mig_cluster.node_mig_config(node.name)
    record_property("mig_config", effective.as_dict())
    print(f"{node.name}: {effective.line()}")
    return effective.spec


def require_config(mig_cluster: Cluster, node: GpuNode, config: str, record_property: Callable[[str, object], None],
                   installed: str | None = None) -> None:
    """Fail, naming the node, the ConfigMap and the configs it has, when `config` is not in the file mig-manager
    reads on `node` now (a name missing from a generated `<node>-mig-config` would only end `failed`)."""
    effective = mig_cluster.node_mig_config(node.name)
    record_property("mig_config", effective.as_dict())
    print(f"{node.name}: {effective.line()}")
    names = effective.spec.configs
    if config in names:
        return
    hint = f" (the kit installed ConfigMap {installed})" if installed and installed != effective.config_map else ""
    pytest.fail(f"config {config} is not in the mig-parted file mig-manager reads on node {node.name}: "
                f"{effective.kind} ConfigMap {effective.config_map}{hint} has {', '.join(sorted(names)) or 'none'}")


def runs_dra_driver(cluster: Any, node: str) -> bool:
    """Whether `node` publishes a pool of NVIDIA's DRA driver (it then runs no device plugin: the dra suite checks
    its claims, the device-plugin scheduling checks do not apply)."""
    return any(s["spec"].get("nodeName") == node for s in cluster.list_resource_slices("gpu.nvidia.com"))
