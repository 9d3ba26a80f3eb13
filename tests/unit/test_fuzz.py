"""The bounded, seeded version of benchmarks/bench_fuzz.py (docs/hardening.md#the-fuzz): 1,000 hostile inputs at
validate, mig-parted apply, the clusters file and --mig-config-file in process, a sample as real processes and one
real pytest run. No tracebacks, no internal errors, every error names the file. How long they take and how much
memory they use is the benchmark's to measure (no timed tests); a case still running after fuzz_cases.HANG_S
seconds counts as a failure here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fuzz_cases as fz

pytestmark = pytest.mark.slow
SEED, CASES = 1, 1_000


def test_a_thousand_hostile_inputs_in_process(tmp_path: Path) -> None:
    outcomes, _ = fz.run_cases(SEED, range(CASES), tmp_path, big_every=500)
    summary = fz.summarize(outcomes, CASES)
    report = "\n".join(summary.lines())
    assert summary.runs == CASES * len(fz.TARGETS)
    assert not summary.tracebacks, report
    assert not summary.internal, report
    assert not summary.unnamed, report  # every error names the file
    assert summary.errors > CASES  # the inputs are hostile: most of them are refused
    kinds = {o.kind.split(" (")[0] for o in outcomes}
    assert {"alias bomb", "cycle", "deep nesting", "huge", "binary garbage", "empty or whitespace", "50MB"} <= kinds
    assert any(k.startswith("mutated") for k in kinds)


def test_a_sample_as_real_processes_and_a_pytest_run(tmp_path: Path) -> None:
    sample = [fz.make_case(SEED, i, 500) for i in range(0, CASES, 100)]
    bad = [o for o in (fz.run_subprocess(case, tmp_path) for case in sample) if o.traceback]
    assert not bad, [(o.case, o.kind, o.exit_code, o.traceback) for o in bad]
    for index in (3, 499):  # a mutated config and a 50 MB file
        run = fz.run_pytest(fz.make_case(SEED, index, 500), tmp_path)
        assert run.exit_code in (0, 1, 4) and not run.traceback, (run.kind, run.traceback)


def test_cases_are_reproducible() -> None:
    assert fz.make_case(SEED, 123, 500).data == fz.make_case(SEED, 123, 500).data
    assert fz.make_case(SEED, 123, 500).data != fz.make_case(SEED + 1, 123, 500).data
