"""Bad settings and combinations, rejected before anything connects (usage errors that name the value)."""

from __future__ import annotations

import pytest

from .cluster.base import ClusterError
from .settings import Settings
from .targets import Target

SAFE_KINDS = ("sim", "local")  # clusters the kit itself created: changes are always allowed


def check_parallel(config: pytest.Config, target: Target, settings: Settings) -> None:
    """xdist workers each open the cluster: fine for sim and local (one cluster each) and for read-only runs, but
    reconfiguring workers would change the cluster-wide ClusterPolicy and ConfigMap under each other, and kind
    workers would create the same cluster."""
    from .errors import InputError

    workers = getattr(config.option, "numprocesses", None)
    if not workers or hasattr(config, "workerinput") or target.kind in SAFE_KINDS:
        return
    if target.kind == "kind":
        raise InputError(f"--mig-cluster {target.name}: a kind cluster cannot be shared by xdist workers; run "
                         "without -n")
    if settings.allow_reconfigure:
        raise InputError(f"--mig-cluster {target.name}: with --mig-allow-reconfigure, xdist workers would change "
                         "the cluster-wide MIG strategy and mig-parted ConfigMap under each other; run without -n "
                         "(read-only runs may use -n)")


def check_fleet(target: Target) -> None:
    """A sim/local fleet spec is parsed before anything starts: a typo is a usage error, not a collection error."""
    if target.kind not in SAFE_KINDS or not target.arg:
        return
    from .cluster.sim_fleet import parse_fleet
    from .errors import InputError

    try:
        parse_fleet(target.arg)
    except ClusterError as exc:
        raise InputError(f"--mig-cluster {target.name}: {exc}") from None


def check_settings(settings: Settings) -> None:
    """Reject bad combinations before anything connects (usage errors name the value)."""
    from .errors import InputError
    from .instance_types import load_instance_types
    from .mig.spec import load_spec

    if settings.instance_type and settings.instance_type not in load_instance_types():
        known = ", ".join(sorted(load_instance_types()))
        raise InputError(f"--mig-instance-type '{settings.instance_type}' is not a known GPU instance type "
                         f"(known: {known})")
    if settings.config_file is not None:
        spec = load_spec(settings.config_file)  # unreadable or not YAML -> InputError naming the file
        if spec.problems:
            raise InputError(spec.problems)
        if not spec.configs:
            raise InputError(f"--mig-config-file {settings.config_file}: no named configs in the file")
