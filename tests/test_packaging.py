"""The wheel exposes one namespace: every package folder is mapped under mig_conformance."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
MAPPED = {"mig_conformance": "mig_conformance", "simulators": "mig_conformance.simulators",
          "suites": "mig_conformance.suites", "fixtures": "mig_conformance.fixtures"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for top, namespace in MAPPED.items():
        assert config["package-dir"][namespace] == top
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            assert ".".join((namespace, *rel)) in listed, f"{init.parent} is not packaged"


def test_no_top_level_simulators_or_suites_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p.startswith("mig_conformance") for p in config["packages"])
