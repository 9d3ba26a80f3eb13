"""Current AWS GPU types in the shipped catalog (issue 13 item 2): p6-b300 (B300, sizes AWS calls preliminary),
g7e (RTX PRO 6000 Server Edition), and p6e-gb200, where MIG is not available with the EKS AMI (CDMM)."""

from __future__ import annotations

import json

import pytest

from mig_conformance.cli import main
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.report.model import RunSummary, TestResult
from mig_conformance.report.signoff import build_signoff


def expect(capsys: pytest.CaptureFixture[str], itype: str, config: str, strategy: str = "mixed") -> tuple[int, dict]:
    code = main(["expect", "--instance-type", itype, "--config", config, "--strategy", strategy, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_p6_b300_all_balanced_mixed_predicts_b300_profiles(capsys) -> None:
    code, doc = expect(capsys, "p6-b300.48xlarge", "all-balanced")
    assert code == 0
    assert doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.34gb": 16, "nvidia.com/mig-2g.67gb": 8,
                                  "nvidia.com/mig-3g.135gb": 8}
    it = doc["provenance"]["instance_type"]
    assert any("preliminary" in n for n in it["notes"]) and it["origin"] == "shipped"
    gpu = doc["provenance"]["gpus"][0]
    assert gpu["key"] == "B300-269GB" and len(gpu["unconfirmed_rows"]) == 7 and not gpu["captured"]
    code, doc = expect(capsys, "p6-b300.48xlarge", "all-1g.34gb", "single")
    assert code == 0 and doc["allocatable"] == {"nvidia.com/gpu": 56}


@pytest.mark.parametrize("config", ["all-balanced", "all-1g.23gb", "all-enabled", "all-7g.186gb"])
def test_p6e_gb200_any_mig_config_is_not_applicable(capsys, config: str) -> None:
    code, doc = expect(capsys, "p6e-gb200.36xlarge", config)
    assert code == 1 and doc["mig_available"] is False
    assert "MIG is not available on p6e-gb200.36xlarge" in doc["not_applicable"] and "CDMM" in doc["not_applicable"]
    assert doc["allocatable"] == {"nvidia.com/gpu": 4} and doc["labels"]["nvidia.com/mig.config"] == config
    main(["expect", "--instance-type", "p6e-gb200.36xlarge", "--config", config, "--strategy", "mixed"])
    assert f"config {config}: not applicable: MIG is not available" in capsys.readouterr().out


def test_p6e_gb200_without_mig_is_fine_and_validate_says_not_applicable(capsys) -> None:
    code, doc = expect(capsys, "p6e-gb200.36xlarge", "all-disabled")
    assert code == 0 and doc["not_applicable"] is None
    from mig_conformance.mig.default_config import default_config_file

    code = main(["validate", str(default_config_file()), "--config", "all-1g.23gb", "--instance-type",
                 "p6e-gb200.36xlarge", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["errors"][0]["message"].startswith("not applicable: MIG is not available")
    assert main(["validate", str(default_config_file()), "--config", "all-disabled", "--instance-type",
                 "p6e-gb200.36xlarge"]) == 0


def test_g7e_sizes_and_rtx_pro_6000(capsys) -> None:
    types = load_instance_types()
    g7e = {n: (t.gpu, t.gpu_count) for n, t in types.items() if n.startswith("g7e.")}
    assert g7e == {f"g7e.{s}": ("RTXPRO6000-96GB", n) for s, n in (("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1),
                                                                   ("12xlarge", 2), ("24xlarge", 4),
                                                                   ("48xlarge", 8))}
    code, doc = expect(capsys, "g7e.48xlarge", "all-balanced")
    assert code == 0 and {k: v for k, v in doc["allocatable"].items() if v} == {
        "nvidia.com/mig-1g.24gb": 16, "nvidia.com/mig-2g.48gb": 8}
    assert types["p6-b300.48xlarge"].source.startswith("moto 5.2.6")


def test_signoff_of_p6e_gb200_is_not_applicable_but_all_disabled() -> None:
    summary = RunSummary(run_id="r", verdict="Passed", started="s", finished="f", duration_s=1.0,
                         tests=[TestResult("t.py::test[x]", "skipped", instance_type="p6e-gb200.36xlarge")])
    (entry,) = build_signoff(summary)
    assert entry["instance_type"]["mig_available"] is False and "CDMM" in entry["instance_type"]["mig_unavailable"]
    verdicts = {(r["config"], r["strategy"]): r["verdict"] for r in entry["configs"]}
    assert verdicts[("all-disabled", "mixed")] == "applies"
    assert {v for k, v in verdicts.items() if k[0] != "all-disabled"} == {"not applicable"}


def test_g7_sizes_and_rtx_pro_4500_profiles() -> None:
    types = load_instance_types()
    g7 = {n: (t.gpu, t.gpu_count, t.vcpus, t.memory_mib) for n, t in types.items() if n.startswith("g7.")}
    assert g7 == {f"g7.{s}": ("RTXPRO4500-32GB", n, v, m) for s, n, v, m in (
        ("2xlarge", 1, 8, 32768), ("4xlarge", 1, 16, 65536), ("8xlarge", 1, 32, 131072),
        ("12xlarge", 2, 48, 196608), ("24xlarge", 4, 96, 393216), ("48xlarge", 8, 192, 786432))}
    assert all(not types[n].mig_available and types[n].min_driver == "595" for n in g7)
    model = types["g7.48xlarge"].gpu_model()
    assert model.mig_capable and not model.confirmed and model.min_driver == "575.64"
    assert (model.memory_slots, model.compute_slices, model.memory_total_mib, model.sm_count) == (2, 2, None, None)
    rows = {p.name: p.max_instances for p in model.gi_profiles}
    assert rows == {"1g.16gb": 2, "1g.16gb+gfx": 2, "1g.16gb+me.all": 1, "1g.16gb-me": 2, "2g.32gb": 1,
                    "2g.32gb+gfx": 1}
    assert all(not p.confirmed and p.sm is None and p.memory_mib is None for p in model.gi_profiles)


@pytest.mark.parametrize("config", ["all-balanced", "all-1g.16gb", "all-2g.32gb", "all-enabled"])
def test_g7_mig_is_not_available_on_the_default_580_driver(capsys, config: str) -> None:
    code, doc = expect(capsys, "g7.48xlarge", config)
    assert code == 1 and doc["mig_available"] is False and doc["stack"]["driver"]["value"].startswith("580.")
    why = doc["not_applicable"]
    assert "MIG is not available on g7.48xlarge" in why and "driver 580" in why and "595" in why
    assert doc["allocatable"] == {"nvidia.com/gpu": 8}
    assert doc["provenance"]["instance_type"]["min_driver"] == "595"
    main(["expect", "--instance-type", "g7.48xlarge", "--config", config, "--strategy", "mixed"])
    assert f"config {config}: not applicable: MIG is not available on g7.48xlarge: driver 580" in (
        capsys.readouterr().out)
    code, doc = expect(capsys, "g7.2xlarge", "all-disabled")
    assert code == 0 and doc["not_applicable"] is None and doc["allocatable"] == {"nvidia.com/gpu": 1}
