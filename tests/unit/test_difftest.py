"""The differential test's own parts that need no Go: the cases it builds, the comparison's rules and the docs'
case table (tests/differential runs the harness itself)."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import device_plugin, gfd
from support import difftest_cases as dc
from support import difftest_docs
from support.difftest_compare import CMD_WRAPPERS, compare

#: MIG GPUs of the catalog the differential tier has no cases for yet (added after it was written)
NOT_YET_DIFFERENTIAL = {"B300-269GB", "GB200-186GB", "RTXPRO4500-32GB"}


def test_enough_cases_over_every_mig_gpu_layout_kind_and_strategy() -> None:
    ids = dc.case_ids()
    assert len(ids) == len(set(ids)) >= 150
    nodes = {node.name: node for node in dc.NODES}
    gpus = {v.model_key for node in dc.NODES for v in node.gpus}
    # B300, GB200, RTX PRO 4500 came with issue 13 (names and counts only): cases wait for a harness run
    assert {m.key for m in load_catalog().mig_capable} - NOT_YET_DIFFERENTIAL <= gpus
    layouts = collections.Counter(i.rsplit("/", 2)[1] for i in ids)
    for kind in ("all-disabled", "all-enabled", "all-balanced", "all-1g.10gb.me", "sub-profile", "me-mix",
                 "half-mig", "one-empty"):
        assert layouts[kind], kind
    assert {i.rsplit("/", 1)[1] for i in ids} == {"none", "single", "mixed"}
    assert any(len({v.pci_device_id for v in n.gpus}) > 1 and all(m.mig_capable for m in n.models)
               for n in nodes.values())  # two MIG device IDs on one node


def test_docs_list_every_case_row_in_order() -> None:
    rows = list(dict.fromkeys(tuple(i.rsplit("/", 2)[:2]) for i in dc.case_ids()))
    assert difftest_docs.documented_rows() == rows


def _p5_case(layout: str, strategy: str) -> dc.DiffCase:
    node = dc.instance_node("p5.48xlarge")
    found = next(x for x in dc.layouts(node) if x.name == layout)
    states, verdict, gpus = dc._apply(node, found)
    cid = f"{node.name}/{layout}/{strategy}"
    return dc.DiffCase(cid, node, found, strategy, states, verdict, dc.harness_input(cid, strategy, gpus, node.models))


def test_harness_input_holds_the_catalog_table_and_nvml_instances() -> None:
    case = _p5_case("all-balanced", "mixed")
    gpu = case.harness["gpus"][0]
    h100 = load_catalog().get("H100-80GB")
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["pci_device_id"] == 0x233010DE
    assert {p["id"] for p in gpu["gi_profiles"]} == {p.id for p in h100.gi_profiles}
    three = next(p for p in gpu["gi_profiles"] if p["id"] == 9)
    assert (three["index"], three["memory_mib"], three["multiprocessors"]) == (2, 40448, 60)
    by_index = {p["index"]: p for p in gpu["gi_profiles"]}
    created = sorted(h100.profile_by_index(gi["profile_index"]).name for gi in gpu["gpu_instances"])
    assert created == sorted(case.states[0].devices)
    starts = [(gi["start"], by_index[gi["profile_index"]]["placements"]) for gi in gpu["gpu_instances"]]
    assert all(any(p["start"] == s for p in pls) for s, pls in starts)


def _nvidia(case: dc.DiffCase, labels: dict[str, str] | None = None,
            plugin: dict[str, Any] | None = None) -> dict[str, Any]:
    """A harness result equal to the kit's projection (what NVIDIA's code gives when they agree), then changed."""
    dp = device_plugin.advertise(case.strategy, case.states, version=dc.PLUGIN_VERSION)
    error = dp.error.removeprefix("".join(CMD_WRAPPERS)) if dp.error else None
    plugin_result = {"resources": dict(dp.resources), "error": error, "warnings": list(dp.warnings), **(plugin or {})}
    gfd_labels = {**gfd.labels(case.strategy, case.states, dc.DRIVER, version=dc.PLUGIN_VERSION), **(labels or {})}
    return {"id": case.id, "device_plugin": plugin_result,
            "gfd": {"labels": gfd_labels, "variants": {}, "error": None, "warnings": []}}


def _compare(case: dc.DiffCase, result: dict[str, Any]) -> Any:
    return compare(case.id, case.strategy, case.states, [v.nvml_name for v in case.node.gpus], result,
                   dc.PLUGIN_VERSION, dc.DRIVER)


def test_equal_results_are_exact_and_vgpu_present_is_compared() -> None:
    """Formerly D1: the kit now writes `nvidia.com/vgpu.present=false` as GFD does, so the label is compared."""
    case = _p5_case("all-1g.10gb", "mixed")
    result = _nvidia(case)
    assert result["gfd"]["labels"]["nvidia.com/vgpu.present"] == "false"
    assert _compare(case, result).cell == "exact"
    vgpu = _compare(case, _nvidia(case, labels={"nvidia.com/vgpu.present": "true"}))
    assert vgpu.cell == "DIFFERS" and [f.what for f in vgpu.unexplained] == ["label nvidia.com/vgpu.present"]


@pytest.mark.parametrize(("plugin", "labels", "what"), [
    ({"resources": {"nvidia.com/mig-1g.10gb": 55}}, None, "resources"),
    ({"warnings": ["device 0 has no MIG devices configured"]}, None, "warnings"),
    ({"error": "failed to construct resource managers: boom"}, None, "error"),
    (None, {"nvidia.com/gpu.count": "7"}, "label nvidia.com/gpu.count"),
    (None, {"nvidia.com/gpu.machine": "x"}, None),  # not modelled: never compared
])
def test_anything_else_differs(plugin: dict[str, Any] | None, labels: dict[str, str] | None,
                               what: str | None) -> None:
    case = _p5_case("all-1g.10gb", "mixed")
    found = _compare(case, _nvidia(case, labels, plugin))
    assert [f.what for f in found.unexplained] == ([what] if what else [])
    assert found.cell == ("DIFFERS" if what else "exact")


def test_the_kit_error_is_nvidia_error_behind_the_command_wrappers() -> None:
    case = _p5_case("one-empty", "single")
    result = _nvidia(case)
    assert result["device_plugin"]["error"].startswith("failed to construct resource managers: ")
    assert _compare(case, result).cell == "exact"


def test_labels_of_catalog_unknowns_are_noted_also_single_memory() -> None:
    """Formerly D2: under single the kit leaves `nvidia.com/gpu.memory` out where the MIG device's is unknown."""
    node = dc.instance_node("p6-b200.48xlarge")
    layout = next(x for x in dc.layouts(node) if x.name == "all-3g.90gb")
    states, verdict, gpus = dc._apply(node, layout)
    case = dc.DiffCase("b200", node, layout, "single", states, verdict, dc.harness_input("b200", "single", gpus,
                                                                                          node.models))
    result = _nvidia(case, labels={"nvidia.com/gpu.memory": "91679", "nvidia.com/gpu.multiprocessors": "0"})
    found = _compare(case, result)
    assert found.known == [] and found.cell == "exact u" and not found.unexplained
    assert [f.what for f in found.findings] == ["label nvidia.com/gpu.memory", "label nvidia.com/gpu.multiprocessors"]
    mixed = dc.DiffCase("b200m", node, layout, "mixed", states, verdict, case.harness)
    result = _nvidia(mixed)
    result["gfd"]["labels"]["nvidia.com/mig-3g.90gb.memory"] = "91679"
    assert _compare(mixed, result).cell == "exact u"


def test_a_label_gfd_sets_by_map_order_may_take_any_value_gfd_wrote() -> None:
    case = _p5_case("all-1g.10gb", "none")
    result = _nvidia(case, labels={"nvidia.com/gpu.product": "NVIDIA-H100-PCIe"})
    assert _compare(case, result).cell == "DIFFERS"
    result["gfd"]["variants"]["nvidia.com/gpu.product"] = ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]
    found = _compare(case, result)
    assert found.cell == "exact" and [f.verdict for f in found.findings] == ["nondeterministic in GFD"]
