"""Bad settings and combinations, rejected before anything connects (usage errors that name the value)."""

from __future__ import annotations

import pytest

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.targets import Target
from mig_conformance.mig.spec import ConfigSource
from mig_conformance.plugin import roles
from mig_conformance.plugin.settings import Settings

SAFE_KINDS = ("sim", "local")  # clusters the kit itself created: changes are always allowed


def check_parallel(config: pytest.Config, target: Target, settings: Settings) -> None:
    """xdist workers each open the cluster: fine for sim and local (one cluster each) and for read-only runs, but
    reconfiguring workers would change the cluster-wide ClusterPolicy and ConfigMap under each other, and kind
    workers would create the same cluster."""
    from mig_conformance.common.errors import InputError

    option = config.option
    distributed = getattr(option, "numprocesses", None) or (
        getattr(option, "dist", "no") != "no" and getattr(option, "tx", None))  # -n, or --dist with --tx
    if not distributed or roles.is_worker(config) or target.kind in SAFE_KINDS:
        return
    if target.kind == "kind":
        raise InputError(f"--mig-cluster {target.name}: a kind cluster cannot be shared by xdist workers; run "
                         "without -n")
    if settings.allow_reconfigure:
        raise InputError(f"--mig-cluster {target.name}: with --mig-allow-reconfigure, xdist workers would change "
                         "the cluster-wide MIG strategy and mig-parted ConfigMap under each other; run without -n "
                         "(read-only runs may use -n)")


def check_extras(target: Target) -> None:
    """The backend's Python modules are installed: otherwise one usage error with the install hint
    (common/extras.py), before anything starts, instead of an ImportError in every test."""
    from mig_conformance.common.extras import require_backend

    require_backend(target.kind, f"--mig-cluster {target.name} ({target.kind} backend)")


def check_fleet(target: Target) -> None:
    """A sim/local fleet spec is parsed before anything starts: a typo is a usage error, not a collection error."""
    if target.kind not in SAFE_KINDS or not target.arg:
        return
    from mig_conformance.cluster.sim.fleet import parse_fleet
    from mig_conformance.common.errors import InputError

    try:
        parse_fleet(target.arg)
    except ClusterError as exc:
        raise InputError(f"--mig-cluster {target.name}: {exc}") from None


def check_settings(settings: Settings) -> None:
    """Reject bad combinations before anything connects (usage errors name the value)."""
    from mig_conformance.common.errors import InputError
    from mig_conformance.gpus.instance_types import load_instance_types
    if settings.instance_type and settings.instance_type not in load_instance_types():
        known = ", ".join(sorted(load_instance_types()))
        raise InputError(f"--mig-instance-type '{settings.instance_type}' is not a known GPU instance type "
                         f"(known: {known})")


def read_user_config(settings: Settings) -> ConfigSource | None:
    """`--mig-config-file`, read and parsed once for the whole run; a file mig-parted would reject, or one without
    named configs, is a usage error naming the file (and line, config, entry, key)."""
    from mig_conformance.common.errors import InputError
    from mig_conformance.mig.spec import load_config_source

    expected = settings.expected_config_failures
    if settings.config_file is None:
        if expected:
            raise InputError(f"{expected_failures_origin(settings)}: {', '.join(expected)} name configs of "
                             "--mig-config-file, but no --mig-config-file is given")
        return None
    source = load_config_source(settings.config_file)  # unreadable or not YAML -> InputError naming the file
    if source.spec.problems:
        raise InputError(list(source.spec.problems))
    if not source.spec.configs:
        raise InputError(f"--mig-config-file {settings.config_file}: no named configs in the file")
    unknown = [name for name in expected if name not in source.spec.configs]
    if unknown:
        raise InputError(f"{expected_failures_origin(settings)}: no config {', '.join(repr(n) for n in unknown)} in "
                         f"{settings.config_file} (configs there: {', '.join(source.names)})")
    return source


def expected_failures_origin(settings: Settings) -> str:
    """Where the expected config failures came from, as messages name it: the option, `env VAR` or `ini KEY`."""
    source = settings.sources.get("expected_config_failures", "default")
    return {"option": "--mig-expect-config-failure", "ini": "ini mig_expected_config_failures",
            "default": "--mig-expect-config-failure"}.get(source, source)


def check_unrestored_journals(config: pytest.Config, settings: Settings) -> None:
    """A report folder holding the journal of a run that was stopped before its restore (SIGKILL, lost CI runner):
    this run would overwrite the only record of the cluster's original values, so it refuses to start."""
    from mig_conformance.cluster.journal import Journal, gone_with_the_run
    from mig_conformance.common.errors import InputError

    if settings.report is None or roles.is_worker(config) or not settings.report.is_dir():
        return
    for path in sorted(settings.report.glob("*journal*.json")):
        try:
            journal = Journal.load(path)
        except (OSError, ValueError):
            continue  # not a journal the kit can restore from; nothing of value is overwritten
        target = journal.target
        if journal.changes and not gone_with_the_run(str(target.get("kind", "")), target.get("options") or {}):
            raise InputError(
                f"--mig-report {settings.report}: {path.name} holds {len(journal.changes)} change(s) of run "
                f"{journal.run_id or '?'} on cluster {journal.cluster or '?'} that were never restored (that run was "
                f"stopped before its restore). Put them back first: mig-conformance restore {path} — or use "
                "another --mig-report folder")
