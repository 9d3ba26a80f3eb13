"""Label, taint and resource names used by the NVIDIA GPU Operator components."""

MIG_CONFIG = "nvidia.com/mig.config"
MIG_CONFIG_STATE = "nvidia.com/mig.config.state"
MIG_STRATEGY = "nvidia.com/mig.strategy"
MIG_CAPABLE = "nvidia.com/mig.capable"
GPU_PRODUCT = "nvidia.com/gpu.product"
GPU_COUNT = "nvidia.com/gpu.count"
GPU_MEMORY = "nvidia.com/gpu.memory"
GPU_PRESENT = "nvidia.com/gpu.present"
CUDA_DRIVER_FULL = "nvidia.com/cuda.driver-version.full"  # GFD: the driver the node runs
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
ZONE = "topology.kubernetes.io/zone"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"

STATES = ("pending", "rebooting", "success", "failed")
STRATEGIES = ("none", "single", "mixed")
