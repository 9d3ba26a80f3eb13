"""The conformance suites users run: `pytest --mig-cluster=NAME` collects them when no test paths are given."""
