"""The wheel exposes one namespace, `mig_conformance`: setup.py discovers every package folder (mapped under
mig_conformance), the built wheel holds every module and the YAML data, and installed into a fresh venv it works from
anywhere (the plugin's options are there)."""

from __future__ import annotations

import configparser
import os
import runpy
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import setuptools

ROOT = Path(__file__).parents[2]
NAMESPACE = "mig_conformance"
#: folder of the checkout -> the package it ships as
MAPPED = {"mig_conformance": NAMESPACE, "simulators": f"{NAMESPACE}.simulators", "suites": f"{NAMESPACE}.suites",
          "fixtures": f"{NAMESPACE}.fixtures", "deploy": f"{NAMESPACE}.deploy"}
CODE = ("mig_conformance", "simulators", "suites")
DATA = ("fixtures", "deploy")
TOOLS = ["mig_conformance/cluster/local/tools/versions.env",
         *(f"mig_conformance/cluster/local/tools/{m}/go.{ext}" for m in ("kubernetes", "etcd", "kwok")
           for ext in ("mod", "sum"))]
YAML = ["mig_conformance/fixtures/instance-types.yaml", "mig_conformance/fixtures/bottlerocket-mig.yaml",
        "mig_conformance/fixtures/configs/default-mig-parted-config.yaml", "mig_conformance/deploy/rbac.yaml",
        "mig_conformance/deploy/rbac-diagnose.yaml",
        *(f"mig_conformance/fixtures/gpus/{p.name}" for p in sorted((ROOT / "fixtures" / "gpus").glob("*.yaml")))]


def _folders(top: str) -> Iterator[Path]:
    """`top` and every folder below it (no __pycache__)."""
    yield ROOT / top
    for path in sorted((ROOT / top).rglob("*")):
        if path.is_dir() and "__pycache__" not in path.parts:
            yield path


def _package_of(folder: Path) -> str:
    top, *rest = folder.relative_to(ROOT).parts
    return ".".join((MAPPED[top], *rest))


def _in_wheel(path: Path) -> str:
    """Where a file of the checkout lands in the wheel."""
    top, *rest = path.relative_to(ROOT).parts
    return "/".join((*MAPPED[top].split("."), *rest))


@pytest.fixture(scope="module")
def setup_kwargs() -> dict[str, Any]:
    """What setup.py hands to setuptools.setup, without building anything."""
    captured: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # setup.py finds packages relative to the checkout
        mp.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
        runpy.run_path(str(ROOT / "setup.py"))
    return captured


def test_setup_discovers_every_folder_under_the_one_namespace(setup_kwargs: dict[str, Any]) -> None:
    packages = set(setup_kwargs["packages"])
    assert setup_kwargs["package_dir"] == {package: folder for folder, package in MAPPED.items()}
    assert all(p == NAMESPACE or p.startswith(f"{NAMESPACE}.") for p in packages), sorted(packages)
    code = {_package_of(f) for top in CODE for f in _folders(top) if any(f.glob("*.py"))}
    assert code - packages == set(), "folders with Python files that are not packaged"
    assert {_package_of(ROOT / top) for top in DATA} <= packages


def test_setup_ships_every_data_file(setup_kwargs: dict[str, Any]) -> None:
    """Every YAML file of fixtures/ and deploy/, and mig_conformance/py.typed, is matched by package_data."""
    package_data = setup_kwargs["package_data"]
    data = [p for top in DATA for p in sorted((ROOT / top).rglob("*.yaml"))] + [ROOT / "mig_conformance" / "py.typed"]
    assert sorted(_in_wheel(p) for p in data) == sorted([*YAML, "mig_conformance/py.typed"])
    for path in data:
        shipped = []
        for package in setup_kwargs["packages"]:
            folder = ROOT.joinpath(*_folder_parts(package))
            if any(path in folder.glob(pattern) for pattern in package_data.get(package, [])):  # as setuptools globs
                shipped.append(package)
        assert shipped, f"{path.relative_to(ROOT)} is not in package_data"


def test_setup_ships_the_go_tools_modules(setup_kwargs: dict[str, Any]) -> None:
    """`cluster install` builds from them in an installed wheel (no checkout): every file of the tools folder."""
    tools = ROOT / "mig_conformance" / "cluster" / "local" / "tools"
    files = sorted(p for p in tools.rglob("*") if p.is_file())
    assert sorted(_in_wheel(p) for p in files) == sorted(TOOLS)
    patterns = setup_kwargs["package_data"][f"{NAMESPACE}.cluster.local.tools"]
    assert [p for p in files if not any(p in tools.glob(pattern) for pattern in patterns)] == []


def _folder_parts(package: str) -> tuple[str, ...]:
    """The checkout folder of a package (the inverse of _package_of)."""
    for folder, mapped in sorted(MAPPED.items(), key=lambda kv: -len(kv[1])):
        if package == mapped or package.startswith(f"{mapped}."):
            return (folder, *package[len(mapped):].split(".")[1:])
    raise AssertionError(f"{package} is not under a mapped folder")


# ---- the wheel, built for real (slow) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"  # a copy: setuptools writes build/ and *.egg-info into the tree it builds
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", ".whl", ".devcap", "build", "dist", "tests", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = tmp.glob("mig_conformance-*.whl")
    return built


@pytest.mark.slow  # builds the wheel
def test_the_built_wheel_has_one_namespace_with_every_module_data_and_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        assert len(dist_info) == 1
        assert {n.split("/")[0] for n in names} == {NAMESPACE, *dist_info}
        modules = [_in_wheel(p) for top in CODE for p in sorted((ROOT / top).rglob("*.py"))
                   if "__pycache__" not in p.parts]
        assert [m for m in modules if m not in names] == [], f"modules missing from {wheel.name}"
        assert [y for y in [*YAML, *TOOLS, "mig_conformance/py.typed"] if y not in names] == []
        entry_points = configparser.ConfigParser()
        entry_points.read_string(zf.read(f"{dist_info.pop()}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"mig-conformance": "mig_conformance.cli:main"}
    assert dict(entry_points["pytest11"]) == {"mig_conformance": "mig_conformance.plugin.hooks"}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel and its dependencies installed (as README says: pip install dist/*.whl), and an
    environment without this checkout's or the caller's settings."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KUBEBUILDER_ASSETS")
           and not k.startswith(("MIG_", "PYTEST_"))}
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                             capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return venv, env


@pytest.mark.slow  # a fresh venv, the wheel and its dependencies installed into it
def test_the_wheel_installed_in_a_fresh_venv_works_outside_the_checkout(installed: tuple[Path, dict[str, str]],
                                                                        tmp_path: Path) -> None:
    venv, env = installed
    python = str(venv / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"  # no checkout, no conftest, no ini file here
    elsewhere.mkdir()
    imported = subprocess.run(
        [python, "-c", "import mig_conformance, mig_conformance.simulators.agents, mig_conformance.suites; "
                       "print(mig_conformance.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert Path(imported.stdout.strip()).is_relative_to(venv), imported.stdout  # the wheel's, not the checkout's
    help_ = subprocess.run([python, "-m", "pytest", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=120)
    assert help_.returncode == 0, help_.stderr[-3000:]
    assert "--mig-cluster=" in help_.stdout
    venv_bin = venv / "bin"
    version = subprocess.run([str(venv_bin / "mig-conformance"), "--version"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == "mig-conformance 0.1.0", version.stderr
    run = subprocess.run([str(venv_bin / "pytest"), "--mig-cluster=sim:p5.48xlarge", "-p", "no:cacheprovider"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "verdict: Passed" in run.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == [], "the run left files in the folder"
    install_help = subprocess.run([str(venv_bin / "mig-conformance"), "cluster", "install", "--help"], cwd=elsewhere,
                                  env=env, capture_output=True, text=True, timeout=120)
    assert install_help.returncode == 0 and "--cache-dir" in install_help.stdout, install_help.stderr


@pytest.mark.slow  # a fresh venv with the wheel, and `cluster install` run from it
def test_cluster_install_from_the_wheel_builds_from_the_shipped_tools_modules(
        installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """No checkout: the tools modules come from the installed package, the binaries go to $XDG_CACHE_HOME (a fake
    go records the build; tests/unit/test_cluster_install.py tests the build itself)."""
    from mig_conformance.cluster.local.build import STEPS
    from mig_conformance.cluster.local.pins import read_pins
    from support.fake_go import builds, calls, fake_go, kwok_module

    venv, base = installed
    fake_go(tmp_path / "gobin")
    env = {**base, "PATH": os.pathsep.join([str(tmp_path / "gobin"), "/usr/bin", "/bin"]),
           "XDG_CACHE_HOME": str(tmp_path / "xdg"), "FAKE_GO_LOG": str(tmp_path / "go.log"),
           "FAKE_KWOK_DIR": str(kwok_module(tmp_path / "kwok"))}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mig_conformance = str(venv / "bin" / "mig-conformance")
    proc = subprocess.run([mig_conformance, "cluster", "install"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert builds(tmp_path / "go.log") == [s.package for s in STEPS]
    tools = Path(str(calls(tmp_path / "go.log")[-1]["cwd"])).parent  # the copies the build ran in
    shipped = next((venv / "lib").glob("python3*/site-packages/mig_conformance/cluster/local/tools"))
    for module in ("kubernetes", "etcd", "kwok"):
        assert (tools / module / "go.mod").read_bytes() == (shipped / module / "go.mod").read_bytes()
    bin_dir = tmp_path / "xdg" / "mig-conformance" / "k8s" / read_pins().kubernetes / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted([*(s.binary for s in STEPS), "kwok-stages.yaml"])
    again = subprocess.run([mig_conformance, "cluster", "install"], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    refused = subprocess.run([mig_conformance, "cluster", "install", "--regenerate"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "only in a checkout" in refused.stderr
