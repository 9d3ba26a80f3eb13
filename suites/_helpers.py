"""Shared steps of the suites (kept out of the plugin: they are what the suites assert)."""

from __future__ import annotations

from mig_conformance.k8s import labels as L
from mig_conformance.plans import layout_pictures


def nvidia_resources(node) -> dict[str, int]:
    return {k: v for k, v in node.allocatable.items() if k.startswith("nvidia.com/") and v}


def apply_and_check(mig_node, mig_reconfigure, mig_expect, mig_record, category: str, config: str,
                    strategy: str | None):
    """Reconfigure a node, compare state and allocatable with the projection, record the result."""
    expected = mig_expect(mig_node, config, strategy)
    node = mig_reconfigure(mig_node, config, strategy)
    measured = {"state": node.labels.get(L.MIG_CONFIG_STATE), "allocatable": nvidia_resources(node)}
    want = {"state": expected.state, "allocatable": {k: v for k, v in expected.allocatable.items() if v}}
    mig_record(category=category, node=node.name, instance_type=node.instance_type,
               gpu_model=expected.gpus[0].model.key if expected.gpus else None, config=config,
               strategy=strategy, expected=want, measured=measured, layout=layout_pictures(expected.gpus))
    assert measured["state"] == want["state"], \
        f"{node.name}: mig.config.state is {measured['state']}, expected {want['state']} ({expected.reason or ''})"
    assert measured["allocatable"] == want["allocatable"], \
        f"{node.name} with {config}/{strategy}: allocatable {measured['allocatable']} != expected {want['allocatable']}"
    return node, expected
