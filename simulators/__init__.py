"""Simulators of NVML and nvidia-mig-parted for tests without GPUs."""
