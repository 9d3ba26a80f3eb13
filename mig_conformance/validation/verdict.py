"""The config verdict: does a config of the user's mig-parted file work on a node it targets?

It applies when mig-manager ended `success` on the node *and* the kit's validation of the config on the node's GPUs
finds no error (mig-parted reports success for some configs that leave a GPU without what they ask for, e.g. a
profile the GPU does not have: then its own assert fails). A config the user lists as expected to fail must not
apply. This is a question about the user's config, asked beside the conformance question (did the cluster do what
the kit predicted), which the suites answer on their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mig_conformance.common.errors import Problem
from mig_conformance.gpus.catalog import GpuModel
from mig_conformance.mig.spec import Spec
from mig_conformance.validation.report import mig_parted_text
from mig_conformance.validation.validate import validate_node

APPLIES = "applies"
DOES_NOT_APPLY = "does-not-apply"
EXPECTED_FAILURE = "expected-failure"
UNEXPECTEDLY_APPLIED = "unexpectedly-applied"
#: verdict -> what reports call it
LABELS = {APPLIES: "applies", DOES_NOT_APPLY: "does not apply", EXPECTED_FAILURE: "expected failure confirmed",
          UNEXPECTEDLY_APPLIED: "UNEXPECTEDLY applied"}
VERDICTS = tuple(LABELS)
GOOD = frozenset({APPLIES, EXPECTED_FAILURE})


@dataclass(frozen=True)
class ConfigVerdict:
    """One config on one node: the verdict, why, and what mig-manager and mig-parted reported."""

    file: str
    config: str
    node: str
    instance_type: str | None
    gpus: str  # "8x H100-80GB"
    verdict: str
    expected_failure: bool
    mig_manager: str  # what mig-manager wrote on the node: "pending -> failed"
    mig_parted: str  # the kit's mig-parted simulator on a fresh node of these GPUs: "apply: ...; assert ...: ..."
    reasons: tuple[str, ...] = ()  # why it does not apply (empty when it applies and the kit finds nothing wrong)

    @property
    def ok(self) -> bool:
        return self.verdict in GOOD

    @property
    def label(self) -> str:
        return LABELS[self.verdict]

    def where(self) -> str:
        hardware = ", ".join(x for x in (self.instance_type, self.gpus) if x)
        return f"node {self.node} ({hardware})"

    def lines(self, expected_from: str = "--mig-expect-config-failure") -> list[str]:
        """The failure text, most telling first (reports keep the first lines): which config, where, why, and what
        mig-manager and mig-parted reported."""
        reported = f"mig-manager: {self.mig_manager}; mig-parted on a fresh node of these GPUs: {self.mig_parted}"
        if self.verdict == UNEXPECTEDLY_APPLIED:
            return [f"config '{self.config}' of {self.file} was expected to fail (listed by {expected_from}) but "
                    f"applies on {self.where()}", reported,
                    "take it off the expected failures if it is meant to work here"]
        lines = [f"config '{self.config}' of {self.file} {self.label} on {self.where()}"]
        lines += [f"why: {reason}" for reason in self.reasons]
        lines.append(reported)
        if self.verdict == DOES_NOT_APPLY:
            lines.append(f"if the config is meant to fail here, list it with {expected_from}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "config": self.config, "node": self.node, "instance_type": self.instance_type,
                "gpus": self.gpus, "verdict": self.verdict, "label": self.label, "ok": self.ok,
                "expected_failure": self.expected_failure, "mig_manager": self.mig_manager,
                "mig_parted": self.mig_parted, "reasons": list(self.reasons)}


def judge(spec: Spec, config: str, gpus: Sequence[GpuModel], node: str, instance_type: str | None,
          states: Sequence[str], expected_failure: bool) -> ConfigVerdict:
    """The verdict on `config` for a node whose GPUs (PCI order) are `gpus`, where mig-manager wrote `states` (the
    last one is its verdict)."""
    report = validate_node(spec, config, list(gpus), node)
    final = states[-1] if states else None
    applied = final == "success" and report.valid
    reasons = grouped(report.errors)
    if final != "success" and not reasons:
        reasons = [f"mig-manager ended {final or 'without a verdict'}, though the kit's validation finds nothing "
                   "wrong with the config on these GPUs (look at mig-manager's log on the node)"]
    if expected_failure:
        verdict = UNEXPECTEDLY_APPLIED if applied else EXPECTED_FAILURE
    else:
        verdict = APPLIES if applied else DOES_NOT_APPLY
    return ConfigVerdict(spec.file, config, node, instance_type, gpus_text(gpus), verdict, expected_failure,
                         " -> ".join(states) or "no state", mig_parted_text(report.mig_parted), tuple(reasons))


def gpus_text(gpus: Sequence[GpuModel]) -> str:
    """`8x H100-80GB`, `2x H100-80GB + 1x A10G-24GB` (PCI order of first appearance)."""
    return " + ".join(f"{n}x {key}" for key, n in Counter(g.key for g in gpus).items())


def grouped(problems: Sequence[Problem]) -> list[str]:
    """Located problems with the same message and place, one line for all the GPUs they concern:
    `GPUs 4-7: does not fit on H100-80GB: ... (my.yaml:8, entry 1, key 'mig-devices')`."""
    groups: dict[tuple[str, str], list[int]] = {}
    for p in problems:
        loc = p.location
        where = ", ".join(x for x in (f"{loc.file}:{loc.line}" if loc.file and loc.line else loc.file,
                                      f"entry {loc.entry}" if loc.entry is not None else None,
                                      f"key '{loc.key}'" if loc.key is not None else None) if x)
        groups.setdefault((p.message, where), []).extend([] if p.gpu is None else [p.gpu])
    out = []
    for (message, where), indices in groups.items():
        gpus = f"{_gpu_list(indices)}: " if indices else ""
        out.append(f"{gpus}{message}" + (f" ({where})" if where else ""))
    return out


def _gpu_list(indices: list[int]) -> str:
    """`GPU 4`, `GPUs 4-7`, `GPUs 0, 2, 5-7`."""
    ordered = sorted(set(indices))
    runs: list[list[int]] = []
    for i in ordered:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    text = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
    return f"GPU {text}" if len(ordered) == 1 else f"GPUs {text}"
