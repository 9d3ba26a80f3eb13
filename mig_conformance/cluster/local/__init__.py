"""The `local` backend: a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
on loopback, kwok GPU nodes, GPU Operator objects and the simulated agents; see backend.LocalCluster."""
