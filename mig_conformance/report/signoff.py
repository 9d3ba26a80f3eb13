"""The vendor sign-off page (issue 13): per instance type of the run, what a GPU vendor or cloud provider signs off.

The instance type and GPU with provenance (which file, captured on which driver, derived, unconfirmed rows), the
profile table and where each profile can be placed, how many layouts the GPU has, the kit's prediction for every
config of the effective config file under each strategy (beside what this run's tests measured for it), the
scheduling results, and for every mismatch the simulated expectation beside the measured value.

Built once when the bundle is written, stored in summary.json (`signoff`), so `report DIR` re-renders it as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mig_conformance.common.errors import MigConformanceError
from mig_conformance.gpus.catalog import ENGINE_KEYS, GiProfile, GpuModel, load_catalog
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.gpus.instance_types import InstanceType, load_instance_types
from mig_conformance.gpus.provenance import gpu_provenance, row_derived, row_state
from mig_conformance.k8s.labels import STRATEGIES
from mig_conformance.k8s.projection import project_node
from mig_conformance.mig.default_config import default_config_file
from mig_conformance.mig.placement import enumerate_layouts, maximal_layouts
from mig_conformance.mig.spec import Spec, load_spec
from mig_conformance.report.model import RunSummary, TestResult
from mig_conformance.report.values import short_comparison

#: strategies whose prediction the page shows (none: the device plugin ignores MIG, nothing to sign off)
SIGNOFF_STRATEGIES = tuple(s for s in STRATEGIES if s != "none")


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def profile_rows(model: GpuModel) -> list[dict[str, Any]]:
    """The profile table with each row's state (captured / published / unconfirmed) and derived values."""
    return [{"profile": p.name, "id": p.id, "max": p.max_instances, "slices": p.slices, "sm": p.sm,
             "memory_mib": p.memory_mib, "engines": "/".join(_cell(p.engines.as_dict()[k]) for k in ENGINE_KEYS),
             "placements": "{" + ",".join(map(str, p.placement_starts)) + f"}}:{p.placement_size}",
             "state": row_state(model, p), "derived": row_derived(p), "reason": p.reason}
            for p in model.gi_profiles]


def placement_picture(model: GpuModel, p: GiProfile) -> dict[str, Any]:
    """A layout entry (report/svg.py) with one instance at each placement of the profile: where it can go."""
    return {"gpu": p.name, "slots": model.memory_slots, "slices": model.compute_slices,
            "instances": [{"profile": p.name, "start": s, "size": p.placement_size, "slices": p.slices}
                          for s in p.placement_starts]}


def _selects(spec: Spec, config: str, model: GpuModel, count: int) -> bool:
    device = DeviceID.from_int(model.pci_device_id)
    return any(e.selects(i, device) for e in spec.configs[config] for i in range(count))


def config_rows(model: GpuModel, count: int, it: InstanceType | None, spec: Spec,
                tests: list[TestResult]) -> tuple[list[dict[str, Any]], list[str]]:
    """(prediction per config that selects the node's GPUs x strategy, the configs that select none of them)."""
    rows: list[dict[str, Any]] = []
    untargeted: list[str] = []
    unavailable = it.mig_unavailable if it is not None else None
    for config in spec.configs:
        if not _selects(spec, config, model, count):
            untargeted.append(config)
            continue
        for strategy in SIGNOFF_STRATEGIES:
            row: dict[str, Any] = {"config": config, "strategy": strategy}
            measured = [t.outcome for t in tests if t.config == config and t.strategy == strategy]
            row["run"] = ("failed" if any(o in ("failed", "error") for o in measured) else
                          measured[0] if measured else None)
            if unavailable and any(e.mig_enabled for e in spec.configs[config]):
                row.update(verdict="not applicable", detail="MIG is not available on this instance type (see MIG)",
                           allocatable={})
                rows.append(row)
                continue
            try:
                p = project_node([model] * count, strategy, spec, config, instance_type=it.name if it else None)
            except (MigConformanceError, ValueError) as exc:
                row.update(verdict="error", detail=str(exc), allocatable={})
                rows.append(row)
                continue
            asked = any(e.mig_enabled and e.mig_devices for e in spec.configs[config])
            empty = asked and not any(g.mig_enabled and g.counts for g in p.gpus)
            if p.state == "failed":
                verdict, detail = "mig-manager fails", p.reason or ""
            elif empty:
                verdict, detail = "no MIG devices", "none of the config's profiles exists on this GPU"
            elif p.plugin_error:
                verdict, detail = "device plugin fails", _last(p.plugin_error)
            else:
                verdict, detail = "applies", ""
            row.update(verdict=verdict, detail=detail, allocatable={k: v for k, v in p.allocatable.items() if v})
            rows.append(row)
    return rows, untargeted


def _last(error: str) -> str:
    """The innermost part of a wrapped Go error (`a: b: c` -> `c`), the part that says what is wrong."""
    return error.rsplit(": ", 1)[-1]


def _type_of(summary: RunSummary) -> dict[str, list[TestResult]]:
    by_type: dict[str, list[TestResult]] = {}
    for t in summary.tests:
        if t.instance_type:
            by_type.setdefault(t.instance_type, []).append(t)
    return by_type


#: A sign-off page is for a run on the instance types being validated; a run over a whole fleet gets a note instead
#: (every page would repeat the catalog for types nobody signs off, and the report would grow past what a reader,
#: or a browser's full-page screenshot, takes).
MAX_SIGNOFF_TYPES = 3


def build_signoff(summary: RunSummary, config_file: str | Path | None = None) -> list[dict[str, Any]]:
    """One sign-off entry per instance type of the run that the catalog knows (user catalogs in effect); for a run
    over more than MAX_SIGNOFF_TYPES types, one `{"note": ...}` entry saying how to get them."""
    by_type = _type_of(summary)
    types = load_instance_types()
    catalog = load_catalog()
    if len(by_type) > MAX_SIGNOFF_TYPES:
        rows = [catalog_row(types[n], catalog.get(types[n].gpu)) for n in sorted(by_type) if n in types]
        return [{"note": f"No sign-off pages: this run covers {len(by_type)} instance types; they are written for "
                         f"runs of at most {MAX_SIGNOFF_TYPES} (select with sim:TYPE or --mig-instance-type TYPE).",
                 "catalog": rows}]
    spec = load_spec(config_file or default_config_file())
    config_source = str(config_file) if config_file else "the GPU Operator's default-mig-parted-config"
    out = []
    for name, tests in sorted(by_type.items()):
        it = types.get(name)
        if it is None:
            continue
        model = catalog.get(it.gpu)
        out.append(_entry(it, model, spec, config_source, tests))
    return out


CATALOG_HEADERS = ["Instance type", "From", "GPU", "From", "How", "Rows"]


def catalog_row(it: InstanceType, model: GpuModel) -> dict[str, Any]:
    """Where an instance type and its GPU entry came from and the state of the GPU's rows (TARGET.yaml `catalog`)."""
    prov = gpu_provenance(model)
    return {"instance_type": it.name, "instance_type_origin": "user catalog" if it.user else "shipped",
            "instance_type_file": it.file, "gpu": model.key, "gpu_origin": prov.origin, "gpu_file": prov.file,
            "captured": prov.how, **{f"{s}_rows": prov.rows_in(s) for s in ("captured", "published", "unconfirmed")},
            "derived_rows": list(prov.derived)}


def _entry(it: InstanceType, model: GpuModel, spec: Spec, config_source: str,
           tests: list[TestResult]) -> dict[str, Any]:
    layouts = enumerate_layouts(model)
    configs, untargeted = config_rows(model, it.gpu_count, it, spec, tests) if spec.valid else ([], [])
    return {
        "instance_type": {"name": it.name, "origin": "user catalog" if it.user else "shipped", "file": it.file,
                          "source": it.source, "gpu_count": it.gpu_count, "vcpus": it.vcpus,
                          "memory_mib": it.memory_mib, "ec2_gpu_memory_mib": it.ec2_gpu_memory_mib,
                          "min_driver": it.min_driver, "notes": list(it.notes), "mig_available": it.mig_available,
                          "mig_unavailable": it.mig_unavailable},
        "gpu": {**gpu_provenance(model).as_dict(), "description": model.description,
                "nvml_name": model.nvml_name, "pci_device_id": model.pci_device_ids[0] if model.pci_device_ids
                else None, "architecture": model.architecture, "memory_total_mib": model.memory_total_mib,
                "memory_slots": model.memory_slots, "compute_slices": model.compute_slices,
                "min_driver": model.min_driver, "source": model.source, "unconfirmed": model.unconfirmed,
                "derived_notes": model.derived},
        "profiles": profile_rows(model),
        "pictures": [placement_picture(model, p) for p in model.gi_profiles],
        "layouts": {"count": len(layouts), "maximal": len(maximal_layouts(model, layouts)) if layouts else 0},
        "config_file": config_source,
        "configs": configs,
        "untargeted_configs": untargeted,
        "scheduling": [_test_row(t) for t in sorted(tests, key=lambda t: t.nodeid) if t.category == "scheduling"],
        "catalog": [catalog_row(it, model)],
        "mismatches": [_test_row(t) for t in sorted(tests, key=lambda t: t.nodeid) if t.outcome in ("failed",
                                                                                                    "error")],
    }


def _test_row(t: TestResult) -> dict[str, Any]:
    return {"test": t.nodeid.split("::", 1)[-1], "node": t.node, "config": t.config, "strategy": t.strategy,
            "outcome": t.outcome, "expected": t.expected, "measured": t.measured,
            "comparison": short_comparison(t.expected, t.measured) if t.expected or t.measured else None,
            "message": t.message}

