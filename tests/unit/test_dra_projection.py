"""The DRA driver's ResourceSlices and DeviceClasses as the kit projects them (k8s/dra.py, k8s/dra_dynamic.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mig_conformance.cli import main
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import dra, dra_dynamic
from mig_conformance.k8s import stack as S
from mig_conformance.mig.state import GpuMigState

CAT = load_catalog()
H100 = CAT.get("H100-80GB")


def at(kubernetes: str) -> S.StackProfile:
    return replace(S.default(), kubernetes=S.Sourced(kubernetes, "test"))


def balanced(model=H100) -> GpuMigState:
    return GpuMigState(model, True, ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"))


def test_p5_all_balanced_is_32_mig_devices_and_no_parent() -> None:
    p = dra.project_states("n1", [balanced()] * 8)
    assert p.counts() == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}
    assert all(d.type == "mig" for d in p.devices)
    assert len(p.slices) == 1
    spec = p.slices[0]["spec"]
    assert spec["driver"] == "gpu.nvidia.com" and spec["nodeName"] == "n1" and spec["pool"]["name"] == "n1"
    assert len(spec["devices"]) == 32 and len({d["name"] for d in spec["devices"]}) == 32
    d = next(d for d in p.devices if d.profile == "3g.40gb")
    gi = H100.profile("3g.40gb")
    assert d.attribute("type") == "mig" and d.attribute("productName") == "NVIDIA H100 80GB HBM3"
    assert d.attribute("architecture") == "Hopper" and d.attribute("cudaComputeCapability") == "9.0.0"
    assert d.attribute("driverVersion") == "580.159.4" and d.attribute("cudaDriverVersion") == "13.0.0"
    assert dra.parse_quantity(d.capacity["memory"]["value"]) == gi.memory_mib * 1024 * 1024
    assert d.capacity["multiprocessors"]["value"] == str(gi.sm)
    assert d.capacity["copyEngines"]["value"] == str(gi.engines.ce)
    assert d.placement is not None and d.placement[1] == gi.placement_size
    slices = sorted(k for k in d.capacity if k.startswith("memorySlice"))
    assert slices == sorted(f"memorySlice{i}" for i in range(d.placement[0], d.placement[0] + d.placement[1]))
    assert d.name == f"gpu-{d.gpu}-mig-3g40gb-{gi.id}-{d.placement[0]}"
    assert not p.unknown


def test_disabled_gpu_is_a_gpu_device_and_empty_mig_gpu_is_nothing() -> None:
    gpus = [GpuMigState(H100, False, ()), GpuMigState(H100, True, ()), balanced()]
    p = dra.project_states("n", gpus)
    assert p.counts() == {"gpu": 1, "3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
    full = next(d for d in p.devices if d.type == "gpu")
    assert full.name == "gpu-0" and dra.parse_quantity(full.capacity["memory"]["value"]) == 81559 * 1024 * 1024
    assert {d.gpu for d in p.devices if d.type == "mig"} == {2}
    assert any("GPU 1" in n and "neither" in n for n in p.notes)


def test_uuids_come_from_the_caller() -> None:
    gpu = dra.DraGpu(3, H100, True, (dra.MigInstance("1g.10gb", 19, 5, 1, "MIG-x"),), uuid="GPU-p")
    p = dra.project("n", [gpu])
    (d,) = p.devices
    assert d.attribute("uuid") == "MIG-x" and d.attribute("parentUUID") == "GPU-p"
    assert d.name == "gpu-3-mig-1g10gb-19-5" and "memorySlice5" in d.capacity


def test_unknown_catalog_values_are_left_out_and_named() -> None:
    b200 = CAT.get("B200-180GB")
    p = dra.project_states("n", [GpuMigState(b200, True, ("3g.90gb",))])
    (d,) = p.devices
    assert "memory" not in d.capacity and "brand" not in d.attributes
    assert any("memory of 3g.90gb" in u for u in p.unknown) and any("brand" in u for u in p.unknown)


def test_device_classes_by_kubernetes_version() -> None:
    names = lambda p: [c["metadata"]["name"] for c in p.classes]  # noqa: E731
    new = dra.project_states("n", [balanced()], at("v1.37.2"))
    assert names(new)[:2] == ["gpu.nvidia.com", "mig.nvidia.com"]
    bridge = next(c for c in new.classes if c["metadata"]["name"] == "mig-3g-40gb.gpu.nvidia.com")
    assert bridge["spec"]["extendedResourceName"] == "nvidia.com/mig-3g.40gb"
    assert "profile == '3g.40gb'" in bridge["spec"]["selectors"][0]["cel"]["expression"]
    v134 = dra.project_states("n", [balanced()], at("v1.34.3"))
    assert names(v134) == ["gpu.nvidia.com", "mig.nvidia.com"]
    assert v134.classes[0]["spec"]["extendedResourceName"] == "nvidia.com/gpu"
    assert "extendedResourceName" not in v134.classes[1]["spec"]
    old = dra.project_states("n", [balanced()], at("v1.33.5"))
    assert old.slices == () and old.classes == () and "v1.34.0" in old.notes[0]


def test_dynamic_mig_partitions_and_counters() -> None:
    p = dra.project_states("n", [GpuMigState(H100, False, ())] * 2, at("v1.37.2"), dynamic=True)
    per_gpu = sum(len(gi.placements) for gi in H100.gi_profiles) + 1
    assert len(p.devices) == 2 * per_gpu
    assert len(p.slices) == 3 and "sharedCounters" in p.slices[0]["spec"] and "devices" not in p.slices[0]["spec"]
    (cs0, cs1) = p.slices[0]["spec"]["sharedCounters"]
    assert cs0["name"] == "gpu-0-counter-set" and cs1["name"] == "gpu-1-counter-set"
    assert {f"memory-slice-{i}" for i in range(8)} <= set(cs0["counters"])
    assert cs0["counters"]["multiprocessors"]["value"] == "132" and "copy-engines" in cs0["counters"]
    full = next(d for d in p.devices if d.type == "gpu" and d.gpu == 0)
    assert full.consumes_counters[0]["counters"] == cs0["counters"]
    one = next(d for d in p.devices if d.profile == "3g.40gb" and d.placement == (4, 4) and d.gpu == 1)
    used = one.consumes_counters[0]
    assert used["counterSet"] == "gpu-1-counter-set"
    assert sorted(k for k in used["counters"] if k.startswith("memory-slice")) == [f"memory-slice-{i}"
                                                                                   for i in range(4, 8)]
    combined = dra.project_states("n", [GpuMigState(H100, False, ())] * 2, at("v1.34.3"), dynamic=True)
    assert len(combined.slices) == 2 and all("sharedCounters" in s["spec"] for s in combined.slices)


def test_dynamic_mig_ampere_keeps_its_mode() -> None:
    a100 = CAT.get("A100-40GB")
    on = dra.project_states("n", [GpuMigState(a100, True, ())], dynamic=True)
    assert "gpu" not in on.counts() and on.counts()
    off = dra.project_states("n", [GpuMigState(a100, False, ())], dynamic=True)
    assert off.counts() == {"gpu": 1} and len(off.slices) == 2 and off.slices[0]["spec"].get("sharedCounters") \
        in (None, [])


def test_counter_names_follow_camel_to_dns() -> None:
    assert dra_dynamic.counter_name("copyEngines") == "copy-engines"
    assert dra_dynamic.counter_name("HTTPServer") == "http-server"


@pytest.mark.parametrize("value,text", [(16, "16"), (9984 * 2**20, "9984Mi"), (2**30, "1Gi"), (1000, "1000")])
def test_quantities(value: int, text: str) -> None:
    assert dra.quantity(value, binary=True) == text and dra.parse_quantity(text) == value


def test_expect_cli_dra(capsys) -> None:
    code = main(["expect", "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--gpu-allocation", "dra",
                 "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["allocatable"] == {} and doc["gpu_allocation"] == "dra"
    assert doc["dra"]["counts"] == {"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8}
    code = main(["expect", "--instance-type", "p5.48xlarge", "--config", "all-balanced", "--gpu-allocation", "dra"])
    out = capsys.readouterr().out
    assert code == 0 and "16x 1g.10gb" in out and "mig-1g-10gb.gpu.nvidia.com" in out
    assert main(["expect", "--instance-type", "p5.48xlarge", "--dynamic-mig"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["expect", "--instance-type", "p5.48xlarge", "--config", "all-balanced"])
    assert exc.value.code == 2 and "--strategy" in capsys.readouterr().err
