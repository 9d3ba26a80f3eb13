"""`mig-conformance expect`: what a GPU node should show after mig-manager, the device plugin and GFD have run."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from mig_conformance.cli import EXIT_FAIL, EXIT_OK, expect_bottlerocket
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import GpuModel, driver_branch, parse_gpu_specs
from mig_conformance.gpus.gpu_list import node_gpus
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.gpus.provenance import gpu_provenance
from mig_conformance.k8s import device_plugin, dra, stack, versions
from mig_conformance.k8s.labels import MIG_CONFIG, STRATEGIES
from mig_conformance.k8s.mig_config import EffectiveConfig, offline_config
from mig_conformance.k8s.projection import NodeProjection, project_node
from mig_conformance.mig.spec import load_spec
from mig_conformance.simulators.nvml import is_legacy_driver
from mig_conformance.validation.availability import NOT_APPLICABLE, mig_unavailable


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
                   help="ClusterPolicy mig.strategy (required with the device plugin, except with "
                        "--bottlerocket-settings: single; GFD's labels with --gpu-allocation dra, default mixed)")
    p.add_argument("--config-file", metavar="FILE",
                   help="mig-parted config or ConfigMap (a custom config; default: what mig-manager reads on a fresh "
                        "node of the newest stack: the config it generates from the node's GPUs, or the GPU "
                        "Operator's default-mig-parted-config where it cannot generate)")
    p.add_argument("--with-reboot", action="store_true", help="mig-manager WITH_REBOOT=true")
    p.add_argument("--no-gpu-reset", action="store_true",
                   help="model a node where a GPU reset cannot complete a MIG mode change (Ampere in some VMs)")
    p.add_argument("--stack", metavar="COMPONENT=VERSION,...",
                   help="the GPU stack to model, e.g. gpu-operator=v26.3.1,driver=550.54.15 (default: the newest GA "
                        "releases; docs/versions.md); --driver and --device-plugin-version override its two")
    p.add_argument("--driver", metavar="VERSION",
                   help=f"driver version: GFD's cuda.driver labels and the profile memory of its branch (default: the "
                        f"stack's, {stack.DEFAULT_DRIVER})")
    p.add_argument("--device-plugin-version", metavar="VERSION",
                   help=f"k8s-device-plugin release to model (default: the stack's, {device_plugin.DEFAULT_VERSION})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--gpu-allocation", choices=(stack.DEVICE_PLUGIN, stack.DRA), default=stack.DEVICE_PLUGIN,
                   help="device-plugin (extended resources) or dra: the ResourceSlices and DeviceClasses of NVIDIA's "
                        "DRA driver (gpu.nvidia.com) instead of allocatable")
    p.add_argument("--dynamic-mig", action="store_true",
                   help="with --gpu-allocation dra: the driver's DynamicMIG gate (alpha): every profile at every "
                        "placement as a partitionable device")
    expect_bottlerocket.register_options(p)
    p.set_defaults(run=run, usage_error=p.error)


def _print_text(desc: str, args: argparse.Namespace, p: NodeProjection, profile: stack.StackProfile) -> None:
    print(f"node {desc}: config {args.config or '(no nvidia.com/mig.config label)'}, strategy {args.strategy}")
    print(f"stack: {profile.line()}")
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


def _provenance(args: argparse.Namespace, gpus: list[GpuModel]) -> dict[str, Any]:
    """Where the node's instance type and GPU entries came from (shipped or user file) and how far they are
    observed: every output that shows them says so."""
    it = get_instance_type(args.instance_type) if args.instance_type else None
    out: dict[str, Any] = {"gpus": [gpu_provenance(g).as_dict() for g in {g.key: g for g in gpus}.values()]}
    if it is not None:
        out["instance_type"] = {"name": it.name, "origin": "user catalog" if it.user else "shipped", "file": it.file,
                                "source": it.source, "notes": list(it.notes), "min_driver": it.min_driver}
    return out


def _print_provenance(args: argparse.Namespace, gpus: list[GpuModel]) -> None:
    if args.instance_type:
        it = get_instance_type(args.instance_type)
        print(f"instance type {it.name}: {it.origin} (source: {it.source})")
        for note in it.notes:
            print(f"  note: {note}")
    for g in {g.key: g for g in gpus}.values():
        print(f"GPU {gpu_provenance(g).line()}")


def _effective(desc: str, gpus: list[Any], args: argparse.Namespace, profile: stack.StackProfile) -> EffectiveConfig:
    """The file mig-manager of the chosen stack reads on a fresh node with these GPUs (k8s/mig_config.py)."""
    if args.gpu:
        ids = [v.pci_device_id for v in parse_gpu_specs(args.gpu)]
    else:
        ids = [g.primary_variant.pci_device_id for g in gpus]
    driver = profile.driver.value
    legacy = driver is not None and is_legacy_driver(driver)
    return offline_config(desc, list(zip(gpus, ids, strict=True)), profile, driver, legacy)
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
    if args.bottlerocket_settings is not None:
        return expect_bottlerocket.run(args, choose_stack(args))
    use_dra = args.gpu_allocation == stack.DRA
    if args.dynamic_mig and not use_dra:
        raise InputError("--dynamic-mig needs --gpu-allocation dra")
    if args.strategy is None:
        if not use_dra:
            args.usage_error("the following arguments are required: --strategy (except with --bottlerocket-settings "
                             "or --gpu-allocation dra)")
        args.strategy = "mixed"
    desc, gpus = node_gpus(args.gpu, args.instance_type)
    profile = choose_stack(args)
    effective = None
    if args.config_file:
        spec = load_spec(args.config_file)
    else:
        effective = _effective(desc, gpus, args, profile)
        spec = effective.spec
    if spec.problems:
        raise InputError(list(spec.problems))
    # a config the spec lacks is a MIG config too (e.g. all-balanced, which mig-parted generates for no 2-slot GPU):
    # on a type without MIG its failure is "not applicable", not mig-manager's "config not present"
    enables = args.config is not None and (args.config not in spec.configs
                                           or any(e.mig_enabled for e in spec.configs[args.config]))
    unavailable = mig_unavailable(args.instance_type) if enables else None
    try:
        projection = project_node(gpus, args.strategy, spec, None if unavailable else args.config, node=desc,
                                  instance_type=args.instance_type, with_reboot=args.with_reboot,
                                  gpu_reset_works=not args.no_gpu_reset,
                                  driver=profile.driver.value, device_plugin_version=profile.device_plugin_model,
                                  names=[v.nvml_name for v in parse_gpu_specs(args.gpu)] if args.gpu else None)
    except ValueError as exc:  # e.g. a malformed --driver
        raise InputError(str(exc)) from None
    if unavailable:  # mig-manager is not deployed there (or cannot enable MIG): the GPUs stay whole
        projection = replace(projection, labels=dict(sorted({**projection.labels, MIG_CONFIG: args.config}.items())))
    dra_projection = None
    if use_dra:
        dra_projection = dra.project_states(desc, projection.gpus, profile, dynamic=args.dynamic_mig)
        # the node runs the DRA driver instead of the device plugin: kubelet registers no nvidia.com resources
        projection = replace(projection, allocatable={}, plugin_error=None)
    mig_config = effective.as_dict() if effective else {"kind": "custom", "file": args.config_file}
    if args.json:
        doc = {**projection.as_dict(), "stack": profile.as_dict(), "mig_config": mig_config,
               "mig_available": unavailable is None, "not_applicable": unavailable,
               "provenance": _provenance(args, gpus)}
        if dra_projection is not None:
            doc["gpu_allocation"] = stack.DRA
            doc["dra"] = dra_projection.as_dict()
        print_json(doc)
    else:
        _print_provenance(args, gpus)
        if unavailable:
            print(f"config {args.config}: {NOT_APPLICABLE}: {unavailable}")
        _print_text(desc, args, projection, profile)
        print(f"mig-parted file: {effective.line() if effective else args.config_file}")
        if dra_projection is not None:
            _print_dra(dra_projection)
    failed = projection.state == "failed" or projection.plugin_error is not None or unavailable is not None
    return EXIT_FAIL if failed else EXIT_OK


def choose_stack(args: argparse.Namespace) -> stack.StackProfile:
    """The profile of `--stack`, with `--driver` and `--device-plugin-version` over it (the same choice as the
    plugin's `--mig-stack`); InputError names the option."""
    explicit: dict[str, str] = {}
    try:
        if args.device_plugin_version:
            device_plugin.parse_version(args.device_plugin_version)
            explicit["device_plugin"] = versions.canonical("device_plugin", args.device_plugin_version)
        if args.driver:
            driver_branch(args.driver)
            explicit["driver"] = args.driver.strip()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    layers = [({k: v}, f"option --{k.replace('_', '-')}" + ("-version" if k == "device_plugin" else ""))
              for k, v in explicit.items()]
    if args.stack:
        layers.append((stack.parse_choices(args.stack, "--stack"), "option --stack"))
    return stack.resolve(layers)
