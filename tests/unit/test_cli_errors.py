"""How the CLI fails (docs/hardening.md#exit-codes): 1 only means invalid / does not fit, 2 a usage error or unusable
input, 3 a bug of the kit (one line, never a traceback); --json prints one JSON document on errors too; unknown
options show the command's own usage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mig_conformance.cli.fit as fit_command
from mig_conformance.cli import EXIT_INTERNAL, main

ROOT = Path(__file__).parents[2]
DEFAULT = str(ROOT / "fixtures" / "configs" / "default-mig-parted-config.yaml")


def _boom(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("a bug\nover two lines")


def test_an_internal_error_exits_3_with_one_line_and_no_traceback(monkeypatch, capsys) -> None:
    monkeypatch.setattr(fit_command, "fit", _boom)  # a bug inside a command
    monkeypatch.delenv("MIG_CONFORMANCE_DEBUG", raising=False)
    assert main(["fit", "H100-80GB", "1g.10gb=1"]) == EXIT_INTERNAL == 3
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines[0] == "internal error: ZeroDivisionError: a bug over two lines"
    assert "MIG_CONFORMANCE_DEBUG=1" in lines[1] and "report it" in lines[1] and len(lines) == 2
    assert "Traceback" not in captured.err + captured.out


def test_an_internal_error_with_json_is_one_json_document(monkeypatch, capsys) -> None:
    monkeypatch.setattr(fit_command, "fit", _boom)
    assert main(["fit", "H100-80GB", "1g.10gb=1", "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["internal_error"] is True and doc["error"].startswith("internal error: ZeroDivisionError")


def test_debug_variable_shows_the_traceback(monkeypatch, capsys) -> None:
    monkeypatch.setattr(fit_command, "fit", _boom)
    monkeypatch.setenv("MIG_CONFORMANCE_DEBUG", "1")
    assert main(["fit", "H100-80GB", "1g.10gb=1"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_boom" in err and "internal error:" in err


@pytest.mark.parametrize(("argv", "usage"), [
    (["validate", "x.yaml", "--bogus"], "usage: mig-conformance validate "),
    (["mig-parted", "apply", "--bogus"], "usage: mig-conformance mig-parted apply "),
    (["cluster", "up", "--kubeconfig", "k", "--bogus"], "usage: mig-conformance cluster up "),
    (["clusters", "list", "--bogus"], "usage: mig-conformance clusters list "),
    (["gpus", "--bogus"], "usage: mig-conformance gpus "),
    (["fit", "H100-80GB", "1g.10gb=1", "--bogus"], "usage: mig-conformance fit "),
])
def test_an_unknown_option_shows_the_commands_own_usage(capsys, argv: list[str], usage: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert "unrecognized arguments: --bogus" in err
    assert "usage: mig-conformance [-h]" not in err


@pytest.mark.parametrize("argv", [
    ["gpus", "nope"],
    ["layouts", "nope"],
    ["fit", "nope", "1g.10gb=1"],
    ["fit", "H100-80GB", "💥=1"],
    ["validate", "no-such-file.yaml", "--gpu", "H100-80GB"],
    ["validate", DEFAULT, "--gpu", "nope"],
    ["expect", "--gpu", "nope", "--strategy", "mixed"],
    ["expect", "--gpu", "H100-80GB", "--strategy", "mixed", "--config-file", "no-such-file.yaml"],
    ["mig-parted", "apply", "--gpu", "nope", "-f", DEFAULT],
    ["mig-parted", "assert", "--instance-type", "nope", "-f", DEFAULT],
    ["mig-parted", "export", "--gpu", "nope"],
    ["cluster", "status", "--kubeconfig", "no-such-kubeconfig"],
])
def test_every_json_command_prints_one_json_document_on_errors(capsys, argv: list[str]) -> None:
    assert main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # exactly one document
    assert doc["error"] and doc["errors"][0]["message"] and "Traceback" not in captured.err


def test_fit_with_a_malformed_profile_name_is_a_usage_error(capsys) -> None:
    assert main(["fit", "H100-80GB", "💥=1"]) == 2
    assert "'💥' is not a MIG profile name" in capsys.readouterr().err
    # a well-formed name the GPU does not have is still "does not fit"
    assert main(["fit", "H100-80GB", "1g.5gb=1"]) == 1
    assert "profile 1g.5gb does not exist on H100-80GB" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b" \t\n", b"\n\n  \r\n", b"# only a comment\n", b"\xef\xbb\xbf \t \n"])
def test_empty_and_whitespace_only_files_get_the_same_answer(capsys, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blank.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path), "--instance-type", "p5.48xlarge"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: the file is empty (nothing but whitespace or comments): no mig-parted config to " \
                  "check\n"


@pytest.mark.parametrize(("option", "value"), [("--user", ""), ("--group", " "), ("--service-account", "")])
def test_rbac_with_an_empty_name_is_a_usage_error(capsys, option: str, value: str) -> None:
    assert main(["rbac", option, value]) == 2
    assert capsys.readouterr().err == f"error: {option}: a name is required, got '{value}'\n"


@pytest.mark.parametrize("argv", [
    ["smi", "--state", "{state}", "-L"],
    ["mig-parted", "apply", "-f", DEFAULT, "-c", "all-balanced", "--instance-type", "p5.48xlarge",
     "--state", "{state}"],
    ["mig-parted", "export", "--state", "{state}"],
])
@pytest.mark.parametrize("content", [
    bytes(range(256)) * 4,
    b"[" * 100_000,
    b'{"kind": "mig-conformance/nvml-simulator", "name": "n", "gpus": ["not a GPU"]}',
])
def test_a_state_file_that_is_not_a_state_is_a_located_usage_error(capsys, tmp_path: Path, argv: list[str],
                                                                   content: bytes) -> None:
    state = tmp_path / "garbage.bin"
    state.write_bytes(content)
    assert main([a.replace("{state}", str(state)) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: state file {state}: ") and "Traceback" not in captured.err
    assert state.read_bytes() == content  # never overwritten


def test_capture_into_a_folder_that_cannot_be_created_is_a_usage_error(capsys, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    for output in (f"{blocker}/sub/entry.yaml", f"{blocker}/sub/"):
        assert main(["capture", "--simulate", "H100-80GB", "-o", output]) == 2
        assert capsys.readouterr().err == f"error: -o {output}: cannot write {blocker}/sub: Not a directory\n"


def test_a_node_with_absurdly_many_gpus_is_refused_at_once(capsys) -> None:
    assert main(["smi", "--gpu", "H100-80GBx99999999", "-L"]) == 2
    assert "at most 60 GPUs per node, got 99,999,999" in capsys.readouterr().err
    assert main(["validate", DEFAULT, "-c", "all-balanced", "--gpu", "H100-80GBx40,A100-40GBx40"]) == 2
    assert "at most 60 GPUs per node, got 80 with 'A100-40GBx40'" in capsys.readouterr().err
    assert main(["smi", "--gpu", "H100-80GBx2", "--count", "99999999", "-L"]) == 2
    assert "at most 60 GPUs per node, got 199,999,998 (--count 99999999)" in capsys.readouterr().err
