"""Property tests: validate agrees with fit; arbitrary input never escapes as an uncaught exception and gives only
well-formed problems (located in the file, with a message and mig-parted's error); a valid file's configs come back
unchanged when written out again."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mig_conformance.gpus.catalog import load_catalog
from mig_conformance.mig.gojson import INT64_MAX
from mig_conformance.mig.placement import fit
from mig_conformance.mig.spec import VERSION, MigConfigEntry, Spec, parse_spec_text
from mig_conformance.validation import validate_node

CATALOG = load_catalog()
MIG_GPUS = sorted(g.key for g in CATALOG.mig_capable)


@st.composite
def gpu_and_devices(draw):
    gpu = CATALOG.get(draw(st.sampled_from(MIG_GPUS)))
    names = [p.name for p in gpu.gi_profiles] + [ci.name for p in gpu.gi_profiles for ci in p.compute_instances]
    counts = st.one_of(st.integers(1, 4), st.integers(5, 2**70))  # beyond int64 mig-parted rejects the file
    devices = draw(st.dictionaries(st.sampled_from(sorted(set(names))), counts, min_size=1, max_size=4))
    return gpu, devices


@settings(max_examples=150, deadline=None)
@given(gpu_and_devices())
def test_validate_agrees_with_fit(case) -> None:
    gpu, devices = case
    text = yaml.safe_dump({"version": "v1", "mig-configs": {"c": [
        {"devices": "all", "mig-enabled": True, "mig-devices": devices}]}})
    spec = parse_spec_text(text, "p.yaml")
    report = validate_node(spec, "c", [gpu])
    assert report.valid == fit(gpu, devices).fits
    if max(devices.values()) > INT64_MAX:
        assert not spec.valid and "64-bit" in spec.problems[0].message
    else:  # a well-formed file: no format problem, whatever the GPU can hold
        assert (spec.problems, spec.warnings, list(spec.configs)) == ([], [], ["c"])
        assert spec.configs["c"][0].mig_devices == devices
    assert_consistent(spec, "p.yaml")


def assert_consistent(spec: Spec, file: str) -> None:
    """What every parse guarantees, whatever the input: each problem (mig-parted rejects the file) is located in
    `file` and carries a message and mig-parted's own error, each warning a message and no mig-parted error; a file
    with problems is one mig-parted cannot use; a file without any is version v1 (or empty), and its configs, written
    out again, parse to the same configs."""
    for problem in spec.problems:
        assert problem.location.file == file, problem
        assert problem.message.strip() and problem.upstream, problem
        assert problem.location.line is None or problem.location.line >= 1, problem
    for warning in spec.warnings:
        assert warning.location.file == file and warning.message.strip() and warning.upstream is None, warning
    if spec.syntax_error:
        assert spec.problems and all(p.stage == "yaml" for p in spec.problems)
    if spec.problems:
        assert not spec.valid
        assert (spec.selection_error(None) or "").startswith("Error parsing config file: "), spec.problems[0]
        return
    assert spec.valid and spec.version in (None, VERSION)
    if spec.configs:
        doc = {"version": VERSION, "mig-configs": {name: [_written(e) for e in entries]
                                                    for name, entries in spec.configs.items()}}
        again = parse_spec_text(yaml.safe_dump(doc), file)
        assert again.problems == []
        assert {n: [_meaning(e) for e in es] for n, es in again.configs.items()} == \
            {n: [_meaning(e) for e in es] for n, es in spec.configs.items()}


def _written(entry: MigConfigEntry) -> dict[str, Any]:
    """An entry as a file holds it (a filter always as a list: a list's "" matches no GPU, a string "" is no filter)."""
    out: dict[str, Any] = {"devices": entry.devices if entry.devices == "all" else list(entry.devices),
                           "mig-enabled": entry.mig_enabled}
    if entry.mig_devices is not None:
        out["mig-devices"] = dict(entry.mig_devices)
    if entry.device_filter:
        out["device-filter"] = list(entry.device_filter)
    return out


def _meaning(entry: MigConfigEntry) -> tuple[Any, ...]:
    """What mig-parted does with an entry (not where it was in the file)."""
    return entry.device_filter, entry.devices, entry.mig_enabled, entry.mig_devices


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.integers(-(2**80), 2**80), st.floats(),
                    st.text(max_size=8),
                    st.sampled_from(["all", "v1", "1g.10gb", "3g.40gb", "0x233010DE", "mig-configs"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
        ["version", "mig-configs", "devices", "mig-enabled", "mig-devices", "device-filter"])), inner, max_size=4)),
    max_leaves=12)


PROFILES = ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb", "1c.3g.40gb", "1g.12gb", "4g.20gb", "1g.10gb+me", "9g.1gb"]
KEYS = ["version", "mig-configs", "devices", "mig-enabled", "mig-devices", "device-filter", "extra"]


@st.composite
def mig_parted_files(draw):
    """Files shaped like mig-parted's (many parse into configs), one mapping in eight given an arbitrary value."""
    def spoil(d: dict) -> dict:
        if draw(st.integers(0, 7)) == 0:
            d[draw(st.sampled_from(KEYS))] = draw(values)
        return d

    def entry() -> dict:
        enabled = draw(st.booleans())
        e = {"devices": draw(st.one_of(st.just("all"), st.lists(st.integers(0, 7), min_size=1, max_size=3))),
             "mig-enabled": enabled}
        if enabled:
            e["mig-devices"] = draw(st.dictionaries(st.sampled_from(PROFILES), st.integers(0, 8), max_size=3))
        elif draw(st.booleans()):
            e["mig-devices"] = {}
        if draw(st.booleans()):
            e["device-filter"] = draw(st.one_of(st.sampled_from(["0x233010DE", "0x20B010DE", "", "bogus"]),
                                                st.lists(st.sampled_from(["0x233010DE", "0x2237 10DE"]), max_size=2)))
        return spoil(e)

    names = draw(st.lists(st.text(max_size=6), min_size=1, max_size=3, unique=True))
    configs = {name: [entry() for _ in range(draw(st.integers(1, 3)))] for name in names}
    return spoil({"version": "v1", "mig-configs": configs})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(values, mig_parted_files()))
def test_arbitrary_documents_become_problems_not_exceptions(doc) -> None:
    spec = parse_spec_text(yaml.safe_dump(doc), "fuzz.yaml")
    assert_consistent(spec, "fuzz.yaml")
    gpus = [CATALOG.get("H100-80GB"), CATALOG.get("A10G-24GB")]
    for name in [n for n in spec.configs if n][:1]:  # an empty name selects as a missing -c does
        report = validate_node(spec, name, gpus)
        assert report.file == "fuzz.yaml" and report.valid == (not report.errors)
        assert report.errors[:len(spec.problems)] == spec.problems  # the file's problems come first
        if spec.problems:  # mig-parted rejects the file: nothing is planned per GPU
            assert not report.valid and report.gpus == []
        else:  # a usable config: one plan per GPU, every error a located problem with a message
            assert report.config == name and [g.index for g in report.gpus] == [0, 1]
            assert all(e.message.strip() and e.location.file == "fuzz.yaml" for e in report.errors)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    assert_consistent(parse_spec_text(text, "t.yaml"), "t.yaml")
