"""What the report says about real runs of the shipped suites (sim backend, in process): every row names its node,
category, config and strategy, also when the test was skipped or failed before it recorded anything itself; the
cleanup says how long it waited; the catalog's label check runs on a fresh cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

SLOW_SIM = "slow:\n  backend: sim\n  nodes: p5.48xlarge*2\n  mig_manager_delay: 1000\n"
PUBLISHING = "balanced:\n  backend: sim\n  nodes: p5.48xlarge\n  default_config: all-balanced\n"


def _summary(tester: pytest.Pytester) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((tester.path / "out" / "summary.json").read_text())
    return summary


def test_skipped_custom_tests_belong_to_their_node_and_category(tester: pytest.Pytester) -> None:
    """A skip mark of a parametrization is applied before any setup hook of the kit runs: the record the kit
    attached at setup never reached the report, so these rows landed in "other", under "Tests without a node"."""
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge,p4d.24xlarge", "--mig-report=out", "-k",
                              "test_custom_config", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    tests = _summary(tester)["tests"]
    assert [(t["category"], t["node"], t["instance_type"], t["gpu_model"]) for t in tests] == [
        ("custom", "sim-p4d-24xlarge-0", "p4d.24xlarge", "A100-40GB"),
        ("custom", "sim-p5-48xlarge-0", "p5.48xlarge", "H100-80GB")]
    html = (tester.path / "out" / "report.html").read_text()
    assert "Tests without a node" not in html and ">other<" not in html


def test_failed_rows_name_their_config_and_strategy_and_the_cleanup_its_real_wait(tester: pytest.Pytester) -> None:
    """mig-manager takes longer than --mig-timeout: every reconfiguration fails with a timeout before the test
    records its result; the rows still say what was asked. The restore then waits for both nodes side by side."""
    tester.makefile(".yaml", clusters=SLOW_SIM)
    result = tester.runpytest("--mig-cluster=slow", "--mig-clusters-file=clusters.yaml", "--mig-timeout=30",
                              "--mig-report=out", "-k", "test_all_balanced or test_unknown_config_fails or "
                              "test_every_slice_is_schedulable", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2, errors=2, passed=2)  # an unknown config fails at once: that test passes
    summary = _summary(tester)
    rows = {(t["nodeid"].split("::")[1].split("[")[0], t["node"]): t for t in summary["tests"]}
    for node in ("sim-p5-48xlarge-0", "sim-p5-48xlarge-1"):
        for test, outcome in (("test_all_balanced", "failed"), ("test_every_slice_is_schedulable", "error")):
            row = rows[(test, node)]
            assert row["outcome"] == outcome and "timed out after 30s" in row["message"], row
            assert (row["category"], row["config"], row["strategy"], row["gpu_model"]) == \
                (test.split("_")[-1].replace("schedulable", "scheduling").replace("balanced", "all-balanced"),
                 "all-balanced", "mixed", "H100-80GB"), row
        unknown = rows[("test_unknown_config_fails", node)]
        assert (unknown["outcome"], unknown["config"], unknown["strategy"]) == \
            ("passed", "mig-conformance-no-such-config", "mixed")
        balanced = rows[("test_all_balanced", node)]
        assert balanced["expected"]["allocatable"] == {"nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8,
                                                       "nvidia.com/mig-3g.40gb": 8}
        assert balanced["layout"] and balanced["layout"][0]["instances"]  # the picture of what was asked
    out = result.stdout.str()
    assert "all-balanced                    mixed     FAILED" in out, out[-3000:]
    assert "all-balanced                    mixed     ERROR" in out
    for node in ("sim-p5-48xlarge-0", "sim-p5-48xlarge-1"):  # both waited the whole 30s, not 30s and 0s
        assert (f"NOT SETTLED: node {node}: mig-manager did not bring back the original config: not settled: timed "
                f"out after 30s waiting for mig-manager to re-apply on {node}; last state: node {node} "
                "mig.config=all-disabled state=- (unchanged for the last 30s)") in out
    assert "timed out after 0s" not in out


def test_the_catalog_label_check_runs_on_a_fresh_cluster(tester: pytest.Pytester) -> None:
    """No node of a fresh cluster publishes MIG profile labels (all-disabled): the test applies all-balanced under
    mixed first where the run may change the cluster, instead of skipping on every node."""
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge,p4d.24xlarge", "--mig-report=out", "-k",
                              "test_mig_labels_match_profile_table", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    rows = _summary(tester)["tests"]
    assert {(t["config"], t["strategy"]) for t in rows} == {("all-balanced", "mixed")}
    p5 = next(t for t in rows if t["node"] == "sim-p5-48xlarge-0")
    assert p5["measured"] == p5["expected"] and p5["expected"]["3g.40gb.memory"] == "40448"
    assert {k for k in p5["expected"] if k.endswith(".memory")} == {"1g.10gb.memory", "2g.20gb.memory",
                                                                      "3g.40gb.memory"}


def test_the_catalog_label_check_fails_on_a_label_that_differs_from_the_profile_table(
        tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", clusters=PUBLISHING)  # the node publishes MIG labels already: checked as they are
    tester.makeconftest("""
        import pytest

        @pytest.fixture(autouse=True)
        def gfd_label_changed(mig_cluster, mig_nodes):
            mig_cluster.set_node_label(mig_nodes[0].name, "nvidia.com/mig-2g.20gb.memory", "20000")
    """)
    result = tester.runpytest("--mig-cluster=balanced", "--mig-clusters-file=clusters.yaml", "-k",
                              "test_mig_labels_match_profile_table", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*labels differ from the H100-80GB profile table: "
                                 "{'2g.20gb.memory': ('20000', '20096')}*"])


@pytest.mark.slow  # two runs in process
def test_a_read_only_run_checks_published_labels_and_says_why_it_does_not_reconfigure(
        tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", clusters=PUBLISHING + "fresh:\n  backend: sim\n  nodes: p5.48xlarge\n")
    tester.makeconftest("""
        import pytest
        from mig_conformance.plugin.hooks import session_key

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            session = config.stash[session_key]  # this session only: the class stays as it is for later runs
            session.__class__ = type("ReadOnlySession", (type(session),), {"allow_changes": property(lambda s: False)})
    """)
    args = ("--mig-clusters-file=clusters.yaml", "-k", "test_mig_labels_match_profile_table", "-rs",
            "-p", "no:cacheprovider")
    tester.runpytest("--mig-cluster=balanced", *args).assert_outcomes(passed=1)
    fresh = tester.runpytest("--mig-cluster=fresh", *args)
    fresh.assert_outcomes(skipped=1)
    fresh.stdout.fnmatch_lines(["*sim-p5-48xlarge-0 publishes no MIG profile labels now * and is not reconfigured: "
                                "the run may not change the cluster (--mig-allow-reconfigure allows it)*"])
