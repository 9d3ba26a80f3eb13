"""Property: the mig-parted simulator on a simulated GPU agrees with `placement.fit` on that GPU model.

(a) what fit accepts, apply creates, and GetMigConfig / export read back exactly the request;
(b) what fit rejects (placement, counts, slices, co-existence, CI packing), apply fails after trying every
    ordering and leaves the GPU without GPU instances.
"""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import GpuModel, load_catalog
from mig_conformance.mig.placement import enumerate_layouts, fit
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted, spec_for

MODELS = sorted(load_catalog().mig_capable, key=lambda g: g.key)
LAYOUTS = {g.key: enumerate_layouts(g) for g in MODELS}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _device_names(model: GpuModel) -> list[str]:
    return sorted({ci.name for p in model.gi_profiles for ci in p.compute_instances})


def _apply(model: GpuModel, devices: dict[str, int]):
    parted = MigParted(nv.NvmlSimulator([model], "prop-node"))
    return parted, parted.apply(spec_for(devices))


def _check(model: GpuModel, devices: dict[str, int], note=event) -> None:
    result = fit(model, devices)
    parted, res = _apply(model, devices)
    if result.fits:
        note("fits")
        assert res.ok, (model.key, devices, res.error)
        assert res.gpus[0].mig_devices == devices
        exported = yaml.safe_load(parted.export().output)["mig-configs"]["current"]
        assert exported == [{"devices": "all", "mig-enabled": True, "mig-devices": devices}]
        assert len(parted.nvml.gpus[0].gis) == len(result.placement)
    else:
        note("rejected")
        assert not res.ok, (model.key, devices, result.reason)
        assert res.error.endswith("error attempting multiple config orderings: all orderings failed")
        assert parted.nvml.gpus[0].gis == {}
        assert res.gpus[0].mig_devices == {}


@st.composite
def fitting_requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    """A layout that fits, with some GIs turned into several smaller CIs of the same GI profile."""
    model = draw(st.sampled_from(MODELS))
    layout = draw(st.sampled_from(LAYOUTS[model.key]))
    devices: dict[str, int] = {}
    for gi_name, count in layout.devices.items():
        gi = model.profile(gi_name)
        ci = draw(st.sampled_from(gi.compute_instances))
        per_gi = draw(st.integers(1, ci.max_instances))
        devices[ci.name] = devices.get(ci.name, 0) + count * per_gi
    return model, devices


@st.composite
def any_requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    """Up to three device names of one GPU, at most compute-slices + 1 devices in all."""
    model = draw(st.sampled_from(MODELS))
    names = draw(st.lists(st.sampled_from(_device_names(model)), min_size=1, max_size=3, unique=True))
    budget = (model.compute_slices or 7) + 1
    counts = draw(st.lists(st.integers(1, 4), min_size=len(names), max_size=len(names)))
    devices: dict[str, int] = {}
    for name, n in zip(names, counts, strict=True):
        n = min(n, budget - sum(devices.values()))
        if n > 0:
            devices[name] = n
    return model, devices


@SETTINGS
@given(fitting_requests())
def test_apply_creates_what_fit_accepts(request_: tuple[GpuModel, dict[str, int]]) -> None:
    _check(*request_)


@SETTINGS
@given(any_requests())
def test_apply_agrees_with_fit_on_any_request(request_: tuple[GpuModel, dict[str, int]]) -> None:
    _check(*request_)


def test_known_rejections_fail_every_ordering() -> None:
    """Examples of each rejection kind; fit's reason and apply's failure must both hold."""
    catalog = load_catalog()
    h100, a100, rtx = catalog.get("H100-80GB"), catalog.get("A100-40GB"), catalog.get("RTXPRO6000-96GB")
    cases = [(h100, {"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}),  # compute slices
             (h100, {"1g.10gb+me": 2}),  # max instances
             (a100, {"3g.20gb": 1, "2g.10gb": 2, "1g.10gb": 1}),  # placement
             (h100, {"4c.7g.80gb": 1, "3c.7g.80gb": 1}),  # CI packing inside one 7g GI
             (rtx, {"1g.24gb+me.all": 1, "1g.24gb": 1})]  # co-existence
    for model, devices in cases:
        assert not fit(model, devices).fits, devices
        _check(model, devices, note=lambda _: None)


def test_another_ordering_can_pack_cis_into_fewer_gis() -> None:
    """Flatten order packs 2c,2c,1c,1c into three 3g GIs (one too many); 2c,1c,2c,1c needs two.

    mig-parted tries that ordering after the first fails, so fit must accept and apply must succeed.
    """
    a100 = load_catalog().get("A100-40GB")
    devices = {"2c.3g.20gb": 2, "1c.3g.20gb": 2}
    result = fit(a100, devices)
    assert result.fits, result.reason
    assert [p.compute_instances for p in result.placement] == [("2c.3g.20gb", "1c.3g.20gb")] * 2
    _, res = _apply(a100, devices)
    assert res.ok and res.gpus[0].orderings_tried == 2
    _check(a100, devices, note=lambda _: None)
