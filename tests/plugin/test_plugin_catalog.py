"""pytest with --mig-catalog (issue 13 item 1): a captured entry under a new key and a new instance type in a user
folder drive a sim run of that type; a folder that does not load is a usage error naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from mig_conformance.report.render_md import md_text
from support.user_catalog import DRIVER, NEW_GPU, NEW_TYPE, make_user_catalog


@pytest.fixture
def user_dir(tester: pytest.Pytester) -> Path:
    return make_user_catalog(tester.path / "ucat")


@pytest.mark.slow
def test_sim_run_of_a_new_instance_type_passes_and_names_the_user_files(tester: pytest.Pytester,
                                                                          user_dir: Path) -> None:
    result = tester.runpytest(f"--mig-cluster=sim:{NEW_TYPE}", f"--mig-catalog={user_dir}", "--mig-report=out",
                              "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*conformance: Passed*"])
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    tests = [t for t in summary["tests"] if t["instance_type"] == NEW_TYPE]
    assert tests and {t["gpu_model"] for t in tests} == {NEW_GPU}
    gpu_file = str((user_dir / "gpus" / f"{NEW_GPU}.yaml").resolve())
    type_file = str((user_dir / "instance-types.yaml").resolve())
    (entry,) = summary["signoff"]
    assert entry["instance_type"]["file"] == type_file and entry["gpu"]["file"] == gpu_file
    assert entry["gpu"]["how"] == f"captured on driver {DRIVER}" and entry["layouts"]["count"] == 127
    row = next(r for r in entry["configs"] if r["config"] == "all-balanced" and r["strategy"] == "mixed")
    assert row["verdict"] == "applies" and row["run"] == "passed"
    assert row["allocatable"] == {"nvidia.com/mig-1g.12gb": 16, "nvidia.com/mig-2g.24gb": 8,
                                  "nvidia.com/mig-3g.47gb": 8}
    assert entry["scheduling"] and not entry["mismatches"]
    # the first page of report.md is the sign-off, naming the user files
    md = (tester.path / "out" / "report.md").read_text()
    first = md.split("\n## ")[1]
    assert first.startswith(f"Sign-off: {NEW_TYPE}: 8 x {NEW_GPU}")
    assert md_text(gpu_file) in first and md_text(type_file) in first
    assert "| all-balanced | mixed | applies | mig-1g.12gb=16, mig-2g.24gb=8, mig-3g.47gb=8 | passed |" in first
    html = (tester.path / "out" / "report.html").read_text()
    ElementTree.fromstring(html.removeprefix("<!DOCTYPE html>"))  # still well-formed
    assert html.index("Sign-off: ") < html.index('id="run"') and "7g.94gb: every placement" in html
    target = yaml.safe_load((tester.path / "out" / "TARGET.yaml").read_text())
    assert target["catalog"][0]["gpu_file"] == gpu_file and target["catalog"][0]["instance_type_origin"] == \
        "user catalog"


def test_env_and_ini_give_folders_and_a_bad_one_is_a_usage_error(tester: pytest.Pytester, user_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tester.makepyfile(test_it="def test_ok():\n    pass\n")
    (user_dir / "instance-types.yaml").write_text("instance_types:\n  x1:\n    gpu: NOPE\n    gpu_count: 1\n",
                                                  encoding="utf-8")
    monkeypatch.setenv("MIG_CATALOG", "ucat")
    result = tester.runpytest("--mig-cluster=sim", "test_it.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*env MIG_CATALOG*instance-types.yaml:3*unknown catalog GPU 'NOPE'*"])


@pytest.mark.slow
def test_sim_run_of_p6e_gb200_says_mig_is_not_applicable(tester: pytest.Pytester) -> None:
    """p6e-gb200 with the EKS AMI: CDMM keeps MIG off; the simulated node has no MIG, every MIG test is skipped as
    not applicable with the reason, and the run still passes (its catalog check ran)."""
    result = tester.runpytest("--mig-cluster=sim:p6e-gb200.36xlarge", "--mig-report=out", "-rs",
                              "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*not applicable: MIG is not available on p6e-gb200.36xlarge*CDMM*"])
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    assert summary["totals"]["passed"] >= 1 and summary["totals"]["failed"] == 0
    assert summary["signoff"][0]["instance_type"]["mig_available"] is False
