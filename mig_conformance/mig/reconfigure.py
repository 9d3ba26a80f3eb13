"""nvidia-mig-manager's reconfigure run, step by step, defined once for both models of a node.

NVIDIA/mig-parted v0.15.0 `pkg/mig/reconfigure/reconfigure.go` (`Run`): `assert --valid-config` (an error: the
state is `failed`), `assert` (passes: `success`, nothing else happens), `assert --mode-only` (a failure means a MIG
mode change), state `pending`, `apply --mode-only` then `assert --mode-only` (a failure with WITH_REBOOT: state
`rebooting`, the node reboots and the run starts over; without WITH_REBOOT it is ignored), `apply`, state `success`
or `failed`. After a reboot, a mode change that is still needed fails the run.

The projection (`k8s/mig_manager.py`, mig-parted computed in closed form by `mig/apply_model.py`) and the simulators
(`simulators/node_gpus.py`, mig-parted's command code on simulated NVML) both run `reconfigure()`; they differ only in
how each mig-parted command is carried out, and tests/unit/test_models_agree.py checks that they agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

PENDING, REBOOTING, SUCCESS, FAILED = "pending", "rebooting", "success", "failed"
#: reconfigure.go checkMigModeChangeRequired, after the reboot
REBOOT_DID_NOT_HELP = "MIG mode change did not take effect after rebooting"


class MigPartedCommands(Protocol):
    """The mig-parted commands mig-manager runs for one selected config; each returns mig-parted's error or None."""

    def assert_valid(self) -> str | None:
        """`assert --valid-config`: the file parses and names the config."""

    def assert_applied(self) -> bool:
        """`assert`: every GPU already matches the config."""

    def assert_mode(self) -> str | None:
        """`assert --mode-only`."""

    def apply_mode(self) -> str | None:
        """`apply --mode-only`."""

    def apply(self) -> str | None:
        """`apply`."""

    def reboot(self) -> None:
        """The node reboots: pending MIG modes take effect, MIG devices are gone."""


@dataclass(frozen=True)
class Transition:
    """A value mig-manager writes to `nvidia.com/mig.config.state`, why (for `failed` and `rebooting`), and whether
    the run needed a MIG mode change so far."""

    state: str
    reason: str | None = None
    mode_change: bool = False

    @property
    def final(self) -> bool:
        return self.state in (SUCCESS, FAILED)


def reconfigure(commands: MigPartedCommands, with_reboot: bool) -> Iterator[Transition]:
    """The states one mig-manager run writes, in order; the last is final. A caller that models time lets it pass
    after `pending` and `rebooting` before asking for the next."""
    rebooted = False
    mode_change = False
    while True:
        error = commands.assert_valid()
        if error is not None:
            yield Transition(FAILED, error, mode_change)
            return
        if commands.assert_applied():
            yield Transition(SUCCESS, None, mode_change)
            return
        needs_mode = commands.assert_mode() is not None
        mode_change = mode_change or needs_mode
        if needs_mode and rebooted:
            yield Transition(FAILED, REBOOT_DID_NOT_HELP, mode_change)
            return
        yield Transition(PENDING, None, mode_change)
        error = commands.apply_mode()
        if error is None:
            error = commands.assert_mode()
        if error is not None and with_reboot:
            yield Transition(REBOOTING, error, mode_change)
            commands.reboot()
            rebooted = True
            continue
        error = commands.apply()  # a failed mode change without WITH_REBOOT is ignored
        yield Transition(FAILED if error else SUCCESS, error, mode_change)
        return
