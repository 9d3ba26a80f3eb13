"""Turning a real GPU (NVML or saved nvidia-smi text) into a catalog entry."""
