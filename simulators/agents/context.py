"""What every agent needs: options, the ClusterPolicy's current settings, the API, the work queue, and a
retrying call that rides out an API server restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mig_conformance.k8s import device_plugin as dp
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.agents.api import Api, Unavailable
from mig_conformance.simulators.agents.workqueue import WorkQueue
from mig_conformance.simulators.command_cache import CommandCache

log = logging.getLogger("mig_conformance.agents")
T = TypeVar("T")

DEFAULT_CONFIG_MAP = "default-mig-parted-config"
DEFAULT_STRATEGY = "single"  # GPU Operator values.yaml mig.strategy
BACKOFF_START, BACKOFF_MAX = 0.1, 2.0


class Stopped(Exception):
    """The agents are shutting down."""


@dataclass(frozen=True)
class Options:
    """Command-line settings (see __main__)."""

    namespace: str = "gpu-operator"
    node_selector: str | None = f"{L.GPU_PRESENT}=true"
    mig_manager_delay: float = 0.2
    with_reboot: bool = False
    gpu_reset_works: bool = True
    driver: str = nv.DRIVER_580
    device_plugin_version: str = dp.DEFAULT_VERSION
    #: the versions the agents behave as (`--stack`): driver and device_plugin_version are its modelled values, and
    #: it decides which file mig-manager reads (k8s/mig_config.py)
    stack: StackProfile = stack_profile.DEFAULT
    state_dir: Path | None = None
    resync: int = 60
    workers: int = 8
    #: "dra": the nodes run NVIDIA's DRA driver (agents/dra_driver.py) instead of the device plugin
    gpu_allocation: str = "device-plugin"
    dynamic_mig: bool = False
    kubernetes: str | None = None  # the API server's version, for the driver's version-keyed behaviour


@dataclass(frozen=True)
class Policy:
    """The ClusterPolicy fields the agents act on (GPU Operator defaults when there is none)."""

    strategy: str = DEFAULT_STRATEGY
    config_map: str | None = None  # spec.migManager.config.name; None: empty (k8s/mig_config.py decides)
    default_config: str | None = None
    with_reboot: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any] | None) -> Policy:
        """spec.mig.strategy, spec.migManager.config.{name,default} and WITH_REBOOT in spec.migManager.env."""
        spec = (obj or {}).get("spec") or {}
        manager = spec.get("migManager") or {}
        config = manager.get("config") or {}
        env = {e.get("name"): str(e.get("value", "")) for e in manager.get("env") or [] if isinstance(e, dict)}
        return cls(strategy=(spec.get("mig") or {}).get("strategy") or DEFAULT_STRATEGY,
                   config_map=config.get("name") or None,
                   default_config=config.get("default") or None,
                   with_reboot=env.get("WITH_REBOOT", "").lower() == "true")


@dataclass
class Context:
    api: Api
    options: Options = field(default_factory=Options)
    policy: Policy = field(default_factory=Policy)
    queue: WorkQueue = field(default_factory=WorkQueue)
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    #: shared by the nodes this process serves: equal nodes in equal states replay each other's commands
    command_cache: CommandCache = field(default_factory=CommandCache)

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args), retried with backoff while the API server is unavailable; Stopped on shutdown."""
        delay, warned = BACKOFF_START, False
        while True:
            if self.stop.is_set():
                raise Stopped()
            try:
                result = fn(*args)
            except Unavailable as exc:
                if not warned:
                    log.warning("%s: API server unavailable (%s); retrying", what, exc)
                    warned = True
                self.stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if warned:
                log.info("%s: API server reachable again", what)
            return result
