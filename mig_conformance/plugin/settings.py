"""Run settings: every `--mig-*` option has an ini key `mig_*` and (where useful) an env var.

Precedence: command-line option > environment variable > ini file > default. The resolved values are frozen
into `Settings` together with where each came from, for the report header and summary.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mig_conformance.common.errors import InputError
from mig_conformance.k8s.labels import STRATEGIES
from mig_conformance.k8s.stack import parse_choices


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its option, ini key, env var, kind and help text."""

    name: str  # attribute of Settings and ini key suffix: ini key is f"mig_{name}"
    option: str
    env: str | None
    kind: str  # str | path | bool | float | strategy | stack | names (a list: repeated option, comma-separated env,
    # ini lines) | paths (a list of folders, given like names)
    default: Any
    help: str

    @property
    def ini(self) -> str:
        return f"mig_{self.name}"

    @property
    def negative_option(self) -> str:
        """For bools: the option that switches off what ini or env switched on (`--no-mig-allow-reconfigure`)."""
        return "--no-" + self.option[2:]

    @property
    def dest(self) -> str:
        return f"mig_{self.name}"


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("cluster", "--mig-cluster", "MIG_CLUSTER", "str", None,
                "cluster to test: a name from the clusters file, or sim[:SPEC], local[:SPEC], kind[:NAME], "
                "kubeconfig:CONTEXT, eks:CLUSTER@REGION"),
    SettingSpec("clusters_file", "--mig-clusters-file", "MIG_CLUSTERS_FILE", "path", "mig-clusters.yaml",
                "YAML file of named clusters (default: mig-clusters.yaml beside the rootdir)"),
    SettingSpec("config_file", "--mig-config-file", "MIG_CONFIG_FILE", "path", None,
                "your mig-parted config file (or ConfigMap manifest); its named configs feed the custom suite"),
    SettingSpec("strategy", "--mig-strategy", "MIG_STRATEGY", "strategy", None,
                "MIG strategy to expect/apply: none, single or mixed (default: what the cluster has)"),
    SettingSpec("instance_type", "--mig-instance-type", "MIG_INSTANCE_TYPE", "str", None,
                "only test nodes of this EC2 instance type (for sim: the fleet to simulate)"),
    SettingSpec("allow_reconfigure", "--mig-allow-reconfigure", "MIG_ALLOW_RECONFIGURE", "bool", False,
                "allow tests marked mig_disruptive to change node labels, the ClusterPolicy and the config "
                "ConfigMap (always allowed on sim and local); every change is restored afterwards"),
    SettingSpec("report", "--mig-report", "MIG_REPORT", "path", None,
                "write the report bundle (summary.json, junit.xml, report.md, report.html, TARGET.yaml) here"),
    SettingSpec("timeout", "--mig-timeout", "MIG_TIMEOUT", "float", 900.0,
                "seconds to wait for a reconfiguration or a pod binding before failing"),
    SettingSpec("expected_config_failures", "--mig-expect-config-failure", "MIG_EXPECTED_CONFIG_FAILURES", "names",
                (), "a config of --mig-config-file that must NOT apply on the nodes it targets (repeatable; env: "
                "comma-separated; ini: one per line): its success fails the run"),
    SettingSpec("stack", "--mig-stack", "MIG_STACK", "stack", None,
                "GPU stack versions to model on sim/local (and to override detection on real clusters), e.g. "
                "gpu-operator=v26.3.1,driver=550.54.15,device-plugin=v0.17.4 (default: the newest GA releases; "
                "docs/versions.md)"),
    SettingSpec("catalog", "--mig-catalog", "MIG_CATALOG", "paths", (),
                "a user catalog folder (gpus/*.yaml captured entries, instance-types.yaml new types) that adds to or "
                "overrides the shipped catalog (repeatable, later folders win; env: comma-separated; ini: one per "
                "line)"),
    SettingSpec("gpu_allocation", "--mig-gpu-allocation", "MIG_GPU_ALLOCATION", "str", None,
                "sim and local: how GPU nodes hand out GPUs: device-plugin (default) or dra (NVIDIA's DRA driver, "
                "ResourceSlices and claims); real clusters are detected"),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Resolved, frozen run settings with the source of each value."""

    cluster: str | None = None
    clusters_file: Path = Path("mig-clusters.yaml")
    config_file: Path | None = None
    strategy: str | None = None
    instance_type: str | None = None
    allow_reconfigure: bool = False
    report: Path | None = None
    timeout: float = 900.0
    expected_config_failures: tuple[str, ...] = ()
    stack: str | None = None
    catalog: tuple[Path, ...] = ()
    gpu_allocation: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, dict[str, Any]]:
        """{name: {value, source}} for reports."""
        return {s.name: {"value": _plain(getattr(self, s.name)), "source": self.sources.get(s.name, "default")}
                for s in SETTINGS}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _names(raw: Any) -> tuple[str, ...]:
    """Config names from a repeated option (a list), an ini list (lines) or an env value: each item may hold several
    separated by commas; blanks dropped, order kept, repeats once."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    names = (n.strip() for item in items for n in str(item).replace("\n", ",").split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def _convert(spec: SettingSpec, raw: Any, base: Path, origin: str) -> Any:
    if raw is None:
        return None
    if spec.kind == "names":
        return _names(raw)
    if spec.kind == "paths":
        folders = (Path(n).expanduser() for n in _names(raw))
        return tuple(p if p.is_absolute() else base / p for p in folders)
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InputError(f"{origin}: {spec.ini} must be true or false, got '{raw}'")
    if spec.kind == "float":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"{origin}: {spec.ini} must be a number of seconds, got '{raw}'") from None
        if not math.isfinite(value) or value <= 0:  # nan compares false with everything: refuse it by name
            raise InputError(f"{origin}: {spec.ini} must be a finite number of seconds greater than 0, got '{raw}'")
        return value
    if spec.kind == "path":
        p = Path(str(raw)).expanduser()
        return p if p.is_absolute() else base / p
    text = str(raw).strip()
    if spec.kind == "stack":
        parse_choices(text, origin)  # the components and versions are checked here; the session resolves them
    if spec.kind == "strategy" and text not in STRATEGIES:
        raise InputError(f"{origin}: {spec.ini} must be one of {', '.join(STRATEGIES)}, got '{raw}'")
    return text or None


def resolve(option: Callable[[SettingSpec], Any], ini: Callable[[SettingSpec], Any], env: Mapping[str, str],
            rootdir: Path, invocation_dir: Path) -> Settings:
    """Resolve every setting from option/env/ini/default; InputError names the bad value and where it came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SETTINGS:
        raw, source, base = option(spec), "option", invocation_dir  # None: not given (bools: --no-mig-... = False)
        if raw is None and spec.env and spec.env in env:
            raw, source, base = env[spec.env], f"env {spec.env}", invocation_dir
        if raw in (None, "", []) and ini(spec) not in (None, ""):
            raw, source, base = ini(spec), "ini", rootdir
        if raw in (None, "", []):
            raw, source, base = spec.default, "default", rootdir
        sources[spec.name] = source
        values[spec.name] = _convert(spec, raw, base, _origin(spec.name, sources))
    _check_paths(values, sources)
    return Settings(**values, sources=sources)


def origin_of(name: str, sources: Mapping[str, str]) -> str:
    """Where a setting came from, as an error names it (`--mig-catalog`, `env MIG_CATALOG`, `ini`, `default`)."""
    return _origin(name, sources)


def _origin(name: str, sources: Mapping[str, str]) -> str:
    """Where a setting came from, as an error names it: its option, `env VAR`, `ini` or `default`."""
    spec = next(s for s in SETTINGS if s.name == name)
    return {"option": spec.option}.get(sources[name], sources[name])


def _check_paths(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """A clusters file that is a folder or missing (when given; the default is read only when a name needs it), a
    report folder that is a file: usage errors that say which, before anything reads or creates them."""
    clusters = values["clusters_file"]
    if sources["clusters_file"] != "default" and clusters.is_dir():
        raise InputError(f"{_origin('clusters_file', sources)}: {clusters} is a folder, not a clusters file "
                         "(a YAML file of named clusters)")
    if sources["clusters_file"] != "default" and not clusters.is_file():
        raise InputError(f"{_origin('clusters_file', sources)}: clusters file {clusters} does not exist")
    report = values["report"]
    if report is not None and report.exists() and not report.is_dir():
        raise InputError(f"{_origin('report', sources)}: {report} is a file, not a folder (the report bundle is a "
                         "folder of files: summary.json, report.html, ...; name a new or existing folder)")
