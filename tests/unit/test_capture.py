"""Catalog entries captured from NVML (simulated, replayed, real) and parsed from nvidia-smi text."""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mig_conformance.capture.catalog_entry import derive_compute_instances, gi_index_from_name, suggest_key
from mig_conformance.capture.nvml import capture_nvml, entries_yaml, mib_from_gib, parse_nvidia_smi_text
from mig_conformance.capture.nvml_queries import gpu_instances, possible_placements
from mig_conformance.capture.smi_text import detect_kind, parse_lgip, parse_list
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import Catalog, GpuModel, load_gpu_file
from mig_conformance.gpus.profile_names import lgip_gib
from mig_conformance.simulators import nvml as nv

MakeNode = Callable[..., nv.NvmlSimulator]  # the nvml_node fixture (tests/conftest.py)

DATA = Path(__file__).parents[1] / "data"
CAPTURES = sorted(p for p in (DATA / "captures").iterdir() if (p / "nvml.json").exists())
TEXT = DATA / "smi-text"
GIB_PRECISION_MIB = 0.005 * 1024  # lgip prints GiB with two decimals
CI_FIELDS = ("name", "nvml_index", "id", "slices", "max_instances", "sm", "default")


def as_model(entry: dict[str, Any], tmp_path: Path) -> GpuModel:
    """Write one entry as YAML and load it back through the catalog loader."""
    path = tmp_path / f"{entry['key']}.yaml"
    path.write_text(entries_yaml({entry["key"]: entry}), encoding="utf-8")
    return load_gpu_file(path)


def assert_same_table(got: GpuModel, want: GpuModel, *, memory_exact: bool = True, same_driver: bool = True) -> None:
    """Every MIG fact a capture can observe equals the catalog's (provenance fields aside)."""
    assert got.key == want.key
    assert (got.mig_capable, got.memory_slots, got.compute_slices) == (
        want.mig_capable, want.memory_slots, want.compute_slices)
    if "SM count of the widest GI profile" in got.source:  # a lower bound: A100's 7g has 98 of 108 SMs
        assert got.sm_count <= want.sm_count
    else:
        assert got.sm_count == want.sm_count
    assert got.nvml_names[0] in want.nvml_names
    for attr in ("memory_total_mib", "driver", "architecture"):
        if attr == "driver" and not same_driver:
            continue
        if getattr(got, attr):
            assert getattr(got, attr) == getattr(want, attr), attr
    if got.pci_device_ids:
        assert got.pci_device_ids[0] == want.pci_device_ids[0]
    assert [p.name for p in got.gi_profiles] == [p.name for p in want.gi_profiles]
    for g, w in zip(got.gi_profiles, want.gi_profiles, strict=True):
        assert (g.id, g.nvml_index, g.max_instances, g.slices, g.sm, g.engines, g.p2p) == (
            w.id, w.nvml_index, w.max_instances, w.slices, w.sm, w.engines, w.p2p), g.name
        assert (g.placement_starts, g.placement_size) == (w.placement_starts, w.placement_size), g.name
        assert abs(g.memory_mib - w.memory_mib) <= GIB_PRECISION_MIB, g.name
        if memory_exact:
            assert g.memory_mib == w.memory_mib, g.name
        ci = sorted(tuple(getattr(c, f) for f in CI_FIELDS) for c in g.compute_instances)
        assert ci == sorted(tuple(getattr(c, f) for f in CI_FIELDS) for c in w.compute_instances), g.name


def captured(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


def catalog_model(folder: Path, catalog: Catalog) -> GpuModel:
    (gpu,) = parse_list(captured(folder, "smi-L.txt"))
    model = catalog.find(gpu.name)
    assert model is not None
    return model


# --- nvidia-smi text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
def test_captured_text_reproduces_catalog(folder: Path, catalog: Catalog, tmp_path: Path) -> None:
    entries = parse_nvidia_smi_text(captured(folder, "lgip.txt"), captured(folder, "lgipp.txt"),
                                    list_text=captured(folder, "smi-L.txt"))
    (entry,) = entries.values()
    model = as_model(entry, tmp_path)
    assert_same_table(model, catalog_model(folder, catalog))
    assert all("[DERIVED] memory_mib from lgip GiB" in p.source for p in model.gi_profiles)
    assert all("[DERIVED] nvml_index" in p.source for p in model.gi_profiles)
    assert not any(c.confirmed for p in model.gi_profiles for c in p.compute_instances)


@pytest.mark.parametrize(("lgip", "lgipp", "listing", "key"), [
    ("h100-nvl-94gb-lgip-79col.txt", "h100-nvl-94gb-lgipp.txt", "h100-nvl-94gb-L.txt", "H100-NVL-94GB"),
    ("rtxpro6000-se-610-lgip.txt", "rtxpro6000-se-610-lgipp.txt", None, "RTXPRO6000-96GB"),
])
def test_reconstructed_text_reproduces_catalog(lgip: str, lgipp: str, listing: str | None, key: str,
                                               catalog: Catalog, tmp_path: Path) -> None:
    want = catalog.get(key)
    entries = parse_nvidia_smi_text((TEXT / lgip).read_text(), (TEXT / lgipp).read_text(),
                                    list_text=(TEXT / listing).read_text() if listing else None,
                                    name=None if listing else want.nvml_name)
    (entry,) = entries.values()
    entry["key"] = want.key if listing is None else entry["key"]  # RTX PRO: suggested key differs
    assert_same_table(as_model(entry, tmp_path), want)


def test_rtx_pro_key_suggestion_and_text_tolerance() -> None:
    text = (TEXT / "rtxpro6000-se-610-lgip.txt").read_text()
    (entry,) = parse_nvidia_smi_text(text, name="NVIDIA RTX PRO 6000 Blackwell Server Edition").values()
    assert entry["key"] == "RTX-PRO-6000-Blackwell-Server-Edition-96GB"
    assert entry["memory_slots"] is None and all(p["placements"] is None for p in entry["gi_profiles"])
    assert all(not p["confirmed"] and "lgipp" in p["reason"] for p in entry["gi_profiles"])
    # Markdown copies double the left border; Windows copies end lines with CRLF; some trim trailing blanks.
    mangled = "\r\n".join(("|" + line if line.startswith("|") else line).rstrip() for line in text.splitlines())
    assert parse_lgip(mangled) == parse_lgip(text) and len(parse_lgip(text)) == 11


def test_two_gpus_in_text_one_entry_per_model() -> None:
    h100 = (DATA / "captures" / "h100-80gb-hbm3-580" / "lgip.txt").read_text()
    nvl = (TEXT / "h100-nvl-94gb-lgip-79col.txt").read_text()
    second = nvl.replace("|   0  MIG", "|   1  MIG")
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\nGPU 1: NVIDIA H100 NVL (UUID: GPU-b)\n"
    entries = parse_nvidia_smi_text(h100 + second + h100.replace("|   0  MIG", "|   2  MIG"),
                                    list_text=listing + "GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-c)\n")
    assert list(entries) == ["H100-80GB", "H100-NVL-94GB"]


def test_detect_kind(tmp_path: Path) -> None:
    folder = CAPTURES[0]
    assert [detect_kind(captured(folder, f)) for f in ("lgip.txt", "lgipp.txt", "smi-L.txt", "lgi.txt")] == [
        "lgip", "lgipp", "list", None]


def test_mib_from_gib() -> None:
    assert mib_from_gib("9.75")[0] == 9984 and mib_from_gib("19.62")[0] == 20096
    assert mib_from_gib("140.00")[0] == 143360 and "[DERIVED]" in mib_from_gib("39.50")[1]
    for mib in range(64, 200_000, 64):  # every multiple of 64 MiB comes back from its printed GiB
        assert mib_from_gib(lgip_gib(mib))[0] == mib


def test_schema_rules_reproduce_every_catalog_table(catalog: Catalog) -> None:
    """The CI rule and the name -> NVML index mapping agree with every catalog profile."""
    checked = 0
    for gpu in catalog.mig_capable:
        for p in gpu.gi_profiles:
            rows = derive_compute_instances(p.name, p.nvml_index, p.slices, p.sm, "test")
            assert sorted(tuple(r[f] for f in CI_FIELDS) for r in rows) == sorted(
                tuple(getattr(c, f) for f in CI_FIELDS) for c in p.compute_instances), (gpu.key, p.name)
            assert gi_index_from_name(p.name, rev2=p.nvml_index == 9) == p.nvml_index, (gpu.key, p.name)
            checked += 1
    assert checked > 50
    assert suggest_key("NVIDIA H100 80GB HBM3", 80) == "H100-80GB"
    assert suggest_key("NVIDIA A100-SXM4-40GB", 40) == "A100-40GB"


# --- the real NVML dump -------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
def test_nvml_dump_numbers_equal_catalog(folder: Path, catalog: Catalog) -> None:
    dump = json.loads(captured(folder, "nvml.json"))
    (gpu,) = dump["gpus"]
    want = catalog.find(gpu["nvmlDeviceGetName"]["value"])
    assert want is not None
    assert dump["nvmlSystemGetDriverVersion"]["value"] == want.driver
    assert gpu["nvmlDeviceGetMemoryInfo"]["value"]["total"] == want.memory_total_mib * 2**20
    assert f"0x{gpu['nvmlDeviceGetPciInfo']['value']['pciDeviceId']:08X}" == want.pci_device_ids[0]
    seen = set()
    for row in gpu["gi_profiles_by_index"]:
        p = want.profile_by_index(row["index"])
        if "error" in row["v2"]:
            assert p is None and row["v2"]["error"]["code"] in (2, 3), row["index"]
            continue
        v = row["v2"]["value"]
        assert v["name"] == f"MIG {p.name}"
        e = p.engines
        assert (v["id"], v["sliceCount"], v["instanceCount"], v["multiprocessorCount"], v["memorySizeMB"],
                v["copyEngineCount"], v["decoderCount"], v["encoderCount"], v["jpegCount"], v["ofaCount"],
                bool(v["isP2pSupported"])) == (p.id, p.slices, p.max_instances, p.sm, p.memory_mib,
                                               e.ce, e.dec, e.enc, e.jpeg, e.ofa, p.p2p)
        seen.add(p.id)
    assert seen == {p.id for p in want.gi_profiles}
    for row in gpu["gi_profiles_by_id"]:
        if row["profile_id"] in seen:
            p = want.profile_by_id(row["profile_id"])
            assert [tuple(x) for x in row["possible_placements_v2"]["value"]] == list(p.placements)
            assert row["remaining_capacity"]["value"] == p.max_instances  # MIG disabled, nothing created


class _DumpError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.value = code


def replay_module(dump: dict[str, Any]) -> SimpleNamespace:
    """A pynvml-shaped module that answers the capture's Get calls from a recorded nvml.json dump."""
    gpus = dump["gpus"]

    def answer(record: dict[str, Any]) -> Any:
        if "error" in record:
            raise _DumpError(record["error"]["code"])
        value = record["value"]
        return SimpleNamespace(**value) if isinstance(value, dict) else value

    def by_id(h: int, profile_id: int) -> dict[str, Any]:
        return next(r for r in gpus[h]["gi_profiles_by_id"] if r["profile_id"] == profile_id)

    def profile_info(h: int, index: int, version: int = 2) -> Any:
        rows = gpus[h]["gi_profiles_by_index"]
        return answer(rows[index]["v2" if version == 2 else "v1"])

    return SimpleNamespace(
        NVMLError=_DumpError,
        nvmlSystemGetDriverVersion=lambda: answer(dump["nvmlSystemGetDriverVersion"]),
        nvmlDeviceGetCount=lambda: answer(dump["nvmlDeviceGetCount"]),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: answer(gpus[h]["nvmlDeviceGetName"]),
        nvmlDeviceGetMemoryInfo=lambda h: answer(gpus[h]["nvmlDeviceGetMemoryInfo"]),
        nvmlDeviceGetPciInfo=lambda h: answer(gpus[h]["nvmlDeviceGetPciInfo"]),
        nvmlDeviceGetArchitecture=lambda h: answer(gpus[h]["nvmlDeviceGetArchitecture"]),
        nvmlDeviceGetAttributes=lambda h: answer(gpus[h]["nvmlDeviceGetAttributes"]),
        nvmlDeviceGetNumGpuCores=lambda h: answer(gpus[h]["nvmlDeviceGetNumGpuCores"]),
        nvmlDeviceGetCudaComputeCapability=lambda h: answer(gpus[h]["nvmlDeviceGetCudaComputeCapability"]),
        nvmlDeviceGetGpuInstanceProfileInfo=profile_info,
        nvmlDeviceGetGpuInstancePossiblePlacements=lambda h, pid: [
            SimpleNamespace(start=s, size=z) for s, z in by_id(h, pid)["possible_placements_v2"]["value"]],
        nvmlDeviceGetGpuInstances=lambda h, pid: answer(by_id(h, pid)["gpu_instances"]).instances,
    )


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
def test_capture_nvml_on_replayed_dump_reproduces_catalog(folder: Path, catalog: Catalog, tmp_path: Path) -> None:
    dump = json.loads(captured(folder, "nvml.json"))
    (entry,) = capture_nvml(replay_module(dump), host="ref").values()
    model = as_model(entry, tmp_path)
    assert_same_table(model, catalog_model(folder, catalog))
    assert model.architecture == "hopper" and model.source.startswith("capture --nvml on ref driver 580.159.04")
    assert "nvmlDeviceGetNumGpuCores 16896 / 128" in model.source  # sm_count 132 from the GPU, not a profile


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
def test_device_capture_file_reproduces_catalog(folder: Path, catalog: Catalog) -> None:
    """The entry `capture --nvml` wrote on the real GPU (.devcap/run_capture.sh) equals the catalog."""
    model = load_gpu_file(folder / "capture-nvml.yaml")
    assert_same_table(model, catalog_model(folder, catalog))
    assert model.source.startswith("capture --nvml on ")
    assert re.search(r"driver 580\.\d+\.\d+ \d{4}-\d\d-\d\d", model.source)


# --- the simulator ------------------------------------------------------------------------------------------


_GET = re.compile(r"^nvml(System|Device|GpuInstance|ComputeInstance)Get[A-Z]")


class ReadOnlyNvml:
    """Wraps a pynvml-shaped module; any nvml* call that is not a Get query fails the test."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not (name.startswith("nvml") and callable(value)):
            return value
        if not _GET.match(name):
            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError(f"capture made the non-read-only call {name}")
            return refuse

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return value(*args, **kwargs)
        return record


def test_capture_is_read_only(nvml_node: MakeNode) -> None:
    sim = nvml_node("H100-80GB", "A30-24GB")
    handle = nv.nvmlDeviceGetHandleByIndex(0)
    nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_ENABLE)
    sim.reset()
    sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, 9))
    before = sim.snapshot()
    proxy = ReadOnlyNvml(nv)
    entries = capture_nvml(proxy, host="sim")
    assert sim.snapshot() == before
    assert {"nvmlDeviceGetGpuInstanceProfileInfo", "nvmlDeviceGetGpuInstancePossiblePlacements",
            "nvmlGpuInstanceGetComputeInstanceProfileInfo"} <= set(proxy.calls)
    with pytest.raises(AssertionError, match="nvmlDeviceCreateGpuInstance"):
        proxy.nvmlDeviceCreateGpuInstance(handle, 19)
    # The 3g.40gb GI existed: its CI rows were read from NVML, the others derived. The simulator flags the
    # derived SM counts of the smaller CIs, and they stay unconfirmed in the capture.
    rows = {p["name"]: p["compute_instances"] for p in entries["H100-80GB"]["gi_profiles"]}
    assert [c["confirmed"] for c in rows["3g.40gb"]] == [False, False, True]
    assert all("derived" in c["reason"] for c in rows["3g.40gb"][:2])
    assert not any(c["confirmed"] for c in rows["2g.20gb"])
    assert [c["name"] for c in rows["3g.40gb"] if c["default"]] == ["3g.40gb"]
    whole = rows["3g.40gb"][2]
    assert (whole["placements"]["starts"], whole["placements"]["size"]) == ([0], 4)  # catalog CI placement, read back
    assert all("placements" not in c for c in rows["3g.40gb"][:2])  # formula placements are not written


@pytest.mark.parametrize("key", ["H100-80GB", "H200-141GB", "A30-24GB", "A100-40GB", "RTXPRO6000-96GB"])
def test_capture_nvml_on_simulator_reproduces_catalog(key: str, catalog: Catalog, nvml_node, tmp_path: Path) -> None:
    sim = nvml_node(key)
    if sim.legacy_driver:  # A30: its catalog driver is R535, which lists profiles only with MIG enabled
        with pytest.raises(InputError, match="enable MIG mode"):
            capture_nvml(nv, host="sim")
        nv.nvmlDeviceSetMigMode(nv.nvmlDeviceGetHandleByIndex(0), nv.NVML_DEVICE_MIG_ENABLE)
        sim.reset()
    (entry,) = capture_nvml(nv, host="sim").values()
    entry["key"] = key if key == "RTXPRO6000-96GB" else entry["key"]  # RTX PRO: suggested key differs
    assert_same_table(as_model(entry, tmp_path), catalog.get(key), same_driver=False)


def test_one_entry_per_model_and_non_mig_gpus(nvml_node: MakeNode) -> None:
    nvml_node("H100-80GB", "H200-141GB", "H100-80GB", "T4-16GB")
    entries = capture_nvml(nv, host="sim")
    assert [e["nvml_names"] for e in entries.values()] == [
        ["NVIDIA H100 80GB HBM3"], ["NVIDIA H200"], [nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(3))]]
    t4 = list(entries.values())[2]
    assert not t4["mig_capable"] and t4["gi_profiles"] == [] and t4["memory_slots"] is None


def test_c_out_array_calls_like_pynvml() -> None:
    """With pynvml's ctypes types present, placements and GIs are read through caller-owned C arrays."""
    class Placement(ctypes.Structure):
        _fields_ = [("start", ctypes.c_uint), ("size", ctypes.c_uint)]

    class GiStruct(ctypes.Structure):
        pass

    def placements(device: int, profile_id: int, buffer: Any, count_ref: Any) -> int:
        assert isinstance(buffer, ctypes.Array) and count_ref._obj.value >= 4
        for i, start in enumerate((0, 2, 4, 6)):
            buffer[i].start, buffer[i].size = start, 2
        count_ref._obj.value = 4
        return 0

    def instances(device: int, profile_id: int, buffer: Any, count_ref: Any) -> int:
        count_ref._obj.value = 0
        return 0

    fake = SimpleNamespace(c_nvmlGpuInstancePlacement_t=Placement, c_nvmlGpuInstance_t=ctypes.POINTER(GiStruct),
                           nvmlDeviceGetGpuInstancePossiblePlacements=placements,
                           nvmlDeviceGetGpuInstances=instances)
    assert possible_placements(fake, 0, 15) == [(0, 2), (2, 2), (4, 2), (6, 2)]
    assert gpu_instances(fake, 0, 15) == []
