"""Every user file the kit reads goes through common/yaml_source's bounds and ends in a located error, never a
traceback or a hang (issue 10, items 1-2): validate FILE and `validate -`, mig-parted apply/assert -f FILE|-,
expect and smi --config-file, the clusters file, journals, report bundles, kubeconfigs and kind configs. The plugin's
paths (--mig-config-file, --mig-clusters-file, also under -n 2) are in tests/plugin/test_plugin_hostile.py."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.cluster.kind import open_kind
from mig_conformance.cluster.kubeconfig import contexts
from mig_conformance.common.errors import InputError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
#: name: (content, the kit's words, the line they name or None)
HOSTILE = {
    "bomb": (BOMB.encode(), "more than 100,000 values once aliases are expanded", 1),
    "recursive": (b"a: &a [*a]\n", "an alias refers to a value that contains it (recursive alias)", 1),
    "merge": (b"a: &a {<<: *a}\n", "a merge key (<<) merges a mapping that contains it (recursive alias)", 1),
    "deep-list": (b"[" * 990 + b"]" * 990 + b"\n", "nested more than 64 levels deep", 1),
    "deep-map": (b"".join(b"  " * i + b"k:\n" for i in range(500)), "nested more than 64 levels deep", 65),
    "binary": (bytes(range(256)) * 4, "not UTF-8 text (byte 0x80 at offset 128); a binary file?", None),
    "huge": (b"# " + b"x" * (5 * 2**20), "larger than 4 MiB; the kit reads at most that much", None),
}
NAMES = sorted(HOSTILE)


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name][0])
    return path


def _where(path: str, name: str) -> str:
    line = HOSTILE[name][2]
    return f"{path}:{line}: " if line else f"{path}: "


def _no_traceback(captured: pytest.CaptureResult[str]) -> None:
    assert "Traceback" not in captured.err + captured.out and "internal error" not in captured.err


@pytest.mark.parametrize("name", NAMES)
def test_validate(capsys, tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name)
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge"]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert f"error: {_where(str(path), name)}" + HOSTILE[name][1] in captured.out + captured.err
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    error = doc["errors"][0]
    assert error["file"] == str(path) and error["line"] == HOSTILE[name][2] and HOSTILE[name][1] in error["message"]


@pytest.mark.parametrize("name", NAMES)
def test_validate_from_stdin(monkeypatch, capsys, name: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(HOSTILE[name][0])))
    assert main(["validate", "-", "--gpu", "H100-80GB"]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert f"error: {_where('<stdin>', name)}" + HOSTILE[name][1] in captured.out + captured.err


@pytest.mark.parametrize("command", ["apply", "assert"])
@pytest.mark.parametrize("name", NAMES)
def test_mig_parted(monkeypatch, capsys, tmp_path: Path, name: str, command: str) -> None:
    """mig-parted's own answer to a file it cannot parse (exit 1, its FATA line with the kit's reason); a file past
    the kit's size bound is the simulator's own input error (exit 2)."""
    path = _write(tmp_path, name)
    for source in (str(path), "-"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(HOSTILE[name][0])))
        code = main(["mig-parted", command, "-f", source, "-c", "x", "--instance-type", "p5.48xlarge"])
        captured = capsys.readouterr()
        _no_traceback(captured)
        if name == "huge":
            where = "<stdin>" if source == "-" else str(path)
            assert code == 2 and captured.err == f"error: {where}: {HOSTILE[name][1]}\n"
        elif name == "binary":
            where = "<stdin>" if source == "-" else str(path)
            assert code == 1 and captured.err.splitlines() == [
                "FATA[0000] Error parsing config file: unmarshal error: error converting YAML to JSON: yaml: invalid "
                "leading UTF-8 octet",
                f"mig-conformance: {where}: not text mig-parted can read (UTF-8, or UTF-16 with a byte-order mark)"]
        else:  # mig-parted's line, then where the kit found it
            assert code == 1 and captured.err.startswith("FATA[0000] Error parsing config file: unmarshal error: "
                                                         "error converting YAML to JSON: yaml: line ")
            where = _where("<stdin>" if source == "-" else str(path), name)
            assert f"\nmig-conformance: {where}{HOSTILE[name][1]}" in captured.err


@pytest.mark.parametrize("name", NAMES)
def test_expect_config_file(capsys, tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name)
    assert main(["expect", "--gpu", "H100-80GB", "--strategy", "mixed", "--config", "x", "--config-file",
                 str(path)]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert captured.err.startswith(f"error: {_where(str(path), name)}{HOSTILE[name][1]}")


@pytest.mark.parametrize("name", NAMES)
def test_smi_config_file(capsys, tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name)
    assert main(["smi", "--gpu", "H100-80GB", "--config-file", str(path), "--config", "x", "-L"]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert captured.err.startswith(f"error: {_where(str(path), name)}{HOSTILE[name][1]}")


@pytest.mark.parametrize("name", NAMES)
def test_clusters_file(capsys, tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name)
    for argv in (["clusters", "list"], ["clusters", "show", "x"]):
        assert main([*argv, "--clusters-file", str(path)]) == 2
        captured = capsys.readouterr()
        _no_traceback(captured)
        assert captured.err.startswith(f"error: {_where(str(path), name)}{HOSTILE[name][1]}")


@pytest.mark.parametrize("name", NAMES)
def test_journal(capsys, tmp_path: Path, name: str) -> None:
    path = tmp_path / "journal.json"
    path.write_bytes(HOSTILE[name][0])
    assert main(["restore", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert captured.err.startswith(f"error: {path}: cannot read the journal: ")


@pytest.mark.parametrize("name", NAMES)
def test_report_bundle(capsys, tmp_path: Path, name: str) -> None:
    (tmp_path / "summary.json").write_bytes(HOSTILE[name][0])
    assert main(["report", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    _no_traceback(captured)
    assert captured.err.startswith(f"error: {tmp_path / 'summary.json'}: ")


@pytest.mark.parametrize("name", NAMES)
def test_kubeconfig(tmp_path: Path, name: str) -> None:
    """The Kubernetes client's loader has no bounds: the kit reads the file first."""
    path = _write(tmp_path, name)
    with pytest.raises(InputError) as info:
        contexts(str(path))
    assert str(info.value).startswith(f"{_where(str(path), name)}{HOSTILE[name][1]}")


@pytest.mark.parametrize("name", NAMES)
def test_kind_config(tmp_path: Path, name: str) -> None:
    """Read before `kind create cluster --config` sees it (and before kind or Docker are looked for)."""
    path = _write(tmp_path, name)
    with pytest.raises(InputError) as info:
        open_kind("lab", "lab", False, {"config": str(path)})
    assert str(info.value).startswith(f"{_where(str(path), name)}{HOSTILE[name][1]}")
