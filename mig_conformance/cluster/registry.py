"""Open a cluster backend from a target: `sim[:SPEC]`, `local[:SPEC]`, `kind[:NAME]`, `kubeconfig:CONTEXT`,
`eks:CLUSTER@REGION`, or a resolved `targets.Target` (clusters-file entry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mig_conformance.cluster.base import Cluster, ClusterError
from mig_conformance.cluster.targets import (
    ARG_KEYS,
    KINDS,
    SESSION_KEYS,
    Target,
    check_backend_options,
    forms,
    parse_spec,
)
from mig_conformance.common.errors import InputError
from mig_conformance.common.extras import require_backend


def parse_target(target: str) -> tuple[str, str]:
    """(kind, arg) of a target string (the forms in `targets.FORMS`); ClusterError says what is malformed."""
    try:
        spec = parse_spec(target)
    except InputError as exc:
        raise ClusterError(str(exc)) from None
    if spec is None:
        text = target.strip()
        raise ClusterError(f"unknown cluster target '{text}': backend '{text.partition(':')[0]}' is not one of "
                           f"{', '.join(KINDS)} (forms: {forms()})")
    return spec.kind, spec.arg


def open_cluster(target: str | Target, allow_changes: bool = False, **options: Any) -> Cluster:
    """Open the backend a target names. `options` go to the backend (unknown ones are an error).

    `settings` (a `settings.Settings`) is accepted too: for sim its strategy and instance type (the fleet, when the
    target names none) are used.
    """
    if isinstance(target, Target):
        kind, arg, name = target.kind, target.arg, target.name
        if kind not in KINDS:
            raise ClusterError(f"target '{target.name}': unknown backend '{kind}' (one of: {', '.join(KINDS)})")
        from_file = {k: v for k, v in target.options.items() if k not in SESSION_KEYS and k != ARG_KEYS.get(kind)}
    else:
        kind, arg = parse_target(target)
        name, from_file = target.strip(), {}
    require_backend(kind, f"--mig-cluster {name} ({kind} backend)")  # before anything starts
    settings = options.pop("settings", None)
    merged = {**from_file, **options}
    if kind == "sim":
        return _open_sim(name, arg, allow_changes, merged, settings)
    if kind in ("kubeconfig", "kind", "eks"):
        return _open_kube(kind, name, arg, allow_changes, merged, target)
    if kind == "local":
        return _open_local(name, arg, allow_changes, merged, settings)
    raise ClusterError(f"backend {kind} is not available yet (target '{name}'); use sim[:SPEC] for now")


def _open_kube(kind: str, name: str, arg: str, allow_changes: bool, options: dict[str, Any],
               target: str | Target) -> Cluster:
    """kubeconfig, kind and eks: the clusters file's `namespace` is the GPU Operator's namespace (its ConfigMap's)."""
    if isinstance(target, Target) and target.options.get("namespace"):
        options.setdefault("operator_namespace", target.options["namespace"])
    if kind == "kind" and isinstance(target, Target) and target.options.get("nodes"):
        options.setdefault("nodes", target.options["nodes"])  # a kind cluster's GPU nodes (its arg is its name)
    if kind == "eks":
        from mig_conformance.cluster.eks.backend import open_eks

        return open_eks(name, arg, allow_changes, options)
    if kind == "kubeconfig":
        from mig_conformance.cluster.kubeconfig import open_kubeconfig

        return open_kubeconfig(name, arg, allow_changes, options)
    from mig_conformance.cluster.kind import open_kind

    return open_kind(name, arg, allow_changes, options)


def _open_sim(name: str, fleet: str, allow_changes: bool, options: Mapping[str, Any], settings: Any) -> Cluster:
    from mig_conformance.cluster.sim.backend import SimCluster

    check_backend_options("sim", options)
    kwargs = dict(options)
    if settings is not None:
        if getattr(settings, "strategy", None) and "strategy" not in kwargs:
            kwargs["strategy"] = settings.strategy
        if getattr(settings, "gpu_allocation", None) and "gpu_allocation" not in kwargs:
            kwargs["gpu_allocation"] = settings.gpu_allocation
        if not fleet and getattr(settings, "instance_type", None):
            fleet = settings.instance_type
    kwargs.setdefault("name", name)
    return SimCluster(fleet, allow_changes=allow_changes, **kwargs)


def _open_local(name: str, spec: str, allow_changes: bool, options: Mapping[str, Any], settings: Any) -> Cluster:
    """Start a local cluster (default spec p5.48xlarge), or attach to one with the `kubeconfig` option. With a
    report folder, the cluster's state and process logs go under it (evidence)."""
    check_backend_options("local", options)
    from mig_conformance.cluster.local.backend import LocalCluster

    kwargs = dict(options)
    kwargs.setdefault("name", name)
    if "kubeconfig" in kwargs:
        path = kwargs.pop("kubeconfig")
        return LocalCluster.attach(path, name=kwargs["name"], allow_changes=allow_changes,
                                   journal=kwargs.get("journal"))
    if settings is not None:
        if getattr(settings, "strategy", None) and "strategy" not in kwargs:
            kwargs["strategy"] = settings.strategy
        if getattr(settings, "gpu_allocation", None) and "gpu_allocation" not in kwargs:
            kwargs["gpu_allocation"] = settings.gpu_allocation
        if not spec and getattr(settings, "instance_type", None):
            spec = settings.instance_type
        report = getattr(settings, "report", None)
        if report and "state_dir" not in kwargs:
            import tempfile
            from pathlib import Path

            Path(report).mkdir(parents=True, exist_ok=True)
            kwargs["state_dir"] = tempfile.mkdtemp(prefix="local-cluster-", dir=report)
    return LocalCluster.start(spec, allow_changes=allow_changes, **kwargs)
