"""The kit's device-plugin and GFD projection against NVIDIA's own code: every case of support/difftest_cases runs
through the harness (k8s-device-plugin's internal/rm and internal/lm on a mock NVML), and every difference is
either one of the documented known differences or a failure. docs/differential.md lists every case's result."""

from __future__ import annotations

import collections
import os

from support import difftest, difftest_docs
from support.difftest_cases import DRIVER, PLUGIN_VERSION, build_cases
from support.difftest_compare import KNOWN, Comparison, compare

MIN_CASES = 150


def test_the_kit_agrees_with_nvidia_code_on_every_case() -> None:
    binary = difftest.harness()
    cases = list(build_cases())
    results, stderr = difftest.run_harness(binary, (c.harness for c in cases))
    assert "private" in stderr, stderr  # the harness ran with its own mig-minors and PCI bus
    comparisons: dict[str, Comparison] = {}
    for case in cases:
        assert case.id in results, f"the harness returned no result for {case.id}"
        comparisons[case.id] = compare(case.id, case.strategy, case.states, [v.nvml_name for v in case.node.gpus],
                                       results[case.id], PLUGIN_VERSION, DRIVER)

    problems = [c.explain() for c in comparisons.values() if c.harness_error or c.unexplained]
    assert not problems, "the kit and NVIDIA's code differ beyond docs/differential.md:\n" + "\n".join(problems)
    assert len(comparisons) >= MIN_CASES

    seen = collections.Counter(k for c in comparisons.values() for k in c.known)
    stale = [k for k in KNOWN if not seen[k]]
    assert not stale, f"documented differences that no case shows any more (remove them from the docs): {stale}"

    new_table = difftest_docs.table({cid: c.cell for cid, c in comparisons.items()})
    if os.environ.get(difftest_docs.UPDATE_ENV):
        difftest_docs.rewrite(new_table)
    assert difftest_docs.documented() == new_table, (
        f"docs/differential.md's case table is out of date: rerun with {difftest_docs.UPDATE_ENV}=1")
    print(f"{len(comparisons)} cases: {sum(c.agrees for c in comparisons.values())} exact, known differences "
          f"{dict(seen)}")
