"""Hostile input through the plugin (issue 10, items 1-3 and 6): every user file the run reads is bounded and ends in
a located usage error (exit 4), also under xdist; a missing extra is a usage error naming it; a crash of the kit is
exit 3, never 1 (which says the cluster or config failed) and never a traceback."""

from __future__ import annotations

import sys

import pytest

import mig_conformance.k8s.projection as projection
from mig_conformance.common.extras import install_hint

TRIVIAL = "def test_ok():\n    pass\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))

HOSTILE = {  # name: (content, what the one error line says after "<file>:<line>: ")
    "bomb": (BOMB.encode(), ":1: more than 100,000 values once aliases are expanded"),
    "recursive": (b"a: &a [*a]\n", ":1: an alias refers to a value that contains it (recursive alias)"),
    "merge": (b"a: &a {<<: *a}\n", ":1: a merge key (<<) merges a mapping that contains it (recursive alias)"),
    "deep": (b"[" * 990 + b"]" * 990 + b"\n", ":1: nested more than 64 levels deep"),
    "binary": (bytes(range(256)) * 4, ": not UTF-8 text (byte 0x80 at offset 128); a binary file?"),
    "huge": (b"# " + b"x" * (5 * 2**20), ": larger than 4 MiB; the kit reads at most that much"),
}


@pytest.fixture(autouse=True)
def trivial_test(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_trivial=TRIVIAL)


def _usage_error(result: pytest.RunResult, file: str, says: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err + result.stdout.str() and "Traceback" not in err
    lines = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: mig-conformance: {file}") and says in lines[0], err


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_hostile_config_file_is_a_located_usage_error(tester: pytest.Pytester, name: str, xdist: list[str]) -> None:
    content, says = HOSTILE[name]
    path = tester.path / f"{name}.yaml"
    path.write_bytes(content)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", f"--mig-config-file={path}", *xdist,
                              "test_trivial.py")
    _usage_error(result, str(path), says)


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_hostile_clusters_file_is_a_located_usage_error(tester: pytest.Pytester, name: str, xdist: list[str]) -> None:
    content, says = HOSTILE[name]
    path = tester.path / f"{name}-clusters.yaml"
    path.write_bytes(content)
    result = tester.runpytest("--mig-cluster=x", f"--mig-clusters-file={path}", *xdist, "test_trivial.py")
    _usage_error(result, str(path), says)


def test_a_clusters_entry_that_contains_itself(tester: pytest.Pytester) -> None:
    path = tester.path / "clusters.yaml"
    path.write_text("x: &a {backend: sim, nodes: *a}\n")
    for xdist in ([], ["-n", "2"]):
        result = tester.runpytest("--mig-cluster=x", f"--mig-clusters-file={path}", *xdist, "test_trivial.py")
        _usage_error(result, str(path), ":1: an alias refers to a value that contains it (recursive alias)")


@pytest.mark.parametrize(("cluster", "module", "extra"), [
    ("eks:prod@us-west-2", "botocore", "eks"),
    ("eks:prod@us-west-2", "boto3", "eks"),
    ("kubeconfig:foo", "kubernetes", "kube"),
    ("local", "kubernetes", "local"),
    ("local", "cryptography", "local"),
    ("kind:lab", "kubernetes", "kind"),
])
def test_a_backend_without_its_extra_is_a_usage_error(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                      cluster: str, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    result = tester.runpytest(f"--mig-cluster={cluster}", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err and "Traceback" not in err
    assert f"ERROR: mig-conformance: --mig-cluster {cluster} ({cluster.split(':')[0]} backend) needs the Python " \
           f"package {module}, which is not installed: {install_hint(extra)}" in err


CRASHING = """
def test_expect(mig_nodes, mig_expect):
    mig_expect(mig_nodes[0], "all-balanced")

def test_cluster_fails_a_check(mig_nodes):
    assert len(mig_nodes) == 99

def test_users_own_bug(mig_nodes):
    {}["x"]
"""


@pytest.mark.slow
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_crash_of_the_kit_in_a_test_exits_3_not_1(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                    xdist: list[str]) -> None:
    if not xdist:
        tester.makepyfile(test_crashing=CRASHING)
        monkeypatch.setattr(projection, "project_node", None)  # a bug: kit code calls what is not callable
        result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_crashing.py")
        crash = "TypeError: 'NoneType' object is not callable"
    else:  # workers cannot be patched: a kit function given what it cannot take crashes inside the kit
        tester.makepyfile(test_crashing=CRASHING.replace('"all-balanced"', '{"not": "a name"}'))
        result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge", "test_crashing.py", "-p",
                                             "no:cacheprovider", *xdist)
        crash = "TypeError: unhashable type: 'dict'"
    result.assert_outcomes(failed=3)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*= mig-conformance internal errors =*",
                                 f"internal error in test_crashing.py::test_expect (call): {crash}",
                                 "exit code 3: a bug in mig-conformance*MIG_CONFORMANCE_DEBUG=1*"])
    assert "test_users_own_bug" not in result.stdout.str().split("internal errors")[1].split("=====")[0]


@pytest.mark.slow
def test_failing_checks_and_users_bugs_alone_still_exit_1(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_crashing=CRASHING.replace("def test_expect", "def _not_a_test"))
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_crashing.py")
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "internal errors" not in result.stdout.str()


def test_a_crash_while_starting_the_run_is_one_line_and_exit_3(tester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import mig_conformance.plugin.session as session

    monkeypatch.setattr(session, "check_settings", None)  # a bug in the session's start
    monkeypatch.delenv("MIG_CONFORMANCE_DEBUG", raising=False)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_trivial.py")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err and "Traceback" not in err
    assert "mig-conformance: internal error while starting the run: TypeError: 'NoneType' object is not callable" \
           in err


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_config_file_with_a_byte_order_mark_is_read(tester: pytest.Pytester, codec: str) -> None:
    path = tester.path / "bom.yaml"
    path.write_bytes("version: v1\nmig-configs:\n  mine:\n    - devices: all\n      mig-enabled: false\n".encode(codec))
    tester.makepyfile(test_names="def test_names(mig_user_config):\n    assert mig_user_config.names == ['mine']\n")
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", f"--mig-config-file={path}", "test_names.py")
    result.assert_outcomes(passed=1)
