"""Optional dependencies (the wheel's extras): one error and one install hint for every command and backend.

A plain `pip install` of the kit has PyYAML and pytest only; the clients of real clusters, the local backend's PKI
and NVML come with an extra (pyproject.toml `[project.optional-dependencies]`). Code that needs one says so before
it starts (`require`), and anything that still meets a missing module turns its ImportError into the same one line
(`missing_extra`), never a traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from mig_conformance.common.errors import InputError

#: top-level module -> (the distribution that provides it, the smallest extra that installs it)
MODULES: dict[str, tuple[str, str]] = {
    "kubernetes": ("kubernetes", "kube"),
    "boto3": ("boto3", "eks"),
    "botocore": ("botocore", "eks"),
    "cryptography": ("cryptography", "local"),
    "pynvml": ("nvidia-ml-py", "nvml"),
    "cel": ("common-expression-language", "dra"),
}

#: backend -> (modules it imports, the extra that installs all of them); sim needs none
BACKENDS: dict[str, tuple[tuple[str, ...], str]] = {
    "local": (("kubernetes", "cryptography"), "local"),
    "kind": (("kubernetes",), "kind"),
    "kubeconfig": (("kubernetes",), "kube"),
    "eks": (("boto3", "botocore", "kubernetes"), "eks"),
}


def install_hint(extra: str) -> str:
    """How to install an extra, for an installed kit and for a checkout."""
    return f"pip install 'mig-conformance[{extra}]' (from a checkout: pip install '.[{extra}]')"


class MissingExtra(InputError):
    """An optional module is not installed: what needs it and the one command that installs it."""

    def __init__(self, what: str, module: str, extra: str | None = None) -> None:
        package, default_extra = MODULES.get(module, (module, None))
        self.module, self.extra = module, extra or default_extra
        hint = install_hint(self.extra) if self.extra else f"pip install {package}"
        named = package if package == module else f"{package} (module {module})"
        super().__init__(f"{what} needs the Python package {named}, which is not installed: {hint}")


def installed(module: str) -> bool:
    """Whether `module` can be imported (looked up, not imported: cheap; a module set to None in sys.modules, as
    tests do, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(modules: Iterable[str], what: str, extra: str | None = None) -> None:
    """MissingExtra for the first of `modules` that is not installed."""
    for module in modules:
        if not installed(module):
            raise MissingExtra(what, module, extra)


def require_backend(kind: str, what: str | None = None) -> None:
    """MissingExtra when a cluster backend's Python modules are not installed (nothing for sim or unknown kinds)."""
    if kind in BACKENDS:
        modules, extra = BACKENDS[kind]
        require(modules, what or f"the {kind} backend", extra)


def missing_extra(exc: BaseException, what: str = "this command") -> MissingExtra | None:
    """The MissingExtra an ImportError of an optional module stands for; None for any other exception."""
    if not isinstance(exc, ImportError) or not exc.name:
        return None
    module = exc.name.partition(".")[0]
    if module not in MODULES:
        return None
    return MissingExtra(what, module)
