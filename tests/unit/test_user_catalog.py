"""User catalogs (issue 13 item 1): a folder of captured GPU entries and new instance types, given by --catalog on
every command; errors name file, line and key and never leave a half-loaded catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mig_conformance.cli import main
from mig_conformance.common.errors import InputError
from mig_conformance.gpus.catalog import load_catalog, user_catalog_dirs
from mig_conformance.gpus.instance_types import load_instance_types
from mig_conformance.gpus.user_catalog import use_user_catalogs
from support.user_catalog import DRIVER, NEW_GPU, NEW_TYPE, make_user_catalog


@pytest.fixture
def user_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = make_user_catalog(tmp_path / "cat")
    capsys.readouterr()
    return folder


def test_captured_entry_drives_expect_and_names_the_user_file(user_dir: Path, capsys) -> None:
    code = main(["expect", "--catalog", str(user_dir), "--instance-type", NEW_TYPE, "--config", "all-balanced",
                 "--strategy", "mixed", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["allocatable"] == {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.12gb": 16, "nvidia.com/mig-2g.24gb": 8,
                                  "nvidia.com/mig-3g.47gb": 8}
    gpu = doc["provenance"]["gpus"][0]
    assert gpu["key"] == NEW_GPU and gpu["origin"] == "user catalog" and gpu["captured"] and gpu["driver"] == DRIVER
    assert gpu["file"] == str((user_dir / "gpus" / f"{NEW_GPU}.yaml").resolve())
    assert len(gpu["captured_rows"]) == 7 and gpu["unconfirmed_rows"] == []
    it = doc["provenance"]["instance_type"]
    assert it["origin"] == "user catalog" and it["file"] == str((user_dir / "instance-types.yaml").resolve())
    assert user_catalog_dirs() == ()  # only for that command


def test_text_output_and_gpus_say_where_entries_came_from(user_dir: Path, capsys) -> None:
    assert main(["expect", "--catalog", str(user_dir), "--instance-type", NEW_TYPE, "--config", "all-balanced",
                 "--strategy", "mixed"]) == 0
    out = capsys.readouterr().out
    assert f"instance type {NEW_TYPE}: user catalog {(user_dir / 'instance-types.yaml').resolve()}" in out
    assert f"GPU {NEW_GPU}: user catalog" in out and f"captured on driver {DRIVER}" in out
    assert main(["gpus", "--catalog", str(user_dir)]) == 0
    listing = capsys.readouterr().out
    assert "Not shipped with the kit" in listing and f"{NEW_GPU}: user catalog" in listing
    assert main(["gpus", "H100"]) == 0
    assert "catalog: H100-80GB: shipped" in capsys.readouterr().out
    assert main(["gpus", NEW_GPU]) == 2  # unknown without --catalog


def test_later_folders_override_earlier_ones_and_the_shipped_catalog(user_dir: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "instance-types.yaml").write_text(
        "instance_types:\n"
        f"  {NEW_TYPE}: {{gpu: {NEW_GPU}, gpu_count: 2}}\n"
        "  p5.48xlarge: {gpu: H100-80GB, gpu_count: 4, source: override}\n", encoding="utf-8")
    with use_user_catalogs([user_dir, second]):
        types = load_instance_types()
        assert types[NEW_TYPE].gpu_count == 2 and types[NEW_TYPE].file == str(second.resolve() / "instance-types.yaml")
        assert types["p5.48xlarge"].gpu_count == 4 and types["p5.48xlarge"].user
        # the captured board's PCI ID resolves to the user's entry, before the shipped H100 NVL
        assert load_catalog().by_pci_id(0x232110DE).key == NEW_GPU  # type: ignore[union-attr]
    assert load_instance_types()["p5.48xlarge"].gpu_count == 8 and NEW_TYPE not in load_instance_types()
    assert load_catalog().by_pci_id(0x232110DE).key == "H100-NVL-94GB"  # type: ignore[union-attr]


@pytest.mark.parametrize(("file", "text", "where", "words"), [
    ("instance-types.yaml", "instance_types:\n  x1:\n    gpu: H100-80GB\n    gpu_cnt: 8\n", "instance-types.yaml:4",
     "gpu_cnt"),
    ("instance-types.yaml", "instance_types:\n  x1:\n    gpu: NOPE\n    gpu_count: 8\n", "instance-types.yaml:3",
     "NOPE"),
    ("instance-types.yaml", "instance_types:\n  x1:\n    gpu: H100-80GB\n    gpu_count: 0\n", "instance-types.yaml:4",
     "gpu_count"),
    ("instance-types.yaml", "instance_types:\n  x1: {gpu: H100-80GB, gpu_count: 1, mig_available: false}\n",
     "instance-types.yaml:2", "mig_reason"),
    ("instance-types.yaml", "- not a mapping\n", "instance-types.yaml:1", "mapping"),
    ("gpus/BAD.yaml", "key: BAD\nmig_capable: yes\nsource: x\ngi_profiles: []\n", "BAD.yaml", "memory_slots"),
    ("gpus/BAD.yaml", "key: [unclosed\n", "BAD.yaml:2", "not valid YAML"),
    ("gpus/BAD.yaml", "key: BAD\nmig_capable: false\nsource: x\nec2_names: [{}]\n", "BAD.yaml", "catalog entry"),
])
def test_errors_name_file_line_and_key_and_load_nothing(user_dir: Path, capsys, file: str, text: str, where: str,
                                                        words: str) -> None:
    (user_dir / file).write_text(text, encoding="utf-8")
    before = load_catalog()
    code = main(["expect", "--catalog", str(user_dir), "--instance-type", "p5.48xlarge", "--config", "all-balanced",
                 "--strategy", "mixed"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert where in err, err
    assert words in err and "Traceback" not in err
    with pytest.raises(InputError), use_user_catalogs([user_dir]):
        pass
    assert user_catalog_dirs() == () and load_catalog() is before


def test_folders_that_are_not_catalogs_are_usage_errors(tmp_path: Path, capsys) -> None:
    assert main(["gpus", "--catalog", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["layouts", "A30-24GB", "--catalog", str(tmp_path)]) == 2
    assert "neither gpus/*.yaml nor instance-types.yaml" in capsys.readouterr().err


def test_every_command_takes_catalog() -> None:
    from mig_conformance.cli import build_parser
    from mig_conformance.cli.catalogs import OPTION

    def leaves(parser):  # type: ignore[no-untyped-def]
        import argparse
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield parser
        for a in subs:
            for child in a.choices.values():
                yield from leaves(child)

    found = list(leaves(build_parser()))
    assert len(found) > 14
    assert all(any(OPTION in a.option_strings for a in p._actions) for p in found), [p.prog for p in found]
