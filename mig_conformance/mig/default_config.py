"""The GPU Operator's static `default-mig-parted-config` ConfigMap, shipped in fixtures/configs (verbatim from
NVIDIA/gpu-operator `assets/state-mig-manager/0400_configmap.yaml`, see the file's header for the tag)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import yaml

from mig_conformance.mig.spec import Spec, parse_installed_config

CONFIG_MAP = "default-mig-parted-config"
CONFIG_KEY = "config.yaml"
#: the label the GPU Operator puts on MIG-capable nodes (NVIDIA/gpu-operator values.yaml `migManager.config.default`)
DEFAULT_LABEL = "all-disabled"


def default_config_file() -> Path:
    """The shipped ConfigMap manifest."""
    return Path(str(resources.files("mig_conformance.fixtures").joinpath("configs/default-mig-parted-config.yaml")))


@functools.cache
def default_config_text() -> str:
    """The mig-parted file the ConfigMap holds (its `config.yaml`)."""
    manifest = yaml.safe_load(default_config_file().read_text(encoding="utf-8"))
    return str(manifest["data"][CONFIG_KEY])


@functools.cache
def default_spec() -> Spec:
    """The ConfigMap's mig-parted file, parsed once (treat as immutable: caches key on its identity)."""
    return parse_installed_config(default_config_text(), f"ConfigMap {CONFIG_MAP}")
