"""`mig-conformance smi`: nvidia-smi `-L` and `mig -lgip/-lgipp/-lgi/-lci` printed from a simulated node.

The node is --gpu GPU[xN] (times --count; a board variant such as H100-PCIE-80GB reports its own PCI ID and
name), or a --state FILE written by `mig-conformance mig-parted`; --config-file F --config NAME first applies a
mig-parted config with the mig-parted simulator.
Everything after the options is the nvidia-smi command line, e.g. `smi --gpu H100-80GB mig -lgip`.
Values the GPU catalog does not know print as `?`; a `note:` line on stderr names every GPU and row whose
values are not confirmed, with the catalog's reason. --driver VERSION prints what that driver reports: profile memory
differs by driver branch (H100 3g.40gb: 39.38 GiB on 550.54.15, 39.50 on 580.159.04), and where the catalog has no
source for the branch the value is `?`.
Exit status: nvidia-smi's (0, or the NVML error code); 1 when the config cannot be applied; 2 for input errors
(also a --config-file that is not YAML).
"""

from __future__ import annotations

import argparse
import sys

from mig_conformance.cli import EXIT_FAIL
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import MAX_NODE_GPUS, driver_branch, parse_gpu_specs
from mig_conformance.mig.spec import load_spec
from mig_conformance.simulators import nvidia_smi
from mig_conformance.simulators import nvml as sim_nvml
from mig_conformance.simulators.mig_parted import MigParted
from mig_conformance.simulators.nvml import NvmlSimulator


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("smi", help="print nvidia-smi -L / mig listings of a simulated node",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="append", metavar="GPU[xN]", help="GPU model(s) in PCI order, e.g. H100-80GB")
    p.add_argument("--count", type=int, default=1, metavar="N", help="repeat the --gpu list N times (default 1)")
    p.add_argument("--state", metavar="FILE", help="node state saved by `mig-conformance mig-parted --state`")
    p.add_argument("--config-file", metavar="F", help="mig-parted config file to apply first")
    p.add_argument("--config", metavar="NAME", help="the mig-config of --config-file to apply")
    p.add_argument("--node-name", default="sim-node", help="seed of the GPU UUIDs (default: sim-node)")
    p.add_argument("--driver", metavar="VERSION",
                   help="driver the node runs, e.g. 550.54.15 (default: each table's own, 580.159.04 for H100/H200)")
    p.add_argument("-L", "--list-gpus", action="store_true", help="nvidia-smi -L")
    p.add_argument("smi_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="nvidia-smi arguments: -L | mig -lgip | mig -lgipp | mig -lgi | mig -lci [-i N]")
    p.set_defaults(run=run)


def build_node(args: argparse.Namespace) -> NvmlSimulator:
    """The simulated node from --state or --gpu/--count."""
    if args.state:
        if args.gpu or args.driver:
            raise InputError("give --gpu (and --driver) or --state, not both: a state file keeps its driver")
        return NvmlSimulator.load(args.state)
    if args.driver:
        try:
            driver_branch(args.driver)
        except ValueError as exc:
            raise InputError(f"--driver: {exc}") from None
    if not args.gpu:
        raise InputError("give --gpu GPU[xN] (or --state FILE)")
    if args.count < 1:
        raise InputError("--count must be at least 1")
    gpus = parse_gpu_specs(args.gpu)
    if len(gpus) * args.count > MAX_NODE_GPUS:
        raise InputError(f"at most {MAX_NODE_GPUS} GPUs per node, got {len(gpus) * args.count:,} (--count "
                         f"{args.count})")
    return NvmlSimulator(gpus * args.count, args.node_name, driver_version=args.driver)


def apply_config(node: NvmlSimulator, config_file: str, config: str | None) -> str | None:
    """Apply a mig-parted config to the node; the error text when mig-parted fails, else None. A file that is not
    YAML (or past the kit's bounds) is an InputError naming file and line."""
    spec = load_spec(config_file)
    if spec.syntax_error:
        raise InputError(list(spec.problems))
    result = MigParted(node).apply(spec, config)
    return None if result.exit_code == 0 else (result.error or "mig-parted apply failed")


def run(args: argparse.Namespace) -> int:
    smi_args = list(args.smi_args)
    if smi_args[:1] == ["--"]:
        smi_args = smi_args[1:]
    if args.list_gpus:
        smi_args.insert(0, "-L")
    if not smi_args:
        raise InputError(f"missing nvidia-smi arguments; {nvidia_smi.USAGE}")
    if bool(args.config_file) != bool(args.config):
        raise InputError("--config-file and --config go together")
    node = build_node(args)
    previous = sim_nvml.use(node)
    node.nvmlInit()
    try:
        if args.config_file:
            error = apply_config(node, args.config_file, args.config)
            if error:
                print(f"error: mig-parted apply: {error}", file=sys.stderr)
                return EXIT_FAIL
        result = nvidia_smi.run(sim_nvml, smi_args)
    finally:
        node.nvmlShutdown()
        sim_nvml.use(previous)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.code
