"""The NVML simulator: NVML captures, observed creation sequences (docs/reference/nvml.md#gi-ids-and-placement-choice),
error paths, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import Catalog
from mig_conformance.gpus.profile_names import memory_gb
from mig_conformance.simulators import nvml as nv

CAPTURES = Path(__file__).parents[1] / "data" / "captures"
REF = [("h100-80gb-hbm3-580", "H100-80GB"), ("h200-141gb-580", "H200-141GB")]


def _capture(name: str) -> dict:
    return json.loads((CAPTURES / name / "nvml.json").read_text())


def _node(catalog: Catalog, *keys: str, **kwargs) -> nv.NvmlSimulator:
    node = nv.NvmlSimulator([catalog.get(k) for k in keys], "test-node", catalog=catalog, **kwargs)
    node.nvmlInit()
    return node


def _enabled(catalog: Catalog, *keys: str, **kwargs) -> nv.NvmlSimulator:
    node = _node(catalog, *keys, **kwargs)
    for i in range(len(keys)):
        if catalog.get(keys[i]).mig_capable:
            node.nvmlDeviceSetMigMode(node.nvmlDeviceGetHandleByIndex(i), nv.NVML_DEVICE_MIG_ENABLE)
    node.reset()
    return node


# --- NVML captures (real H100 / H200, driver 580.159.04, MIG disabled; tests/data/captures) -----------------


@pytest.mark.parametrize(("capture", "key"), REF)
def test_profile_info_by_index_equals_ref(catalog: Catalog, capture: str, key: str) -> None:
    gpu = _capture(capture)["gpus"][0]
    node = _node(catalog, key)
    h = node.nvmlDeviceGetHandleByIndex(0)
    for row in gpu["gi_profiles_by_index"]:
        expected = row["v2"]
        if "value" in expected:
            info = node.nvmlDeviceGetGpuInstanceProfileInfo(h, row["index"])
            assert nv.pynvml_fields(info) == expected["value"], row["index"]
            assert (info.unknown, info.unconfirmed) == ((), None)  # captured rows are confirmed facts
        else:
            with pytest.raises(nv.NVMLError) as err:
                node.nvmlDeviceGetGpuInstanceProfileInfo(h, row["index"])
            assert type(err.value).__name__ == expected["error"]["class"], row["index"]
            assert str(err.value) == expected["error"]["text"]
            assert err.value.value == expected["error"]["code"]


@pytest.mark.parametrize(("capture", "key"), REF)
def test_placements_capacity_and_instances_equal_ref(catalog: Catalog, capture: str, key: str) -> None:
    gpu = _capture(capture)["gpus"][0]
    node = _node(catalog, key)
    h = node.nvmlDeviceGetHandleByIndex(0)
    checked = 0
    for row in gpu["gi_profiles_by_id"]:
        if "value" not in row["info_by_id_v2"]:
            continue
        pid = row["profile_id"]
        placements = node.nvmlDeviceGetGpuInstancePossiblePlacements(h, pid)
        assert [[p.start, p.size] for p in placements] == row["possible_placements_v2"]["value"]
        assert node.nvmlDeviceGetGpuInstanceRemainingCapacity(h, pid) == row["remaining_capacity"]["value"]
        assert len(node.nvmlDeviceGetGpuInstances(h, pid)) == row["gpu_instances"]["value"]["count"]
        assert nv.pynvml_fields(node.nvmlDeviceGetGpuInstanceProfileInfoById(h, pid)) == row["info_by_id_v2"]["value"]
        checked += 1
    assert checked >= 7


@pytest.mark.parametrize(("capture", "key"), REF)
def test_device_queries_equal_ref(catalog: Catalog, capture: str, key: str) -> None:
    data = _capture(capture)
    gpu = data["gpus"][0]
    node = _node(catalog, key)
    h = node.nvmlDeviceGetHandleByIndex(0)
    assert node.nvmlSystemGetDriverVersion() == data["nvmlSystemGetDriverVersion"]["value"]
    assert node.nvmlSystemGetNVMLVersion() == data["nvmlSystemGetNVMLVersion"]["value"]
    assert node.nvmlDeviceGetName(h) == gpu["nvmlDeviceGetName"]["value"]
    assert node.nvmlDeviceGetMemoryInfo(h).total == gpu["nvmlDeviceGetMemoryInfo"]["value"]["total"]
    assert node.nvmlDeviceGetPciInfo(h).pciDeviceId == gpu["nvmlDeviceGetPciInfo"]["value"]["pciDeviceId"]
    assert node.nvmlDeviceGetMigMode(h) == gpu["nvmlDeviceGetMigMode"]["value"]
    assert node.nvmlDeviceGetMaxMigDeviceCount(h) == gpu["nvmlDeviceGetMaxMigDeviceCount"]["value"]
    assert node.nvmlDeviceIsMigDeviceHandle(h) == gpu["nvmlDeviceIsMigDeviceHandle"]["value"]
    for call, args in (("nvmlDeviceGetMigDeviceHandleByIndex(0)", (h, 0)), ("nvmlDeviceGetGpuInstanceById(1)", (h, 1)),
                       ("nvmlDeviceGetGpuInstanceId", (h,)), ("nvmlDeviceGetComputeInstanceId", (h,))):
        expected = gpu[call]["error"]
        with pytest.raises(nv.NVMLError) as err:
            getattr(node, call.split("(")[0])(*args)
        assert (type(err.value).__name__, str(err.value)) == (expected["class"], expected["text"]), call


def test_h100_profile_table_matches_reference_numbers(catalog: Catalog) -> None:
    """docs/reference/profiles.md#h100-80gb: id, max, SM, MiB and engines of each H100 profile, by NVML index."""
    node = _node(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    rows = {0: (19, 7, 16, 9984, 1, 1, 0, 1, 0), 7: (20, 1, 16, 9984, 1, 1, 0, 1, 1),
            9: (15, 4, 26, 20096, 1, 1, 0, 1, 0), 1: (14, 3, 32, 20096, 2, 2, 0, 2, 0),
            2: (9, 2, 60, 40448, 3, 3, 0, 3, 0), 3: (5, 1, 64, 40448, 4, 4, 0, 4, 0),
            4: (0, 1, 132, 81152, 8, 7, 0, 7, 1)}
    for index, row in rows.items():
        i = node.nvmlDeviceGetGpuInstanceProfileInfo(h, index)
        assert (i.id, i.instanceCount, i.multiprocessorCount, i.memorySizeMB, i.copyEngineCount, i.decoderCount,
                i.encoderCount, i.jpegCount, i.ofaCount) == row
        assert i.isP2pSupported == 0


# --- observed creation sequences (docs/reference/nvml.md#gi-ids-and-placement-choice) ----------------------


def _create_sequence(catalog: Catalog, key: str, profiles: list[int | str]) -> list[tuple[int, int, int]]:
    node = _enabled(catalog, key)
    h = node.nvmlDeviceGetHandleByIndex(0)
    model = catalog.get(key)
    out = []
    for p in profiles:
        pid = p if isinstance(p, int) else model.profile(p).id
        info = node.nvmlGpuInstanceGetInfo(node.nvmlDeviceCreateGpuInstance(h, pid))
        assert info.profileId == pid
        out.append((info.id, info.placement.start, info.placement.size))
    return out


@pytest.mark.parametrize(("key", "profiles", "observed"), [
    ("A100-40GB", [9, 19, 14, 19], [(2, 4, 4), (7, 0, 1), (4, 2, 2), (8, 1, 1)]),  # MIG User Guide Example 2
    ("A100-40GB", [14, 19, 19, 19, 19, 19],
     [(5, 4, 2), (13, 6, 1), (7, 0, 1), (8, 1, 1), (9, 2, 1), (10, 3, 1)]),  # MIG User Guide Example 3
    ("A30-24GB", [14, 14, 5], [(3, 0, 1), (4, 1, 1), (2, 2, 2)]),
    ("H100-80GB", [9, 14], [(2, 4, 4), (3, 0, 2)]),  # public H100 -lgi (tests/data/smi-text/public)
    ("RTXPRO6000-96GB", ["1g.24gb"] * 4, [(3, 0, 3), (4, 3, 3), (5, 6, 3), (6, 9, 3)]),
    ("RTXPRO6000-96GB", ["2g.48gb", "1g.24gb", "1g.24gb"], [(1, 0, 6), (5, 6, 3), (6, 9, 3)]),
])
def test_observed_creation_sequences(catalog: Catalog, key: str, profiles: list, observed: list) -> None:
    assert _create_sequence(catalog, key, profiles) == observed


def test_a100_3g_last_fails_as_observed(catalog: Catalog) -> None:
    """MIG User Guide: `-cgi 19,19,14,9` fails on the 3g with Insufficient Resources."""
    node = _enabled(catalog, "A100-40GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    for pid in (19, 19, 14):
        node.nvmlDeviceCreateGpuInstance(h, pid)
    with pytest.raises(nv.NVMLError_InsufficientResources) as err:
        node.nvmlDeviceCreateGpuInstance(h, 9)
    assert str(err.value) == "Insufficient Resources"
    assert node.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 9) == 0


# --- GPU and compute instances -------------------------------------------------------------------------------


def test_compute_instances_inside_a_gi(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    gi = node.nvmlDeviceCreateGpuInstance(h, 9)  # 3g.40gb
    cis = [node.nvmlGpuInstanceCreateComputeInstance(gi, 0) for _ in range(3)]  # 1c.3g.40gb x3
    infos = [node.nvmlComputeInstanceGetInfo(c) for c in cis]
    assert [(i.id, i.placement.start, i.placement.size) for i in infos] == [(0, 0, 1), (1, 1, 1), (2, 2, 1)]
    with pytest.raises(nv.NVMLError_InsufficientResources):
        node.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    with pytest.raises(nv.NVMLError_InsufficientResources):  # 2c needs slots 0-1, taken
        node.nvmlGpuInstanceCreateComputeInstance(gi, 1)
    with pytest.raises(nv.NVMLError_NotSupported):  # no 4c in a 3g GI
        node.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 3, 0)
    with pytest.raises(nv.NVMLError_InvalidArgument):
        node.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, nv.NVML_COMPUTE_INSTANCE_PROFILE_COUNT, 0)
    info = node.nvmlGpuInstanceGetComputeInstanceProfileInfo(gi, 0, 0)
    assert (info.sliceCount, info.instanceCount, info.name) == (1, 3, "MIG 1c.3g.40gb")
    assert len(node.nvmlGpuInstanceGetComputeInstances(gi, 0)) == 3
    node.nvmlComputeInstanceDestroy(cis[1])
    assert [node.nvmlComputeInstanceGetInfo(c).id for c in node.nvmlGpuInstanceGetComputeInstances(gi, 0)] == [0, 2]
    with pytest.raises(nv.NVMLError_InvalidArgument):  # destroyed handle
        node.nvmlComputeInstanceGetInfo(cis[1])


def test_default_ci_and_mig_device_handles(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    assert node.nvmlDeviceGetMaxMigDeviceCount(h) == 7
    for pid in (14, 15):  # 2g.20gb, 1g.20gb
        node.create_default_compute_instance(node.nvmlDeviceCreateGpuInstance(h, pid))
    rev2 = node.nvmlDeviceGetGpuInstances(h, 15)[0]
    assert node.nvmlComputeInstanceGetInfo(node.nvmlGpuInstanceGetComputeInstances(rev2, 7)[0]).profileId == 7
    names, parents, uuids = [], set(), set()
    for i in range(2):
        mig = node.nvmlDeviceGetMigDeviceHandleByIndex(h, i)
        assert node.nvmlDeviceIsMigDeviceHandle(mig) == 1
        parents.add(node.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig))
        uuids.add(node.nvmlDeviceGetUUID(mig))
        names.append(node.nvmlDeviceGetName(mig))
        gi = node.nvmlDeviceGetGpuInstanceById(h, node.nvmlDeviceGetGpuInstanceId(mig))
        pid = node.nvmlGpuInstanceGetInfo(gi).profileId
        assert node.nvmlDeviceGetMemoryInfo(mig).total == 20096 * 2**20, pid
    assert parents == {h}
    assert all(u.startswith("MIG-") for u in uuids) and len(uuids) == 2
    assert sorted(names) == ["NVIDIA H100 80GB HBM3 MIG 1g.20gb", "NVIDIA H100 80GB HBM3 MIG 2g.20gb"]
    with pytest.raises(nv.NVMLError_NotFound):
        node.nvmlDeviceGetMigDeviceHandleByIndex(h, 2)


def test_create_with_placement(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    gi = node.nvmlDeviceCreateGpuInstanceWithPlacement(h, 9, nv.GpuInstancePlacement(0, 4))
    assert node.nvmlGpuInstanceGetInfo(gi).id == 1
    with pytest.raises(nv.NVMLError_InsufficientResources):  # overlaps the 3g at 0:4
        node.nvmlDeviceCreateGpuInstanceWithPlacement(h, 14, (2, 2))
    with pytest.raises(nv.NVMLError_InvalidArgument):  # not a placement of 2g
        node.nvmlDeviceCreateGpuInstanceWithPlacement(h, 14, (1, 2))
    node.nvmlDeviceCreateGpuInstanceWithPlacement(h, 14, (4, 2))
    with pytest.raises(nv.NVMLError_InsufficientResources):  # 4g at 0:4 overlaps
        node.nvmlDeviceCreateGpuInstance(h, 5)


def test_count_and_slice_limits(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    node.nvmlDeviceCreateGpuInstance(h, 20)  # 1g.10gb+me: max 1
    with pytest.raises(nv.NVMLError_InsufficientResources):
        node.nvmlDeviceCreateGpuInstance(h, 20)
    assert node.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 20) == 0
    for _ in range(6):
        node.nvmlDeviceCreateGpuInstance(h, 19)
    assert node.nvmlDeviceGetGpuInstanceRemainingCapacity(h, 19) == 0  # 7 compute slices used
    with pytest.raises(nv.NVMLError_InsufficientResources):
        node.nvmlDeviceCreateGpuInstance(h, 19)


def test_coexistence_rule_me_all(catalog: Catalog) -> None:
    node = _enabled(catalog, "RTXPRO6000-96GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    model = catalog.get("RTXPRO6000-96GB")
    node.nvmlDeviceCreateGpuInstance(h, model.profile("1g.24gb+me.all").id)
    with pytest.raises(nv.NVMLError_InsufficientResources):
        node.nvmlDeviceCreateGpuInstance(h, model.profile("1g.24gb").id)
    node.nvmlDeviceCreateGpuInstance(h, model.profile("1g.24gb-me").id)


# --- error paths --------------------------------------------------------------------------------------------


def test_uninitialized_and_module_functions(catalog: Catalog) -> None:
    node = nv.NvmlSimulator([catalog.get("H100-80GB")], "mod", catalog=catalog)
    with pytest.raises(nv.NVMLError_Uninitialized) as err:
        node.nvmlDeviceGetCount()
    assert str(err.value) == "Uninitialized"
    previous = nv.use(node)
    try:
        nv.nvmlInit()
        assert nv.nvmlDeviceGetCount() == 1
        h = nv.nvmlDeviceGetHandleByIndex(0)
        assert nv.nvmlDeviceGetHandleByUUID(nv.nvmlDeviceGetUUID(h)) == h
        assert nv.nvmlDeviceGetHandleByPciBusId(nv.nvmlDeviceGetPciInfo(h).busIdLegacy.lower()) == h
        nv.nvmlShutdown()
        with pytest.raises(nv.NVMLError_Uninitialized):
            nv.nvmlDeviceGetCount()
    finally:
        nv.use(previous)


def test_error_classes_like_pynvml() -> None:
    err = nv.NVMLError(nv.NVML_ERROR_INSUFFICIENT_RESOURCES)
    assert isinstance(err, nv.NVMLError_InsufficientResources) and err.value == 23
    texts = {nv.NVMLError_InUse: "In use by another client", nv.NVMLError_NotSupported: "Not Supported",
             nv.NVMLError_InvalidArgument: "Invalid Argument", nv.NVMLError_NotFound: "Not Found",
             nv.NVMLError_Uninitialized: "Uninitialized", nv.NVMLError_NoPermission: "Insufficient Permissions"}
    for cls, text in texts.items():
        assert str(cls()) == text
        assert type(nv.NVMLError(cls.value)) is cls


def test_not_supported_paths(catalog: Catalog) -> None:
    node = _node(catalog, "H100-80GB", "L4-24GB")
    h, l4 = node.nvmlDeviceGetHandleByIndex(0), node.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(nv.NVMLError_NotSupported):  # MIG disabled
        node.nvmlDeviceCreateGpuInstance(h, 19)
    with pytest.raises(nv.NVMLError_NotSupported):  # index with no profile
        node.nvmlDeviceGetGpuInstanceProfileInfo(h, nv.NVML_GPU_INSTANCE_PROFILE_8_SLICE)
    for call, args in (("nvmlDeviceGetMigMode", ()), ("nvmlDeviceSetMigMode", (1,)),
                       ("nvmlDeviceGetGpuInstanceProfileInfo", (0,)), ("nvmlDeviceCreateGpuInstance", (19,))):
        with pytest.raises(nv.NVMLError_NotSupported):
            getattr(node, call)(l4, *args)
    assert node.nvmlDeviceGetMaxMigDeviceCount(l4) == 0


def test_legacy_driver_hides_profiles_while_disabled(catalog: Catalog) -> None:
    node = _node(catalog, "H100-80GB", legacy_driver=True)
    h = node.nvmlDeviceGetHandleByIndex(0)
    assert node.nvmlSystemGetDriverVersion().startswith("535.")
    with pytest.raises(nv.NVMLError_NotSupported):
        node.nvmlDeviceGetGpuInstanceProfileInfo(h, 0)
    with pytest.raises(nv.NVMLError_NotSupported):
        node.nvmlDeviceGetGpuInstancePossiblePlacements(h, 19)
    node.nvmlDeviceSetMigMode(h, nv.NVML_DEVICE_MIG_ENABLE)
    node.reset()
    assert node.nvmlDeviceGetGpuInstanceProfileInfo(h, 0).id == 19


def test_invalid_arguments(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    for call, args in (("nvmlDeviceGetHandleByIndex", (5,)), ("nvmlDeviceGetGpuInstanceProfileInfo", (h, 17)),
                       ("nvmlDeviceGetGpuInstanceProfileInfo", (h, -1)), ("nvmlDeviceCreateGpuInstance", (h, 1)),
                       ("nvmlDeviceSetMigMode", (h, 2)), ("nvmlDeviceGetGpuInstancePossiblePlacements", (h, 6))):
        with pytest.raises(nv.NVMLError_InvalidArgument):
            getattr(node, call)(*args)
    with pytest.raises(nv.NVMLError_NotFound):
        node.nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000")


def test_in_use_paths(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    gi = node.nvmlDeviceCreateGpuInstance(h, 0)
    ci = node.create_default_compute_instance(gi)
    with pytest.raises(nv.NVMLError_InUse):
        node.nvmlGpuInstanceDestroy(gi)
    with pytest.raises(nv.NVMLError_InUse):  # cannot disable MIG with GIs
        node.nvmlDeviceSetMigMode(h, nv.NVML_DEVICE_MIG_DISABLE)
    node.nvmlComputeInstanceDestroy(ci)
    node.nvmlGpuInstanceDestroy(gi)
    node.faults.in_use.add(0)
    assert node.nvmlDeviceSetMigMode(h, nv.NVML_DEVICE_MIG_DISABLE) == nv.NVML_ERROR_IN_USE
    with pytest.raises(nv.NVMLError_InUse):
        node.reset()
    assert node.nvmlDeviceGetMigMode(h) == [1, 0]


def test_fail_nth_create(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    node.faults.fail_create(2, nv.NVMLError_InsufficientResources, kind="gi")
    node.faults.fail_create(1, nv.NVMLError_NoPermission, kind="ci")
    gi = node.nvmlDeviceCreateGpuInstance(h, 19)
    with pytest.raises(nv.NVMLError_NoPermission):
        node.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    with pytest.raises(nv.NVMLError_InsufficientResources):
        node.nvmlDeviceCreateGpuInstance(h, 19)
    node.nvmlDeviceCreateGpuInstance(h, 19)  # rules are used up
    node.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    assert not node.faults.create_failures


# --- modes, reset, identity, snapshot ------------------------------------------------------------------------


def test_mode_pending_until_reset_and_reset_clears(catalog: Catalog) -> None:
    """Ampere: SetMigMode leaves the mode pending until a GPU reset (docs/reference/nvml.md#mig-mode-changes)."""
    node = _node(catalog, "A100-40GB", "A100-40GB")
    h0, h1 = node.nvmlDeviceGetHandleByIndex(0), node.nvmlDeviceGetHandleByIndex(1)
    assert node.nvmlDeviceSetMigMode(h0, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_SUCCESS
    assert node.nvmlDeviceGetMigMode(h0) == [0, 1]
    assert node.nvmlDeviceGetMaxMigDeviceCount(h0) == 0
    node.reset([0])
    assert node.nvmlDeviceGetMigMode(h0) == [1, 1] and node.nvmlDeviceGetMigMode(h1) == [0, 0]
    node.nvmlDeviceCreateGpuInstance(h0, 0)
    node.reset()
    assert node.nvmlDeviceGetGpuInstances(h0, 0) == []


@pytest.mark.parametrize("key", ["H100-80GB", "H200-141GB", "B200-180GB", "RTXPRO6000-96GB"])
def test_hopper_and_later_switch_mode_at_once_when_idle(catalog: Catalog, key: str) -> None:
    """Hopper and later: no reset needed (docs/reference/nvml.md#mig-mode-changes); other GPUs keep their instances."""
    node = _node(catalog, key, key)
    h0, h1 = node.nvmlDeviceGetHandleByIndex(0), node.nvmlDeviceGetHandleByIndex(1)
    assert node.nvmlDeviceSetMigMode(h0, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_SUCCESS
    assert node.nvmlDeviceGetMigMode(h0) == [1, 1]
    gi = node.nvmlDeviceCreateGpuInstance(h0, 0)
    assert node.nvmlDeviceSetMigMode(h1, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_SUCCESS
    assert node.nvmlDeviceGetMigMode(h1) == [1, 1]
    assert node.nvmlDeviceGetGpuInstances(h0, 0) == [gi]  # nothing reset GPU 0
    with pytest.raises(nv.NVMLError_InUse):  # instances exist: disabling is refused
        node.nvmlDeviceSetMigMode(h0, nv.NVML_DEVICE_MIG_DISABLE)
    assert node.nvmlDeviceSetMigMode(h1, nv.NVML_DEVICE_MIG_DISABLE) == nv.NVML_SUCCESS
    assert node.nvmlDeviceGetMigMode(h1) == [0, 0]


def test_hopper_not_idle_stays_pending_until_reset(catalog: Catalog) -> None:
    node = _node(catalog, "H100-80GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    node.faults.in_use.add(0)
    assert node.nvmlDeviceSetMigMode(h, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_ERROR_IN_USE
    assert node.nvmlDeviceGetMigMode(h) == [0, 1]
    with pytest.raises(nv.NVMLError_InUse):
        node.reset()
    node.faults.in_use.clear()
    node.reset()
    assert node.nvmlDeviceGetMigMode(h) == [1, 1]


def test_no_gpu_reset_platform_needs_a_reboot_on_ampere_only(catalog: Catalog) -> None:
    """Pass-through VMs: activation status RESET_REQUIRED, no reset (nvml.h, docs/reference/nvml.md#api-behaviour)."""
    node = nv.NvmlSimulator(["A100-40GB", "H100-80GB"], catalog=catalog, gpu_reset_works=False)
    node.nvmlInit()
    a100, h100 = node.nvmlDeviceGetHandleByIndex(0), node.nvmlDeviceGetHandleByIndex(1)
    assert node.nvmlDeviceSetMigMode(a100, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_ERROR_RESET_REQUIRED
    assert node.nvmlDeviceSetMigMode(h100, nv.NVML_DEVICE_MIG_ENABLE) == nv.NVML_SUCCESS
    with pytest.raises(nv.NVMLError_ResetRequired):
        node.reset()
    assert node.nvmlDeviceGetMigMode(a100) == [0, 1] and node.nvmlDeviceGetMigMode(h100) == [1, 1]
    node.reboot()
    assert node.nvmlDeviceGetMigMode(a100) == [1, 1]
    assert node.state_key() != nv.NvmlSimulator(["A100-40GB", "H100-80GB"], catalog=catalog).state_key()


def test_identity_is_deterministic(catalog: Catalog) -> None:
    a = _node(catalog, "H100-80GB", "H100-80GB", "H100-80GB")
    b = _node(catalog, "H100-80GB", "H100-80GB", "H100-80GB")
    c = nv.NvmlSimulator([catalog.get("H100-80GB")] * 3, "other-node", catalog=catalog)
    assert [g.uuid for g in a.gpus] == [g.uuid for g in b.gpus]
    assert not {g.uuid for g in a.gpus} & {g.uuid for g in c.gpus}
    buses = [a.nvmlDeviceGetPciInfo(a.nvmlDeviceGetHandleByIndex(i)).busId for i in range(3)]
    assert buses == sorted(buses) and len(set(buses)) == 3
    assert buses[0] == "00000000:53:00.0"


def test_from_instance_type(catalog: Catalog) -> None:
    node = nv.NvmlSimulator.from_instance_type("p5.48xlarge", catalog=catalog)
    node.nvmlInit()
    assert node.nvmlDeviceGetCount() == 8
    assert {node.nvmlDeviceGetName(node.nvmlDeviceGetHandleByIndex(i)) for i in range(8)} == {"NVIDIA H100 80GB HBM3"}


def test_snapshot_round_trip(catalog: Catalog, tmp_path: Path) -> None:
    node = _enabled(catalog, "A100-40GB", "L4-24GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    gi = node.nvmlDeviceCreateGpuInstance(h, 9)
    node.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    node.faults.fail_create(3, nv.NVMLError_InUse)
    node.faults.in_use.add(1)
    path = tmp_path / "state.json"
    node.save(path)
    back = nv.NvmlSimulator.load(path, catalog=catalog)
    assert back.snapshot() == node.snapshot()
    back.nvmlInit()
    mig = back.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
    node_mig = node.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
    assert back.nvmlDeviceGetUUID(mig) == node.nvmlDeviceGetUUID(node_mig)
    new_gi = back.nvmlDeviceCreateGpuInstance(h, 19)  # serials continue, so the handle is new
    assert new_gi.serial > gi.serial
    back.nvmlDeviceCreateGpuInstance(h, 19)
    with pytest.raises(nv.NVMLError_InUse):  # the restored fault fires on the 3rd create
        back.nvmlDeviceCreateGpuInstance(h, 19)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError):
        nv.NvmlSimulator.load(tmp_path / "bad.json", catalog=catalog)


# --- board variants, unknown values, drivers, CI placements -------------------------------------------------


def test_variant_reports_its_pci_id_and_name(catalog: Catalog) -> None:
    node = nv.NvmlSimulator(["H100-PCIE-80GB", "H100-80GB", catalog.variant("NVIDIA H800")], catalog=catalog)
    node.nvmlInit()
    handles = [node.nvmlDeviceGetHandleByIndex(i) for i in range(3)]
    assert [node.nvmlDeviceGetPciInfo(h).pciDeviceId for h in handles] == [0x233110DE, 0x233010DE, 0x232410DE]
    assert [node.nvmlDeviceGetName(h) for h in handles] == ["NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H800"]
    pcie = node.nvmlDeviceGetGpuInstanceProfileInfo(handles[0], 0)
    sxm = node.nvmlDeviceGetGpuInstanceProfileInfo(handles[1], 0)
    assert pcie == sxm  # same placeholder numbers (equality ignores the extension fields) ...
    assert set(pcie.unknown) == {"multiprocessorCount", "memorySizeMB"} and "H100-PCIE-80GB" in pcie.unconfirmed
    assert (sxm.unknown, sxm.unconfirmed) == ((), None)  # ... but only the SXM5 numbers are facts
    with pytest.raises(nv.NVMLError_NotSupported):  # whole-GPU SM count not known for PCIe
        node.nvmlDeviceGetNumGpuCores(handles[0])
    assert node.nvmlDeviceGetNumGpuCores(handles[1]) == 132 * 128
    assert any("naming convention" in n for n in node.device_notes(handles[0]))
    assert node.device_notes(handles[1]) == []
    assert node.nvmlDeviceGetMemoryInfo(handles[0]).unknown == ("total", "free")
    mig_node = nv.NvmlSimulator(["H100-PCIE-80GB"], catalog=catalog)
    assert mig_node.state_key() != nv.NvmlSimulator(["H100-80GB"], catalog=catalog).state_key()


def test_variant_survives_snapshot(catalog: Catalog) -> None:
    node = nv.NvmlSimulator(["H200-NVL-141GB", "H200-141GB"], catalog=catalog, gpu_reset_works=False)
    back = nv.NvmlSimulator.from_json(node.to_json(), catalog=catalog)
    assert [g.variant.key for g in back.gpus] == ["H200-NVL-141GB", "H200-141GB"]
    assert back.gpu_reset_works is False and back.state_key() == node.state_key()


def test_unknown_b200_values_are_flagged_not_presented_as_facts(catalog: Catalog) -> None:
    node = _node(catalog, "B200-180GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    model = catalog.get("B200-180GB")
    for p in model.gi_profiles:
        info = node.nvmlDeviceGetGpuInstanceProfileInfoById(h, p.id)
        assert info.unconfirmed == p.reason  # every B200 row is unconfirmed, with the catalog's reason
        if p.sm is None:
            assert info.multiprocessorCount == 0 and {"multiprocessorCount", "memorySizeMB", "copyEngineCount",
                                                      "isP2pSupported"} <= set(info.unknown)
        else:
            assert info.unknown == () and info.multiprocessorCount == p.sm
    # memorySizeMB placeholders still give mig-parted the catalog's names (docs/reference/nvml.md#the-gb-number)
    total = node.nvmlDeviceGetMemoryInfo(h).total // 2**20
    for p in model.gi_profiles:
        info = node.nvmlDeviceGetGpuInstanceProfileInfoById(h, p.id)
        assert memory_gb(info.memorySizeMB, total) == p.parsed.gb


def test_r535_driver_hides_profiles_while_mig_is_disabled(catalog: Catalog) -> None:
    """A30's catalog driver is R535 (docs/reference/profiles.md#a30-24gb), which cannot list profiles with MIG
    disabled (docs/reference/nvml.md#driver-differences)."""
    node = _node(catalog, "A30-24GB")
    h = node.nvmlDeviceGetHandleByIndex(0)
    assert node.driver_version == nv.DRIVER_535 and node.legacy_driver
    with pytest.raises(nv.NVMLError_NotSupported):
        node.nvmlDeviceGetGpuInstanceProfileInfo(h, 0)
    node.nvmlDeviceSetMigMode(h, nv.NVML_DEVICE_MIG_ENABLE)
    node.reset()
    assert node.nvmlDeviceGetGpuInstanceProfileInfo(h, 0).id == 14
    assert not _node(catalog, "A30-24GB", driver_version=nv.DRIVER_580).legacy_driver
    assert not _node(catalog, "A30-24GB", legacy_driver=False).legacy_driver
    assert not _node(catalog, "H100-80GB").legacy_driver
    assert [nv.is_legacy_driver(v) for v in ("470.82.01", "535.183.01", "550.54.15", "580.159.04")] == [
        True, True, False, False]


def test_ci_placements_come_from_the_catalog(catalog: Catalog) -> None:
    node = _enabled(catalog, "H100-80GB", "A100-40GB")
    h100, a100 = node.nvmlDeviceGetHandleByIndex(0), node.nvmlDeviceGetHandleByIndex(1)
    gi = node.nvmlDeviceCreateGpuInstance(h100, 9)  # 3g.40gb
    place = node.nvmlGpuInstanceGetComputeInstancePossiblePlacements
    assert [(p.start, p.size) for p in place(gi, 2)] == [(0, 4)]  # public H100 -lci
    assert [(p.start, p.size) for p in place(gi, 0)] == [(0, 1), (1, 1), (2, 1)]  # schema formula
    a_gi = node.nvmlDeviceCreateGpuInstance(a100, 9)  # 3g.20gb: formula, 0:3 as public A100 output
    assert [(p.start, p.size) for p in place(a_gi, 2)] == [(0, 3)]
    with pytest.raises(nv.NVMLError_InvalidArgument):
        node.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 2, (0, 3))
    one = node.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 0, nv.ComputeInstancePlacement(2, 1))
    with pytest.raises(nv.NVMLError_InsufficientResources):  # the 3c CI would overlap the 1c CI at 2:1
        node.nvmlGpuInstanceCreateComputeInstance(gi, 2)
    node.nvmlComputeInstanceDestroy(one)
    ci = node.nvmlGpuInstanceCreateComputeInstance(gi, 2)
    assert node.nvmlComputeInstanceGetInfo(ci).placement == nv.ComputeInstancePlacement(0, 4)
    assert node.mig_layout(0)[0]["compute_instances"] == ["3g.40gb"]
