"""Hardware facts: the GPU catalog (profile tables), EC2 instance types, MIG profile names and PCI device IDs."""
