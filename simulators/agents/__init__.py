"""Simulated NVIDIA GPU Operator agents for the `local` backend: one process, many nodes, only the Kubernetes API.

`python -m mig_conformance.simulators.agents --kubeconfig FILE` runs, for every node labelled
`nvidia.com/gpu.present=true`: mig-manager (mig_manager.py), the device plugin with kubelet's resource bookkeeping
(device_plugin.py), gpu-feature-discovery (gfd.py) and the GPU Operator's node labels (gpu_operator.py), each
node's GPUs being an NVML simulator driven by the mig-parted simulator (`simulators/node_gpus.py`, shared with the
`sim` backend). runner.py holds the watches and the work queue.
"""
