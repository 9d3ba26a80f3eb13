"""pytester tests: the stack profile is chosen once (option, env/ini, clusters file), the sim backend behaves as it,
and the header, the terminal summary, summary.json and TARGET.yaml show it with its sources."""

from __future__ import annotations

import json

import pytest
import yaml

CHECK = '''
def test_stack(mig_cluster, mig_expect, mig_reconfigure):
    print("CLUSTER", mig_cluster.stack.device_plugin)
    node = mig_cluster.list_gpu_nodes()[0]
    p = mig_expect(node, "all-1g.10gb.me", "mixed")
    print("EXPECTED", sorted(k for k in p.allocatable if k.startswith("nvidia.com/mig-")))
    after = mig_reconfigure(node, "all-1g.10gb.me", "mixed")
    print("GOT", sorted(k for k, v in after.allocatable.items() if k.startswith("nvidia.com/mig-") and v))
    print("MEMORY", after.labels.get("nvidia.com/mig-1g.10gb.me.memory"))
    print("VGPU", after.labels.get("nvidia.com/vgpu.present"))
'''


@pytest.fixture(autouse=True)
def project_files(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_stack=CHECK)


def test_the_chosen_stack_drives_the_sim_backend_and_the_expectations(tester: pytest.Pytester) -> None:
    """v25.3.4 ships device plugin v0.17.4: `1g.10gb+me` folds into `mig-1g.10gb` (unanchored patterns, before
    v0.20.0), in the cluster and in the session's expectation alike. Under driver 550 the memory of 1g.10gb+me is
    unknown (the R550 source shows 1g.10gb, 2g.20gb and 3g.40gb only), so its label is left out, never R580's."""
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--mig-stack=gpu-operator=v25.3.4,driver=550.54.15",
                              "--mig-report=out", "-s", "test_stack.py")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*mig-conformance stack: kubernetes v1.37.2 (default*gpu-operator v25.3.4 (option --mig-stack)*"
        "device-plugin v0.17.4 (gpu-operator v25.3.4 ships it*driver 550.54.15 (option --mig-stack)*",
        "EXPECTED ['nvidia.com/mig-1g.10gb']", "GOT ['nvidia.com/mig-1g.10gb']", "MEMORY None", "VGPU false",
        "*stack: *device-plugin v0.17.4 (gpu-operator v25.3.4 ships it*"])
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    assert summary["settings"]["stack.device_plugin"]["value"] == "v0.17.4"
    assert summary["settings"]["stack.driver"] == {"value": "550.54.15", "source": "option --mig-stack"}
    target = yaml.safe_load((tester.path / "out" / "TARGET.yaml").read_text())
    assert target["versions"]["device_plugin"] == "v0.17.4" and target["versions"]["mig_manager"] == "v0.12.3"
    assert target["stack"]["gpu_operator"] == {"value": "v25.3.4", "source": "option --mig-stack"}


def test_the_default_stack_is_the_newest_ga_release(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "-s", "test_stack.py")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*mig-conformance stack: *gpu-operator v26.7.0 (default*",
                                 "EXPECTED ['nvidia.com/mig-1g.10gb.me']", "GOT ['nvidia.com/mig-1g.10gb.me']",
                                 "MEMORY 9984"])


def test_the_clusters_file_key_and_the_option_layer(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", **{"mig-clusters": "lab:\n  backend: sim\n  nodes: p5.48xlarge\n"
                                                "  stack: {gpu-operator: v25.3.4, driver: 550.54.15}\n"})
    result = tester.runpytest("--mig-cluster=lab", "-s", "test_stack.py")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*gpu-operator v25.3.4 (clusters file *mig-clusters.yaml, cluster 'lab' key stack)*",
                                 "GOT ['nvidia.com/mig-1g.10gb']"])
    result = tester.runpytest("--mig-cluster=lab", "--mig-stack=device-plugin=v0.20.0", "-s", "test_stack.py")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*device-plugin v0.20.0 (option --mig-stack)*", "GOT ['nvidia.com/mig-1g.10gb.me']"])


def test_a_bad_clusters_file_stack_names_file_line_and_key(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", **{"mig-clusters": "lab:\n  backend: sim\n  stack: gpu-operator=latest\n"})
    result = tester.runpytest("--mig-cluster=lab", "test_stack.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mig-clusters.yaml:3*stack*gpu-operator version must look like v1.2.3*'latest'*"])
    assert "Traceback" not in result.stderr.str()
