"""Dynamic MIG with the real kube-scheduler (bounded CI version of benchmarks/bench_dra_dynamic.py): random profile
multisets claimed on one GPU are allocated iff the placement engine says they fit (Hopper, and Ampere whose MIG mode
the driver keeps)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mig_conformance.cluster.local import dra_cases
from mig_conformance.cluster.local.backend import LocalCluster
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import dra
from mig_conformance.k8s import dra_differential as DD
from support.control_plane import control_plane_assets


@pytest.mark.parametrize("key", ["H100-80GB", "A100-40GB"])
def test_real_scheduler_agrees_with_placement_engine(key: str, tmp_path: Path) -> None:
    control_plane_assets()
    gpu = load_catalog().get(key)
    cluster = LocalCluster.start(f"{key}*4", state_dir=tmp_path, gpu_allocation="dra", dynamic_mig=True,
                                 mig_manager_delay=0.05, timeout=120,
                                 default_config="all-enabled" if gpu.architecture == "ampere" else None)
    try:
        names = [n.name for n in cluster.list_gpu_nodes()]
        with cluster.admin() as admin:
            dra_cases.wait_pools(admin, names, dra.DRIVER, 60, dynamic=True)
            admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diff"}})
        rng = random.Random(f"ci-{key}")
        cases = [DD.random_case(gpu, rng) for _ in range(24)]

        def work(i: int) -> list[tuple[int, bool]]:
            with cluster.admin() as admin:
                return [(j, dra_cases.run_case(admin, "diff", names[i], f"c{j}",
                                               DD.claim_object(f"c{j}", cases[j])).bound)
                        for j in range(i, len(cases), len(names))]

        with ThreadPoolExecutor(len(names)) as pool:
            results = [r for rs in pool.map(work, range(len(names))) for r in rs]
    finally:
        cluster.close()
    assert {bound for _, bound in results} == {True, False}
    assert [d.as_dict() for d in (DD.compare(gpu, cases[j], b) for j, b in results) if d] == []
