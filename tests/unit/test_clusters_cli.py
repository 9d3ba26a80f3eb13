"""`mig-conformance clusters list|show` and the clusters-file schema (errors name file, line and key)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mig_conformance.cli import main
from mig_conformance.cluster.registry import open_cluster
from mig_conformance.cluster.targets import load_clusters_file, resolve_target
from mig_conformance.common.errors import InputError

GOOD = """\
eks-prod:
  backend: eks
  cluster: prod-gpu
  region: us-west-2
  profile: gpu-admin
  description: production GPU fleet
lab: {backend: kind, name: mig-lab, config: kind.yaml, keep: true, nodes: "p5.48xlarge*2"}
staging:
  backend: kubeconfig
  context: staging-admin
  kubeconfig: kube/staging.yaml
  namespace: nvidia-gpu-operator
ci: {backend: local, nodes: "p5.48xlarge*2"}
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "mig-clusters.yaml"
    path.write_text(GOOD)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_name_backend_target_and_description(good: Path, capsys) -> None:
    code, out, _ = _run(capsys, "clusters", "list", "--clusters-file", str(good))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "BACKEND", "TARGET", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["eks-prod", "lab", "staging", "ci"]
    assert "EKS cluster prod-gpu in us-west-2, profile gpu-admin" in rows["eks-prod"]
    assert rows["eks-prod"].rstrip().endswith("production GPU fleet")
    assert f"kind cluster mig-lab from {good.parent / 'kind.yaml'}, kept" in rows["lab"]
    assert f"context staging-admin of {good.parent / 'kube/staging.yaml'}" in rows["staging"]
    assert "local nodes p5.48xlarge*2" in rows["ci"]


def test_list_default_file_comes_from_the_environment(good: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MIG_CLUSTERS_FILE", str(good))
    code, out, _ = _run(capsys, "clusters", "list")
    assert code == 0 and "eks-prod" in out


def test_list_default_file_in_the_current_folder(good: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MIG_CLUSTERS_FILE", raising=False)
    monkeypatch.chdir(good.parent)
    code, out, _ = _run(capsys, "clusters", "list")
    assert code == 0 and "staging" in out


def test_show_prints_every_setting_as_yaml(good: Path, capsys) -> None:
    code, out, _ = _run(capsys, "clusters", "show", "staging", "--clusters-file", str(good))
    assert code == 0
    assert out.startswith(f"# from {good}\n")
    doc = yaml.safe_load(out)
    assert doc == {"staging": {"backend": "kubeconfig", "context": "staging-admin",
                               "kubeconfig": str(good.parent / "kube" / "staging.yaml"),
                               "namespace": "nvidia-gpu-operator"}}


def test_show_kind_entry_keeps_types(good: Path, capsys) -> None:
    code, out, _ = _run(capsys, "clusters", "show", "lab", "--clusters-file", str(good))
    assert code == 0
    want = {"backend": "kind", "name": "mig-lab", "config": str(good.parent / "kind.yaml"), "keep": True,
            "nodes": "p5.48xlarge*2"}
    assert yaml.safe_load(out)["lab"] == want


def test_show_unknown_name_is_a_usage_error_listing_names(good: Path, capsys) -> None:
    code, out, err = _run(capsys, "clusters", "show", "prod", "--clusters-file", str(good))
    assert code == 2 and out == ""
    assert "no cluster named 'prod'" in err and "ci, eks-prod, lab, staging" in err


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "clusters", "list", "--clusters-file", str(tmp_path / "nope.yaml"))
    assert code == 2 and f"clusters file {tmp_path / 'nope.yaml'} does not exist" in err


def test_empty_file_lists_nothing(tmp_path: Path, capsys) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# nothing yet\n")
    code, out, _ = _run(capsys, "clusters", "list", "--clusters-file", str(path))
    assert code == 0 and out.strip() == f"no clusters in {path}"


@pytest.mark.parametrize(("text", "line", "key", "message"), [
    ("a:\n  backend: eks\n  cluster: x\n  region: us-west-2\nb:\n  backend: kube\n", 6, "backend",
     "unknown backend 'kube'"),
    ("a:\n  backend: kind\n  config: kind.yaml\n", 2, "name", "missing required key 'name' for backend kind"),
    ("a:\n  backend: kind\n  name: lab\n  keep: maybe\n", 4, "keep", "'keep' must be a boolean"),
    ("a:\n  backend: kubeconfig\n  context: c\n  region: us-west-2\n", 4, "region", "unknown key 'region'"),
    ("a:\n  backend: local\n  node_selector: {x: 1}\n", 3, "node_selector", "node_selector must map"),
    ("a: just-a-string\n", 1, None, "must be a mapping"),
])
def test_schema_errors_name_file_line_and_key(tmp_path: Path, capsys, text: str, line: int, key: str | None,
                                              message: str) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    code, out, err = _run(capsys, "clusters", "list", "--clusters-file", str(path))
    assert code == 2 and out == ""
    assert f"{path}:{line}" in err, err
    if key:
        assert f"key '{key}'" in err, err
    assert message in err
    assert "Traceback" not in err


def test_yaml_syntax_error_is_located(tmp_path: Path, capsys) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text("a:\n  backend: kind\n   name: [\n")
    code, _, err = _run(capsys, "clusters", "show", "a", "--clusters-file", str(path))
    assert code == 2 and str(path) in err and "Traceback" not in err


def test_relative_paths_are_relative_to_the_clusters_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = sub / "clusters.yaml"
    path.write_text("k: {backend: kind, name: lab, config: kind.yaml, kind_bin: bin/kind, kubectl_bin: kubectl}\n"
                    "s: {backend: kubeconfig, context: c, kubeconfig: /abs/kc}\n")
    targets = load_clusters_file(path)
    assert targets["k"].options["config"] == str(sub / "kind.yaml")
    assert targets["k"].options["kind_bin"] == str(sub / "bin" / "kind")
    assert targets["k"].options["kubectl_bin"] == "kubectl"  # a bare name is looked up on PATH
    assert targets["s"].options["kubeconfig"] == "/abs/kc"


def test_kind_target_arg_is_the_cluster_name_even_with_nodes(good: Path) -> None:
    target = resolve_target("lab", good)
    assert (target.kind, target.arg, target.options["nodes"]) == ("kind", "mig-lab", "p5.48xlarge*2")


def test_registry_rejects_unknown_backend_options(tmp_path: Path) -> None:
    from mig_conformance.cluster.base import ClusterError

    with pytest.raises(ClusterError, match=r"kubeconfig backend: unknown option\(s\) bogus"):
        open_cluster("kubeconfig:ctx", bogus=1)
    with pytest.raises(ClusterError, match=r"kind backend: unknown option\(s\) bogus"):
        open_cluster("kind:lab", bogus=1)


def test_commands_are_registered(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "clusters" in out and "restore" in out


def test_every_option_of_the_schema_reaches_a_parameter_of_its_backend() -> None:
    """One schema (cluster/targets.py): every option a backend accepts there is a parameter of what its opener
    calls, so a key added to the schema but not to the backend fails here."""
    import inspect

    from mig_conformance.cluster.eks.backend import EksCluster
    from mig_conformance.cluster.kind import KindCluster
    from mig_conformance.cluster.kubeconfig import KubeconfigCluster
    from mig_conformance.cluster.local.backend import LocalCluster
    from mig_conformance.cluster.sim.backend import SimCluster
    from mig_conformance.cluster.targets import backend_options

    def params(fn) -> set[str]:
        return set(inspect.signature(fn).parameters)

    handled = {  # options the opener consumes itself before calling the backend
        "sim": params(SimCluster), "local": params(LocalCluster.start) | {"kubeconfig"},
        "kind": params(KindCluster.open) | {"name"}, "kubeconfig": params(KubeconfigCluster.open) | {"kubeconfig"},
        "eks": params(EksCluster.open) | {"cluster", "region"}}
    for backend, accepted in handled.items():
        missing = backend_options(backend) - accepted
        assert not missing, f"{backend}: the schema accepts {sorted(missing)}, the backend has no such parameter"


@pytest.mark.parametrize(("text", "message"), [
    ("p:\n  backend: eks\n  cluster: 'bad name!'\n  region: us-west-2\n",
     "mig-clusters.yaml:3, cluster 'p', key 'cluster': 'bad name!' is not a valid EKS cluster name"),
    ("p:\n  backend: eks\n  cluster: prod\n  region: nowhere\n",
     "mig-clusters.yaml:4, cluster 'p', key 'region': 'nowhere' is not an AWS region like us-west-2"),
    ("p:\n  backend: kind\n  name: Bad_Name\n", "mig-clusters.yaml:3, cluster 'p', key 'name': kind cluster name"),
    ("p:\n  backend: local\n  nodes: p5.48xlarge\n  config_map: mine\n",
     "mig-clusters.yaml:4, cluster 'p', key 'config_map': unknown key 'config_map' for backend local"),
    ("p:\n  backend: sim\n  mig_manager_delay: soon\n",
     "mig-clusters.yaml:3, cluster 'p', key 'mig_manager_delay': 'mig_manager_delay' must be"),
])
def test_clusters_file_values_are_checked_where_they_are_written(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mig-clusters.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_clusters_file(path)
    assert message in str(info.value)


def test_sim_settings_from_the_clusters_file_reach_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "mig-clusters.yaml"
    path.write_text("slow:\n  backend: sim\n  nodes: p5.48xlarge\n  mig_manager_delay: 30\n  gpu_taint: true\n")
    cluster = open_cluster(resolve_target("slow", path), allow_changes=True)
    node = cluster.list_gpu_nodes()[0]
    assert cluster.delay == 30.0 and node.taints
    cluster.request_mig_config(node.name, "all-balanced")
    assert cluster.get_node(node.name).labels["nvidia.com/mig.config.state"] == "pending"


@pytest.mark.parametrize(("name", "line"), [("sim", 2), ("local", 2), ("kind", 2), ("kubeconfig", 2), ("eks", 2),
                                            ("'eks:prod@us-west-2'", 2), ("' sim:p5.48xlarge'", 2)])
def test_an_entry_named_like_a_built_in_backend_is_refused(tmp_path: Path, capsys, name: str, line: int) -> None:
    """`--mig-cluster=sim` always means the built-in backend: an entry of that name could never be selected."""
    path = tmp_path / "mig-clusters.yaml"
    path.write_text(f"lab: {{backend: sim}}\n{name}:\n  backend: sim\n  nodes: p5.48xlarge*4\n")
    shown = name.strip("'")
    with pytest.raises(InputError) as info:
        load_clusters_file(path)
    assert f"{path}:{line}, cluster '{shown}': '{shown}' is a reserved name: --mig-cluster={shown.strip()} always " \
           "means the built-in backend" in str(info.value)
    with pytest.raises(InputError, match="is a reserved name"):  # also when the built-in target is selected
        resolve_target(shown.strip(), path)
    code, _, err = _run(capsys, "clusters", "list", "--clusters-file", str(path))
    assert code == 2 and "is a reserved name" in err and "Traceback" not in err


def test_a_built_in_target_ignores_other_problems_of_a_clusters_file_it_does_not_use(tmp_path: Path) -> None:
    path = tmp_path / "mig-clusters.yaml"
    path.write_text("prod: {backend: eks, cluster: x, regoin: us-west-2}\n")
    assert resolve_target("sim:p5.48xlarge", path).kind == "sim"
    path.write_text("not: [yaml\n")
    assert resolve_target("sim", path).kind == "sim"
