"""A missing optional dependency (an extra of the wheel) is one line naming the extra to install: exit 2 for the CLI,
never a traceback (common/extras.py). Absence is simulated as Python does it: `sys.modules[name] = None` makes
the import fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mig_conformance.cli.fit as fit_command
from mig_conformance.cli import main
from mig_conformance.cluster.journal import ChangeKind, Journal
from mig_conformance.common.extras import BACKENDS, MODULES, MissingExtra, install_hint, missing_extra, require_backend


def _one_error_line(err: str, extra: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert lines[0].endswith(f"which is not installed: {install_hint(extra)}")
    return lines[0]


def test_the_hint_names_the_extra_for_installed_kits_and_checkouts() -> None:
    assert install_hint("eks") == "pip install 'mig-conformance[eks]' (from a checkout: pip install '.[eks]')"


@pytest.mark.parametrize(("module", "argv", "extra"), [
    ("boto3", ["eks-token", "--cluster-name", "prod", "--region", "us-west-2"], "eks"),
    ("botocore", ["eks-token", "--cluster-name", "prod", "--region", "us-west-2"], "eks"),
    ("boto3", ["eks-kubeconfig", "--cluster-name", "prod", "--region", "us-west-2"], "eks"),
    ("kubernetes", ["cluster", "up", "--kubeconfig", "{tmp}/kubeconfig"], "local"),
    ("cryptography", ["cluster", "up", "--kubeconfig", "{tmp}/kubeconfig"], "local"),
    ("pynvml", ["capture", "--nvml"], "nvml"),
])
def test_a_command_without_its_extra_says_what_to_install(monkeypatch, capsys, tmp_path: Path, module: str,
                                                          argv: list[str], extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    line = _one_error_line(capsys.readouterr().err, extra)
    assert f"mig-conformance {argv[0]}" in line or "capture --nvml" in line
    assert module in line
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


@pytest.mark.parametrize(("kind", "module"), [(kind, m) for kind, (modules, _) in BACKENDS.items() for m in modules])
def test_restore_onto_a_backend_without_its_extra(monkeypatch, capsys, tmp_path: Path, kind: str, module: str) -> None:
    journal = Journal(tmp_path / "journal.json", "run-1", "c",
                      {"name": "c", "kind": kind, "arg": "", "options": {"context": "ctx", "cluster": "prod",
                                                                         "region": "us-west-2"}})
    journal.record(ChangeKind.NODE_LABEL, "node-1", "nvidia.com/mig.config", "all-disabled")
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["restore", str(tmp_path / "journal.json"), "--cluster", f"{kind}:x" if kind != "eks" else
                 "eks:prod@us-west-2"]) == 2
    line = _one_error_line(capsys.readouterr().err, BACKENDS[kind][1])
    assert f"({kind} backend) needs the Python package" in line
    assert Journal.load(tmp_path / "journal.json").changes  # nothing restored: the journal keeps its change


@pytest.mark.parametrize(("kind", "module"), [(kind, m) for kind, (modules, _) in BACKENDS.items() for m in modules])
def test_every_backend_names_its_extra(monkeypatch, kind: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra) as info:
        require_backend(kind)
    assert info.value.module == module and info.value.extra == BACKENDS[kind][1]
    require_backend("sim")  # sim needs none


def test_an_import_error_deep_in_a_command_becomes_the_hint(monkeypatch, capsys) -> None:
    """The fallback for imports the up-front checks do not cover: any ImportError of an optional module."""
    def needs_kubernetes(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'kubernetes'", name="kubernetes.client")

    monkeypatch.setattr(fit_command, "fit", needs_kubernetes)
    assert main(["fit", "H100-80GB", "1g.10gb=1"]) == 2
    line = _one_error_line(capsys.readouterr().err, "kube")
    assert line.startswith("error: mig-conformance fit needs the Python package kubernetes")


def test_only_optional_modules_are_extras() -> None:
    assert missing_extra(ModuleNotFoundError("x", name="botocore.session")).extra == "eks"  # type: ignore[union-attr]
    assert missing_extra(ModuleNotFoundError("x", name="yaml")) is None  # a broken install, not an extra
    assert missing_extra(ValueError("x")) is None
    assert set(MODULES) == {"kubernetes", "boto3", "botocore", "cryptography", "pynvml", "cel"}
