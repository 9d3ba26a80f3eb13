"""`python -m mig_conformance.simulators.agents --kubeconfig FILE ...`: run the simulated GPU Operator agents.

Runs until SIGTERM or SIGINT (exit 0). Exit 2 for a usage error or an unreadable kubeconfig.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from mig_conformance.k8s import device_plugin as dp
from mig_conformance.k8s import labels as L
from mig_conformance.k8s import stack as stack_profile
from mig_conformance.simulators import nvml as nv
from mig_conformance.simulators.agents.api import KubeApi
from mig_conformance.simulators.agents.context import Context, Options
from mig_conformance.simulators.agents.runner import Agents

log = logging.getLogger("mig_conformance.agents")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mig_conformance.simulators.agents",
                                description="Simulated NVIDIA GPU Operator agents (mig-manager, device plugin, GFD) "
                                            "for every GPU node of a cluster, using only the Kubernetes API.")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the agents' own identity")
    p.add_argument("--namespace", default="gpu-operator", help="GPU Operator namespace (the ConfigMap's)")
    p.add_argument("--node-selector", default=f"{L.GPU_PRESENT}=true",
                   help="label selector of the GPU nodes to serve ('' for all nodes)")
    p.add_argument("--mig-manager-delay", type=float, default=0.2, metavar="S",
                   help="seconds that `pending` and `rebooting` each last (default 0.2)")
    p.add_argument("--with-reboot", action="store_true",
                   help="mig-manager's WITH_REBOOT (also taken from the ClusterPolicy's spec.migManager.env)")
    p.add_argument("--no-gpu-reset", action="store_true",
                   help="a GPU reset cannot complete a MIG mode change on Ampere (only a reboot does)")
    p.add_argument("--stack", metavar="COMPONENT=VERSION,...",
                   help="the versions to behave as, e.g. gpu-operator=v26.3.1,driver=550.54.15 (default: the newest "
                        "GA releases; they decide which file mig-manager reads: a generated <node>-mig-config from "
                        "mig-manager v0.14.0); --driver and --device-plugin-version override its two")
    p.add_argument("--driver", help=f"driver version the GPUs report (default: the stack's, {nv.DRIVER_580})")
    p.add_argument("--device-plugin-version",
                   help=f"device plugin release to model (default: the stack's, {dp.DEFAULT_VERSION})")
    p.add_argument("--gpu-allocation", choices=("device-plugin", "dra"), default="device-plugin",
                   help="dra: the nodes run NVIDIA's DRA driver (ResourceSlices) instead of the device plugin")
    p.add_argument("--dynamic-mig", action="store_true", help="the DRA driver's DynamicMIG gate (alpha)")
    p.add_argument("--kubernetes-version",
                   help="the API server's version (the DRA driver's version-keyed rules; default: the stack's)")
    p.add_argument("--state-dir", type=Path, help="keep each node's GPU state here, so a restart keeps it")
    p.add_argument("--resync", type=int, default=60, metavar="S", help="relist every S seconds (default 60)")
    p.add_argument("--workers", type=int, default=8, help="nodes reconciled at once (default 8)")
    p.add_argument("--log", type=Path, help="log file (default stderr)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--ready-file", type=Path, help="written once every node has been reconciled once")
    p.add_argument("--catalog", action="append", default=[], metavar="DIR",
                   help="a user catalog folder in effect for the agents (the run's --mig-catalog; repeatable)")
    return p


def options(args: argparse.Namespace) -> Options:
    if args.mig_manager_delay < 0:
        raise ValueError(f"--mig-manager-delay must be >= 0, got {args.mig_manager_delay}")
    if args.device_plugin_version:
        dp.parse_version(args.device_plugin_version)
    profile = stack_profile.overlay(stack_profile.from_argument(args.stack, "agents --stack"),
                                    {"driver": args.driver, "device_plugin": args.device_plugin_version},
                                    "agents option")
    return Options(namespace=args.namespace, node_selector=args.node_selector or None,
                   mig_manager_delay=args.mig_manager_delay, with_reboot=args.with_reboot,
                   gpu_reset_works=not args.no_gpu_reset, driver=profile.driver.value or nv.DRIVER_580,
                   device_plugin_version=profile.device_plugin_model, stack=profile, state_dir=args.state_dir,
                   resync=max(1, args.resync), workers=max(1, args.workers),
                   gpu_allocation=args.gpu_allocation, dynamic_mig=args.dynamic_mig,
                   kubernetes=args.kubernetes_version or profile.kubernetes.value)


def setup_logging(path: Path | None, level: str) -> None:
    handler: logging.Handler = logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
    root = logging.getLogger("mig_conformance")
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        opts = options(args)
        if args.catalog:  # the nodes' instance types and GPUs may come from the run's user catalogs
            from mig_conformance.gpus.user_catalog import activate

            activate(args.catalog, "--catalog")
        api = KubeApi(args.kubeconfig, pool_size=opts.workers + 4)
        setup_logging(args.log, args.log_level)
    except Exception as exc:  # bad option value, unreadable kubeconfig or log file
        print(f"agents: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agents = Agents(Context(api, opts))
    log.info("agents starting: %s", opts)
    agents.start()
    if args.ready_file:
        while not stop.is_set() and not agents.wait_ready(0.5):
            pass
        if not stop.is_set():
            args.ready_file.write_text("ready\n", encoding="utf-8")
            log.info("ready: %d nodes", len(agents.nodes))
    while not stop.wait(1.0):
        pass
    for signum in (signal.SIGTERM, signal.SIGINT):  # a late duplicate (pid + process group) must not kill the
        signal.signal(signum, signal.SIG_IGN)        # exit: Python restores SIG_DFL at shutdown, not SIG_IGN
    agents.stop()
    api.close()
    log.info("agents stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
