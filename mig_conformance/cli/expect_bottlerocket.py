"""`mig-conformance expect --bottlerocket-settings FILE`: what a Bottlerocket node advertises with this user data.

Kept apart from expect.py because Bottlerocket has no mig-manager: no config label, no ConfigMap, one strategy.
"""

from __future__ import annotations

import argparse

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.output import devices_text, print_json
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import parse_gpu_specs
from mig_conformance.gpus.gpu_list import node_gpus
from mig_conformance.k8s import bottlerocket
from mig_conformance.k8s.stack import StackProfile

#: expect's options that configure mig-manager or the GPU Operator, which a Bottlerocket node does not run
_NOT_ON_BOTTLEROCKET = (("config", "--config"), ("config_file", "--config-file"), ("with_reboot", "--with-reboot"))


def register_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bottlerocket-settings", metavar="FILE",
                   help="Bottlerocket user data (TOML, '-' = stdin): predict a Bottlerocket node's MIG devices from "
                        "settings.kubelet-device-plugins.nvidia (single strategy, applied at boot)")


def _print_text(n: bottlerocket.BottlerocketNode) -> None:
    p = n.plan
    print(f"node {n.node}: Bottlerocket, strategy {bottlerocket.STRATEGY}"
          + (f", mig.profile \"{p.key}\" = \"{p.value}\"" if p.key else ""))
    for f in p.findings:
        print(f"  {f}")
    for note in n.notes:
        print(f"  note: {note}")
    for g in n.gpus:
        print(f"GPU {g['index']} {g['model']}: " + (devices_text(g["devices"]) if g["mig_enabled"] else "MIG disabled"))
    if n.plugin_error:
        print(f"device plugin: does not start and registers nothing: {n.plugin_error}")
    print("allocatable:" if n.allocatable else "allocatable: (no nvidia.com resources)")
    for k, v in n.allocatable.items():
        print(f"  {k}: {v}")


def run(args: argparse.Namespace, profile: StackProfile) -> int:
    """`expect --bottlerocket-settings`: `profile` is expect's stack choice (--stack, --driver,
    --device-plugin-version)."""
    bottlerocket.refuse_strategy(args.strategy)
    for attr, flag in _NOT_ON_BOTTLEROCKET:
        if getattr(args, attr, None):
            raise InputError(f"{flag} does not apply with --bottlerocket-settings: Bottlerocket has no mig-manager "
                             "and no nvidia.com/mig.config label; its MIG layout comes from the settings file")
    desc, gpus = node_gpus(args.gpu, args.instance_type)
    settings = bottlerocket.load_settings(args.bottlerocket_settings)
    ids = [v.pci_device_id_int for v in parse_gpu_specs(args.gpu)] if args.gpu else None
    try:
        node = bottlerocket.project(settings, gpus, desc, args.instance_type, ids,
                                    device_plugin_version=profile.device_plugin_model,
                                    driver=profile.driver.value)
    except ValueError as exc:  # e.g. a malformed --driver
        raise InputError(str(exc)) from None
    if args.json:
        print_json(node.as_dict())
    else:
        _print_text(node)
    return EXIT_FAIL if node.plan.errors or node.plugin_error else EXIT_OK
