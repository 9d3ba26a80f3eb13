"""mig-conformance: conformance and simulation kit for NVIDIA MIG on Kubernetes."""

__version__ = "0.1.0"
