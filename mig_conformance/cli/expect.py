"""`mig-conformance expect`: what a GPU node should show after mig-manager, the device plugin and GFD have run."""

from __future__ import annotations

import argparse
from typing import Any

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import parse_gpu_specs
from mig_conformance.gpus.gpu_list import node_gpus
from mig_conformance.k8s import device_plugin, stack
from mig_conformance.k8s.labels import STRATEGIES
from mig_conformance.k8s.mig_config import EffectiveConfig, offline_config
from mig_conformance.k8s.projection import NodeProjection, project_node
from mig_conformance.mig.spec import load_spec
from mig_conformance.simulators.nvml import is_legacy_driver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "expect", help="expected mig.config.state, allocatable and labels of a node",
        description="Project a node offline: the nvidia.com/mig.config.state sequence of mig-manager, the device "
                    "plugin's allocatable resources and GFD's labels. Exit 1 if mig-manager ends 'failed' or the "
                    "device plugin would crash, 2 on input errors.")
    p.add_argument("--instance-type", metavar="TYPE", help="EC2 instance type, e.g. p5.48xlarge")
    p.add_argument("--gpu", action="append", metavar="GPU[xN]", help="GPU models in PCI order, e.g. H100-80GBx8")
    p.add_argument("--config", metavar="NAME",
                   help="value of the nvidia.com/mig.config label (omit: a node without the label)")
    p.add_argument("--strategy", required=True, choices=STRATEGIES, help="ClusterPolicy mig.strategy")
    p.add_argument("--config-file", metavar="FILE",
                   help="mig-parted config or ConfigMap (a custom config; default: what mig-manager reads on a fresh "
                        "node of the newest stack: the config it generates from the node's GPUs, or the GPU "
                        "Operator's default-mig-parted-config where it cannot generate)")
    p.add_argument("--with-reboot", action="store_true", help="mig-manager WITH_REBOOT=true")
    p.add_argument("--no-gpu-reset", action="store_true",
                   help="model a node where a GPU reset cannot complete a MIG mode change (Ampere in some VMs)")
    p.add_argument("--driver", metavar="VERSION", help="driver version for GFD's cuda.driver labels, e.g. 580.159.04")
    p.add_argument("--device-plugin-version", metavar="VERSION", default=device_plugin.DEFAULT_VERSION,
                   help=f"k8s-device-plugin release to model (default {device_plugin.DEFAULT_VERSION})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def _print_text(desc: str, args: argparse.Namespace, p: NodeProjection) -> None:
    print(f"node {desc}: config {args.config or '(no nvidia.com/mig.config label)'}, strategy {args.strategy}")
    if p.state is None:
        print("mig-manager: " + ("does not run here" if args.config else "nothing to do (no nvidia.com/mig.config "
                                                                           "label)"))
    else:
        print(f"mig-manager: {' -> '.join(p.states)}" + (f" ({p.reason})" if p.reason else ""))
    for note in p.notes:
        print(f"  note: {note}")
    for i, g in enumerate(p.gpus):
        state = devices_text(g.counts) if g.mig_enabled else "MIG disabled"
        print(f"GPU {i} {g.model.key}: {state}")
    if p.plugin_error:
        print(f"device plugin: fails to start and registers nothing: {p.plugin_error}")
    print("allocatable:" if p.allocatable else "allocatable: (no nvidia.com resources)")
    for k, v in p.allocatable.items():
        print(f"  {k}: {v}")
    print("labels:")
    for k, text in p.labels.items():
        print(f"  {k}={text}")


def _effective(desc: str, gpus: list[Any], args: argparse.Namespace) -> EffectiveConfig:
    """The file mig-manager of the default stack reads on a fresh node with these GPUs (k8s/mig_config.py)."""
    if args.gpu:
        ids = [v.pci_device_id for v in parse_gpu_specs(args.gpu)]
    else:
        ids = [g.primary_variant.pci_device_id for g in gpus]
    legacy = bool(args.driver) and is_legacy_driver(args.driver)
    return offline_config(desc, list(zip(gpus, ids, strict=True)), stack.default(), args.driver, legacy)


def run(args: argparse.Namespace) -> int:
    desc, gpus = node_gpus(args.gpu, args.instance_type)
    try:
        device_plugin.parse_version(args.device_plugin_version)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    effective = None
    if args.config_file:
        spec = load_spec(args.config_file)
    else:
        effective = _effective(desc, gpus, args)
        spec = effective.spec
    if spec.problems:
        raise InputError(list(spec.problems))
    try:
        projection = project_node(gpus, args.strategy, spec, args.config, node=desc,
                                  instance_type=args.instance_type, with_reboot=args.with_reboot,
                                  gpu_reset_works=not args.no_gpu_reset,
                                  driver=args.driver, device_plugin_version=args.device_plugin_version,
                                  names=[v.nvml_name for v in parse_gpu_specs(args.gpu)] if args.gpu else None)
    except ValueError as exc:  # e.g. a malformed --driver
        raise InputError(str(exc)) from None
    mig_config = effective.as_dict() if effective else {"kind": "custom", "file": args.config_file}
    if args.json:
        print_json({**projection.as_dict(), "mig_config": mig_config})
    else:
        _print_text(desc, args, projection)
        print(f"mig-parted file: {effective.line() if effective else args.config_file}")
    failed = projection.state == "failed" or projection.plugin_error is not None
    return EXIT_FAIL if failed else EXIT_OK
