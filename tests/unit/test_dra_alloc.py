"""Claims allocated as kube-scheduler's structured allocator does (k8s/dra_alloc.py), on projected slices."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.k8s import dra
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.dra_alloc import ALL, CelError, Claim, Inventory, cel_matches, unschedulable_message
from mig_conformance.mig.state import GpuMigState

H100 = load_catalog().get("H100-80GB")
BALANCED = GpuMigState(H100, True, ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"))


def with_uuids(node: str, gpus: list[dra.DraGpu]) -> list[dra.DraGpu]:
    return [replace(g, uuid=f"GPU-{node}-{g.minor}",
                    instances=tuple(replace(i, uuid=f"MIG-{node}-{g.minor}-{k}") for k, i in enumerate(g.instances)))
            for g in gpus]


def inventory(states: list[GpuMigState], node: str = "n", dynamic: bool = False) -> Inventory:
    p = dra.project(node, with_uuids(node, dra.from_states(states)), S.default(), dynamic=dynamic)
    return Inventory.build(p.slices, p.classes)


def claim(name: str, *requests: tuple[str, str, int], cls: str = "mig.nvidia.com", mode: str = "ExactCount",
          match: str | None = None) -> Claim:
    reqs = []
    for rname, profile, count in requests:
        exact: dict[str, object] = {"deviceClassName": cls, "allocationMode": mode}
        if mode == "ExactCount":
            exact["count"] = count
        if profile:
            exact["selectors"] = [{"cel": {"expression": dra.profile_selector(profile)}}]
        reqs.append({"name": rname, "exactly": exact})
    devices: dict[str, object] = {"requests": reqs}
    if match:
        devices["constraints"] = [{"matchAttribute": match}]
    return Claim.from_api({"metadata": {"name": name}, "spec": {"devices": devices}})


def test_eight_3g_claims_fit_a_p5_and_the_ninth_does_not() -> None:
    inv = inventory([BALANCED] * 8)
    got = [inv.allocate([claim(f"c{i}", ("gpu", "3g.40gb", 1))], "n") for i in range(9)]
    assert all(g is not None for g in got[:8]) and got[8] is None
    devices = {g[0][0].device for g in got[:8] if g}
    assert len(devices) == 8 and all("-mig-3g40gb-" in d for d in devices)
    assert got[0][0][0].driver == "gpu.nvidia.com" and got[0][0][0].pool == "n"
    assert unschedulable_message(1) == ("0/1 nodes are available: 1 cannot allocate all claims. preemption: 0/1 "
                                        "nodes are available: 1 Preemption is not helpful for scheduling.")


def test_release_frees_a_device() -> None:
    inv = inventory([BALANCED])
    first = inv.allocate([claim("a", ("gpu", "3g.40gb", 1))], "n")
    assert first is not None and inv.allocate([claim("b", ("gpu", "3g.40gb", 1))], "n") is None
    inv.release(first[0])
    assert inv.allocate([claim("b", ("gpu", "3g.40gb", 1))], "n") is not None


def test_match_attribute_parent_uuid_keeps_devices_on_one_gpu() -> None:
    inv = inventory([BALANCED] * 2)
    # take GPU 0's 3g first so that the search must backtrack past GPU 0's 2g
    assert inv.allocate([claim("x", ("a", "3g.40gb", 1))], "n") is not None
    got = inv.allocate([claim("y", ("a", "3g.40gb", 1), ("b", "2g.20gb", 1),
                              match="gpu.nvidia.com/parentUUID")], "n")
    assert got is not None
    by = {d.device for d in got[0]}
    assert {name.split("-mig-")[0] for name in by} == {"gpu-1"}
    # two 2g.20gb from one GPU: each GPU has one, so no allocation exists
    fresh = inventory([BALANCED] * 2)
    assert fresh.allocate([claim("z", ("a", "2g.20gb", 2), match="gpu.nvidia.com/parentUUID")], "n") is None
    # without the constraint they come from two GPUs
    got = fresh.allocate([claim("w", ("a", "2g.20gb", 2))], "n")
    assert got is not None and {d.device.split("-mig-")[0] for d in got[0]} == {"gpu-0", "gpu-1"}


def test_allocation_mode_all_and_count() -> None:
    inv = inventory([BALANCED] * 2)
    got = inv.allocate([claim("all", ("a", "1g.10gb", 0), mode=ALL)], "n")
    assert got is not None and len(got[0]) == 4
    assert inv.allocate([claim("one", ("a", "1g.10gb", 1))], "n") is None
    assert inv.allocate([claim("two", ("a", "", 2))], "n") is not None  # any MIG device
    assert inv.allocate([claim("gpu", ("a", "", 1), cls="gpu.nvidia.com")], "n") is None  # no type=gpu device


def test_several_claims_of_one_pod_are_all_or_nothing() -> None:
    inv = inventory([BALANCED])
    assert inv.allocate([claim("a", ("r", "3g.40gb", 1)), claim("b", ("r", "3g.40gb", 1))], "n") is None
    assert inv.allocate([claim("c", ("r", "3g.40gb", 1))], "n") is not None  # nothing was kept


def test_dynamic_mig_counters_exclude_overlaps() -> None:
    inv = inventory([GpuMigState(H100, False, ())], dynamic=True)
    assert inv.allocate([claim("a", ("r", "4g.40gb", 1))], "n") is not None
    assert inv.allocate([claim("b", ("r", "4g.40gb", 1))], "n") is None
    assert inv.allocate([claim("c", ("r", "3g.40gb", 1))], "n") is not None
    assert inv.allocate([claim("d", ("r", "1g.10gb", 1))], "n") is None  # every memory slice is taken
    full = inventory([GpuMigState(H100, False, ())], dynamic=True)
    assert full.allocate([claim("f", ("r", "", 1), cls="gpu.nvidia.com")], "n") is not None
    assert full.allocate([claim("g", ("r", "1g.10gb", 1))], "n") is None
    seven = inventory([GpuMigState(H100, False, ())], dynamic=True)
    assert seven.allocate([claim("s", ("r", "1g.10gb", 7))], "n") is not None
    assert seven.allocate([claim("t", ("r", "1g.10gb", 1))], "n") is None


def test_cel_errors_name_the_selector() -> None:
    assert cel_matches("device.driver == 'x'", {"driver": "x"})
    with pytest.raises(CelError, match="compile"):
        cel_matches("device.(", {"driver": "x"})
    with pytest.raises(CelError, match="runtime"):
        cel_matches("device.attributes['gpu.nvidia.com'].nope == 1", {"attributes": {"gpu.nvidia.com": {}}})
    with pytest.raises(CelError, match="must return bool"):
        cel_matches("1", {})
    inv = inventory([BALANCED])
    bad = Claim.from_api({"spec": {"devices": {"requests": [{"name": "r", "exactly": {
        "deviceClassName": "mig.nvidia.com", "selectors": [{"cel": {"expression": "device.capacity['x'].y > 1"}}]}}]}}})
    with pytest.raises(CelError, match=r"selector #0 on device gpu.nvidia.com/n/gpu-0-mig"):
        inv.allocate([bad], "n")
    with pytest.raises(InputError, match="could not retrieve device class nope"):
        inv.allocate([claim("c", ("r", "", 1), cls="nope")], "n")


@pytest.mark.parametrize("spec,message", [
    ({}, "spec.devices is missing"),
    ({"devices": {"requests": []}}, "non-empty list"),
    ({"devices": {"requests": [{"name": "r"}]}}, r"requests\[0\].exactly is required"),
    ({"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c", "count": 0}}]}}, "count must"),
    ({"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c", "count": 33}}]}}, "less than or"),
    ({"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c", "allocationMode": "Some"}}]}},
     "unsupported value"),
    ({"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c"}}],
                  "constraints": [{"matchAttribute": "parentUUID"}]}}, "fully qualified"),
    ({"devices": {"requests": [{"name": "r", "exactly": {"deviceClassName": "c"}}],
                  "constraints": [{"matchAttribute": "a/b", "requests": ["q"]}]}}, "unknown request 'q'"),
])
def test_claim_input_errors(spec: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Claim.from_api({"spec": spec}, "claim.yaml")
