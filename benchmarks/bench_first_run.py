"""Benchmark: README's first command from a fresh clone, as a newcomer runs it.

    scripts/setup && .venv/bin/pytest --mig-cluster=sim --mig-report=mig-report

Target: the sim verdict in under 2 minutes (scripts/setup builds no control plane; its pip cache is the clone's
own .cache/pip, so every run starts cold). Clones the committed HEAD of a repository (default: this checkout) into
a temporary folder, runs the command there without the caller's MIG_* / PYTEST_* / pip variables, and prints the
time of each half, the verdict line, and whether the control plane was left unbuilt.
Run: .venv/bin/python benchmarks/bench_first_run.py [--source REPO] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

TARGET_S = 120.0
ROOT = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup"
SIM = ".venv/bin/pytest --mig-cluster=sim --mig-report=mig-report"


def timed(command: str, cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    return time.monotonic() - t0, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT), help="repository to clone (default: this checkout)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args()
    print(describe())
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MIG_", "PYTEST_", "PIP_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    folder = Path(tempfile.mkdtemp(prefix="first-run-"))
    clone = folder / "mig-conformance"
    try:
        subprocess.run(["git", "clone", "--quiet", args.source, str(clone)], check=True, timeout=600)
        head = subprocess.run(["git", "-C", str(clone), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, check=True).stdout.strip()
        print(f"clone of {args.source} at {head[:90]}")
        setup_s, setup = timed(SETUP, clone, env)
        print(f"{SETUP}: {setup_s:.1f} s (exit {setup.returncode})")
        if setup.returncode != 0:
            print(setup.stdout[-2000:] + setup.stderr[-2000:])
            return 1
        sim_s, sim = timed(SIM, clone, env)
        verdict = next((line for line in sim.stdout.splitlines() if line.startswith("verdict:")), "(no verdict line)")
        print(f"{SIM}: {sim_s:.1f} s (exit {sim.returncode}): {verdict}")
        built = (clone / ".cache" / "k8s").exists()
        print(f"control plane built by the first command: {'yes' if built else 'no'}")
        total = setup_s + sim_s
        met = total < TARGET_S and sim.returncode == 0 and verdict.startswith("verdict: Passed") and not built
        print(f"README's first command: {total:.1f} s to the sim verdict (target < {TARGET_S:.0f} s: "
              f"{'met' if met else 'NOT met'})")
        return 0 if met else 1
    finally:
        if args.keep:
            print(f"kept {clone}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
