"""nvidia-smi text from the NVML simulator: byte-equal to the driver-580 captures, -L, -lgi/-lci layouts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mig_conformance.capture.smi_text import parse_lgip, parse_lgipp, parse_list
from mig_conformance.gpus.catalog import Catalog
from mig_conformance.simulators import nvidia_smi as smi
from mig_conformance.simulators import nvml as nv

MakeNode = Callable[..., nv.NvmlSimulator]  # the nvml_node fixture (tests/conftest.py)

DATA = Path(__file__).parents[1] / "data"
CAPTURES = sorted(p for p in (DATA / "captures").iterdir() if (p / "lgip.txt").exists())
PUBLIC = DATA / "smi-text" / "public"


def captured(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8")


def model_of(folder: Path, catalog: Catalog) -> str:
    """The catalog key of the captured GPU, found through its nvidia-smi -L name."""
    (gpu,) = parse_list(captured(folder, "smi-L.txt"))
    model = catalog.find(gpu.name)
    assert model is not None, gpu.name
    return model.key


def enable_mig(sim: nv.NvmlSimulator, index: int = 0) -> object:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    nv.nvmlDeviceSetMigMode(handle, nv.NVML_DEVICE_MIG_ENABLE)
    sim.reset([index])
    return handle


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
@pytest.mark.parametrize(("argv", "file"), [
    (["mig", "-lgip"], "lgip.txt"), (["mig", "-lgipp"], "lgipp.txt"),
    (["mig", "-lgip", "-i", "0"], "lgip-i0.txt"), (["mig", "-lgipp", "-i", "0"], "lgipp-i0.txt"),
    (["mig", "-lgi"], "lgi.txt"), (["mig", "-lci"], "lci.txt"),
])
def test_matches_capture_byte_for_byte(folder: Path, argv: list[str], file: str, catalog: Catalog,
                                       nvml_node: MakeNode) -> None:
    nvml_node(model_of(folder, catalog))
    result = smi.run(nv, argv)
    assert result.code == 0 and result.stderr == ""
    assert result.stdout == captured(folder, file)


@pytest.mark.parametrize("folder", CAPTURES, ids=[p.name for p in CAPTURES])
def test_list_gpus_matches_capture_format(folder: Path, catalog: Catalog, nvml_node: MakeNode) -> None:
    nvml_node(model_of(folder, catalog))
    out = smi.render_list(nv)
    (want,) = parse_list(captured(folder, "smi-L.txt"))
    sim_uuid = nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(0))
    assert out.replace(sim_uuid, want.uuid) == captured(folder, "smi-L.txt")


def test_list_gpus_shows_mig_devices_in_guide_layout(nvml_node: MakeNode) -> None:
    sim = nvml_node("H100-80GB", "H100-80GB")
    handle = enable_mig(sim)
    for profile_id in (9, 19, 19):
        sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, profile_id))
    lines = smi.render_list(nv).splitlines()
    migs = [nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, k) for k in range(3)]
    # MIG User Guide "Device Enumeration" layout: two spaces, "MIG", name padded to 12, "Device", index to 2.
    expected = [f"  MIG {n:<12}Device {k:>2}: (UUID: {nv.nvmlDeviceGetUUID(m)})"
                for k, (n, m) in enumerate(zip(("3g.40gb", "1g.10gb", "1g.10gb"), migs, strict=True))]
    assert lines[1:4] == expected
    assert re.fullmatch(r"GPU 1: NVIDIA H100 80GB HBM3 \(UUID: GPU-[0-9a-f-]{36}\)", lines[4])
    assert len(lines) == 5  # GPU 1 has MIG disabled: no device lines


def test_lgi_and_lci_match_public_h100_layout(nvml_node: MakeNode) -> None:
    """`-cgi 9,14` then -cci on both GIs: -lgi equals the public H100 output byte for byte."""
    sim = nvml_node("H100-80GB")
    handle = enable_mig(sim)
    for profile_id in (9, 14):
        sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, profile_id))
    assert smi.run(nv, ["mig", "-i", "0", "-lgi"]) == smi.SmiResult(
        0, (PUBLIC / "h100-80gb-cgi-9-14-lgi.txt").read_text())
    lci = smi.run(nv, ["mig", "-lci"]).stdout
    public = (PUBLIC / "h100-80gb-cgi-9-14-lci.txt").read_text()
    assert {len(line) for line in lci.splitlines()} == {70}
    assert lci.splitlines()[:8] == public.splitlines()[:8]  # header and the 2g.20gb row


def test_lci_three_g_placement_matches_public_h100(nvml_node: MakeNode) -> None:
    """The whole-GI CI of a 3g.40gb GI sits at 0:4 on H100 (catalog CI placements; the formula would give 0:3)."""
    sim = nvml_node("H100-80GB")
    handle = enable_mig(sim)
    for profile_id in (9, 14):
        sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, profile_id))
    assert smi.run(nv, ["mig", "-lci"]) == smi.SmiResult(0, (PUBLIC / "h100-80gb-cgi-9-14-lci.txt").read_text())


def test_lci_seven_1g_matches_public_layout(nvml_node: MakeNode) -> None:
    """7 x 1g with default CIs: the public GH200 -lci output, with the H100 profile name (same width)."""
    sim = nvml_node("H100-80GB")
    handle = enable_mig(sim)
    for _ in range(7):
        sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, 19))
    public = (PUBLIC / "gh200-7x1g-lci.txt").read_text().replace("MIG 1g.12gb", "MIG 1g.10gb")
    assert smi.run(nv, ["mig", "-lci"]) == smi.SmiResult(0, public)


def _table_rows(text: str) -> list[list[str]]:
    return [line.strip("|").split() for line in text.splitlines()
            if line.startswith("|") and re.match(r"\|\s+\d+\s", line)]


def test_lgi_lci_rows_follow_nvml_state(nvml_node: MakeNode) -> None:
    sim = nvml_node("A100-40GB", "H100-80GB")
    handle = enable_mig(sim, 1)
    gi = nv.nvmlDeviceCreateGpuInstance(handle, 0)  # 7g.80gb
    for ci_profile in (2, 1, 0, 0):  # 3c, 2c, 1c, 1c
        nv.nvmlGpuInstanceCreateComputeInstance(gi, ci_profile)
    lgi = smi.run(nv, ["mig", "-lgi"])
    info = nv.nvmlGpuInstanceGetInfo(gi)
    assert _table_rows(lgi.stdout) == [["1", "MIG", "7g.80gb", "0", str(info.id), "0:8"]]
    rows = _table_rows(smi.run(nv, ["mig", "-lci"]).stdout)
    got = sorted((r[3], int(r[4]), int(r[5]), r[6]) for r in rows)
    want = []
    for ci_profile in (0, 1, 2):
        for ci in nv.nvmlGpuInstanceGetComputeInstances(gi, ci_profile):
            c = nv.nvmlComputeInstanceGetInfo(ci)
            name = nv.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, ci_profile).name.removeprefix("MIG ")
            want.append((name, c.profileId, c.id, f"{c.placement.start}:{c.placement.size}"))
    assert got == sorted(want) and len(got) == 4
    assert {r[0] for r in rows} == {"1"} and all(r[1] == str(info.id) for r in rows)


def test_lgip_free_follows_remaining_capacity(nvml_node: MakeNode) -> None:
    sim = nvml_node("H100-80GB")
    handle = enable_mig(sim)
    nv.nvmlDeviceCreateGpuInstance(handle, 9)  # 3g.40gb takes half of the memory slots
    rows = parse_lgip(smi.render_lgip(nv))
    assert [r.free for r in rows] == [nv.nvmlDeviceGetGpuInstanceRemainingCapacity(handle, r.id) for r in rows]
    free = {r.name: (r.free, r.total) for r in rows}
    assert free["7g.80gb"] == (0, 1) and free["3g.40gb"] == (1, 2) and free["1g.10gb"][0] < 7


def test_render_parse_round_trip_every_mig_gpu(catalog: Catalog) -> None:
    """Every catalog row renders and parses back; values the catalog does not know come back as '?' (None)."""
    keys = [g.key for g in catalog.mig_capable]
    sim = nv.NvmlSimulator(keys, driver_version=nv.DRIVER_580)  # R580 lists profiles with MIG disabled
    previous = nv.use(sim)
    sim.nvmlInit()
    try:
        rows, placements = parse_lgip(smi.render_lgip(nv)), parse_lgipp(smi.render_lgipp(nv))
    finally:
        nv.use(previous)
    for index, key in enumerate(keys):
        gpu = catalog.get(key)
        mine = [r for r in rows if r.gpu == index]
        assert [r.id for r in mine] == [p.id for p in gpu.gi_profiles]  # catalog order = lgip order
        for r, p in zip(mine, gpu.gi_profiles, strict=True):
            assert (r.name, r.total, r.sm, r.ce, r.dec, r.enc, r.jpeg, r.ofa) == (
                p.name, p.max_instances, p.sm, *p.engines.as_dict().values())
            assert r.memory_known == (p.memory_mib is not None)
        got = {(r.id, r.starts, r.size) for r in placements if r.gpu == index}
        assert got == {(p.id, p.placement_starts, p.placement_size) for p in gpu.gi_profiles}


def test_gpu_filter_and_errors(nvml_node: MakeNode) -> None:
    nvml_node("H100-80GB", "H200-141GB")
    only_second = smi.run(nv, ["mig", "-lgip", "-i", "1"])
    assert {r.gpu for r in parse_lgip(only_second.stdout)} == {1}
    uuid = nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(1))
    assert smi.run(nv, ["mig", "-lgipp", "-i", uuid]).stdout == smi.run(nv, ["mig", "-lgipp", "-i", "1"]).stdout
    assert smi.run(nv, ["mig", "-lgip", "-i", "0,1"]).stdout == smi.run(nv, ["mig", "-lgip"]).stdout
    missing = smi.run(nv, ["mig", "-lgip", "-i", "7"])
    assert missing.code == nv.NVML_ERROR_NOT_FOUND and missing.stdout == "" and smi.NO_DEVICE in missing.stderr
    assert smi.run(nv, ["mig", "-bogus"]).code == 2
    assert smi.run(nv, ["topo"]).code == 2


def test_mig_enabled_without_instances(nvml_node: MakeNode) -> None:
    sim = nvml_node("H100-80GB")
    assert smi.run(nv, ["mig", "-lgi"]) == smi.SmiResult(0, smi.NO_MIG + "\n")
    enable_mig(sim)
    assert smi.run(nv, ["mig", "-lgi"]) == smi.SmiResult(nv.NVML_ERROR_NOT_FOUND, smi.NO_GI + "\n")
    nv.nvmlDeviceCreateGpuInstance(nv.nvmlDeviceGetHandleByIndex(0), 19)
    assert smi.run(nv, ["mig", "-lci"]) == smi.SmiResult(nv.NVML_ERROR_NOT_FOUND, smi.NO_CI + "\n")


def test_non_mig_gpu_and_legacy_driver(nvml_node: MakeNode) -> None:
    nvml_node("T4-16GB")
    assert smi.run(nv, ["mig", "-lgip"]).stdout == smi.NO_MIG + "\n"
    sim = nv.NvmlSimulator(["H100-80GB"], legacy_driver=True)  # R535: no profiles while MIG is disabled
    nv.use(sim)
    sim.nvmlInit()
    hidden = smi.run(nv, ["mig", "-lgip"])
    assert hidden.stdout == smi.NO_MIG + "\n" and "lists no MIG profiles while MIG mode is disabled" in hidden.stderr
    enable_mig(sim)
    shown = smi.run(nv, ["mig", "-lgip"])
    assert len(parse_lgip(shown.stdout)) == 7 and shown.stderr == ""


def test_unknown_values_print_as_question_marks_with_notes(nvml_node: MakeNode) -> None:
    """B200 3g/4g/7g: SM, memory and engines are unknown (docs/reference/profiles.md#b200-180gb); none invented."""
    nvml_node("B200-180GB")
    result = smi.run(nv, ["mig", "-lgip"])
    rows = {r.name: r for r in parse_lgip(result.stdout)}
    assert (rows["3g.90gb"].sm, rows["3g.90gb"].memory, rows["3g.90gb"].ce, rows["3g.90gb"].p2p) == (
        None, "?", None, None)
    assert (rows["2g.45gb"].sm, rows["2g.45gb"].memory, rows["2g.45gb"].ce) == (36, "44.25", 4)
    assert {len(line) for line in result.stdout.splitlines()} == {81}  # the box keeps its width
    err = result.stderr.splitlines()
    assert err[0] == smi.NOTE_HEAD
    assert any(line.startswith("note: GPU 0: MIG 3g.90gb, 7g.180gb: SM, memory and engine counts not captured")
               for line in err)
    placements = smi.run(nv, ["mig", "-lgipp"])
    assert "placements not captured" in placements.stderr  # -lgipp notes the assumed 8-slot layout


def test_variant_rows_are_flagged(nvml_node: MakeNode) -> None:
    nvml_node("H100-PCIE-80GB")
    assert smi.run(nv, ["-L"]).stdout.startswith("GPU 0: NVIDIA H100 PCIe (UUID: GPU-")
    result = smi.run(nv, ["mig", "-lgip"])
    rows = parse_lgip(result.stdout)
    assert all(r.sm is None and not r.memory_known and r.ce is not None for r in rows)  # engines: the guide's
    assert "H100-PCIE-80GB (0x233110DE): sm, memory_mib" in result.stderr
    assert "note: GPU 0: MIG 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb: board H100-PCIE-80GB" \
        in result.stderr
    assert "naming convention" in smi.run(nv, ["-L"]).stderr


def test_lci_notes_unconfirmed_ci_placement(nvml_node: MakeNode) -> None:
    sim = nvml_node("H200-141GB")
    handle = enable_mig(sim)
    sim.create_default_compute_instance(nv.nvmlDeviceCreateGpuInstance(handle, 9))
    result = smi.run(nv, ["mig", "-lci"])
    assert re.search(r"MIG 3g\.71gb\s+2\s+0\s+0:4", result.stdout)
    assert "note: GPU 0: MIG 3g.71gb: placements: {0}:4 by analogy with H100" in result.stderr
    assert smi.run(nv, ["mig", "-lgi"]).stderr == ""  # the GI row itself is confirmed (NVML capture)
