"""The run's stack profile: what `--mig-stack` (ini `mig_stack`, env MIG_STACK) and the clusters file's `stack:`
key choose, resolved once per run: on sim and local the backends behave as it; on real clusters it overrides what
detection finds (cluster/stack_detect.py)."""

from __future__ import annotations

from typing import Any

from mig_conformance.cluster.targets import Target
from mig_conformance.k8s import stack as S
from mig_conformance.plugin.settings import Settings

#: Backends that model the chosen versions (their agents are the kit's own); the others are detected.
CHOSEN_KINDS = ("sim", "local")

Layers = list[tuple[dict[str, str], str]]


def choice_layers(settings: Settings, target: Target) -> Layers:
    """The choices, highest precedence first: the option (or its env/ini), then the clusters-file entry's `stack:`."""
    layers: Layers = []
    if settings.stack:
        source = settings.sources.get("stack", "option")
        origin = {"option": "option --mig-stack", "ini": "ini mig_stack"}.get(source, source)
        layers.append((S.parse_choices(settings.stack, origin), origin))
    raw: Any = target.options.get("stack")
    if raw:
        origin = f"{target.source}, cluster '{target.name}' key stack"
        layers.append((S.parse_choices(raw, origin), origin))
    return layers


def is_chosen(target: Target) -> bool:
    """Whether the backend behaves as the chosen versions (sim, a local cluster the kit starts) rather than having
    its own to detect (real clusters, a local cluster attached through its kubeconfig)."""
    return target.kind in CHOSEN_KINDS and "kubeconfig" not in target.options


def chosen_profile(settings: Settings, target: Target) -> S.StackProfile | None:
    """The profile of a backend that models the choice (InputError for a bad one), None where it is detected."""
    layers = choice_layers(settings, target)
    return S.resolve(layers) if is_chosen(target) else None


def summary_settings(profile: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`stack.<component>` rows for summary.json's settings (the report's settings table shows them with sources)."""
    if not profile:
        return {}
    rows = {f"stack.{name}": {"value": entry.get("value"), "source": entry.get("source")}
            for name, entry in profile.items() if isinstance(entry, dict) and "source" in entry}
    if profile.get("notes"):
        rows["stack.notes"] = {"value": "; ".join(map(str, profile["notes"])), "source": "stack profile"}
    return rows


def lines(profile: dict[str, Any] | None) -> list[str]:
    """The terminal summary's stack lines."""
    if not profile:
        return []
    shown = [f"{n.replace('_', '-')} {e.get('value') or 'unknown'} ({e.get('source')})"
             for n, e in profile.items() if isinstance(e, dict) and "source" in e]
    return ["stack: " + ", ".join(shown), *(f"stack note: {n}" for n in profile.get("notes") or [])]
