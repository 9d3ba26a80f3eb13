"""The versions of the GPU Operator stack that decide behaviour, and every behaviour rule keyed by one of them.

One table, each row with its upstream source: `RULES` (docs/versions.md renders it; a test keeps the two equal).
`OPERATOR_RELEASES` says which mig-manager, device plugin (= GFD) and default driver a GPU Operator release ships,
read from NVIDIA/gpu-operator `deployments/gpu-operator/values.yaml` at each tag. The modules that model a
component ask `since(rule, version)` instead of comparing version numbers themselves, so a rule's threshold and its
source live in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The components whose versions decide behaviour (StackProfile's fields, in this order).
COMPONENTS = ("kubernetes", "gpu_operator", "mig_manager", "device_plugin", "driver")
#: How each component is spelled in `--mig-stack` / the clusters-file `stack:` key.
SPELLINGS = {"kubernetes": "kubernetes", "gpu_operator": "gpu-operator", "mig_manager": "mig-manager",
             "device_plugin": "device-plugin", "driver": "driver"}

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")


def release(text: str, what: str = "version") -> tuple[int, int, int]:
    """(major, minor, patch) of `v0.17.0`, `v0.17.0-ubi9`, `v1.33.5-eks-113cf36` or `580.159.04`; ValueError
    naming `what` for anything else."""
    m = _RELEASE.match(text.strip())
    if not m:
        raise ValueError(f"{what} must look like v1.2.3 (or 580.159.04 for a driver), got '{text}'")
    return int(m[1]), int(m[2]), int(m[3] or 0)


def canonical(component: str, text: str) -> str:
    """The version as the kit writes it: `v0.17.0` (image suffixes such as `-ubi9` dropped), drivers as given."""
    major, minor, patch = release(text, f"{SPELLINGS.get(component, component)} version")
    if component == "driver":
        return text.strip()
    return f"v{major}.{minor}.{patch}"


@dataclass(frozen=True)
class OperatorRelease:
    """What one GPU Operator release deploys by default (Helm values)."""

    version: str
    mig_manager: str
    device_plugin: str  # the device plugin and GFD ship as one release since v0.15.0
    driver: str  # the driver container's default (`driver.version`)

    @property
    def source(self) -> str:
        return f"NVIDIA/gpu-operator deployments/gpu-operator/values.yaml @{self.version}"


def _releases(*rows: tuple[str, str, str, str]) -> dict[str, OperatorRelease]:
    return {r[0]: OperatorRelease(*r) for r in rows}


#: NVIDIA/gpu-operator deployments/gpu-operator/values.yaml at each tag (migManager.version, devicePlugin.version =
#: gfd.version, driver.version; image suffixes such as -ubi8 dropped). Read from the repository's tags.
OPERATOR_RELEASES = _releases(
    ("v24.3.0", "v0.7.0", "v0.15.0", "550.54.15"),
    ("v24.6.0", "v0.8.0", "v0.16.1", "550.90.07"),
    ("v24.6.1", "v0.8.0", "v0.16.1", "550.90.07"),
    ("v24.6.2", "v0.8.0", "v0.16.2", "550.90.07"),
    ("v24.9.0", "v0.10.0", "v0.17.0", "550.127.05"),
    ("v24.9.1", "v0.10.0", "v0.17.0", "550.127.08"),
    ("v24.9.2", "v0.10.0", "v0.17.0", "550.144.03"),
    ("v25.3.0", "v0.12.1", "v0.17.1", "570.124.06"),
    ("v25.3.1", "v0.12.1", "v0.17.2", "570.148.08"),
    ("v25.3.2", "v0.12.2", "v0.17.3", "570.148.08"),
    ("v25.3.3", "v0.12.3", "v0.17.4", "580.82.07"),
    ("v25.3.4", "v0.12.3", "v0.17.4", "580.82.07"),
    ("v25.10.0", "v0.13.0", "v0.18.0", "580.95.05"),
    ("v25.10.1", "v0.13.1", "v0.18.1", "580.105.08"),
    ("v26.3.0", "v0.14.0", "v0.19.0", "580.126.20"),
    ("v26.3.1", "v0.14.0", "v0.19.0", "580.126.20"),
    ("v26.3.2", "v0.14.2", "v0.19.2", "580.126.20"),
    ("v26.3.3", "v0.14.2", "v0.19.3", "580.126.20"),
    ("v26.7.0", "v0.15.0", "v0.20.0", "595.91.07"),
)
NEWEST_OPERATOR = "v26.7.0"

#: The device-plugin (and GFD) releases whose behaviour the kit models: from v0.15.0 (GFD joined the device plugin's
#: repository and ships with its version, NVIDIA/k8s-device-plugin commit b9fe486d8) to the newest, v0.20.x.
DEVICE_PLUGIN_MODELLED = ("v0.15.0", "v0.20.0")
#: The driver whose profile tables the catalog holds as its primary rows (NVML captures, tests/data/captures/).
CATALOG_DRIVER = "580.159.04"
#: The Kubernetes release the local backend builds (scripts/k8s-tools/kubernetes/go.mod: k8s.io/kubernetes v1.37.2).
LOCAL_KUBERNETES = "v1.37.2"


@dataclass(frozen=True)
class Rule:
    """One behaviour that changed at one version of one component."""

    id: str
    component: str  # one of COMPONENTS ("device_plugin" covers GFD: one release)
    since: str  # the first version with the new behaviour
    before: str
    after: str
    source: str
    modelled: str  # where the kit models it, or why it only records it

    def applies(self, version: str) -> bool:
        """Whether `version` of the component has the new behaviour."""
        return release(version) >= release(self.since)


RULES: tuple[Rule, ...] = (
    Rule("device-plugin.empty-mig-gpu", "device_plugin", "v0.16.0",
         "mixed: a MIG-enabled GPU without MIG devices is an error (`device 0 has an invalid MIG configuration`; "
         "the index is always 0), the plugin exits",
         "mixed: only a warning (`device N has no MIG devices configured`); single still fails",
         "NVIDIA/k8s-device-plugin commit 1df05f875 (PR #806), first tag v0.16.0; internal/rm/device_map.go",
         "k8s/device_plugin.py"),
    Rule("device-plugin.error-chain", "device_plugin", "v0.17.0",
         "errors read `error getting plugins: failed to construct NVML resource managers: error building device "
         "map: ...`",
         "`error getting plugins: unable to create plugins: failed to construct resource managers: error building "
         "device map: ...`",
         "NVIDIA/k8s-device-plugin internal/plugin/manager/nvml.go @v0.16.0; cmd/nvidia-device-plugin/"
         "plugin-manager.go and internal/plugin/factory.go @v0.17.0",
         "k8s/device_plugin.py"),
    Rule("device-plugin.anchored-patterns", "device_plugin", "v0.20.0",
         "mixed: resource patterns are unanchored regexps: `1g.10gb+me` is advertised as `nvidia.com/mig-1g.10gb`, "
         "a compute instance `1c.3g.40gb` as a whole `nvidia.com/mig-3g.40gb`",
         "patterns match whole names: `nvidia.com/mig-1g.10gb.me`; a compute instance matches no pattern and the "
         "plugin exits (`MIG profile '1c.3g.40gb' does not match any resource patterns`)",
         "NVIDIA/k8s-device-plugin commit 0dfdfb979b0d5a86b04f649b48c323abb7921277 (PR #1807), "
         "api/config/v1/resources.go wildCardToRegexp, first tag v0.20.0",
         "k8s/device_plugin.py"),
    Rule("gfd.family-ada", "device_plugin", "v0.17.1",
         "`nvidia.com/gpu.family=ampere` on compute capability 8.9 (L4, L40S)",
         "`nvidia.com/gpu.family=ada-lovelace`",
         "NVIDIA/k8s-device-plugin commit 75e83d74c, internal/lm/resource.go getArchFamily, first tag v0.17.1",
         "k8s/gfd.py"),
    Rule("gfd.family-blackwell", "device_plugin", "v0.17.2",
         "`nvidia.com/gpu.family=undefined` on compute capability 10.x/12.x (B200, RTX PRO 6000)",
         "`nvidia.com/gpu.family=blackwell`",
         "NVIDIA/k8s-device-plugin commit f6bd64c58, internal/lm/resource.go getArchFamily, first tag v0.17.2",
         "k8s/gfd.py"),
    Rule("gfd.vgpu-present", "device_plugin", "v0.15.0",
         "(GFD shipped separately, not modelled)",
         "`nvidia.com/vgpu.present=false` on every node without vGPU devices (always, on the kit's nodes)",
         "NVIDIA/k8s-device-plugin internal/lm/vgpu.go and internal/lm/labeler.go (NewVGPULabeler merged into "
         "every node's labels), present since GFD joined the repository (commit b9fe486d8, tag v0.15.0)",
         "k8s/gfd.py"),
    Rule("mig-manager.generated-config", "mig_manager", "v0.14.0",
         "mig-manager reads the static ConfigMap (default-mig-parted-config or spec.migManager.config.name)",
         "without CONFIG_FILE it generates the node's config from its hardware and writes ConfigMap "
         "`<node>-mig-config`; the static ConfigMap is the fallback when discovery fails (R535 drivers)",
         "NVIDIA/mig-parted CHANGELOG.md v0.14.0 (`Add support for dynamic MIG config generation`); "
         "cmd/nvidia-mig-manager/main.go setupMigConfig @bd7160f4",
         "recorded; StackProfile.generates_per_node_config (mig-manager, issue 11 items 2-3)"),
    Rule("gpu-operator.custom-config-name", "gpu_operator", "v26.3.0",
         "an empty spec.migManager.config.name means default-mig-parted-config, the file mig-manager reads",
         "mig-manager gets CONFIG_FILE (a custom file) only when spec.migManager.config.name is set; otherwise it "
         "generates per node and the static map is only DEFAULT_CONFIG_FILE (the fallback)",
         "NVIDIA/gpu-operator controllers/object_controls.go @v26.3.0 (hasCustomConfig, CONFIG_FILE, "
         "DEFAULT_CONFIG_FILE); values.yaml @v26.3.0 migManager comments",
         "recorded; StackProfile.custom_config_needs_name (issue 11 item 3)"),
    Rule("mig-manager.deploy-client", "mig_manager", "v0.15.0",
         "mig-manager pauses the operator's GPU clients only",
         "it also bounces pods whose nodeSelector holds `nvidia.com/gpu.deploy.client` during an apply",
         "NVIDIA/mig-parted CHANGELOG.md v0.15.0 (`Add support for bouncing third-party GPU client pods during a "
         "MIG config apply`)",
         "recorded; StackProfile.bounces_gpu_clients (the kit's agents do not pause clients)"),
    Rule("gpu-operator.gpucluster", "gpu_operator", "v26.7.0",
         "ClusterPolicy only",
         "GPUCluster (nvidia.com/v1alpha1): the DRA driver instead of the device plugin, and no mig-manager",
         "NVIDIA/gpu-operator api/nvidia/v1alpha1/gpucluster_types.go; NVIDIA/cloud-native-docs "
         "gpu-operator/release-notes.rst 26.7.0 @52dcb7b8",
         "detected (gpu_allocation=dra); its behaviour is another issue's"),
    Rule("driver.profile-memory", "driver", "580.0.0",
         "profile memory as the branch's overlay in the catalog says (H100 3g.40gb 40320 MiB on 550.54.15), "
         "unknown where no source exists",
         "the catalog's primary rows (NVML captures on 580.159.04: H100 3g.40gb 40448 MiB)",
         "NVIDIA/cloud-native-docs gpu-operator/manifests/output/mig-mixed-node-labels.json @52dcb7b8 (550.54.15); "
         "tests/data/captures/ (580.159.04); NVIDIA/mig-parted#120 (H200, driver not stated)",
         "gpus/catalog.py GpuModel.at_driver (labels, nvidia-smi, expect)"),
    Rule("driver.profiles-while-disabled", "driver", "550.0.0",
         "R535 and older list no MIG profiles while MIG mode is disabled",
         "profiles are listed with MIG disabled",
         "NVIDIA/mig-parted pkg/mig/discovery/discovery.go comment @bd7160f4; NVIDIA/gpu-operator commit db0bb63ec "
         "(`Restore static MIG configs`); docs/reference/nvml.md#driver-differences",
         "simulators/nvml.py (legacy_driver)"),
)
_BY_ID = {r.id: r for r in RULES}


def rule(rule_id: str) -> Rule:
    return _BY_ID[rule_id]


def since(rule_id: str, version: str) -> bool:
    """Whether `version` of the rule's component has the behaviour that rule describes from its `since` on."""
    return _BY_ID[rule_id].applies(version)


def device_plugin_modelled(version: str) -> str | None:
    """Why the kit cannot model this device-plugin release, or None when it can (DEVICE_PLUGIN_MODELLED)."""
    low, high = (release(v) for v in DEVICE_PLUGIN_MODELLED)
    got = release(version, "device-plugin version")
    if got < low:
        return (f"device plugin {version} is older than the oldest release the kit models ({low_text()}: GFD ships "
                "with the device plugin's version from then on)")
    if got[:2] > high[:2]:
        return f"device plugin {version} is newer than the newest release the kit models ({DEVICE_PLUGIN_MODELLED[1]})"
    return None


def low_text() -> str:
    return DEVICE_PLUGIN_MODELLED[0]
