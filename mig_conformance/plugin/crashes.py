"""A crash of the kit is never a test failure: pytest's exit code 1 means "the cluster or config failed a check",
so a bug of the kit (docs/hardening.md#exit-codes) ends the run with pytest's INTERNAL_ERROR (3) instead.

Before the tests run (settings, the session, opening the cluster) an unexpected exception stops the run at once
with one line (`exit_internal`). During a test, an exception that is not a check's verdict (AssertionError, the
kit's own errors such as ClusterError, pytest's outcomes) and that was raised in the kit's code (its package,
simulators and shipped suites, not the user's tests) marks the test; the test still shows as failed, and the run
ends with exit 3 and a section naming every such test. MIG_CONFORMANCE_DEBUG=1 keeps pytest's traceback.
"""

from __future__ import annotations

import importlib.util
import os
import types
from pathlib import Path
from typing import Any, NoReturn

import pytest

from mig_conformance.common.errors import MigConformanceError

DEBUG_ENV = "MIG_CONFORMANCE_DEBUG"
#: the attribute of a TestReport that marks a crash of the kit (a plain string: it travels from xdist workers)
REPORT_ATTR = "mig_internal_error"
ADVICE = (f"a bug in mig-conformance, not a verdict on your cluster or config: please report it with the command "
          f"line ({DEBUG_ENV}=1 shows the traceback; docs/hardening.md#internal-errors)")


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(exc: BaseException) -> str:
    """`Type: message` on one line, at most 300 characters."""
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def exit_internal(exc: BaseException, when: str) -> NoReturn:
    """Stop the run with exit 3 and one line (or, under MIG_CONFORMANCE_DEBUG, let pytest show the traceback)."""
    if debugging():
        raise exc
    pytest.exit(f"mig-conformance: internal error {when}: {describe(exc)} ({ADVICE})",
                returncode=pytest.ExitCode.INTERNAL_ERROR)


def _kit_folders() -> tuple[Path, ...]:
    """Where the kit's code lives: the package and the folders setup.py maps into it (simulators, suites)."""
    paths: list[str] = []
    for package in ("mig_conformance", "mig_conformance.simulators", "mig_conformance.suites"):
        spec = importlib.util.find_spec(package)  # located, not imported (the suites are a higher layer)
        paths += list(spec.submodule_search_locations or []) if spec is not None else []
    return tuple(Path(p).resolve() for p in paths)


def _innermost_file(tb: types.TracebackType | None) -> Path | None:
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return Path(last.tb_frame.f_code.co_filename).resolve() if last is not None else None


def is_kit_crash(exc: BaseException, tb: types.TracebackType | None, folders: tuple[Path, ...]) -> bool:
    """An exception no check raises on purpose, thrown by the kit's own code."""
    if isinstance(exc, (AssertionError, MigConformanceError)) or not isinstance(exc, Exception):
        return False  # a check's verdict, the kit's deliberate errors, pytest's outcomes (BaseException)
    where = _innermost_file(tb)
    return where is not None and any(where.is_relative_to(folder) for folder in folders)


class CrashWatch:
    """Registered with the session: marks tests the kit crashed in and turns the run's exit code into 3."""

    def __init__(self) -> None:
        self.crashes: list[str] = []
        self._folders = _kit_folders()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        info = call.excinfo
        if info is not None and report.failed and is_kit_crash(info.value, info.tb, self._folders):
            setattr(report, REPORT_ATTR, f"{report.nodeid} ({call.when}): {describe(info.value)}")
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Runs where the results arrive: in the only process, or in the xdist controller (the attribute travels
        with the report)."""
        crash = getattr(report, REPORT_ATTR, None)
        if crash and crash not in self.crashes:
            self.crashes.append(str(crash))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.crashes:
            return
        terminalreporter.write_sep("=", "mig-conformance internal errors", red=True, bold=True)
        for crash in self.crashes:
            terminalreporter.write_line(f"internal error in {crash}", red=True)
        terminalreporter.write_line(f"exit code 3: {ADVICE}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.crashes and session.exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
