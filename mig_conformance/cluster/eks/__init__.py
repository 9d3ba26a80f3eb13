"""The `eks` backend: Amazon EKS reached with AWS credentials alone (token scheme, discovery)."""
