"""`mig-conformance generate-config`: the mig-parted config mig-manager v0.14.0+ generates for a node
(`<node>-mig-config`, key config.yaml), from the catalog's profile tables (mig/generate.py)."""

from __future__ import annotations

import argparse
import sys

from mig_conformance.cli import EXIT_FAIL, EXIT_OK
from mig_conformance.cli.failures import report_failure
from mig_conformance.cli.output import print_json
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import load_catalog, parse_gpu_specs
from mig_conformance.gpus.instance_types import get_instance_type
from mig_conformance.mig import generate as G
from mig_conformance.mig.default_config import CONFIG_MAP
from mig_conformance.simulators.nvml import is_legacy_driver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "generate-config", help="the mig-parted config mig-manager generates for a node",
        description="Print the config nvidia-mig-manager v0.14.0+ generates from a node's GPUs and stores in the "
                    "ConfigMap <node>-mig-config (all-disabled, all-enabled, all-<profile>, all-balanced; device "
                    "filters on nodes with more than one GPU type), as NVIDIA/mig-parted v0.15.0's builder writes "
                    "it. Exit 1 when the node has no MIG-capable GPU (mig-manager cannot start), 2 on input errors.")
    p.add_argument("--instance-type", metavar="TYPE", help="EC2 instance type, e.g. p5.48xlarge")
    p.add_argument("--gpu", action="append", metavar="GPU[xN]",
                   help="GPUs in PCI order, repeatable for mixed nodes, e.g. --gpu H100-80GBx4 --gpu A30-24GBx4")
    p.add_argument("--driver", metavar="VERSION",
                   help="the node's driver; R535 and older list no MIG profiles while MIG is disabled, so mig-manager "
                        "generates nothing there and falls back to default-mig-parted-config (exit 1)")
    p.add_argument("--header", action="store_true",
                   help="with the two comment lines mig-manager puts before the YAML in the ConfigMap")
    p.add_argument("--json", action="store_true",
                   help="the config as `nvidia-mig-parted generate-config -o json` prints it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    if bool(args.gpu) == bool(args.instance_type):
        raise InputError("give exactly one of --gpu GPU[xN] (repeatable) or --instance-type TYPE")
    if args.instance_type:
        it = get_instance_type(args.instance_type)
        model = it.gpu_model(catalog)
        gpus = [(model, model.primary_variant.pci_device_id)] * it.gpu_count
    else:
        gpus = [(catalog.model_of(v), v.pci_device_id) for v in parse_gpu_specs(args.gpu, catalog)]
    try:
        configs = G.generate(gpus)
    except G.NoMigCapableDevices as exc:
        return report_failure(InputError(f"{exc}: mig-manager does not run on such a node"), args.json, EXIT_FAIL)
    if args.driver and is_legacy_driver(args.driver):
        return report_failure(InputError(
            f"driver {args.driver} lists no MIG profiles while MIG mode is disabled (R535 and older): mig-manager's "
            f"discovery finds none, so it generates nothing and reads the static {CONFIG_MAP} instead "
            "(DEFAULT_CONFIG_FILE; docs/reference/mig-parted.md#generated-config)"), args.json, EXIT_FAIL)
    if args.json:
        print_json(G.as_go_json(configs))
    else:
        sys.stdout.write(G.node_file(configs) if args.header else G.to_yaml(configs))
    return EXIT_OK
