"""Running the kit the way users do against a local control plane: a kubeconfig for the kit's ServiceAccount, pytest
subprocesses with `--mig-cluster=kubeconfig:kit`, and the checks that a run left nothing behind (pods, namespaces,
processes, changed node labels)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mig_conformance.k8s import labels as L
from mig_conformance.plugin.session import RUN_LABEL

#: The kubeconfig context of the kit's ServiceAccount.
CONTEXT = "kit"


def kit_kubeconfig(local: Any, path: Path) -> Path:
    """A user's kubeconfig whose context `kit` is the local cluster's mig-conformance ServiceAccount (its token)."""
    kit = yaml.safe_load((local.state_dir / "mig-conformance.kubeconfig").read_text())
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "local", "cluster": kit["clusters"][0]["cluster"]}],
           "users": [{"name": CONTEXT, "user": kit["users"][0]["user"]}],
           "contexts": [{"name": CONTEXT, "context": {"cluster": "local", "user": CONTEXT}}],
           "current-context": CONTEXT}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def start_pytest(folder: Path, kubeconfig: Path, *args: str, cluster: str = f"kubeconfig:{CONTEXT}",
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m pytest --mig-cluster=CLUSTER --mig-report=out ARGS` in `folder` (its own session, so its process
    group is its pid), output to folder/output.txt."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MIG_", "PYTEST_"))}
    if "MIG_K8S_ASSETS" in os.environ:  # a `local` run starts its own control plane
        environ["MIG_K8S_ASSETS"] = os.environ["MIG_K8S_ASSETS"]
    environ.update({"KUBECONFIG": str(kubeconfig), **(env or {})})
    folder.mkdir(parents=True, exist_ok=True)
    out = open(folder / "output.txt", "wb")  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                                 f"--mig-cluster={cluster}", "--mig-report=out", *args], cwd=folder, env=environ,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def run_pytest(folder: Path, kubeconfig: Path, *args: str, timeout: float = 300, **kw: Any) -> tuple[int, str]:
    """start_pytest and wait: (exit status, output)."""
    proc = start_pytest(folder, kubeconfig, *args, **kw)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"pytest run timed out:\n{output(folder)[-4000:]}") from None
    return code, output(folder)


def output(folder: Path) -> str:
    return (folder / "output.txt").read_text(errors="replace")


def run_id(folder: Path) -> str | None:
    """The run id from the report bundle (None when the run wrote none, e.g. a usage error)."""
    import json

    path = folder / "out" / "summary.json"
    return json.loads(path.read_text())["run_id"] if path.exists() else None


def _live(read: str) -> list[tuple[str, str]]:
    """(pid, text of /proc/PID/`read`) of every process still readable (NULs of cmdline turned into spaces)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found.append((proc.name, (proc / read).read_bytes().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                continue
    return found


def processes_in_group(pgid: int) -> list[str]:
    """Live processes of a process group (a run started with start_new_session has pgid == its pid)."""
    found = []
    for pid, stat in _live("stat"):
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            found.append(f"{pid}: {stat[:stat.rindex(')') + 1]}")
    return found


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (e.g. a run's state folder)."""
    return [f"{pid}: {cmdline[:160]}" for pid, cmdline in _live("cmdline") if text in cmdline]


def run_objects(local: Any, run: str | None = None) -> list[str]:
    """Namespaces and pods labelled with the run id (any run's when None), anywhere in the cluster."""
    selector = f"{RUN_LABEL}={run}" if run else RUN_LABEL
    with local.admin() as admin:
        found = [f"namespace {n['metadata']['name']}" for n in admin.list("Namespace", labelSelector=selector)]
        pods = admin.request("GET", "/api/v1/pods", query={"labelSelector": selector}).get("items", [])
    return found + [f"pod {p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods]


def node_labels(local: Any) -> dict[str, dict[str, str]]:
    """Every GPU node's labels, read with the admin identity."""
    with local.admin() as admin:
        return {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                for n in admin.list("Node", labelSelector=f"{L.GPU_PRESENT}=true")}


def eventually(fn: Callable[[], Any], want: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """fn() once it returns `want` (or its last value at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want or time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def settled_labels(local: Any, timeout: float = 60.0) -> dict[str, dict[str, str]]:
    """Node labels once mig-manager has a verdict on every GPU node (success or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        labels = node_labels(local)
        done = all(v.get(L.MIG_CONFIG_STATE) in ("success", "failed") for v in labels.values())
        if done or time.monotonic() >= deadline:
            return labels
        time.sleep(0.2)


def assert_left_nothing(local: Any, folder: Path, original_labels: dict[str, dict[str, str]],
                        pgid: int | None = None, timeout: float = 60.0) -> None:
    """The run's pods and namespaces are gone, none of its processes lives, node labels equal `original_labels`."""
    run = run_id(folder)  # None: refused before it started (a usage error): no object of any run may be there
    left = eventually(lambda: run_objects(local, run), [], timeout)
    assert left == [], f"the run left {left}"
    if pgid is not None:
        assert processes_in_group(pgid) == [], "processes of the run are left"
    assert processes_mentioning(str(folder)) == [], "processes of the run are left"
    labels = eventually(lambda: node_labels(local), original_labels, timeout)
    assert labels == original_labels, "node labels differ from before the run"
