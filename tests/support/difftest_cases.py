"""The differential test's cases: node × MIG layout × strategy, built from the kit's own catalog and ConfigMap.

A layout is a mig-parted config applied to a fresh node. The kit's side of a case is its projection (what
`mig-conformance expect` answers): `k8s.mig_manager.reconcile` gives the GPU states, `k8s.device_plugin.advertise`
and `k8s.gfd.labels` what they show. NVIDIA's side gets the same node as a mock NVML: each GPU's board (NVML name,
PCI device ID, memory), its catalog profile table and the GPU and compute instances the kit's NVML simulator holds
after the kit's mig-parted simulator applied the config (GI/CI IDs and placements as NVML chooses them). The
harness (tests/differential/harness) creates those instances through the mock's NVML calls and runs NVIDIA's code.

Numbers the catalog does not know (null) are served as the NVML simulator's placeholders (`simulators.nvml`:
memory by slot share, SM and engine counts 0); the comparison never holds the kit to a placeholder
(`difftest_compare`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mig_conformance.gpus.catalog import GpuModel, GpuVariant, load_catalog, parse_gpu_specs
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.k8s.labels import STRATEGIES
from mig_conformance.k8s.mig_manager import reconcile
from mig_conformance.mig.default_config import default_spec
from mig_conformance.mig.spec import Spec, parse_spec_text
from mig_conformance.mig.state import GpuMigState
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.mig_parted import MigParted
from mig_conformance.simulators.node_gpus import NodeGpus
from support.difftest import pinned_version

#: The device-plugin version whose code the harness is built from (scripts/difftest/go.mod pins it); the kit's
#: projection models the same version.
PLUGIN_VERSION = pinned_version()
DRIVER = nv.DRIVER_580
#: CUDA driver API version of R580 (CUDA 13.0, cudaDriverGetVersion encoding); only cuda.runtime* labels use it,
#: and the kit does not model those.
CUDA_DRIVER_VERSION = 13000

#: CUDA compute capability per catalog GPU, which GFD turns into nvidia.com/gpu.family. Sources: NVIDIA's "CUDA
#: GPUs" table (https://developer.nvidia.com/cuda-gpus) and, for A100/A30/H100/H200/B200, the CudaMajor/CudaMinor
#: of NVIDIA/go-nvml v0.13.4-1 pkg/nvml/mock/gpus/*.go.
COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "A100-40GB": (8, 0), "A100-80GB": (8, 0), "A30-24GB": (8, 0), "A10G-24GB": (8, 6), "L4-24GB": (8, 9),
    "L40S-48GB": (8, 9), "T4-16GB": (7, 5), "H100-80GB": (9, 0), "H100-NVL-94GB": (9, 0), "H200-141GB": (9, 0),
    "GH200-96GB": (9, 0), "B200-180GB": (10, 0), "RTXPRO6000-96GB": (12, 0),
}


@dataclass(frozen=True)
class Node:
    """A node: a name for case IDs and its GPUs (boards) in PCI order."""

    name: str
    gpus: tuple[GpuVariant, ...]

    @property
    def models(self) -> list[GpuModel]:
        cat = load_catalog()
        return [cat.model_of(v) for v in self.gpus]


@dataclass(frozen=True)
class Layout:
    """A mig-parted config (`config` in `spec`) applied to a fresh node; `name` is its part of the case ID."""

    name: str
    spec: Spec
    config: str


@dataclass(frozen=True)
class DiffCase:
    """One case: its ID, the node and layout, the strategy, the kit's GPU states and the harness input."""

    id: str
    node: Node
    layout: Layout
    strategy: str
    states: tuple[GpuMigState, ...]
    verdict: str | None  # mig-manager's verdict for the layout (success | failed)
    harness: dict[str, Any]


def instance_node(instance_type: str) -> Node:
    it = get_instance_type(instance_type)
    return Node(instance_type, tuple(it.gpu_model().primary_variant for _ in range(it.gpu_count)))


def gpu_node(spec: str) -> Node:
    return Node(spec, tuple(parse_gpu_specs([spec])))


#: Every MIG-capable catalog GPU on the node it comes in (EC2 instance types where one exists), a non-MIG node,
#: and two heterogeneous nodes (two MIG device IDs; a MIG GPU next to a non-MIG GPU).
NODES: tuple[Node, ...] = (
    instance_node("p4d.24xlarge"), instance_node("p4de.24xlarge"), instance_node("p5.48xlarge"),
    instance_node("p5e.48xlarge"), instance_node("p6-b200.48xlarge"), gpu_node("A30-24GBx4"),
    gpu_node("H100-NVL-94GBx2"), gpu_node("RTXPRO6000-96GBx4"), gpu_node("GH200-96GBx1"),
    gpu_node("H100-PCIE-80GBx2"), instance_node("g6e.12xlarge"),
    gpu_node("A100-40GBx2,A100-80GBx2"), gpu_node("H100-80GB,L40S-48GB"),
)


def _fits(spec: Spec, config: str, node: Node) -> bool:
    """Whether the config means something on the node: an entry selects one of its GPUs (device filter and index)
    and every MIG device it names exists on that GPU (the ConfigMap's older configs carry no device filter and
    name A100 profiles, which other GPUs do not have)."""
    entries = spec.select(config)[1]
    for i, (variant, model) in enumerate(zip(node.gpus, node.models, strict=True)):
        device = DeviceID.from_int(variant.pci_device_id_int)
        for e in entries:
            if e.selects(i, device) and all(model.resolve(d) is not None for d in (e.mig_devices or {})):
                return True
    return False


def _dense_config(model: GpuModel) -> dict[str, int]:
    """The GI profile of the most instances without attributes, as many as fit (7x 1g.10gb on H100)."""
    plain = [p for p in model.gi_profiles if "+" not in p.name and "-" not in p.name]
    p = max(plain, key=lambda p: (p.max_instances, -p.nvml_index))
    return {p.name: p.max_instances}


def _sub_profile_config(model: GpuModel) -> dict[str, int]:
    """A compute instance smaller than its GI (the 1c CI of the largest GI with several CI profiles) filling that
    GI, as mig-parted creates them: e.g. {"1c.7g.80gb": 7} on H100."""
    gi = max((p for p in model.gi_profiles if len(p.compute_instances) > 1 and "+" not in p.name),
             key=lambda p: p.slices)
    ci = min(gi.compute_instances, key=lambda c: c.slices)
    return {ci.name: gi.slices // ci.slices}


def _ci_mix_config(model: GpuModel) -> dict[str, int] | None:
    """Three 1c CIs of a 3g GI next to a whole 3g GI (3x 1c.3g.40gb + 3g.40gb on H100: mig-parted packs the three
    CIs into one GI); None without a 3-slice GI."""
    gi = next((p for p in model.gi_profiles if p.slices == 3 and p.max_instances >= 2 and "+" not in p.name), None)
    if gi is None:
        return None
    ci = min(gi.compute_instances, key=lambda c: c.slices)
    return {ci.name: 3, gi.name: 1}


def _me_mix_config(model: GpuModel) -> dict[str, int] | None:
    """One +me GI next to plain GIs of the same size (1g.10gb+me + 6x 1g.10gb on H100): under mixed, v0.17's
    unanchored patterns advertise the +me device as the plain profile."""
    me = next((p for p in model.gi_profiles if p.name.endswith("+me")), None)
    if me is None:
        return None
    plain = model.profile(me.name.removesuffix("+me"))
    if plain is None:
        return None
    return {me.name: 1, plain.name: min(plain.max_instances, (model.compute_slices or 0) - me.slices)}


def _spec(name: str, text: str) -> Spec:
    spec = parse_spec_text(text, f"<difftest {name}>")
    if not spec.valid:
        raise ValueError(f"difftest layout {name} is not a valid mig-parted file: {spec.problems}")
    return spec


def _entry(devices: str | Sequence[int], mig_enabled: bool, mig_devices: dict[str, int] | None) -> str:
    dev = "all" if isinstance(devices, str) else "[" + ", ".join(str(d) for d in devices) + "]"
    text = f"    - devices: {dev}\n      mig-enabled: {str(mig_enabled).lower()}\n"
    if mig_devices is not None:
        items = "".join(f'        "{k}": {v}\n' for k, v in mig_devices.items())
        text += "      mig-devices:" + ("\n" + items if items else " {}\n")
    return text


def _custom(name: str, entries: Sequence[str]) -> Layout:
    return Layout(name, _spec(name, "version: v1\nmig-configs:\n  " + name + ":\n" + "".join(entries)), name)


def custom_layouts(node: Node) -> list[Layout]:
    """Layouts the ConfigMap has no config for: a CI sub-profile filling its GI, 1c CIs next to a whole GI of
    their size, +me next to its plain profile, half MIG / half full GPUs, one MIG-enabled GPU left empty."""
    models = node.models
    if not all(m.mig_capable for m in models) or len({m.key for m in models}) != 1:
        return []
    model, n = models[0], len(models)
    dense = _dense_config(model)
    out = [_custom("sub-profile", [_entry("all", True, _sub_profile_config(model))])]
    ci_mix = _ci_mix_config(model)
    if ci_mix:
        out.append(_custom("ci-mix", [_entry("all", True, ci_mix)]))
    me = _me_mix_config(model)
    if me:
        out.append(_custom("me-mix", [_entry("all", True, me)]))
    if n > 1:
        half = list(range(n // 2))
        out.append(_custom("half-mig", [_entry(half, True, dense), _entry(list(range(n // 2, n)), False, None)]))
        out.append(_custom("one-empty", [_entry([0], True, {}), _entry(list(range(1, n)), True, dense)]))
    return out


def layouts(node: Node) -> list[Layout]:
    """Every config of the default ConfigMap that fits the node (all-disabled, all-enabled, each uniform
    all-<profile> of its GPUs, all-balanced), then the custom layouts."""
    spec = default_spec()
    found = [Layout(c, spec, c) for c in spec.configs if _fits(spec, c, node)]
    return found + custom_layouts(node)


def _placements(pairs: Sequence[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"start": s, "size": z} for s, z in pairs]


def gpu_description(gpu: nv.GpuState) -> dict[str, Any]:
    """One GPU of the harness input: the board, its catalog profile table (placeholders for unknown numbers, as
    the NVML simulator serves them) and its GPU and compute instances."""
    model = gpu.model
    profiles = []
    for p in model.gi_profiles:
        e = p.engines
        profiles.append({
            "index": p.nvml_index, "id": p.id, "slice_count": p.slices, "instance_count": p.max_instances,
            "multiprocessors": p.sm or 0, "copy_engines": e.ce or 0, "decoders": e.dec or 0,
            "encoders": e.enc or 0, "jpeg": e.jpeg or 0, "ofa": e.ofa or 0,
            "memory_mib": nv.profile_memory_mib(model, p), "p2p": bool(p.p2p), "placements": _placements(p.placements),
            "ci_profiles": [{"index": c.nvml_index, "id": c.id, "slice_count": c.slices,
                             "instance_count": c.max_instances, "multiprocessors": c.sm or 0,
                             "placements": _placements(c.placements)} for c in p.compute_instances],
        })
    instances = []
    for gi in sorted(gpu.gis.values(), key=lambda g: g.id):
        profile = model.profile_by_id(gi.profile_id)
        assert profile is not None
        instances.append({"id": gi.id, "profile_index": profile.nvml_index, "start": gi.start,
                          "compute_instances": [{"id": ci.id, "profile_index": ci.profile_id, "start": ci.start}
                                                for ci in sorted(gi.cis.values(), key=lambda c: c.id)]})
    return {
        "name": gpu.variant.nvml_name, "pci_device_id": gpu.variant.pci_device_id_int,
        "memory_mib": nv.device_memory_mib(model), "cuda_compute_capability": list(COMPUTE_CAPABILITY[model.key]),
        "mig_capable": model.mig_capable, "mig_enabled": gpu.mig_current == nv.NVML_DEVICE_MIG_ENABLE,
        "max_mig_devices": (model.compute_slices or 0) if model.mig_capable else 0,
        "gi_profiles": profiles, "gpu_instances": instances,
    }


class LayoutMismatch(AssertionError):
    """The kit's projection and its simulators disagree on a layout (tests/unit/test_models_agree.py's domain)."""


def _apply(node: Node, layout: Layout) -> tuple[tuple[GpuMigState, ...], str | None, list[dict[str, Any]]]:
    """The projection's GPU states and verdict, and the simulated node's GPUs after mig-parted applied the layout."""
    outcome = reconcile(node.models, layout.spec, layout.config)
    sim = nv.NvmlSimulator(list(node.gpus), name=node.name, driver_version=DRIVER)
    MigParted(sim, gpu_outcomes=False).apply(layout.spec, layout.config)
    simulated = NodeGpus(sim, clock=lambda: 0.0).gpu_states()
    if simulated != outcome.gpus:
        raise LayoutMismatch(f"{node.name} {layout.name}: projection {outcome.gpus} != simulator {simulated}")
    return outcome.gpus, outcome.state, [gpu_description(g) for g in sim.gpus]


def harness_input(case_id: str, strategy: str, gpus: list[dict[str, Any]],
                  models: Sequence[GpuModel]) -> dict[str, Any]:
    # GFD picks some labels by Go map order on nodes with several GPU models: run its labelers often enough to see
    # every order (two models: a 2**-31 chance to miss one in 32 runs).
    runs = 32 if len({m.key for m in models}) > 1 else 1
    return {"id": case_id, "strategy": strategy, "driver": DRIVER, "cuda_driver_version": CUDA_DRIVER_VERSION,
            "gfd_runs": runs, "gpus": gpus}


def case_ids() -> list[str]:
    """The IDs of all cases, without building them (cheap: for docs and test parameters)."""
    return [f"{node.name}/{layout.name}/{s}" for node in NODES for layout in layouts(node) for s in STRATEGIES]


def build_cases() -> Iterator[DiffCase]:
    for node in NODES:
        for layout in layouts(node):
            states, verdict, gpus = _apply(node, layout)
            for strategy in STRATEGIES:
                cid = f"{node.name}/{layout.name}/{strategy}"
                yield DiffCase(cid, node, layout, strategy, states, verdict,
                               harness_input(cid, strategy, gpus, node.models))
