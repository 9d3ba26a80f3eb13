"""`mig-conformance cluster up|status|down`: the usage errors (the round trip with a detached local cluster:
tests/control_plane/test_cli_cluster_up.py)."""

from __future__ import annotations

from pathlib import Path

from mig_conformance.cli import main
from mig_conformance.cluster import assets as assets_mod


def test_up_refuses_a_kubeconfig_it_did_not_write(tmp_path: Path, capsys) -> None:
    kc = tmp_path / "config"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    assert main(["cluster", "up", "--kubeconfig", str(kc)]) == 2
    assert "is not the kubeconfig of a local cluster" in capsys.readouterr().err
    assert kc.read_text() == "apiVersion: v1\nkind: Config\n"


def test_up_never_deletes_a_folder_it_did_not_write(tmp_path: Path, capsys) -> None:
    """`--kubeconfig X` keeps its state in X.d/: an unrelated X.d/ folder is refused, never removed."""
    (tmp_path / "config.d").mkdir()
    (tmp_path / "config.d" / "precious.conf").write_text("keep me")
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "config")]) == 2
    assert "config.d exists and is not the state folder of a local cluster" in capsys.readouterr().err
    assert (tmp_path / "config.d" / "precious.conf").read_text() == "keep me"


def test_a_corrupt_state_file_is_an_error_not_a_traceback(tmp_path: Path, capsys) -> None:
    (tmp_path / "kc.d").mkdir()
    (tmp_path / "kc.d" / "controlplane.json").write_text("{not json")
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "kc")]) == 2
    assert "controlplane.json cannot be read" in capsys.readouterr().err


def test_up_names_the_missing_binaries_and_the_install_command(tmp_path: Path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(assets_mod, "_repo_root", lambda: None)
    monkeypatch.setenv("MIG_K8S_ASSETS", str(empty))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty))
    monkeypatch.chdir(tmp_path)
    assert main(["cluster", "up", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert "etcd" in err and "kube-apiserver" in err
    assert "mig-conformance cluster install" in err and "point MIG_K8S_ASSETS at a folder" in err
    assert not (tmp_path / "kc.d").exists()


def test_up_rejects_a_bad_node_spec_before_starting_anything(tmp_path: Path, capsys) -> None:
    assert main(["cluster", "up", "--nodes", "p5.48xlarge,bogus", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert "--nodes 'p5.48xlarge,bogus'" in err and "'bogus': not an instance type" in err
    assert not (tmp_path / "kc.d").exists()


def test_down_and_status_without_a_cluster(tmp_path: Path, capsys) -> None:
    for verb in ("down", "status"):
        assert main(["cluster", verb, "--kubeconfig", str(tmp_path / "nothing")]) == 2
        assert "no local cluster" in capsys.readouterr().err


def test_up_rejects_a_bad_stack_before_starting_anything(tmp_path: Path, capsys) -> None:
    assert main(["cluster", "up", "--stack", "gpu-operator=v1.0.0", "--kubeconfig", str(tmp_path / "kc")]) == 2
    err = capsys.readouterr().err
    assert "gpu-operator v1.0.0 is not a release the kit knows" in err and "Traceback" not in err
    assert not (tmp_path / "kc.d").exists()
