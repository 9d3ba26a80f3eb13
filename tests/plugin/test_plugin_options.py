"""pytester tests: every option works from the command line, the ini file and (where it has one) the env,
with the source shown in the report header; bad values are usage errors naming the value."""

from __future__ import annotations

import json

import pytest

from mig_conformance.plugin.settings import SETTINGS

TRIVIAL = "def test_ok():\n    pass\n"


@pytest.fixture(autouse=True)
def project_files(tester: pytest.Pytester) -> None:
    """In the folder of the shared `tester` (tests/conftest.py): a trivial test, a mig-parted file, a clusters file."""
    tester.makepyfile(test_trivial=TRIVIAL)
    tester.makefile(".yaml", **{"my-mig": "version: v1\nmig-configs:\n  a:\n    - devices: all\n"
                                          "      mig-enabled: false\n"})
    tester.makefile(".yaml", clusters="lab:\n  backend: sim\n  nodes: p4d.24xlarge\n")
    (tester.mkdir("ucat") / "instance-types.yaml").write_text(
        "instance_types:\n  x1.2xlarge: {gpu: H100-80GB, gpu_count: 1}\n", encoding="utf-8")  # a user catalog


VALUES = {
    "cluster": ("sim:p5.48xlarge", "cluster=sim:p5.48xlarge"),
    "clusters_file": ("clusters.yaml", "clusters_file=*clusters.yaml"),
    "config_file": ("my-mig.yaml", "config_file=*my-mig.yaml"),  # written by project_files
    "strategy": ("single", "strategy=single"),
    "instance_type": ("p5.48xlarge", "instance_type=p5.48xlarge"),
    "report": ("bundle", "report=*bundle"),
    "timeout": ("42", "timeout=42.0"),
    "allow_reconfigure": ("true", "allow_reconfigure=True"),  # a flag on the command line
    "expected_config_failures": ("a", "expected_config_failures=a"),  # names a config of my-mig.yaml
    "stack": ("gpu-operator=v25.3.4", "stack=gpu-operator=v25.3.4"),
    "catalog": ("ucat", "catalog=*ucat"),  # written by project_files
    "gpu_allocation": ("dra", "gpu_allocation=dra"),
}
NEEDS = {"expected_config_failures": "config_file"}  # a setting that is checked against another one


def test_every_setting_is_tested() -> None:
    assert set(VALUES) == {s.name for s in SETTINGS}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_option_from_command_line(tester: pytest.Pytester, name: str) -> None:
    spec = next(s for s in SETTINGS if s.name == name)
    value, shown = VALUES[name]
    given = spec.option if spec.kind == "bool" else f"{spec.option}={value}"
    args = [given] + ([] if name == "cluster" else ["--mig-cluster=sim"])
    args += [f"--mig-config-file={VALUES['config_file'][0]}"] if name in NEEDS else []
    result = tester.runpytest(*args, "test_trivial.py")
    result.stdout.fnmatch_lines([f"*{shown} (from option)*"])
    assert result.ret == 0


@pytest.mark.parametrize("name", sorted(VALUES))
def test_option_from_ini(tester: pytest.Pytester, name: str) -> None:
    spec = next(s for s in SETTINGS if s.name == name)
    value, shown = VALUES[name]
    lines = [f"{spec.ini} = {value}"] + ([] if name == "cluster" else ["mig_cluster = sim"])
    lines += [f"mig_config_file = {VALUES['config_file'][0]}"] if name in NEEDS else []
    tester.makeini("[pytest]\n" + "\n".join(lines) + "\n")
    result = tester.runpytest("test_trivial.py")
    result.stdout.fnmatch_lines([f"*{shown} (from ini)*"])
    assert result.ret == 0


@pytest.mark.parametrize("name", sorted(VALUES))
def test_option_from_env(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    spec = next(s for s in SETTINGS if s.name == name)
    value, shown = VALUES[name]
    monkeypatch.setenv(spec.env, value)
    if name != "cluster":
        monkeypatch.setenv("MIG_CLUSTER", "sim")
    if name in NEEDS:
        monkeypatch.setenv("MIG_CONFIG_FILE", VALUES["config_file"][0])
    result = tester.runpytest("test_trivial.py")
    result.stdout.fnmatch_lines([f"*{shown} (from env {spec.env})*"])


def test_option_beats_env_beats_ini(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    tester.makeini("[pytest]\nmig_cluster = sim\nmig_strategy = none\n")
    monkeypatch.setenv("MIG_STRATEGY", "single")
    result = tester.runpytest("test_trivial.py")
    result.stdout.fnmatch_lines(["*strategy=single (from env MIG_STRATEGY)*"])
    result = tester.runpytest("--mig-strategy=mixed", "test_trivial.py")
    result.stdout.fnmatch_lines(["*strategy=mixed (from option)*"])


def test_allow_reconfigure_from_ini_is_switched_off_by_the_negative_option(tester: pytest.Pytester,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tester.makeini("[pytest]\nmig_allow_reconfigure = true\n")
    monkeypatch.setenv("MIG_ALLOW_RECONFIGURE", "yes")
    result = tester.runpytest("--mig-cluster=sim", "--no-mig-allow-reconfigure", "test_trivial.py")
    result.stdout.fnmatch_lines(["*allow_reconfigure=False (from option)*",
                                 "*mig-conformance mode: sim (kit-owned cluster: reconfiguration allowed)*"])
    assert result.ret == 0


def test_help_works_whatever_the_environment_holds(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIG_STRATEGY", "bogus")
    result = tester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--mig-allow-reconfigure*", "*--no-mig-allow-reconfigure*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--mig-cluster=eks-prod"], "*unknown --mig-cluster 'eks-prod'*clusters file*does not exist*"),
    (["--mig-cluster=sim", "--mig-strategy=both"], "*mig_strategy must be one of none, single, mixed, got 'both'*"),
    (["--mig-cluster=sim", "--mig-timeout=soon"], "*mig_timeout must be a number of seconds, got 'soon'*"),
    *[(["--mig-cluster=sim", f"--mig-timeout={bad}"],
       f"*--mig-timeout: mig_timeout must be a finite number of seconds greater than 0, got '{bad}'*")
      for bad in ("nan", "NaN", "inf", "-inf", "0", "-5", "1e999")],
    (["--mig-cluster=sim:p5.48xlarge*10001"], "*sim:p5.48xlarge*10001: *10,001 nodes, more than the cap of 10,000*"),
    (["--mig-cluster=sim:p5.48xlarge*99999"], "*99,999 nodes, more than the cap of 10,000 nodes per fleet*"),
    (["--mig-cluster=eks:prod"], "*expected eks:CLUSTER@REGION*"),
    (["--mig-cluster=sim", "--mig-instance-type=p9.huge"], "*--mig-instance-type 'p9.huge' is not a known*"),
    (["--mig-cluster=sim", "--mig-config-file=/nonexistent/mig.yaml"], "*/nonexistent/mig.yaml*file not found*"),
    (["--mig-cluster=sim", "--mig-clusters-file=nope.yaml"], "*--mig-clusters-file: clusters file *nope.yaml does*"),
    (["--mig-cluster=sim:p9.bogus"], "*--mig-cluster sim:p9.bogus: *p9.bogus*"),
    (["--mig-cluster=sim:p5.48xlarge*0"], "*--mig-cluster sim:p5.48xlarge*0: *"),
    (["--mig-cluster=sim:p4d.24xlarge", "--mig-instance-type=p5.48xlarge"],
     "*cluster sim:p4d.24xlarge: none of its 1 GPU node(s) match*p5.48xlarge*instance types there: p4d.24xlarge*"),
    (["--mig-cluster=sim", "--mig-report=/proc/no-such/bundle"], "*--mig-report /proc/no-such/bundle: cannot create*"),
    (["--mig-cluster=kubeconfig:ctx", "--mig-allow-reconfigure", "-n", "2"],
     "*with --mig-allow-reconfigure, xdist workers would change the cluster-wide MIG strategy*"),
    (["--mig-cluster=kind:lab", "-n", "2"], "*a kind cluster cannot be shared by xdist workers*"),
    (["--mig-cluster=kind:lab", "--dist=load", "--tx=2*popen"], "*a kind cluster cannot be shared by xdist*"),
    (["--mig-cluster=sim", "--mig-stack=cuda=12.0"], "*--mig-stack: unknown stack component 'cuda'*"),
    (["--mig-cluster=sim", "--mig-stack=device-plugin=v0.12.0"],
     "*option --mig-stack: device plugin v0.12.0 is older than the oldest release the kit models*"),
    (["--mig-cluster=sim", "--mig-stack=gpu-operator=v23.9.0"],
     "*option --mig-stack: gpu-operator v23.9.0 is not a release the kit knows*choose mig-manager= too*"),
])
def test_bad_values_are_usage_errors(tester: pytest.Pytester, args: list[str], message: str) -> None:
    result = tester.runpytest(*args, "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(("where", "value"), [("env", "nan"), ("ini", "-1"), ("env", "inf")])
def test_a_bad_timeout_names_its_source(tester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str,
                                        value: str) -> None:
    if where == "env":
        monkeypatch.setenv("MIG_TIMEOUT", value)
    else:
        tester.makeini(f"[pytest]\nmig_timeout = {value}\n")
    result = tester.runpytest("--mig-cluster=sim", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    origin = "env MIG_TIMEOUT" if where == "env" else "ini"
    result.stderr.fnmatch_lines([f"*{origin}: mig_timeout must be a finite number of seconds greater than 0, got "
                                 f"'{value}'*"])


def test_a_clusters_file_that_is_a_folder_says_so(tester: pytest.Pytester) -> None:
    (tester.path / "clusters.d").mkdir()
    result = tester.runpytest("--mig-cluster=sim", "--mig-clusters-file=clusters.d", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mig-clusters-file: */clusters.d is a folder, not a clusters file*"])
    assert "does not exist" not in result.stderr.str()


def test_a_report_path_that_is_a_file_says_so(tester: pytest.Pytester) -> None:
    (tester.path / "afile").write_text("mine\n")
    result = tester.runpytest("--mig-cluster=sim", "--mig-report=afile", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mig-report: */afile is a file, not a folder*"])
    assert "File exists" not in result.stderr.str() and (tester.path / "afile").read_text() == "mine\n"


@pytest.mark.parametrize("selected", ["sim", "lab"])
def test_a_clusters_file_entry_named_like_a_backend_is_refused(tester: pytest.Pytester, selected: str) -> None:
    """Before: `sim:` in the clusters file was silently passed over for the built-in sim backend."""
    tester.makefile(".yaml", **{"mig-clusters": "lab: {backend: sim}\nsim:\n  backend: sim\n  nodes: p5.48xlarge*4\n"})
    result = tester.runpytest(f"--mig-cluster={selected}", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mig-clusters.yaml:2, cluster 'sim': 'sim' is a reserved name: --mig-cluster=sim "
                                 "always means the built-in backend (sim[[]:SPEC])*rename it*"])


def test_a_report_folder_with_an_unrestored_journal_is_refused(tester: pytest.Pytester) -> None:
    """A killed run's journal is the only record of the cluster's original values: never overwritten."""
    journal = {"schema": 1, "run_id": "r-1", "cluster": "prod", "target": {"kind": "eks", "options": {}},
               "changes": [{"kind": "node-label", "target": "n1", "key": "nvidia.com/mig.config",
                            "original": "all-disabled"}]}
    (tester.path / "out").mkdir()
    (tester.path / "out" / "journal.json").write_text(json.dumps(journal))
    result = tester.runpytest("--mig-cluster=sim", "--mig-report=out", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*out: journal.json holds 1 change(s) of run r-1 on cluster prod that were never "
                                 "restored*mig-conformance restore */out/journal.json*"])
    assert json.loads((tester.path / "out" / "journal.json").read_text()) == journal
    # a sim run's journal has nothing to restore: the folder is reused
    journal["target"]["kind"] = "sim"
    (tester.path / "out" / "journal.json").write_text(json.dumps(journal))
    assert tester.runpytest("--mig-cluster=sim", "--mig-report=out", "test_trivial.py").ret == 0


def test_bad_ini_bool_is_usage_error(tester: pytest.Pytester) -> None:
    tester.makeini("[pytest]\nmig_cluster = sim\nmig_allow_reconfigure = maybe\n")
    result = tester.runpytest("test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mig_allow_reconfigure must be true or false, got 'maybe'*"])


def test_clusters_file_names_resolve(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", **{"mig-clusters": "ci:\n  backend: sim\n  nodes: p5.48xlarge*2\n"})
    result = tester.runpytest("--mig-cluster=ci", "test_trivial.py")
    result.stdout.fnmatch_lines(["*cluster=ci (from option)*"])
    assert result.ret == 0


def test_clusters_file_errors_name_file_line_and_key(tester: pytest.Pytester) -> None:
    tester.makefile(".yaml", **{"mig-clusters": "prod:\n  backend: eks\n  cluster: x\n  regoin: us-west-2\n"})
    result = tester.runpytest("--mig-cluster=prod", "test_trivial.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mig-clusters.yaml:4*key 'regoin'*unknown key 'regoin' for backend eks*"])


def test_no_cluster_no_header_and_fixtures_skip(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_fx="def test_uses(mig_cluster):\n    pass\n")
    result = tester.runpytest("-rs", "test_fx.py")
    assert "mig-conformance 0.1.0:" not in result.stdout.str()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*no cluster selected*"])


def test_a_run_that_validates_nothing_is_not_green(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_skips="import pytest\n\ndef test_later():\n    pytest.skip('not today')\n")
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_skips.py")
    result.stdout.fnmatch_lines(["*verdict: Failed (0 passed, 0 failed, 1 skipped, 0 errors)*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_collect_only_has_no_verdict(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--collect-only", "-q")
    assert "verdict:" not in result.stdout.str() and result.ret == 0
    assert "test_single_strategy[sim-p5-48xlarge-0[p5.48xlarge]]" in result.stdout.str()


def test_a_project_ini_with_testpaths_runs_its_own_tests(tester: pytest.Pytester) -> None:
    tester.makeini("[pytest]\nmig_cluster = sim:p5.48xlarge\ntestpaths = test_trivial.py\n")
    result = tester.runpytest()
    result.assert_outcomes(passed=1)
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "--collect-only", "-q")  # explicit: the suites
    assert "test_single_strategy" in result.stdout.str()


def test_markers_are_registered(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*mig_disruptive:*", "*mig_category(name):*"])
