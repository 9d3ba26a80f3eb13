"""Package discovery for the one installed namespace, `mig_conformance`.

The top-level folders simulators/, suites/, fixtures/ and deploy/ ship as mig_conformance.simulators, .suites,
.fixtures and .deploy. Every package below them (and below mig_conformance/) is found by walking the folders, so a
new subpackage cannot be left out of the wheel (tests/unit/test_packaging.py checks the built wheel).
"""

from setuptools import find_namespace_packages, setup

NAMESPACE = "mig_conformance"
#: folder -> package it ships as
MAPPED = {NAMESPACE: NAMESPACE, **{folder: f"{NAMESPACE}.{folder}" for folder in
                                     ("simulators", "suites", "fixtures", "deploy")}}
EXCLUDE = ["*__pycache__*"]


def packages() -> list[str]:
    found = []
    for folder, package in MAPPED.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=EXCLUDE)]
    return found


setup(
    packages=packages(),
    package_dir={package: folder for folder, package in MAPPED.items()},
    package_data={f"{NAMESPACE}.fixtures": ["*.yaml", "*/*.yaml"], f"{NAMESPACE}.deploy": ["*.yaml"],
                  NAMESPACE: ["py.typed"],
                  # the pinned Go tools modules `mig-conformance cluster install` builds the local control plane from
                  f"{NAMESPACE}.cluster.local.tools": ["versions.env", "*/go.mod", "*/go.sum"]},
)
