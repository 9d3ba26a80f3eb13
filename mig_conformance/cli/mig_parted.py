"""`mig-conformance mig-parted apply|assert|export`: nvidia-mig-parted run against a simulated node.

Flags and MIG_PARTED_* variables are mig-parted's; the node comes from --gpu / --instance-type, or from
--state FILE (JSON node state, created when missing and saved after every command) so that apply, assert
and export see the same node across invocations. `-d` works before the command too (`mig-parted -d apply`, as
the mig-manager runs it). Exit codes: mig-parted's 0 and 1 (a config file that cannot be read or parsed fails
as in mig-parted: exit 1); 2 for the simulator's own input errors (unknown GPU, no node, bad state file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mig_conformance.cli import EXIT_FAIL
from mig_conformance.cli.failures import input_failure
from mig_conformance.cli.output import print_json
from mig_conformance.common.errors import InputError, Location, MigConformanceError, Problem
from mig_conformance.common.yaml_source import MAX_BYTES
from mig_conformance.gpus.catalog import parse_gpu_specs
from mig_conformance.gpus.gpu_list import node_gpus
from mig_conformance.mig.spec import Spec, parse_spec_text
from mig_conformance.simulators.mig_parted import LogEntry, MigParted, MigPartedResult, capitalize
from mig_conformance.simulators.nvml import NvmlSimulator

#: located problems printed after mig-parted's own lines (validate lists every one)
MAX_LOCATED = 3
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _env_bool(name: str) -> bool:
    """A boolean flag's default from the environment, parsed like Go's strconv.ParseBool."""
    value = os.environ.get(name)
    if value is None or value == "":
        return False
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise InputError(f"could not parse '{value}' as bool value from env var '{name}'")


def _common(parser: argparse.ArgumentParser) -> None:
    node = parser.add_argument_group("simulated node")
    node.add_argument("--gpu", action="append", metavar="GPU[xN]", help="GPU models in PCI order, e.g. H100-80GBx8")
    node.add_argument("--instance-type", metavar="TYPE", help="EC2 instance type, e.g. p5.48xlarge")
    node.add_argument("--state", metavar="FILE", help="JSON node state: read if present, written after the command")
    node.add_argument("--node-name", default="sim-node", help="seed of the GPU UUIDs (default: sim-node)")
    parser.add_argument("-d", "--debug", action="store_true", default=None,
                        help="print debug log lines too (env MIG_PARTED_DEBUG)")
    parser.add_argument("--json", action="store_true", help="print the structured result as one JSON document")


def _config_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-f", "--config-file", default=os.environ.get("MIG_PARTED_CONFIG_FILE"),
                        help="path to the configuration file, '-' for stdin (env MIG_PARTED_CONFIG_FILE)")
    parser.add_argument("-c", "--selected-config", default=os.environ.get("MIG_PARTED_SELECTED_CONFIG"),
                        help=f"the mig-config to {what} (env MIG_PARTED_SELECTED_CONFIG)")
    parser.add_argument("-m", "--mode-only", action="store_true", default=None,
                        help="only the MIG mode setting (env MIG_PARTED_MODE_CHANGE_ONLY)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mig-parted", help="run nvidia-mig-parted apply/assert/export on a simulated node",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # mig-parted's global flag; its own dest, as a subcommand's default would overwrite a shared one.
    p.add_argument("-d", "--debug", dest="global_debug", action="store_true", default=None,
                   help="print debug log lines too (env MIG_PARTED_DEBUG)")
    cmds = p.add_subparsers(dest="mig_parted_command", metavar="COMMAND", parser_class=type(p))
    cmds.required = True
    apply = cmds.add_parser("apply", help="apply a MIG configuration from a configuration file")
    _config_flags(apply, "apply to the node")
    apply.add_argument("-k", "--hooks-file", default=os.environ.get("MIG_PARTED_HOOKS_FILE"),
                       help="accepted for compatibility; hooks are not simulated (env MIG_PARTED_HOOKS_FILE)")
    apply.add_argument("-s", "--skip-reset", action="store_true", default=None,
                       help="skip the GPU reset after a mode change (env MIG_PARTED_SKIP_RESET)")
    assert_ = cmds.add_parser("assert", help="assert that a MIG configuration is currently applied")
    _config_flags(assert_, "assert")
    assert_.add_argument("-a", "--valid-config", action="store_true", default=None,
                         help="only check that the file is valid and holds the config (env MIG_PARTED_VALID_CONFIG)")
    export = cmds.add_parser("export", help="export the current MIG configuration of all GPUs")
    export.add_argument("-o", "--output-format", default=os.environ.get("MIG_PARTED_OUTPUT_FORMAT") or "yaml",
                        help="json or yaml (default yaml; env MIG_PARTED_OUTPUT_FORMAT)")
    export.add_argument("-l", "--config-label", default=os.environ.get("MIG_PARTED_CONFIG_LABEL") or "current",
                        help="label of the exported config (default current; env MIG_PARTED_CONFIG_LABEL)")
    for parser in (apply, assert_, export):
        _common(parser)
        parser.set_defaults(run=run)


def _flag(args: argparse.Namespace, name: str, env: str) -> bool:
    value = getattr(args, name, None)
    return bool(value) if value is not None else _env_bool(env)


def load_node(args: argparse.Namespace) -> NvmlSimulator:
    """The node from --state if that file exists (checked against --gpu/--instance-type), else a new one."""
    given = bool(args.gpu) or bool(args.instance_type)
    if args.state and Path(args.state).exists():
        node = NvmlSimulator.load(args.state)
        if given:
            wanted = (parse_gpu_specs(args.gpu) if args.gpu else
                      [g.primary_variant for g in node_gpus(None, args.instance_type)[1]])
            if [v.key for v in wanted] != [g.variant.key for g in node.gpus]:
                raise InputError(f"state file {args.state} describes another node "
                                 f"({', '.join(g.variant.key for g in node.gpus)})")
        return node
    if not given:
        raise InputError("give --gpu GPU[xN] or --instance-type TYPE (or an existing --state FILE)")
    node_gpus(args.gpu, args.instance_type)  # exactly one of them, and known names
    if args.instance_type:
        return NvmlSimulator.from_instance_type(args.instance_type, args.node_name)
    return NvmlSimulator(parse_gpu_specs(args.gpu), args.node_name)  # boards: a variant reports its own PCI ID


def _read_spec(path: str) -> Spec | str:
    """The parsed config file, or mig-parted's error when it cannot read it (ParseConfigFile, os.ReadFile).

    Bounded like every file the kit reads (common/yaml_source.py): a file larger than MAX_BYTES is the simulator's
    own input error (exit 2), not something it pretends mig-parted said."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
    except IsADirectoryError:
        return f"read error: read {path}: is a directory"
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"read error: open {path}: {reason[:1].lower()}{reason[1:]}"
    name = "<stdin>" if path == "-" else path
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: larger than {MAX_BYTES // 2**20} MiB; the kit reads at most that much")
    text = _go_yaml_text(data)
    return parse_spec_text(text, name) if text is not None else (
        "unmarshal error: error converting YAML to JSON: yaml: " + _go_yaml_reader_error(data))


def _go_yaml_text(data: bytes) -> str | None:
    """The text go-yaml v2 reads (readerc.go: a UTF-8 or UTF-16 byte-order mark picks the encoding, else UTF-8),
    or None when its reader stops."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return None  # UTF-32: go-yaml knows no such mark and meets a NUL
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec) if codec != "utf-8-sig" else data.decode(codec)
            except UnicodeDecodeError:
                return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _go_yaml_reader_error(data: bytes) -> str:
    """go-yaml's reader error for text it cannot decode (readerc.go); [CHOICE] the first problem it would meet is
    approximated: a NUL (UTF-32) is a control character, anything else an invalid UTF-8 octet."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "control characters are not allowed"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "incomplete UTF-16 character" if len(data) % 2 else "unexpected low surrogate area"
    return "invalid leading UTF-8 octet"


def _failure(command: str, error: str) -> MigPartedResult:
    """A command that failed before touching the node (mig-parted's log.Fatal)."""
    message = capitalize(error)
    result = MigPartedResult(command, EXIT_FAIL, error=message)
    result.log = [LogEntry("debug", "Parsing config file..."), LogEntry("fatal", message)]
    return result


def _print(result: MigPartedResult, debug: bool, as_json: bool, located: list[Problem]) -> None:
    """mig-parted's output; then, when the config file was the reason it failed, where in the file (mig-parted's
    own messages name no file or entry): `problems` in JSON, `mig-conformance:` lines on stderr."""
    if as_json:
        print_json({**result.as_dict(), "problems": [p.as_dict() for p in located]})
        return
    for line in result.stdout:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
    for line in result.stderr_lines(debug):
        print(line, file=sys.stderr)
    for problem in located[:MAX_LOCATED]:
        print(f"mig-conformance: {problem}", file=sys.stderr)
    if len(located) > MAX_LOCATED:
        where = located[0].location.file or "the file"
        print(f"mig-conformance: {where}: ... and {len(located) - MAX_LOCATED} more problems (mig-conformance "
              "validate lists them all)", file=sys.stderr)


def located_problems(spec: Spec | str | None, selected: str | None, path: str) -> list[Problem]:
    """The file's problems (mig-parted rejects it), else why `selected` cannot be chosen, with their locations."""
    if isinstance(spec, str) and spec.startswith("unmarshal error"):  # bytes go-yaml cannot read
        return [Problem("not text mig-parted can read (UTF-8, or UTF-16 with a byte-order mark)",
                        Location("<stdin>" if path == "-" else path))]
    if not isinstance(spec, Spec):
        return []
    if spec.problems:
        return list(spec.problems)
    try:
        spec.select(selected)
    except InputError as exc:
        return list(exc.problems)
    return []


def run(args: argparse.Namespace) -> int:
    try:
        node = load_node(args)
        debug = bool(args.global_debug) or _flag(args, "debug", "MIG_PARTED_DEBUG")
        result, spec = _command(args, node)
    except MigConformanceError as exc:
        return input_failure(exc, args.json, command=args.mig_parted_command, exit_code=2)
    located = (located_problems(spec, getattr(args, "selected_config", None), getattr(args, "config_file", "-"))
               if not result.ok else [])
    if args.state:
        try:
            node.save(args.state)
        except OSError as exc:  # the command ran; only its state could not be kept
            _print(result, debug, args.json, located)
            print(f"error: --state {args.state}: cannot write the node state: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
    _print(result, debug, args.json, located)
    return result.exit_code


def _command(args: argparse.Namespace, node: NvmlSimulator) -> tuple[MigPartedResult, Spec | str | None]:
    """The command's result, and the config file it read (mig-parted's read error as a string)."""
    parted = MigParted(node)
    command = args.mig_parted_command
    if command == "export":
        return parted.export(args.output_format, args.config_label), None
    if not args.config_file:
        message = "Missing required flags 'config-file'"
        result = MigPartedResult(command, EXIT_FAIL, error=message)
        result.log = [LogEntry("fatal", message)]
        return result, None
    spec = _read_spec(args.config_file)
    if isinstance(spec, str):
        return _failure(command, f"error parsing config file: {spec}"), spec
    mode_only = _flag(args, "mode_only", "MIG_PARTED_MODE_CHANGE_ONLY")
    if command == "apply":
        result = parted.apply(spec, args.selected_config, mode_only=mode_only,
                              skip_reset=_flag(args, "skip_reset", "MIG_PARTED_SKIP_RESET"))
        if args.hooks_file:
            result.log.insert(0, LogEntry("warning", f"Hooks file {args.hooks_file} ignored: hooks are not "
                                                     "simulated"))
        return result, spec
    return parted.assert_config(spec, args.selected_config, mode_only=mode_only,
                                valid_config=_flag(args, "valid_config", "MIG_PARTED_VALID_CONFIG")), spec
