"""`mig-conformance expect`: what a GPU node should show after mig-manager, the device plugin and GFD have run."""

from __future__ import annotations

import argparse
from dataclasses import replace

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import parse_gpu_specs
from mig_conformance.gpus.gpu_list import node_gpus
from mig_conformance.k8s import device_plugin, dra
from mig_conformance.k8s import stack as S
from mig_conformance.k8s.labels import STRATEGIES
from mig_conformance.k8s.projection import NodeProjection, project_node
from mig_conformance.mig.default_config import default_config_file
from mig_conformance.mig.spec import load_spec


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
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="ClusterPolicy mig.strategy (required with the device plugin; GFD's labels with dra, "
                        "default mixed)")
    p.add_argument("--config-file", metavar="FILE",
                   help="mig-parted config or ConfigMap (default: the GPU Operator's default-mig-parted-config)")
    p.add_argument("--with-reboot", action="store_true", help="mig-manager WITH_REBOOT=true")
    p.add_argument("--no-gpu-reset", action="store_true",
                   help="model a node where a GPU reset cannot complete a MIG mode change (Ampere in some VMs)")
    p.add_argument("--driver", metavar="VERSION", help="driver version for GFD's cuda.driver labels, e.g. 580.159.04")
    p.add_argument("--device-plugin-version", metavar="VERSION", default=device_plugin.DEFAULT_VERSION,
                   help=f"k8s-device-plugin release to model (default {device_plugin.DEFAULT_VERSION})")
    p.add_argument("--gpu-allocation", choices=(S.DEVICE_PLUGIN, S.DRA), default=S.DEVICE_PLUGIN,
                   help="device-plugin (extended resources) or dra: the ResourceSlices and DeviceClasses of NVIDIA's "
                        "DRA driver (gpu.nvidia.com) instead of allocatable")
    p.add_argument("--dynamic-mig", action="store_true",
                   help="with --gpu-allocation dra: the driver's DynamicMIG gate (alpha): every profile at every "
                        "placement as a partitionable device")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run, expect_parser=p)


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


def _print_dra(p: dra.DraProjection) -> None:
    print(f"DRA driver {dra.DRIVER}: pool {p.node}, {len(p.slices)} ResourceSlice(s)"
          + (" (dynamic MIG, alpha)" if p.dynamic else ""))
    print("devices: " + (", ".join(f"{n}x {k}" for k, n in p.counts().items()) or "none"))
    for d in p.devices:
        caps = ", ".join(f"{k}={v['value']}" for k, v in d.capacity.items() if not k.startswith("memorySlice"))
        where = f" @{d.placement[0]}:{d.placement[1]}" if d.placement else ""
        print(f"  {d.name:28} GPU {d.gpu} type={d.type}" + (f" profile={d.profile}" if d.profile else "")
              + f"{where}  {caps}")
    print("DeviceClasses:")
    for c in p.classes:
        ext = c["spec"].get("extendedResourceName")
        print(f"  {c['metadata']['name']}" + (f" (extendedResourceName {ext})" if ext else ""))
    for note in p.notes:
        print(f"  note: {note}")
    for what in p.unknown:
        print(f"  unknown, left out: {what}")


def run(args: argparse.Namespace) -> int:
    desc, gpus = node_gpus(args.gpu, args.instance_type)
    use_dra = args.gpu_allocation == S.DRA
    if args.dynamic_mig and not use_dra:
        raise InputError("--dynamic-mig needs --gpu-allocation dra")
    if args.strategy is None:
        if not use_dra:
            args.expect_parser.error("the following arguments are required: --strategy")
        args.strategy = "mixed"
    try:
        device_plugin.parse_version(args.device_plugin_version)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    spec = load_spec(args.config_file or default_config_file())
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
    dra_projection = None
    if use_dra:
        profile = S.default()
        if args.driver:
            profile = replace(profile, driver=S.Sourced(args.driver, "option --driver"))
        dra_projection = dra.project_states(desc, projection.gpus, profile, dynamic=args.dynamic_mig)
        # the node runs the DRA driver instead of the device plugin: kubelet registers no nvidia.com resources
        projection = replace(projection, allocatable={}, plugin_error=None)
    if args.json:
        doc = projection.as_dict()
        if dra_projection is not None:
            doc["gpu_allocation"] = S.DRA
            doc["dra"] = dra_projection.as_dict()
        print_json(doc)
    else:
        _print_text(desc, args, projection)
        if dra_projection is not None:
            _print_dra(dra_projection)
    failed = projection.state == "failed" or projection.plugin_error is not None
    return EXIT_FAIL if failed else EXIT_OK
