"""End to end through pytest itself: the shipped suites on the sim backend, the report bundle, fixtures."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.slow  # pytest in a subprocess
def test_suites_collected_from_an_empty_folder_and_bundle_written(tester: pytest.Pytester) -> None:
    result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge,g5.xlarge", "--mig-report=out", "-p",
                                         "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*mig-conformance 0.1.0: cluster=sim:p5.48xlarge,g5.xlarge (from option)*",
                                 "*mig-conformance summary*", "*verdict: Passed*"])
    out = tester.path / "out"
    for name in ("summary.json", "junit.xml", "report.md", "report.html", "TARGET.yaml",
                 "evidence/nodes_before.json", "evidence/nodes_after.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "Passed"
    categories = set(summary["categories"])
    assert {"catalog", "single", "mixed", "all-balanced", "scheduling", "reconfiguration"} <= categories
    balanced = [t for t in summary["tests"] if t.get("category") == "all-balanced" and t["outcome"] == "passed"]
    assert balanced and balanced[0]["measured"]["allocatable"] == {
        "nvidia.com/mig-1g.10gb": 16, "nvidia.com/mig-2g.20gb": 8, "nvidia.com/mig-3g.40gb": 8}
    assert "<svg" in (out / "report.html").read_text()
    after = json.loads((out / "evidence/nodes_after.json").read_text())
    before = json.loads((out / "evidence/nodes_before.json").read_text())
    assert [n["labels"] for n in after] == [n["labels"] for n in before], "labels were not restored"


def test_users_own_tests_get_fixtures(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_mine="""
        from mig_conformance.k8s import labels as L

        def test_balanced(mig_nodes, mig_reconfigure, mig_expect, mig_pods):
            node = mig_nodes[0]
            done = mig_reconfigure(node, "all-balanced", "mixed")
            assert done.labels[L.MIG_CONFIG_STATE] == "success"
            want = mig_expect(done, "all-balanced", "mixed")
            assert done.allocatable["nvidia.com/mig-3g.40gb"] == want.allocatable["nvidia.com/mig-3g.40gb"] == 8
            pods = [mig_pods.create({"nvidia.com/mig-3g.40gb": 1}, node=node.name) for _ in range(9)]
            bound = [mig_pods.wait_bound(p) for p in pods[:8]]
            assert all(b.node == node.name for b in bound)
            extra = mig_pods.wait_unschedulable(pods[8])
            assert "Insufficient nvidia.com/mig-3g.40gb" in extra.message
    """)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_mine.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_failing_expectation_fails_the_run_and_the_verdict(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_bad="""
        def test_wrong(mig_nodes, mig_reconfigure, mig_record):
            node = mig_reconfigure(mig_nodes[0], "all-7g.80gb", "mixed")
            mig_record(category="custom", node=node.name, expected={"mig-7g.80gb": 9},
                       measured={"mig-7g.80gb": node.allocatable.get("nvidia.com/mig-7g.80gb")})
            assert node.allocatable.get("nvidia.com/mig-7g.80gb") == 9
    """)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--mig-report=out", "test_bad.py",
                              "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    assert summary["verdict"] == "Failed"
    assert "Failed" in (tester.path / "out" / "report.md").read_text()


@pytest.mark.slow  # a run of the catalog suite (in process) each, over a second
@pytest.mark.parametrize(("cluster", "label", "value", "message"), [
    ("sim:p5.48xlarge", "nvidia.com/gpu.count", "7",
     "*GFD gpu.count 7, expected 8 for 8 x H100-80GB (strategy mixed, nvidia.com/mig.config=all-disabled)*"),
    ("single", "nvidia.com/gpu.count", "8",
     "*GFD gpu.count 8, expected 56 for 8 x H100-80GB (strategy single, nvidia.com/mig.config=all-1g.10gb)*"),
    ("single", "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3",
     "*GFD product NVIDIA-H100-80GB-HBM3, expected NVIDIA-H100-80GB-HBM3-MIG-1g.10gb (strategy single)*"),
    ("sim:p5.48xlarge", "nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB",
     "*GFD product NVIDIA-A100-SXM4-80GB is not the H100-80GB the instance type implies*"),
], ids=["count-mixed", "count-single", "mig-suffix-single", "other-gpu"])
def test_the_catalog_suite_fails_on_gfd_labels_that_do_not_fit_the_node(tester: pytest.Pytester, cluster: str,
                                                                        label: str, value: str, message: str) -> None:
    """What GFD publishes is checked against the node: a label changed after GFD ran fails the catalog test (as GFD
    labelled them, the shipped suites pass: test_suites_collected_from_an_empty_folder_and_bundle_written)."""
    tester.makefile(".yaml", clusters="single:\n  backend: sim\n  nodes: p5.48xlarge\n  strategy: single\n"
                                      "  default_config: all-1g.10gb\n")
    tester.makeconftest(f"""
        import pytest

        @pytest.fixture(autouse=True)
        def gfd_label_changed(mig_cluster, mig_nodes):
            mig_cluster.set_node_label(mig_nodes[0].name, "{label}", "{value}")
    """)
    result = tester.runpytest(f"--mig-cluster={cluster}", "--mig-clusters-file=clusters.yaml", "-k",
                              "test_node_gpu_is_in_catalog", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_explicit_paths_win_over_suites(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_only="def test_one():\n    pass\n")
    result = tester.runpytest("--mig-cluster=sim", "test_only.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_collect_only_shows_readable_ids(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_all_balanced[[]sim-p5-48xlarge-0[[]p5.48xlarge[]][]]*"])


def test_disruptive_tests_skip_when_changes_are_not_allowed(tester: pytest.Pytester) -> None:
    tester.makeconftest("""
        import pytest
        from mig_conformance.plugin.hooks import session_key

        @pytest.hookimpl(trylast=True)
        def pytest_configure(config):
            session = config.stash[session_key]  # this session only: the class stays as it is for later runs
            session.__class__ = type("ReadOnlySession", (type(session),), {"allow_changes": property(lambda s: False)})
    """)
    tester.makepyfile(test_d="""
        import pytest

        @pytest.mark.mig_disruptive
        def test_changes(mig_cluster):
            mig_cluster.set_node_label("x", "y", "z")
    """)
    result = tester.runpytest("--mig-cluster=sim", "-rs", "test_d.py", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--mig-allow-reconfigure*"])


@pytest.mark.slow  # pytest in a subprocess
def test_xdist_run_gives_the_same_summary(tester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    args = ["--mig-cluster=sim:p5.48xlarge", "-p", "no:cacheprovider"]
    serial = tester.runpytest_subprocess(*args, "--mig-report=serial")
    parallel = tester.runpytest_subprocess(*args, "--mig-report=parallel", "-n", "2")
    assert serial.ret == parallel.ret == 0
    s = json.loads((tester.path / "serial" / "summary.json").read_text())
    p = json.loads((tester.path / "parallel" / "summary.json").read_text())
    assert s["totals"] == p["totals"] and s["categories"] == p["categories"]
    assert sorted(t["nodeid"] for t in s["tests"]) == sorted(t["nodeid"] for t in p["tests"])
    assert not list((tester.path / "parallel").glob("gw*")), "workers must not write report files"
    strip = ("date", "kit", "verdict", "run_id")  # the rest is the cluster, as a worker described it
    target = {k: v for k, v in yaml.safe_load((tester.path / "parallel" / "TARGET.yaml").read_text()).items()
              if k not in strip}
    assert target == {k: v for k, v in yaml.safe_load((tester.path / "serial" / "TARGET.yaml").read_text()).items()
                      if k not in strip}
    def evidence(run: str, name: str) -> list[dict]:
        return json.loads((tester.path / run / "evidence" / name).read_text())

    assert evidence("parallel", "nodes_before.json") == evidence("serial", "nodes_before.json")
    # after: the same labels (restored); resource names kubelet keeps at 0 depend on which tests the worker ran
    assert [n["labels"] for n in evidence("parallel", "nodes_after.json")] == \
        [n["labels"] for n in evidence("serial", "nodes_after.json")]


USER_FILE = """version: v1
mig-configs:
  inference:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7
  training:
    - devices: [0, 1, 2, 3]
      mig-enabled: false
    - devices: [4, 5, 6, 7]
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2
  a100-only:
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "7g.40gb": 1
"""


@pytest.mark.slow  # pytest in a subprocess
def test_custom_suite_one_test_per_config_and_the_cluster_config_comes_back(tester: pytest.Pytester) -> None:
    """The user's file has no all-balanced: suites after the custom one must see the cluster's own ConfigMap."""
    tester.makefile(".yaml", mine=USER_FILE)
    result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge", "--mig-config-file=mine.yaml",
                                         "--mig-report=out", "-p", "no:cacheprovider", "-rs")
    assert result.ret == 0, result.stdout.str()[-3000:]
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    custom = {t["nodeid"].split("[", 1)[1]: t for t in summary["tests"] if t["category"] == "custom"}
    assert set(custom) == {f"sim-p5-48xlarge-0[p5.48xlarge]-{c}]" for c in ("inference", "training", "a100-only")}
    inference = custom["sim-p5-48xlarge-0[p5.48xlarge]-inference]"]
    assert inference["outcome"] == "passed" and inference["config"] == "inference"
    assert inference["measured"]["allocatable"] == {"nvidia.com/mig-1g.10gb": 56}
    training = custom["sim-p5-48xlarge-0[p5.48xlarge]-training]"]
    assert training["measured"]["allocatable"] == {"nvidia.com/gpu": 4, "nvidia.com/mig-3g.40gb": 8}
    assert custom["sim-p5-48xlarge-0[p5.48xlarge]-a100-only]"]["outcome"] == "skipped"
    balanced = [t for t in summary["tests"] if t["category"] == "all-balanced"]
    assert [t["outcome"] for t in balanced] == ["passed"]


@pytest.mark.slow  # pytest in a subprocess
def test_custom_suite_installs_the_file_a_configmap_manifest_holds(tester: pytest.Pytester) -> None:
    """mig-manager hands the ConfigMap's text to mig-parted as it is: a manifest in there would fail every config."""
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"},
                "data": {"config.yaml": USER_FILE}}
    tester.makefile(".yaml", mine=yaml.safe_dump(manifest))
    result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge", "--mig-config-file=mine.yaml",
                                         "--mig-report=out", "-p", "no:cacheprovider", "-k", "custom")
    assert result.ret == 0, result.stdout.str()[-3000:]
    summary = json.loads((tester.path / "out" / "summary.json").read_text())
    outcomes = {t["nodeid"].split("]-", 1)[1].rstrip("]"): t["outcome"] for t in summary["tests"]
                if t["category"] == "custom"}
    assert outcomes == {"a100-only": "skipped", "inference": "passed", "training": "passed"}
    # what a manifest installed as the ConfigMap's text does: mig-manager fails the config, as the real one does
    from mig_conformance.cluster.sim.backend import SimCluster

    cluster = SimCluster("p5.48xlarge", allow_changes=True)
    node = cluster.list_gpu_nodes()[0].name
    cluster.set_mig_config(yaml.safe_dump(manifest))
    assert cluster.request_mig_config(node, "inference")
    assert cluster.get_node(node).labels["nvidia.com/mig.config.state"] == "failed"


def _render(raw: str) -> list[str]:
    """What a terminal shows: colours dropped, then per line carriage returns, save cursor (ESC 7), restore
    cursor (ESC 8) and erase to end of line (ESC [K) applied."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", raw).replace("\r\n", "\n")
    lines = []
    for line in text.split("\n"):
        cells: list[str] = []
        col = saved = 0
        for token in re.findall(r"\x1b7|\x1b8|\x1b\[K|.", line, re.S):
            if token == "\r":
                col = 0
            elif token == "\x1b7":
                saved = col
            elif token == "\x1b8":
                col = saved
            elif token == "\x1b[K":
                del cells[col:]
            else:
                cells[col:col + 1] = [token]
                col += 1
        lines.append("".join(cells).rstrip())
    return lines


@pytest.mark.slow  # pytest in a subprocess
def test_the_tty_status_line_never_overwrites_pytest_output(tester: pytest.Pytester) -> None:
    """On a terminal, long waits show a status line; pytest's progress lines must come out whole."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import subprocess
    import sys
    import termios

    tester.makefile(".yaml", clusters="slow:\n  backend: sim\n  nodes: p5.48xlarge\n  mig_manager_delay: 5\n")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # room for the whole status
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIG_", "PYTEST_"))}
    env.update(COLUMNS="200", LINES="24")  # the same size for shutil.get_terminal_size, which reads these first
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mig-cluster=slow",
                             "--mig-clusters-file=clusters.yaml", "-k", "balanced or single"],
                            cwd=tester.path, stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(60) == 0
    raw = b"".join(chunks).decode(errors="replace")
    assert "node sim-p5-48xlarge-0 mig.config=all-1g.10gb state=pending" in raw, "no status line was shown"
    assert re.search(r"state=pending \(waiting \d+s of 900s for node sim-p5-48xlarge-0 to apply", raw), raw[-2000:]
    shown = _render(raw)
    progress = [ln for ln in shown if ln.startswith(("test_", "../")) or ".py " in ln]
    assert progress, shown
    for line in progress:
        assert re.fullmatch(r"\S+\.py [.sFE]+\s+\[\s*\d+%\]", line), f"garbled progress line: {line!r}"
    assert not any("waiting for" in ln for ln in shown), "a status line was left on screen"


LEAKY = '''
import logging

URL = ("https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Credential=ASIAZZZZZZZZZZZZZZZZ%2F2026"
       "&X-Amz-Security-Token=IQoJsessiontokenvalue&X-Amz-Signature=0123456789abcdef")

def test_leaks(mig_record):
    logging.getLogger("x").warning("calling %s with aws_secret_access_key = wJalrXUtnFEMIsecretvalue", URL)
    print("Authorization: Bearer k8s-aws-v1.aHR0cHM6Ly9zdHM and key AKIAIOSFODNN7EXAMPLE")
    mig_record(category="catalog", measured={"token": "plain-token-value"}, expected={})
    assert False, f"client-key-data: LS0tLS1CRUdJTiBQUklWQVRF {URL}"
'''
SECRETS = ("ASIAZZZZZZZZZZZZZZZZ", "IQoJsessiontokenvalue", "0123456789abcdef", "wJalrXUtnFEMIsecretvalue",
           "aHR0cHM6Ly9zdHM", "AKIAIOSFODNN7EXAMPLE", "plain-token-value", "LS0tLS1CRUdJTiBQUklWQVRF")


@pytest.mark.slow  # pytest in a subprocess
def test_no_secret_reaches_any_file_of_the_bundle(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_leaky=LEAKY)
    tester.makeini("[pytest]\njunit_logging = all\n")
    result = tester.runpytest_subprocess("--mig-cluster=sim:p5.48xlarge", "--mig-report=out", "test_leaky.py",
                                         "-p", "no:cacheprovider")
    assert result.ret == 1
    files = [p for p in (tester.path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"junit.xml", "summary.json", "report.md", "report.html", "TARGET.yaml"}
    for path in files:
        text = path.read_text(errors="replace")
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"{path.name} holds {leaked}"
    assert "&lt;redacted&gt;" in (tester.path / "out" / "junit.xml").read_text() or \
        "<redacted>" in (tester.path / "out" / "junit.xml").read_text()
