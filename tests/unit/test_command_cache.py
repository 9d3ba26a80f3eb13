"""The command cache changes nothing but speed: a fleet run with it equals the same run without it, NVML state
(serials and UUIDs included), node labels, allocatable and mig-manager records alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mig_conformance.cluster.sim import backend as sim_module
from mig_conformance.cluster.sim.backend import SimCluster
from mig_conformance.k8s import labels as L
from mig_conformance.simulators.command_cache import CommandCache

FLEET = "p5.48xlarge*3,p4d.24xlarge*2,p5e.48xlarge,H100-80GBx2+A10G-24GB"
CONFIGS = ["all-balanced", "all-1g.10gb", "no-such-config", "all-3g.40gb", "all-disabled", "all-7g.80gb",
           "all-balanced"]


class _NoCache(CommandCache):
    def get_or_run(self, key, run, replay=None, record=None, copy=None):  # type: ignore[override]
        self.misses += 1
        return run()


def _run(strategy: str, **options: Any) -> tuple[list[Any], CommandCache]:
    cluster = SimCluster(FLEET, allow_changes=True, strategy=strategy, **options)
    seen = []
    for config in CONFIGS:
        for node in cluster.list_gpu_nodes():
            cluster.request_mig_config(node.name, config)
        for node in cluster.list_gpu_nodes():
            runs = [(r.config, r.states, r.reason, r.mode_change) for r in cluster.mig_manager_runs(node.name)]
            nvml = json.loads(cluster.node_nvml(node.name).to_json())
            seen.append((config, node.name, dict(node.labels), dict(node.allocatable), runs, nvml))
    return seen, cluster.command_cache


@pytest.mark.parametrize("strategy, options", [("mixed", {}), ("single", {}),
                                               ("mixed", {"gpu_reset_works": False, "with_reboot": True})],
                         ids=["mixed", "single", "reset-needs-reboot"])
def test_cached_fleet_equals_uncached(monkeypatch: pytest.MonkeyPatch, strategy: str, options: dict) -> None:
    cached, cache = _run(strategy, **options)
    assert cache.hits > cache.misses > 0
    monkeypatch.setattr(sim_module, "CommandCache", _NoCache)
    uncached, none = _run(strategy, **options)
    assert none.hits == 0
    assert cached == uncached
    assert any(labels.get(L.MIG_CONFIG_STATE) == "failed" for _, _, labels, *_ in cached)


def test_injected_faults_bypass_the_cache() -> None:
    cluster = SimCluster("p5.48xlarge*2", allow_changes=True)
    first, second = (n.name for n in cluster.list_gpu_nodes())
    cluster.request_mig_config(first, "all-balanced")
    cluster.node_nvml(second).faults.fail_create(1, 2)  # NVML_ERROR_INVALID_ARGUMENT on its first create
    cluster.request_mig_config(second, "all-balanced")
    assert cluster.get_node(first).labels[L.MIG_CONFIG_STATE] == "success"
    assert cluster.get_node(second).labels[L.MIG_CONFIG_STATE] == "success"  # mig-parted retries other orderings
    assert cluster.node_nvml(second).faults.create_failures == []  # the fault was consumed: the command ran


def test_lru_bound() -> None:
    cache = CommandCache(size=2)
    for i in range(3):
        assert cache.get_or_run(i, lambda i=i: i * 10) == i * 10
    assert cache.get_or_run(0, lambda: "again") == "again" and cache.misses == 4  # 0 was evicted


def test_a_command_that_changes_nothing_is_not_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asserts (and applies of what is applied) record no changes: the equal node that replays them is left as it
    is, and still ends equal to one that ran them (test_cached_fleet_equals_uncached)."""
    from mig_conformance.simulators import nvml as nv

    replayed: list[Any] = []
    original = nv.NvmlSimulator.replay
    monkeypatch.setattr(nv.NvmlSimulator, "replay", lambda self, ch: (replayed.append(ch), original(self, ch)))
    cluster = SimCluster("p5.48xlarge*2", allow_changes=True)
    for node in cluster.list_gpu_nodes():
        cluster.request_mig_config(node.name, "all-balanced")
    # node 2 replays: apply --mode-only (a mode change) and apply (new instances); its asserts replay nothing
    assert len(replayed) == 2 and all(ch is not None for ch in replayed)
    assert cluster.command_cache.hits > len(replayed)


def test_a_copied_result_has_every_field_and_shares_no_list() -> None:
    from dataclasses import fields

    from mig_conformance.simulators.mig_parted import GpuOutcome, LogEntry, MigPartedResult

    result = MigPartedResult("apply", 1, ["out"], [LogEntry("fatal", "x")], "err", "text",
                             [GpuOutcome(0, "0x233010DE", True)], "why")
    copy = result.copy()
    assert all(getattr(copy, f.name) == getattr(result, f.name) for f in fields(MigPartedResult))
    assert copy.stdout is not result.stdout and copy.log is not result.log and copy.gpus is not result.gpus


def test_simulated_uuids_are_uuid5_of_the_node_and_index() -> None:
    """The direct computation gives uuid5's text (README's `smi -L` shows these UUIDs)."""
    import uuid

    from mig_conformance.simulators.nvml import NvmlSimulator, _stable_uuid

    for parts in (("sim-p5-48xlarge-0", 0), ("nöde-€", 7), ("GPU-1234", 123456789)):
        expected = uuid.uuid5(uuid.NAMESPACE_URL, "mig-conformance-sim:" + "/".join(str(p) for p in parts))
        assert _stable_uuid(*parts) == str(expected)
    expected = uuid.uuid5(uuid.NAMESPACE_URL, "mig-conformance-sim:n/0")
    assert NvmlSimulator(["H100-80GB"], "n").gpus[0].uuid == f"GPU-{expected}"


def test_equal_nodes_share_gpu_instances_until_one_changes_them() -> None:
    """Replayed nodes hold the same GI objects (a 10,000-node fleet would hold as many copies); a node that changes
    its compute instances through NVML gets its own copy first, and the others keep theirs."""
    cluster = SimCluster("p5.48xlarge*3", allow_changes=True)
    names = [n.name for n in cluster.list_gpu_nodes()]
    for name in names:
        cluster.request_mig_config(name, "all-balanced")
    first, second, third = (cluster.node_nvml(n) for n in names)
    gi_id = next(iter(second.gpus[0].gis))
    assert second.gpus[0].gis[gi_id] is third.gpus[0].gis[gi_id]  # replayed: shared
    assert first.gpus[0].gis[gi_id] is not second.gpus[0].gis[gi_id]  # the node that ran the command owns its own
    before = json.loads(third.to_json())
    second.nvmlInit()
    gi = second.nvmlDeviceGetGpuInstanceById(second.nvmlDeviceGetHandleByIndex(0), gi_id)
    profile = second.nvmlGpuInstanceGetInfo(gi).profileId
    for ci_profile in range(8):
        try:
            cis = second.nvmlGpuInstanceGetComputeInstances(gi, ci_profile)
        except Exception:
            continue
        for ci in cis:
            second.nvmlComputeInstanceDestroy(ci)
    assert second.gpus[0].gis[gi_id].cis == {} and profile is not None
    assert json.loads(third.to_json()) == before  # untouched
    created = second.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    assert created.ci_id in second.gpus[0].gis[gi_id].cis and json.loads(third.to_json()) == before
    assert cluster.get_node(names[2]).allocatable == cluster.get_node(names[0]).allocatable
