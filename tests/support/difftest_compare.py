"""Comparing the kit's projection with what NVIDIA's code made of a case (the harness's JSON line).

Compared: the device plugin's resources (name -> count), its fatal error (the kit's text = the harness's
`plugin.New` error behind the three wrappers of cmd/nvidia-device-plugin) and warnings; every GFD label, except:

* labels the kit does not model (`NOT_MODELLED`): run-time and host facts, not MIG behaviour;
* a label whose value GFD computes from a number the catalog does not know (null), which the harness serves as a
  placeholder: the kit leaves such labels out, so there is nothing to compare (`unknown in catalog`);
* a label GFD sets by Go map order on a node with several GPU models: the kit's value must be one GFD wrote in
  some run (`nondeterministic in GFD`).

Every other mismatch is a difference. `KNOWN` lists the ones documented in docs/differential.md with their reason;
any difference not listed there fails the test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mig_conformance.k8s import device_plugin, gfd
from mig_conformance.k8s.labels import MIG_RESOURCE_PREFIX
from mig_conformance.mig.state import GpuMigState, device_attributes

#: What cmd/nvidia-device-plugin wraps around plugin.New's error before it exits (v0.17.4: main.go start
#: "error starting plugins: %v", main.go startPlugins "error getting plugins: %v", plugin-manager.go GetPlugins
#: "unable to create plugins: %w"). The harness calls plugin.New itself.
CMD_WRAPPERS = ("error starting plugins: ", "error getting plugins: ", "unable to create plugins: ")

#: GFD labels outside the kit's model (k8s/gfd.py says which and why), compared by key prefix.
NOT_MODELLED = (
    "nvidia.com/cuda.runtime.", "nvidia.com/cuda.runtime-version.",  # the CUDA driver API version, not MIG
    "nvidia.com/gpu.compute.",  # CUDA compute capability: not in the catalog
    "nvidia.com/gpu.machine",  # the host's DMI product name
    "nvidia.com/gfd.timestamp",  # run time (the harness runs without it, as --no-timestamp)
)

#: MIG device attribute labels (lm/resource.go newMigAttributeLabels) -> MigDeviceAttributes fields.
ATTRIBUTE_LABELS = {"memory": "memory_mib", "multiprocessors": "multiprocessors", "slices.gi": "gi_slices",
                    "slices.ci": "ci_slices", "engines.copy": "copy_engines", "engines.decoder": "decoders",
                    "engines.encoder": "encoders", "engines.jpeg": "jpeg", "engines.ofa": "ofa"}

#: Known differences: id -> (what, why), numbered D1, D2, ... in this order in docs/differential.md, which explains
#: each. None today: the two this test found (GFD's `nvidia.com/vgpu.present`, and `nvidia.com/gpu.memory` under
#: single for a MIG profile of unknown memory) are modelled in k8s/gfd.py (issue 11 item 5).
KNOWN: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Finding:
    """One compared item that did not simply agree: `verdict` is "differs", "known:<id>", "unknown in catalog"
    or "nondeterministic in GFD"."""

    what: str  # resources | error | warnings | label <key>
    kit: object
    nvidia: object
    verdict: str

    @property
    def is_difference(self) -> bool:
        return self.verdict == "differs" or self.verdict.startswith("known:")

    def __str__(self) -> str:
        return f"{self.what}: kit {self.kit!r}, NVIDIA {self.nvidia!r} ({self.verdict})"


@dataclass
class Comparison:
    case_id: str
    findings: list[Finding] = field(default_factory=list)
    harness_error: str | None = None

    @property
    def unexplained(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "differs"]

    @property
    def known(self) -> list[str]:
        return sorted({f.verdict.removeprefix("known:") for f in self.findings if f.verdict.startswith("known:")})

    @property
    def agrees(self) -> bool:
        """No difference at all (notes on unknown or nondeterministic labels do not count)."""
        return self.harness_error is None and not any(f.is_difference for f in self.findings)

    @property
    def cell(self) -> str:
        """The docs' table cell: `exact` (nothing differs), `ok D<n> ...` (only known differences), then `u` when
        labels went uncompared for catalog unknowns; `ERROR` or `DIFFERS` otherwise. (Labels GFD sets by map order
        are not marked: whether the runs showed both values is chance.)"""
        if self.harness_error:
            return "ERROR"
        if self.unexplained:
            return "DIFFERS"
        ids = list(KNOWN)
        known = [f"D{ids.index(k) + 1}" for k in self.known]
        text = "exact" if not known else " ".join(["ok", *known])
        unknown = any(f.verdict == "unknown in catalog" for f in self.findings)
        return f"{text} u" if unknown else text

    def explain(self) -> str:
        """Every finding, one per line (for failure messages)."""
        if self.harness_error:
            return f"{self.case_id}: harness error: {self.harness_error}"
        return "\n".join(f"{self.case_id}: {f}" for f in self.findings)


def _not_modelled(key: str) -> bool:
    return key.startswith(NOT_MODELLED)


def _mig_prefix_device(key: str, strategy: str, gpus: Sequence[GpuMigState]) -> tuple[GpuMigState, str, str] | None:
    """For a MIG attribute label, the first GPU with that MIG device, the device name and the attribute."""
    for attr in ATTRIBUTE_LABELS:
        if not key.endswith("." + attr):
            continue
        prefix = key[: -len(attr) - 1]
        for g in gpus:
            for d in g.devices if g.mig_enabled else ():
                if prefix == MIG_RESOURCE_PREFIX + gfd.mig_name(d) or (strategy == "single" and
                                                                        prefix == gfd.GPU_PREFIX):
                    return g, d, attr
    return None


def _unknown_in_catalog(key: str, strategy: str, gpus: Sequence[GpuMigState]) -> bool:
    """Whether GFD computes this label from a number the catalog leaves null (the harness serves a placeholder)."""
    found = _mig_prefix_device(key, strategy, gpus)
    if found is not None:
        g, d, attr = found
        attrs = device_attributes(g.model, d)
        return attrs is None or getattr(attrs, ATTRIBUTE_LABELS[attr]) is None
    if key == f"{gfd.GPU_PREFIX}.memory":
        return any(g.model.memory_total_mib is None for g in gpus)
    return False


def _label_verdict(key: str, kit: str | None, nvidia: str | None, variants: Sequence[str], strategy: str,
                   gpus: Sequence[GpuMigState]) -> str | None:
    """None when the label agrees; else why not."""
    if kit == nvidia:
        return None
    if kit is not None and kit in variants:
        return "nondeterministic in GFD"
    if _unknown_in_catalog(key, strategy, gpus) and kit is None:
        return "unknown in catalog"
    return "differs"


def compare(case_id: str, strategy: str, gpus: Sequence[GpuMigState], names: Sequence[str],
            result: Mapping[str, Any], version: str, driver: str) -> Comparison:
    """The kit's projection for `gpus` (NVML names `names`) under `strategy` against the harness's result for the
    same case."""
    out = Comparison(case_id)
    if result.get("harness_error"):
        out.harness_error = str(result["harness_error"])
        return out
    kit_dp = device_plugin.advertise(strategy, gpus, version=version)
    dp = result["device_plugin"]
    nvidia_error = dp["error"]
    expected_error = "".join(CMD_WRAPPERS) + nvidia_error if nvidia_error is not None else None
    if kit_dp.error != expected_error:
        out.findings.append(Finding("error", kit_dp.error, expected_error, "differs"))
    if kit_dp.resources != dp["resources"]:
        out.findings.append(Finding("resources", kit_dp.resources, dp["resources"], "differs"))
    if list(kit_dp.warnings) != list(dp["warnings"]):
        out.findings.append(Finding("warnings", list(kit_dp.warnings), dp["warnings"], "differs"))
    g = result["gfd"]
    if g["error"] is not None:
        out.findings.append(Finding("gfd error", None, g["error"], "differs"))
        return out
    kit_labels = gfd.labels(strategy, gpus, driver, names, version=version)  # GFD ships with the plugin's version
    nvidia_labels: dict[str, str] = g["labels"]
    variants: dict[str, list[str]] = g["variants"]
    for key in sorted(set(kit_labels) | set(nvidia_labels)):
        if _not_modelled(key):
            continue
        kit, nvidia = kit_labels.get(key), nvidia_labels.get(key)
        verdict = _label_verdict(key, kit, nvidia, variants.get(key, ()), strategy, gpus)
        if verdict is not None:
            out.findings.append(Finding(f"label {key}", kit, nvidia, verdict))
    return out
