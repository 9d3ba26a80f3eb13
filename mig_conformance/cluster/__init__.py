"""Cluster backends behind one interface: sim, local, kind, eks and any kubeconfig context."""
