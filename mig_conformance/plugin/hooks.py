"""The pytest plugin's hooks (pytest11 entry point `mig_conformance = mig_conformance.plugin.hooks`).

Thin by design: it wires options/ini/env into frozen Settings, opens one MigSession (the cluster, the run's
namespace, its results), registers markers and the fixtures of `plugin.fixtures`. All logic lives in the plain
modules it imports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mig_conformance.common.errors import InputError
from mig_conformance.plugin import roles
from mig_conformance.plugin.fixtures import (  # registered with the plugin: pytest collects them from this module
    mig_cluster,
    mig_expect,
    mig_nodes,
    mig_pods,
    mig_reconfigure,
    mig_record,
    mig_settings,
    mig_user_config,
)
from mig_conformance.plugin.keys import catalogs_key, session_key, settings_key
from mig_conformance.plugin.settings import SETTINGS, Settings

if TYPE_CHECKING:
    pass

FIXTURES = (mig_cluster, mig_expect, mig_nodes, mig_pods, mig_reconfigure, mig_record, mig_settings, mig_user_config)

MARKERS = (
    "mig_disruptive: the test changes the cluster (node labels, ClusterPolicy, config ConfigMap); skipped unless "
    "--mig-allow-reconfigure (always allowed on sim and local); every change is restored afterwards",
    "mig_category(name): report category of a test: catalog, single, mixed, all-balanced, custom, scheduling, "
    "reconfiguration, dra, diagnose",
    "mig_diagnose: the read-only field diagnostics (suites/test_diagnose.py); run them alone with -m mig_diagnose",
)


def suites_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("mig_conformance.suites")))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mig-conformance", "NVIDIA MIG conformance (mig-conformance)")
    for spec in SETTINGS:
        env = f" [env {spec.env}]" if spec.env else ""
        if spec.kind == "bool":
            group.addoption(spec.option, action="store_true", default=None, dest=spec.dest,
                            help=f"{spec.help} (ini {spec.ini}){env}")
            group.addoption(spec.negative_option, action="store_false", dest=spec.dest,
                            help=f"the opposite of {spec.option}, overriding ini and env")
        elif spec.kind in ("names", "paths"):
            group.addoption(spec.option, action="append", dest=spec.dest, default=None,
                            metavar="NAME" if spec.kind == "names" else "DIR",
                            help=f"{spec.help} (ini {spec.ini}){env}")
        else:
            group.addoption(spec.option, dest=spec.dest, default=None, metavar=spec.name.upper(),
                            help=f"{spec.help} (ini {spec.ini}){env}")
        if spec.kind in ("names", "paths"):
            parser.addini(spec.ini, help=spec.help, type="linelist", default=[])
        else:
            parser.addini(spec.ini, help=spec.help, default=None)


def _wants_suites(config: pytest.Config) -> bool:
    """A cluster is selected and no test paths are given. A project whose ini sets `mig_cluster` together with
    `testpaths` runs its own testpaths (it can add `--pyargs mig_conformance.suites`)."""
    ns = config.known_args_namespace
    if ns.file_or_dir:
        return False
    if getattr(ns, "mig_cluster", None) or os.environ.get("MIG_CLUSTER"):
        return True
    return bool(config.getini("mig_cluster")) and not config.getini("testpaths")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """With a cluster to test and no test paths, collect the shipped suites (works from an empty folder)."""
    for marker in MARKERS:
        early_config.addinivalue_line("markers", marker)
    if _wants_suites(early_config):
        args.append(str(suites_dir()))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The diagnose suite runs first (after any shuffling plugin): it describes the cluster as the run found it,
    before other suites relabel nodes or swap the config."""
    items.sort(key=lambda item: item.get_closest_marker("mig_diagnose") is None)


def resolve_settings(config: pytest.Config) -> Settings:
    from mig_conformance.plugin.settings import resolve

    return resolve(option=lambda s: config.getoption(s.dest), ini=lambda s: config.getini(s.ini),
                   env=os.environ, rootdir=Path(config.rootpath), invocation_dir=Path(config.invocation_params.dir))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return  # `pytest --help` must work whatever MIG_* variables hold
    from mig_conformance.plugin.crashes import CrashWatch, exit_internal

    try:
        settings = resolve_settings(config)
    except InputError as exc:
        raise pytest.UsageError(f"mig-conformance: {exc}") from None
    except Exception as exc:  # a bug of the kit: exit 3 with one line
        exit_internal(exc, "while reading the settings")
    config.stash[settings_key] = settings
    _use_catalogs(config, settings)
    if settings.cluster is None:
        return
    from mig_conformance.plugin.session import MigSession

    try:
        session = MigSession(config, settings)
    except InputError as exc:
        raise pytest.UsageError(f"mig-conformance: {exc}") from None
    except Exception as exc:  # a bug of the kit: exit 3 with one line, never a traceback or exit 1
        exit_internal(exc, "while starting the run")
    config.stash[session_key] = session
    config.pluginmanager.register(session, "mig_conformance_session")
    config.pluginmanager.register(CrashWatch(), "mig_conformance_crashes")
    if settings.report and roles.is_main(config):
        try:
            settings.report.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(f"mig-conformance: --mig-report {settings.report}: cannot create the report "
                                    f"folder: {exc.strerror or exc}") from None
        if not config.option.xmlpath:
            config.option.xmlpath = str(settings.report / "junit.xml")


def _use_catalogs(config: pytest.Config, settings: Settings) -> None:
    """The --mig-catalog folders in effect for the run (a folder that does not load is a usage error naming file,
    line and key); pytest_unconfigure puts the previous ones back."""
    if not settings.catalog:
        return
    from mig_conformance.gpus.user_catalog import activate
    from mig_conformance.plugin.settings import origin_of

    origin = origin_of("catalog", settings.sources)
    try:
        config.stash[catalogs_key] = activate(settings.catalog, origin)
    except InputError as exc:
        text = str(exc)
        raise pytest.UsageError(f"mig-conformance: {text if text.startswith(origin) else f'{origin}: {text}'}") \
            from None


@pytest.hookimpl(trylast=True)  # after the session has written the report, which names the user files
def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(catalogs_key, None)
    if previous is not None:
        from mig_conformance.gpus.catalog import set_user_catalog_dirs

        set_user_catalog_dirs(previous)


def _shown(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(settings_key, None)
    if settings is None or settings.cluster is None:
        return []
    from mig_conformance import __version__

    shown = ("cluster", "clusters_file", "config_file", "strategy", "instance_type", "allow_reconfigure", "report",
             "timeout", "expected_config_failures", "stack", "catalog", "gpu_allocation")
    parts = [f"{name}={_shown(d['value'])} (from {d['source']})" for name, d in settings.describe().items()
             if name in shown and ((d["value"] is not None and d["source"] != "default") or name == "cluster")]
    session = config.stash.get(session_key, None)
    mode = session.mode_line() if session else ""
    lines = [f"mig-conformance {__version__}: " + ", ".join(parts), f"mig-conformance mode: {mode}"]
    if session is not None:
        stack = session.stack.line() if session.stack else "detected when the cluster is opened (see the summary)"
        lines.append(f"mig-conformance stack: {stack}")
    return lines
