"""`mig-conformance capture`: write GPU catalog entries (docs/catalog-schema.md) for the GPUs you have.

  --nvml                 read the local GPUs through NVML (nvidia-ml-py), strictly read-only
  --nvidia-smi-text FILE saved `nvidia-smi mig -lgip` and `-lgipp` output (and `nvidia-smi -L` for the
                         GPU name), in any order; the kind of each file is detected
  --simulate GPU         run the NVML capture against the simulator (tests and demos)

One entry per GPU model. -o FILE.yaml writes them (several models: one YAML document each);
-o DIR/ writes DIR/<KEY>.yaml per model; without -o the YAML goes to stdout. Exit 2 on input errors.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from mig_conformance.capture.nvml import capture_nvml, entries_yaml, parse_nvidia_smi_text
from mig_conformance.capture.nvml_queries import is_nvml_error
from mig_conformance.capture.smi_text import detect_kind
from mig_conformance.cli import EXIT_OK, EXIT_USAGE
from mig_conformance.common.errors import InputError
from mig_conformance.common.extras import MissingExtra
from mig_conformance.common.yaml_source import read_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("capture", help="capture GPU catalog entries from NVML or nvidia-smi text",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--nvml", action="store_true", help="read the local GPUs through NVML (read-only)")
    what.add_argument("--nvidia-smi-text", action="append", metavar="FILE",
                      help="nvidia-smi mig -lgip / -lgipp (or -L) output; give it once per file")
    what.add_argument("--simulate", metavar="GPU[xN]", help="capture a simulated node, e.g. H100-80GB")
    p.add_argument("-o", "--output", metavar="FILE|DIR/", help="where to write the entries (default: stdout)")
    p.add_argument("--host", help="host name recorded in the source (default: this host; 'simulator')")
    p.add_argument("--name", help="GPU name for --nvidia-smi-text when no -L output is given")
    p.add_argument("--memory-total-mib", type=int, help="device memory for --nvidia-smi-text (NVML memory.total)")
    p.add_argument("--driver", help="driver version for --nvidia-smi-text")
    p.add_argument("--pci-device-id", metavar="0xDDDDVVVV",
                   help="PCI device ID for --nvidia-smi-text (`nvidia-smi -q`: 'Device Id'); mig-parted device "
                        "filters select the GPU by it")
    p.add_argument("--key", help="catalog key for the entry (default: a suggestion from the name and memory)")
    p.set_defaults(run=run)


def load_pynvml() -> ModuleType:
    """nvidia-ml-py's pynvml, imported only when asked for."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise MissingExtra("capture --nvml", "pynvml") from None


def _capture_module(nvml: Any, host: str | None) -> dict[str, dict[str, Any]]:
    try:
        nvml.nvmlInit()
    except Exception as exc:
        if is_nvml_error(nvml, exc):
            raise InputError(f"NVML could not be initialised: {exc}") from None
        raise
    try:
        return capture_nvml(nvml, host=host)
    finally:
        nvml.nvmlShutdown()


def _simulated(spec: str, host: str | None) -> dict[str, dict[str, Any]]:
    from mig_conformance.gpus.catalog import parse_gpu_specs
    from mig_conformance.simulators import nvml as sim_nvml
    from mig_conformance.simulators.nvml import NvmlSimulator

    previous = sim_nvml.use(NvmlSimulator(parse_gpu_specs([spec])))
    try:
        return _capture_module(sim_nvml, host or "simulator")
    finally:
        sim_nvml.use(previous)


def _from_text(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    texts: dict[str, str] = {}
    for path in args.nvidia_smi_text:
        content = read_text(path)
        kind = detect_kind(content)
        if kind is None:
            raise InputError(f"{path}: neither nvidia-smi mig -lgip, -lgipp nor nvidia-smi -L output")
        if kind in texts:
            raise InputError(f"{path}: a second nvidia-smi {kind} file")
        texts[kind] = content
    if "lgip" not in texts:
        raise InputError("--nvidia-smi-text needs the nvidia-smi mig -lgip output")
    files = ", ".join(Path(p).name for p in args.nvidia_smi_text)
    entries = parse_nvidia_smi_text(texts["lgip"], texts.get("lgipp"), list_text=texts.get("list"), name=args.name,
                                    memory_total_mib=args.memory_total_mib, driver=args.driver,
                                    source=f"capture --nvidia-smi-text {files}")
    return _named(entries, args.key, args.pci_device_id)


def _named(entries: dict[str, dict[str, Any]], key: str | None, pci: str | None) -> dict[str, dict[str, Any]]:
    """The text capture's entry under the key and PCI ID the user gave (text output has neither for sure)."""
    if pci is not None:
        if not re.fullmatch(r"0x[0-9a-fA-F]{8}", pci.strip()):
            raise InputError(f"--pci-device-id must look like 0x233010DE (device, then vendor 10DE), got '{pci}'")
        for entry in entries.values():
            entry["pci_device_ids"] = [f"0x{int(pci, 16):08X}"]
    if key is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", key):
            raise InputError(f"--key must be letters, digits and . _ + - (at most 64), got '{key}'")
        if len(entries) != 1:
            raise InputError(f"--key names one entry, but the text has {len(entries)} GPU models")
        entry = next(iter(entries.values()))
        entries = {key: {**entry, "key": key}}
    return entries


def write_entries(entries: dict[str, dict[str, Any]], output: str | None,
                  header: list[str]) -> list[tuple[Path, list[str]]]:
    """Write entries to stdout, one file, or one <KEY>.yaml each in a directory; (path, keys) written. A folder
    that cannot be created or a file that cannot be written is an InputError naming it."""
    try:
        return _write_entries(entries, output, header)
    except OSError as exc:
        where = exc.filename or output
        raise InputError(f"-o {output}: cannot write {where}: {exc.strerror or exc}") from None


def _write_entries(entries: dict[str, dict[str, Any]], output: str | None,
                   header: list[str]) -> list[tuple[Path, list[str]]]:
    if output is None:
        sys.stdout.write(entries_yaml(entries, header))
        return []
    target = Path(output)
    if output.endswith(("/", "\\")) or target.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for key, entry in entries.items():
            path = target / f"{key}.yaml"
            path.write_text(entries_yaml({key: entry}, header), encoding="utf-8")
            written.append((path, [key]))
        return written
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(entries_yaml(entries, header), encoding="utf-8")
    return [(target, list(entries))]


def run(args: argparse.Namespace) -> int:
    if args.nvml:
        entries = _capture_module(load_pynvml(), args.host)
        how = "capture --nvml"
    elif args.simulate:
        entries = _simulated(args.simulate, args.host)
        how = f"capture --simulate {args.simulate}"
    else:
        entries = _from_text(args)
        how = "capture --nvidia-smi-text"
    if not entries:
        print("error: no GPU found", file=sys.stderr)
        return EXIT_USAGE
    header = [f"Written by mig-conformance {how}. Keys are suggestions; review before adding to the catalog.",
              "Rows marked confirmed: false or [DERIVED] were not read directly."]
    for path, keys in write_entries(entries, args.output, header):
        print(f"wrote {path} ({', '.join(keys)})", file=sys.stderr)
    for entry in entries.values():
        missing = [p["name"] for p in entry["gi_profiles"] if not p["placements"]]
        if missing:
            print(f"warning: {entry['key']}: no placements for {', '.join(missing)} "
                  "(give the nvidia-smi mig -lgipp output too)", file=sys.stderr)
    return EXIT_OK
