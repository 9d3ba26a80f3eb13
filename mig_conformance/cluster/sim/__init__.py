"""The `sim` backend: an in-memory cluster of simulated GPU nodes on a simulated clock."""
