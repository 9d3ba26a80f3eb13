"""`LocalCluster`: the kit's own Kubernetes cluster (ControlPlane + kwok GPU nodes + GPU Operator objects +
simulated agents), used by the kit as the ServiceAccount mig-conformance/mig-conformance bound to deploy/rbac.yaml.

`LocalCluster.start(spec)` brings everything up in this process (and `close()` stops it); `cluster up` does the
same detached, and `LocalCluster.attach(kubeconfig)` connects to such a cluster.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mig_conformance.cluster.base import ClusterError
from mig_conformance.cluster.journal import Journal
from mig_conformance.cluster.kube import KubeCluster
from mig_conformance.cluster.local import dra_setup, kit_rbac, kubeconfig, nodes, operator, processes
from mig_conformance.cluster.local.controlplane import ControlPlane, interruptible
from mig_conformance.cluster.local.rest import Rest
from mig_conformance.gpus.catalog import user_catalog_dirs
from mig_conformance.k8s import bottlerocket
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.k8s.stack import StackProfile
from mig_conformance.mig.default_config import CONFIG_MAP, DEFAULT_LABEL

log = logging.getLogger("mig_conformance.cluster.local")

DEFAULT_SPEC = "p5.48xlarge"
AGENTS_MODULE = "mig_conformance.simulators.agents"
AGENTS = "agents"
KIT_TOKEN_SECONDS = 24 * 3600
AGENTS_TOKEN_SECONDS = 30 * 24 * 3600
KIT_KUBECONFIG = "mig-conformance.kubeconfig"
AGENTS_KUBECONFIG = "agents.kubeconfig"


def agents_available() -> bool:
    return importlib.util.find_spec(AGENTS_MODULE) is not None


class LocalCluster(KubeCluster):
    """A KubeCluster over a local control plane, connected as the kit's least-privilege ServiceAccount."""

    kind = "local"
    #: the user data of the cluster's `@bottlerocket` nodes when the kit started it (None: attached, not known)
    bottlerocket_settings: bottlerocket.Settings | None = None

    def __init__(self, name: str, api_client: Any, plane: ControlPlane, *, owned: bool,
                 allow_changes: bool = True, journal: Journal | None = None,
                 facts: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, api_client, allow_changes=allow_changes, journal=journal,
                         operator_namespace=operator.NAMESPACE, facts=facts)
        self.plane = plane
        self.owned = owned

    # ---- starting and attaching ------------------------------------------------------------------------
    @classmethod
    def start(cls, spec: str = "", *, state_dir: Path | str | None = None, strategy: str = "mixed",
              agents: bool | str = "auto", gpu_taint: bool = False, mig_manager_delay: float | None = None,
              with_reboot: bool = False, gpu_reset_works: bool = True, config_text: str | None = None,
              default_config: str | None = DEFAULT_LABEL, name: str | None = None,
              allow_changes: bool = True, journal: Journal | None = None, assets: Mapping[str, Path] | None = None,
              extra_args: Mapping[str, Sequence[str]] | None = None, detach: bool = False,
              timeout: float = 60.0, rbac_docs: Sequence[dict[str, Any]] | None = None,
              stack: StackProfile | None = None, bottlerocket_settings: str | None = None,
              diagnose_faults: Mapping[str, str] | str | None = None,
              gpu_allocation: str = "device-plugin", dynamic_mig: bool = False) -> LocalCluster:
        """Start a control plane with the nodes of `spec` (default p5.48xlarge), the operator objects, the kit's
        RBAC and (agents=True, or "auto" when the agents module exists) the simulated agents; connect as the kit.

        detach: processes outlive this Python process (for `cluster up`); otherwise they die with it.
        stack: the versions the agents behave as (default: the newest GA releases); `cluster.stack` keeps it. On GPU
        Operator v26.3.0+ the ClusterPolicy names no ConfigMap unless `config_text` is given, so mig-manager
        (v0.14.0+) generates per node.
        gpu_allocation "dra": the nodes run NVIDIA's DRA driver instead of the device plugin; the DeviceClasses are
        created (dra_setup.py). dynamic_mig: its DynamicMIG gate (alpha; only on clusters the kit creates).
        """
        profile = stack or stack_profile.default()
        config_name = CONFIG_MAP if config_text is not None or not profile.custom_config_needs_name() else None
        spec = spec.strip() or DEFAULT_SPEC
        if gpu_allocation not in ("device-plugin", "dra"):
            raise ClusterError(f"local backend: unknown GPU allocation '{gpu_allocation}' (device-plugin or dra)")
        if dynamic_mig and gpu_allocation != "dra":
            raise ClusterError("local backend: dynamic MIG needs --gpu-allocation dra")
        dra_args = dra_setup.agents_args(gpu_allocation, dynamic_mig)
        br_text, br_settings = bottlerocket.load_settings_text(bottlerocket_settings) if bottlerocket_settings \
            else ("", bottlerocket.DEFAULT_SETTINGS)
        plan = nodes.plan(spec, gpu_taint, bottlerocket_settings=br_text)  # bad specs fail before anything starts
        want_agents = agents_available() if agents == "auto" else bool(agents)
        if want_agents and not agents_available():
            raise ClusterError(f"local backend: the simulated agents ({AGENTS_MODULE}) are not installed")
        folder = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="mig-conformance-local-"))
        plane = ControlPlane(folder, assets, extra_args=extra_args, tie_to_parent=not detach, timeout=timeout)

        def bootstrap(admin: Rest) -> None:
            operator.install(admin, config_text)
            kit_rbac.apply(admin, rbac_docs if rbac_docs is not None else kit_rbac.documents())
            nodes.register(admin, plan)
            operator.create_policy(admin, strategy, default_config, with_reboot, stack=profile, config_name=config_name)
            if gpu_allocation == "dra":
                dra_setup.create_device_classes(admin, plan)
            if want_agents:  # their start-up overlaps the components' and the nodes' readiness
                start_agents(plane, admin, mig_manager_delay, with_reboot, gpu_reset_works, profile, extra=dra_args)

        with interruptible():  # SIGTERM/SIGHUP also while waiting for nodes and agents: nothing is left behind
            plane.start(bootstrap)
            try:
                cluster = cls._finish(plane, plan, want_agents, name or f"local:{spec}", allow_changes=allow_changes,
                                      journal=journal, timeout=timeout)
                cluster.stack = profile
            except BaseException:
                plane.stop()
                raise
        cluster.facts["local"] = {"nodes": spec, "agents": want_agents, "state_dir": str(folder),
                                  "gpu_allocation": gpu_allocation, "dynamic_mig": dynamic_mig}
        cluster.bottlerocket_settings = br_settings
        if diagnose_faults:
            cluster._inject_faults(diagnose_faults, want_agents, timeout)
        if detach:
            plane.detach()
            cluster.owned = False  # close() releases the client only
        return cluster

    @classmethod
    def _finish(cls, plane: ControlPlane, plan: list[nodes.LocalNode], want_agents: bool, name: str, *,
                allow_changes: bool, journal: Journal | None, timeout: float) -> LocalCluster:
        """After the control plane: nodes Ready, the agents ready, the kit connected."""
        with plane.admin() as admin:
            nodes.wait_ready(admin, nodes.names(plan), timeout)
            plane.mark("nodes")
            if want_agents:
                wait_agents_ready(plane, timeout)
                plane.mark("agents")
            cluster = cls._connect(plane, admin, name, owned=True, allow_changes=allow_changes, journal=journal)
        plane.mark("connected")
        return cluster

    @classmethod
    def attach(cls, kubeconfig_path: Path | str, *, name: str | None = None, allow_changes: bool = True,
               journal: Journal | None = None) -> LocalCluster:
        """Connect (as the kit's ServiceAccount) to a cluster that `cluster up --kubeconfig PATH` started."""
        plane = ControlPlane.load(state_dir_for(Path(kubeconfig_path)))
        with plane.admin() as admin:
            return cls._connect(plane, admin, name or f"local@{kubeconfig_path}", owned=False,
                                allow_changes=allow_changes, journal=journal)

    @classmethod
    def _connect(cls, plane: ControlPlane, admin: Rest, name: str, *, owned: bool, allow_changes: bool,
                 journal: Journal | None) -> LocalCluster:
        from kubernetes import config as kconfig

        assert plane.pki is not None
        token = admin.token_for(kit_rbac.KIT_NAMESPACE, kit_rbac.KIT_SA, KIT_TOKEN_SECONDS)
        path = kubeconfig.write(plane.state_dir / KIT_KUBECONFIG, kubeconfig.build(
            plane.server, plane.pki.ca.cert, f"system:serviceaccount:{kit_rbac.KIT_NAMESPACE}:{kit_rbac.KIT_SA}",
            token=token, namespace=kit_rbac.KIT_NAMESPACE))
        api_client = kconfig.new_client_from_config(config_file=str(path))
        facts = {"platform": "local", "etcd_version": plane.versions.get("etcd"),
                 "kwok_version": plane.versions.get("kwok"), "server": plane.server,
                 "identity": f"ServiceAccount {kit_rbac.KIT_NAMESPACE}/{kit_rbac.KIT_SA}",
                 "logs": str(plane.logs)}
        return cls(name, api_client, plane, owned=owned, allow_changes=allow_changes, journal=journal, facts=facts)

    def _inject_faults(self, wanted: Mapping[str, str] | str, agents: bool, timeout: float) -> None:
        """The clusters file's diagnose_faults (cluster/local/faults.py): settle, stop the agents, write them."""
        from mig_conformance.cluster.local import faults

        try:
            with self.admin() as admin:
                plan = faults.plan_for(admin, wanted)
            if agents:
                self.wait_settled([n.name for n in self.list_gpu_nodes()], max(timeout, 120.0))
                self.stop_agents()
            with self.admin() as admin:
                faults.inject(admin, plan)
        except BaseException:
            self.close()
            raise
        self.facts["local"]["diagnose_faults"] = plan

    # ---- facts and helpers ----------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.plane.state_dir

    @property
    def admin_kubeconfig(self) -> Path:
        return self.plane.admin_kubeconfig

    def admin(self) -> Rest:
        """A JSON client with the cluster-admin certificate (for setup and fault injection, not for suites)."""
        return self.plane.admin()

    def log_files(self) -> list[Path]:
        """Every process's log (evidence for the report)."""
        return sorted(self.plane.logs.glob("*.log"))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["platform"] = "local"
        info["versions"] = {"kubernetes": info.get("kubernetes_version"), **{
            k: v for k, v in self.plane.versions.items() if k != "kubernetes"}}
        return info

    # ---- agents hook (also for fault tests) -------------------------------------------------------------
    def stop_agents(self) -> None:
        self.plane.stop_process(AGENTS)

    def start_agents(self, mig_manager_delay: float | None = None, wait: bool = True, **options: Any) -> None:
        options.setdefault("stack", self.stack)
        local = self.facts.get("local", {})  # a restart keeps the DRA driver's options the cluster started with
        options.setdefault("extra", dra_setup.agents_args(local.get("gpu_allocation", "device-plugin"),
                                                          bool(local.get("dynamic_mig"))))
        with self.plane.admin() as admin:
            start_agents(self.plane, admin, mig_manager_delay, **options)
        if wait:
            wait_agents_ready(self.plane, self.plane.timeout)

    def close(self) -> None:
        super().close()
        if self.owned:
            self.plane.stop()


def state_dir_for(kubeconfig_path: Path) -> Path:
    """`cluster up --kubeconfig PATH` keeps its state in PATH.d/."""
    return kubeconfig_path.absolute().with_name(kubeconfig_path.name + ".d")


def agents_command(plane: ControlPlane, mig_manager_delay: float | None = None, with_reboot: bool = False,
                   gpu_reset_works: bool = True, stack: StackProfile | None = None,
                   extra: Sequence[str] = ()) -> list[str]:
    """`python -m mig_conformance.simulators.agents ...` for this plane, behaving as `stack`'s versions (`extra`:
    more agent options, e.g. the DRA driver's)."""
    argv = [sys.executable, "-m", AGENTS_MODULE, "--kubeconfig", str(plane.state_dir / AGENTS_KUBECONFIG),
            "--namespace", operator.NAMESPACE, "--log", str(plane.logs / "agents.log"),
            "--ready-file", str(plane.state_dir / "agents.ready"), "--state-dir", str(plane.state_dir / "agents")]
    if mig_manager_delay is not None:
        argv += ["--mig-manager-delay", str(mig_manager_delay)]
    if with_reboot:
        argv.append("--with-reboot")
    if not gpu_reset_works:
        argv.append("--no-gpu-reset")
    if stack is not None:
        argv += ["--stack", stack_profile.as_argument(stack)]
    for folder in user_catalog_dirs():  # the agents see the run's user catalogs (--mig-catalog)
        argv += ["--catalog", folder]
    return argv + list(extra)


def start_agents(plane: ControlPlane, admin: Rest, mig_manager_delay: float | None = None,
                 with_reboot: bool = False, gpu_reset_works: bool = True, stack: StackProfile | None = None,
                 extra: Sequence[str] = ()) -> None:
    """Write the agents' kubeconfig (their own ServiceAccount token) and start their process."""
    assert plane.pki is not None
    token = admin.token_for(operator.NAMESPACE, operator.AGENTS_SA, AGENTS_TOKEN_SECONDS)
    kubeconfig.write(plane.state_dir / AGENTS_KUBECONFIG, kubeconfig.build(
        plane.server, plane.pki.ca.cert, f"system:serviceaccount:{operator.NAMESPACE}:{operator.AGENTS_SA}",
        token=token))
    (plane.state_dir / "agents.ready").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    plane.spawn(AGENTS, agents_command(plane, mig_manager_delay, with_reboot, gpu_reset_works, stack, extra), env=env,
                log_file=plane.logs / "agents.stderr.log")


def wait_agents_ready(plane: ControlPlane, timeout: float) -> None:
    """Wait for the agents' ready file (every node reconciled once); ClusterError if they exit or time runs out."""
    proc = plane.procs[AGENTS]
    ready = plane.state_dir / "agents.ready"
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if not processes.alive(proc):
            raise ClusterError(f"local backend: the agents exited (code {processes.exit_code(proc)}) while starting; "
                               f"see {plane.logs / 'agents.log'}:\n{processes.log_tail(proc.log)}")
        if time.monotonic() >= deadline:
            raise ClusterError(f"local backend: the agents were not ready after {timeout:.0f}s "
                               f"(no {ready}); see {plane.logs / 'agents.log'}")
        time.sleep(0.05)
