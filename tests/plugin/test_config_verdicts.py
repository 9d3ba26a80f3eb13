"""A green verdict never misleads: with --mig-config-file, a config that cannot be applied on a node it targets fails
the run (saying which node, its GPUs, why, and what mig-parted reported), the report shows the config verdicts apart
from the conformance results, and a config the user expects to fail must fail."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_my_yaml() -> str:
    """README's own my.yaml (the `$ cat my.yaml` example), so that this test follows the README."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"^\$ cat my\.yaml\n(.*?)^\$ ", text, re.S | re.M)
    assert block, "README has no `$ cat my.yaml` example"
    return block.group(1)


README_RUN = ["--mig-cluster=sim:p5.48xlarge,p4d.24xlarge", "--mig-config-file=my.yaml", "-p", "no:cacheprovider"]
APPLIES = """version: v1
mig-configs:
  inference:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
"""


def summary_of(tester: pytest.Pytester, folder: str) -> dict[str, Any]:
    return dict(json.loads((tester.path / folder / "summary.json").read_text()))


@pytest.mark.slow  # the README's run: every suite in a subprocess
def test_readmes_my_yaml_run_fails_saying_where_why_and_what_mig_parted_reported(tester: pytest.Pytester) -> None:
    """Before: `verdict: Passed`, with summary.json saying state failed and outcome passed."""
    tester.makefile(".yaml", my=readme_my_yaml())
    result = tester.runpytest_subprocess(*README_RUN, "--mig-report=out")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*Failed: config 'training' of */my.yaml does not apply on node sim-p5-48xlarge-0 (p5.48xlarge, 8x "
        "H100-80GB)",
        "*why: GPUs 4-7: does not fit on H100-80GB: no non-overlapping placement*(*my.yaml:8, entry 1, key "
        "'mig-devices')",
        "*mig-manager: pending -> failed; mig-parted on a fresh node of these GPUs: apply: failure (Error applying "
        "MIG configuration with hooks: *all orderings failed); assert after apply: failure*",
    ])
    assert "config 'training' of " in out and "does not apply on node sim-p4d-24xlarge-0 (p4d.24xlarge, 8x " \
                                              "A100-40GB)" in out
    result.stdout.fnmatch_lines(["*mig-conformance summary*", "config verdicts (*",
                                 "  training on sim-p4d-24xlarge-0 (8x A100-40GB): DOES NOT APPLY: GPUs 4-7: profile "
                                 "3g.40gb exists on no GPU of this node*",
                                 "  training on sim-p5-48xlarge-0 (8x H100-80GB): DOES NOT APPLY: GPUs 4-7: does not "
                                 "fit on H100-80GB*",
                                 "conformance: Passed: the cluster did what the kit predicted",
                                 "config verdicts: Failed: 2 do not apply*",
                                 "verdict: Failed (31 passed, 2 failed, 16 skipped, 0 errors)"])  # dra: no DRA nodes
    summary = summary_of(tester, "out")
    assert (summary["verdict"], summary["conformance_verdict"], summary["config_verdict"]) == \
        ("Failed", "Passed", "Failed")
    assert summary["config_verdict_counts"] == {"applies": 0, "does-not-apply": 2, "expected-failure": 0,
                                                "unexpectedly-applied": 0}
    verdicts = {v["node"]: v for v in summary["config_verdicts"]}
    p5, p4d = verdicts["sim-p5-48xlarge-0"], verdicts["sim-p4d-24xlarge-0"]
    assert (p5["verdict"], p5["mig_manager"], p5["as_predicted"], p5["gpus"]) == (
        "does-not-apply", "pending -> failed", True, "8x H100-80GB")
    assert (p4d["mig_manager"], p4d["mig_parted"]) == (
        "pending -> success", "apply: success; assert after apply: failure (Not all GPUs match the specified config)")
    custom = [t for t in summary["tests"] if t["category"] == "custom"]
    assert {t["outcome"] for t in custom} == {"failed"} and {t["config"] for t in custom} == {"training"}
    md = (tester.path / "out" / "report.md").read_text()
    assert "| Config verdicts | Failed: 2 do not apply, counted per config and node it targets |" in md
    assert "## Config verdicts" in md and "| training | sim-p5-48xlarge-0 (p5.48xlarge) | 8x H100-80GB | **does " \
                                        "not apply** | yes | GPUs 4-7: does not fit on H100-80GB" in md
    html = (tester.path / "out" / "report.html").read_text()
    assert '<span class="Passed">Conformance: Passed</span>' in html
    assert '<span class="Failed">Config verdicts: Failed</span>' in html and 'id="config-verdicts"' in html


def test_an_expected_failure_that_fails_keeps_the_run_green(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", my=readme_my_yaml())
    result = tester.runpytest(*README_RUN, "--mig-report=out", "-k", "custom",
                              "--mig-expect-config-failure", "training")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*expected_config_failures=training (from option)*",
                                 "  training on sim-p5-48xlarge-0 (8x H100-80GB): expected failure confirmed: GPUs*",
                                 "config verdicts: Passed: *2 expected failures confirmed",
                                 "verdict: Passed (2 passed, 0 failed, 0 skipped, 0 errors)"])
    summary = summary_of(tester, "out")
    assert summary["config_verdict_counts"]["expected-failure"] == 2
    assert summary["settings"]["expected_config_failures"] == {"value": ["training"], "source": "option"}


def test_an_expected_failure_that_applies_fails_the_run(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", mine=APPLIES)
    tester.makeini("[pytest]\nmig_expected_config_failures =\n    inference\n")
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--mig-config-file=mine.yaml", "-k", "custom",
                              "--mig-report=out", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*Failed: config 'inference' of */mine.yaml was expected to fail (listed by ini mig_expected_config_failures) "
        "but applies on node sim-p5-48xlarge-0 (p5.48xlarge, 8x H100-80GB)",
        "*mig-manager: pending -> success; mig-parted on a fresh node of these GPUs: apply: success; assert after "
        "apply: success",
        "  inference on sim-p5-48xlarge-0 (8x H100-80GB): UNEXPECTEDLY APPLIED*",
        "conformance: Passed*", "config verdicts: Failed: 1 UNEXPECTEDLY applied*"])
    assert summary_of(tester, "out")["config_verdicts"][0]["verdict"] == "unexpectedly-applied"


def test_a_config_that_applies_passes_with_its_verdict(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", mine=APPLIES)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--mig-config-file=mine.yaml", "-k", "custom",
                              "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  inference on sim-p5-48xlarge-0 (8x H100-80GB): applies",
                                 "config verdicts: Passed: *1 applies"])


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--mig-expect-config-failure=nope", "--mig-expect-config-failure", "training"], None,
     "*--mig-expect-config-failure: no config 'nope' in */my.yaml (configs there: training)*"),
    ([], "training,ghost", "*env MIG_EXPECTED_CONFIG_FAILURES: no config 'ghost' in */my.yaml (configs there: "
                           "training)*"),
])
def test_an_unknown_expected_failure_is_a_usage_error_naming_the_configs(tester: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         args: list[str], env: str | None,
                                                                         message: str) -> None:
    tester.makefile(".yaml", my=readme_my_yaml())
    if env:
        monkeypatch.setenv("MIG_EXPECTED_CONFIG_FAILURES", env)
    result = tester.runpytest(*README_RUN, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_expected_failures_without_a_config_file_are_a_usage_error(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--mig-cluster=sim", "--mig-expect-config-failure=training", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mig-expect-config-failure: training name configs of --mig-config-file, but no "
                                 "--mig-config-file is given*"])


@pytest.mark.slow  # the README's run twice, in subprocesses
def test_xdist_gives_the_same_config_verdicts(tester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    tester.makefile(".yaml", my=readme_my_yaml())
    serial = tester.runpytest_subprocess(*README_RUN, "--mig-report=serial")
    parallel = tester.runpytest_subprocess(*README_RUN, "--mig-report=parallel", "-n", "2")
    assert serial.ret == parallel.ret == pytest.ExitCode.TESTS_FAILED
    a, b = summary_of(tester, "serial"), summary_of(tester, "parallel")
    for key in ("verdict", "conformance_verdict", "config_verdict", "config_verdict_counts", "config_verdicts",
                "totals", "categories"):
        assert a[key] == b[key], key
    assert len(a["config_verdicts"]) == 2
