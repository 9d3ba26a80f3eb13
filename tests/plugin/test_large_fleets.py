"""A large simulated fleet: capped at 10,000 nodes (tests/plugin/test_plugin_options.py refuses more), and its
creation, restore and re-apply show their progress, a line per tenth, under pytest's header."""

from __future__ import annotations

import pytest

RELABEL_ALL = """
def test_relabel_all(mig_cluster, mig_nodes):
    for node in mig_nodes:
        mig_cluster.request_mig_config(node.name, "all-balanced")
"""


def test_a_fleet_of_a_thousand_nodes_shows_its_progress(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_all=RELABEL_ALL)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge*1000", "test_all.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    lines = result.stdout.lines
    for what in ("creating the simulated nodes", "restoring the changes of this run",
                 "waiting for mig-manager to re-apply the original configs"):
        shown = [line for line in lines if line.startswith(f"mig-conformance: {what}: ")]
        counts = [line.split(": ")[2].split(" ")[0] for line in shown]
        if what.startswith("waiting"):  # every node is polled at once: a poll may settle many tenths together
            assert counts and counts[-1] == "1,000/1,000" and len(counts) <= 10, counts
        else:
            assert counts == [f"{n:,}/1,000" for n in range(100, 1001, 100)]
        assert shown[-1].endswith(" s") and "(100%)" in shown[-1]
    header = next(i for i, line in enumerate(lines) if line.startswith("mig-conformance mode:"))
    first = next(i for i, line in enumerate(lines) if "creating the simulated nodes" in line)
    assert header < first < next(i for i, line in enumerate(lines) if line.startswith("collected "))


def test_a_small_fleet_shows_no_progress_lines(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_all=RELABEL_ALL)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge*999", "test_all.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert not [line for line in result.stdout.lines if line.startswith("mig-conformance: ") and "/999" in line]
