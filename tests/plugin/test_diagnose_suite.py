"""The diagnose suite through pytest: collected with the shipped suites, runnable alone with -m mig_diagnose, its
own report category, one failing test per faulty node (each finding with evidence, upstream issue and recovery)."""

from __future__ import annotations

import json

import pytest

from mig_conformance.cluster import diagnose_faults as F
from mig_conformance.cluster.sim.backend import SimCluster

FAULTY = f"""faulty:
  backend: sim
  nodes: "{F.FLEET}"
  diagnose_faults: all
"""


@pytest.mark.slow  # pytest in a subprocess
def test_every_fault_fails_its_nodes_test_once_in_the_diagnose_category(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", **{"mig-clusters": FAULTY})
    result = tester.runpytest_subprocess("--mig-cluster=faulty", "-m", "mig_diagnose", "--mig-report=out", "-p",
                                         "no:cacheprovider")
    assert result.ret == 1, result.stdout.str()[-3000:]
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    assert summary["categories"] == {"diagnose": {"passed": 1, "failed": 13, "skipped": 0, "error": 0}}
    plan = F.assign(SimCluster(F.FLEET).list_objects("Node"))
    failed = {t["node"]: t for t in summary["tests"] if t["outcome"] == "failed"}
    assert set(failed) == set(plan)
    for node, fault in plan.items():
        [finding] = failed[node]["measured"]["findings"]
        assert finding["id"] == F.FAULTS[fault][0] and finding["node"] == node
        assert finding["upstream"] and finding["recovery"] and finding["evidence"]
    result.stdout.fnmatch_lines(["*mig-manager-wedged on *", "*upstream: https://github.com/NVIDIA/gpu-operator/"
                                 "issues/2833*", "*recovery: mig-manager acts only on a change*"])


@pytest.mark.slow  # collects every shipped suite (5 s on 2 cores)
def test_collected_with_the_other_suites_and_alone_by_marker(tester: pytest.Pytester) -> None:
    everything = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--collect-only", "-q", "-p", "no:cacheprovider")
    alone = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--collect-only", "-q", "-m", "mig_diagnose", "-p",
                             "no:cacheprovider")
    diagnose = [line for line in alone.outlines if "::" in line]
    assert diagnose and all("test_diagnose.py" in line for line in diagnose)
    collected = [line for line in everything.outlines if "::" in line]
    assert collected[:len(diagnose)] == diagnose, "the diagnosis runs first, before any suite changes the cluster"
    assert len(collected) > len(diagnose)


@pytest.mark.slow  # a run over the default fleet (3 s)
def test_a_healthy_fleet_passes(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--mig-cluster=sim", "-m", "mig_diagnose", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    nodes = len(SimCluster("").list_gpu_nodes())  # one node of each MIG-capable type of the catalog
    result.assert_outcomes(passed=nodes + 1)  # a test per node and the cluster-wide one


@pytest.mark.slow  # pytest in a subprocess
def test_a_kind_the_identity_may_not_read_is_a_warning_naming_the_role_that_grants_it(tester: pytest.Pytester) -> None:
    tester.makeconftest("""
        from mig_conformance.cluster.base import ClusterError
        from mig_conformance.cluster.sim.backend import SimCluster

        real = SimCluster.list_objects

        def list_objects(self, kind):
            if kind == "Event":
                raise ClusterError("sim: access denied: the kit needs permission to list events in the operator "
                                   "namespace (see deploy/rbac.yaml): forbidden")
            return real(self, kind)

        SimCluster.list_objects = list_objects
    """)
    result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge", "-m", "mig_diagnose", "-p",
                                         "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*UserWarning: diagnose could not read Event: not permitted for this identity, checks "
                                 "that need it were skipped (deploy/rbac-diagnose.yaml grants every read*"])
    assert "access denied" not in result.stdout.str()
