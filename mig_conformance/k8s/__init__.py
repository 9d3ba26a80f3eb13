"""Kubernetes projection of MIG state: what mig-manager, the device plugin, GFD and the scheduler make of it.

Plain modules, no pytest and no API client: they compute what a real cluster shows.
"""
