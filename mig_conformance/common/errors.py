"""Errors that carry where in the user's input they come from."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Location:
    """Where a problem was found: file, line, named config, entry index and key."""

    file: str | None = None
    line: int | None = None
    config: str | None = None
    entry: int | None = None
    key: str | None = None
    #: what `config` names: a mig-parted config, or an entry of another file (e.g. "cluster" in a clusters file)
    subject: str = "config"

    def describe(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.config is not None:
            parts.append(f"{self.subject} '{self.config}'")
        if self.entry is not None:
            parts.append(f"entry {self.entry}")
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        return ", ".join(parts)


@dataclass(frozen=True)
class Problem:
    """One finding about user input, with its location."""

    message: str
    location: Location = Location()
    gpu: int | None = None

    def __str__(self) -> str:
        where = self.location.describe()
        gpu = f"GPU {self.gpu}: " if self.gpu is not None else ""
        return f"{where}: {gpu}{self.message}" if where else f"{gpu}{self.message}"

    def as_dict(self) -> dict[str, object]:
        where = {k: v for k, v in asdict(self.location).items() if k != "subject"}
        return {**where, "gpu": self.gpu, "message": self.message}


class MigConformanceError(Exception):
    """Base class of every error the kit raises on purpose."""


class InputError(MigConformanceError):
    """Bad user input (file, option, name). Carries one or more located problems."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnknownNameError(InputError):
    """A name (GPU, instance type, config, cluster) that the kit does not know."""
