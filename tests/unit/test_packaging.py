"""The wheel exposes one namespace: every package folder is mapped under mig_conformance."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
MAPPED = {"mig_conformance": "mig_conformance", "simulators": "mig_conformance.simulators",
          "suites": "mig_conformance.suites", "fixtures": "mig_conformance.fixtures",
          "deploy": "mig_conformance.deploy"}


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


def test_the_built_wheel_has_one_namespace_with_data_and_entry_points(tmp_path: Path) -> None:
    """Build the wheel for real and look inside: only mig_conformance/ (+ dist-info), the mapped folders and the
    YAML data present, the console script and the pytest11 entry point declared."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info into the tree it builds
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "build", "dist", "tests",
                                                                "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(source)], check=True,
                   capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("mig_conformance-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mig_conformance", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for path in ("mig_conformance/simulators/nvml.py", "mig_conformance/simulators/agents/__main__.py",
                 "mig_conformance/suites/test_scheduling.py", "mig_conformance/fixtures/instance-types.yaml",
                 "mig_conformance/fixtures/gpus/H100-80GB.yaml",
                 "mig_conformance/fixtures/configs/default-mig-parted-config.yaml", "mig_conformance/aws/token.py",
                 "mig_conformance/deploy/rbac.yaml"):
        assert path in names, f"{path} missing from {wheel.name}"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mig_conformance = mig_conformance.plugin" in entry_points
    assert "mig-conformance = mig_conformance.cli:main" in entry_points
