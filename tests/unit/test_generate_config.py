"""The generated per-node config (mig-manager v0.14.0+) against mig-parted's builder rules.

Expected values are written from the upstream rules and tests (NVIDIA/mig-parted v0.15.0
`pkg/mig/builder/builder_test.go`, `balanced.go`, `discovery.go`; docs/reference/mig-parted.md#generated-config), not
from the implementation."""

from __future__ import annotations

import pytest

from mig_conformance.gpus.catalog import Catalog, GpuModel
from mig_conformance.gpus.device_ids import DeviceID
from mig_conformance.mig import generate as G
from mig_conformance.mig.spec import parse_installed_config
from mig_conformance.validation import validate_node

H100, A30, A100_80 = "0x233010DE", "0x20B710DE", "0x20B210DE"


def _gpu(catalog: Catalog, key: str) -> tuple[GpuModel, str]:
    model = catalog.get(key)
    return model, model.primary_variant.pci_device_id


def _flat(configs: G.Configs) -> dict[str, list[tuple[tuple[str, ...] | None, dict[str, int]]]]:
    return {name: [(e.device_filter, dict(e.mig_devices)) for e in entries] for name, entries in configs.items()}


# (GPU, all-<profile> -> max count, all-balanced) from the MIG user guide's tables as the upstream test lists them
PER_GPU = [
    ("H100-80GB", {"1g.10gb": 7, "1g.10gb+me": 1, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1,
                   "7g.80gb": 1}, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}),
    ("A100-40GB", {"1g.5gb": 7, "1g.5gb+me": 1, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1,
                   "7g.40gb": 1}, {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}),
    ("H200-141GB", {"1g.18gb": 7, "1g.18gb+me": 1, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1,
                    "7g.141gb": 1}, {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1}),
    ("B200-180GB", {"1g.23gb": 7, "1g.23gb+me": 1, "1g.45gb": 4, "2g.45gb": 3, "3g.90gb": 2, "4g.90gb": 1,
                    "7g.180gb": 1}, {"1g.23gb": 2, "2g.45gb": 1, "3g.90gb": 1}),
    # the A30 list is mig-parted's fixed one (NVML reports wrong counts there); largest G 4 -> the 4-slot formula
    ("A30-24GB", {"1g.6gb": 4, "1g.6gb+me": 1, "2g.12gb": 2, "2g.12gb+me": 1, "4g.24gb": 1},
     {"1g.6gb": 2, "2g.12gb": 1}),
    # RTX PRO 6000: +gfx, +me.all and -me variants get configs of their own, all-balanced uses base profiles only
    ("RTXPRO6000-96GB", {"1g.24gb": 4, "1g.24gb+me": 1, "1g.24gb+gfx": 4, "1g.24gb+me.all": 1, "1g.24gb-me": 4,
                         "2g.48gb": 2, "2g.48gb+gfx": 2, "2g.48gb+me.all": 1, "2g.48gb-me": 2, "4g.96gb": 1,
                         "4g.96gb+gfx": 1}, {"1g.24gb": 2, "2g.48gb": 1}),
]


@pytest.mark.parametrize(("key", "profiles", "balanced"), PER_GPU, ids=[p[0] for p in PER_GPU])
def test_one_gpu_type(catalog: Catalog, key: str, profiles: dict[str, int], balanced: dict[str, int]) -> None:
    configs = _flat(G.generate([_gpu(catalog, key)] * 8))
    expected = {"all-disabled": [(None, {})], "all-enabled": [(None, {})], "all-balanced": [(None, balanced)]}
    expected.update({"all-" + p.replace("+", "."): [(None, {p: n})] for p, n in profiles.items()})
    assert configs == expected


def test_builder_test_names(catalog: Catalog) -> None:
    """normalizeProfileName's cases: + becomes ., - stays."""
    names = set(G.generate([_gpu(catalog, "RTXPRO6000-96GB")]))
    assert {"all-1g.24gb.me", "all-1g.24gb.gfx", "all-1g.24gb.me.all", "all-1g.24gb-me", "all-4g.96gb.gfx"} <= names


def test_mixed_node_two_device_ids_grouped_by_max_count(catalog: Catalog) -> None:
    """A100-80GB + H100-80GB have equal tables: one entry per profile listing both IDs; all-balanced one per ID."""
    a100 = catalog.get("A100-80GB")
    configs = _flat(G.generate([(a100, A100_80), _gpu(catalog, "H100-80GB")]))
    assert configs["all-1g.10gb"] == [((A100_80, H100), {"1g.10gb": 7})]
    assert configs["all-7g.80gb"] == [((A100_80, H100), {"7g.80gb": 1})]
    assert configs["all-balanced"] == [((A100_80,), {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}),
                                       ((H100,), {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1})]
    assert configs["all-disabled"] == [(None, {})]  # the base configs never carry a filter


def test_mixed_node_different_profiles(catalog: Catalog) -> None:
    configs = _flat(G.generate([_gpu(catalog, "H100-80GB"), _gpu(catalog, "A30-24GB")]))
    assert configs["all-1g.6gb"] == [((A30,), {"1g.6gb": 4})]
    assert configs["all-1g.10gb"] == [((H100,), {"1g.10gb": 7})]
    assert configs["all-balanced"] == [((A30,), {"1g.6gb": 2, "2g.12gb": 1}),
                                       ((H100,), {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1})]


def test_same_profile_different_max_counts() -> None:
    """builder_test.go 'same profile different max counts creates multiple entries' (no 2g: no all-balanced)."""
    devices = [[G.Discovered("1g.10gb", 7, "0x20B510DE", 1, True)], [G.Discovered("1g.10gb", 4, "0x20B210DE", 1, True)]]
    configs = _flat(G.build(devices))
    assert configs["all-1g.10gb"] == [(("0x20B210DE",), {"1g.10gb": 4}), (("0x20B510DE",), {"1g.10gb": 7})]
    assert "all-balanced" not in configs


def test_balanced_prefers_highest_max_count() -> None:
    """1g.10gb (7) over 1g.20gb (4), whatever order discovery lists them in; base profiles only."""
    d = "0x233010DE"
    devices = [[G.Discovered("1g.20gb", 4, d, 1, True), G.Discovered("1g.10gb+me", 9, d, 1, False),
                G.Discovered("1g.10gb", 7, d, 1, True), G.Discovered("2g.20gb", 3, d, 2, True),
                G.Discovered("3g.40gb", 2, d, 3, True), G.Discovered("7g.80gb", 1, d, 7, True)]]
    assert _flat(G.build(devices))["all-balanced"] == [(None, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1})]
    without_3g = [[p for p in devices[0] if p.g != 3]]
    assert "all-balanced" not in G.build(without_3g)  # missing a G of the formula: left out


def test_discovery_errors(catalog: Catalog) -> None:
    with pytest.raises(G.NoMigCapableDevices):
        G.generate([_gpu(catalog, "L4-24GB")])
    with pytest.raises(G.NoProfilesDiscovered):
        G.checked([], 2)


H100_YAML = """\
version: v1
mig-configs:
  all-1g.10gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      1g.10gb: 7
  all-1g.10gb.me:
  - devices: all
    mig-enabled: true
    mig-devices:
      1g.10gb+me: 1
  all-1g.20gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      1g.20gb: 4
  all-2g.20gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      2g.20gb: 3
  all-3g.40gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      3g.40gb: 2
  all-4g.40gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      4g.40gb: 1
  all-7g.80gb:
  - devices: all
    mig-enabled: true
    mig-devices:
      7g.80gb: 1
  all-balanced:
  - devices: all
    mig-enabled: true
    mig-devices:
      1g.10gb: 2
      2g.20gb: 1
      3g.40gb: 1
  all-disabled:
  - devices: all
    mig-enabled: false
    mig-devices: {}
  all-enabled:
  - devices: all
    mig-enabled: true
    mig-devices: {}
"""


def test_yaml_is_what_yaml_v2_writes(catalog: Catalog) -> None:
    """Keys in yaml.v2's order (digits before letters, numbers by value), indentless sequences, flow filters."""
    assert G.to_yaml(G.generate([_gpu(catalog, "H100-80GB")] * 8)) == H100_YAML
    text = G.to_yaml(G.generate([_gpu(catalog, "H100-80GB"), _gpu(catalog, "A30-24GB")]))
    assert '  - device-filter: ["0x20B710DE"]\n    devices: all\n' in text
    assert text.index("all-1g.6gb:") < text.index("all-1g.10gb:") < text.index("all-2g.12gb:")


def test_yaml_v2_key_order() -> None:
    keys = ["all-balanced", "all-1g.10gb", "all-1g.5gb", "all-1g.24gb.gfx", "all-1g.24gb-me", "all-disabled",
            "all-10g.1gb", "all-1g.10gb.me"]
    # the first difference decides: 'all-10g' < 'all-1g.' because a digit ('0') sorts before a letter ('g')
    assert G.yaml_v2_sorted(keys) == ["all-10g.1gb", "all-1g.5gb", "all-1g.10gb", "all-1g.10gb.me", "all-1g.24gb-me",
                                      "all-1g.24gb.gfx", "all-balanced", "all-disabled"]


def test_json_is_what_encoding_json_writes(catalog: Catalog) -> None:
    doc = G.as_go_json(G.generate([_gpu(catalog, "H100-80GB"), _gpu(catalog, "A30-24GB")]))
    assert list(doc) == ["version", "mig-configs"]
    assert doc["mig-configs"]["all-disabled"] == [{"devices": "all", "mig-enabled": False, "mig-devices": None}]
    assert doc["mig-configs"]["all-enabled"] == [{"devices": "all", "mig-enabled": True, "mig-devices": {}}]
    assert list(doc["mig-configs"]["all-1g.10gb"][0]) == ["device-filter", "devices", "mig-enabled", "mig-devices"]
    assert list(doc["mig-configs"]) == sorted(doc["mig-configs"])  # byte order, unlike the YAML


def test_node_file_header_and_parses(catalog: Catalog) -> None:
    text = G.node_file(G.generate([_gpu(catalog, "H100-80GB")]))
    assert text.startswith("# DO NOT EDIT: Auto-generated MIG configuration from GPU hardware.\n"
                           '# Generated by "nvidia-mig-manager".\nversion: v1\n')
    spec = parse_installed_config(text, "ConfigMap n-mig-config")
    assert spec.valid and "all-1g.10gb.me" in spec.configs


def test_every_generated_config_applies_on_its_gpu(catalog: Catalog) -> None:
    """Every generated config of every MIG-capable catalog GPU validates there (mig-parted's apply and assert on the
    simulated node), also on a mixed node."""
    failures = []
    for gpu in catalog.mig_capable:
        device = gpu.primary_variant.pci_device_id
        text = G.to_yaml(G.generate([(gpu, device)]))
        spec = parse_installed_config(text, gpu.key)
        assert spec.valid, spec.problems
        for name in spec.configs:
            report = validate_node(spec, name, [gpu] * 2, gpu.key, [DeviceID.parse(device)] * 2)
            if not report.valid:
                failures.append((gpu.key, name, [e.message for e in report.errors]))
    assert failures == []


def test_mixed_node_configs_apply(catalog: Catalog) -> None:
    h100, a30 = _gpu(catalog, "H100-80GB"), _gpu(catalog, "A30-24GB")
    spec = parse_installed_config(G.to_yaml(G.generate([h100, a30])), "mixed")
    ids = [DeviceID.parse(H100), DeviceID.parse(A30)]
    for name in ("all-balanced", "all-1g.10gb", "all-1g.6gb", "all-disabled"):
        report = validate_node(spec, name, [h100[0], a30[0]], "mixed", ids)
        assert report.valid, (name, [e.message for e in report.errors])


# ---- the CLI -----------------------------------------------------------------------------------------------------
def test_cli_instance_type_prints_the_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.cli import main

    assert main(["generate-config", "--instance-type", "p5.48xlarge"]) == 0
    assert capsys.readouterr().out == H100_YAML
    assert main(["generate-config", "--instance-type", "p5.48xlarge", "--driver", "580.159.04"]) == 0
    assert capsys.readouterr().out == H100_YAML
    assert main(["generate-config", "--instance-type", "p5.48xlarge", "--header"]) == 0
    assert capsys.readouterr().out == G.HEADER + H100_YAML


def test_cli_mixed_node_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mig_conformance.cli import main

    assert main(["generate-config", "--gpu", "H100-80GBx4", "--gpu", "A30-24GBx4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mig-configs"]["all-1g.6gb"] == [{"device-filter": [A30], "devices": "all", "mig-enabled": True,
                                                 "mig-devices": {"1g.6gb": 4}}]
    assert [e["device-filter"] for e in doc["mig-configs"]["all-balanced"]] == [[A30], [H100]]


def test_cli_board_variant_uses_its_own_device_id(capsys: pytest.CaptureFixture[str]) -> None:
    from mig_conformance.cli import main

    assert main(["generate-config", "--gpu", "H100-PCIE-80GB", "--gpu", "H100-80GB"]) == 0
    assert '["0x233010DE", "0x233110DE"]' in capsys.readouterr().out  # equal tables: one entry for both IDs


@pytest.mark.parametrize(("argv", "code", "message"), [
    ([], 2, "give exactly one of --gpu"),
    (["--gpu", "H100-80GB", "--instance-type", "p5.48xlarge"], 2, "give exactly one of --gpu"),
    (["--instance-type", "nope"], 2, "unknown instance type 'nope'"),
    (["--gpu", "NoSuchGPU"], 2, "NoSuchGPU"),
    (["--instance-type", "g6.xlarge"], 1, "no MIG-capable devices found on the system"),
    (["--instance-type", "p5.48xlarge", "--driver", "535.183.01"], 1, "reads the static default-mig-parted-config"),
])
def test_cli_errors(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str) -> None:
    import json

    from mig_conformance.cli import main

    assert main(["generate-config", *argv]) == code
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and "Traceback" not in captured.err
    assert main(["generate-config", *argv, "--json"]) == code
    assert message in json.loads(capsys.readouterr().out)["error"]
