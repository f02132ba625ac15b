"""The limits program code runs under, and what a failure of it costs: one place for their settings.

Program code (``tasks.js``) is the deployment's own, uploaded by an administrator, but it runs for every user
on every change: a callback that throws, loops or eats memory for one contact must cost that contact's
tasks, never everyone's. Each setting has an environment variable; ``kazi serve``, ``kazi worker`` and
``create_app`` read them with :meth:`ProgramLimits.from_env`, tests pass their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import ClassVar

from kazi.engine.budget import DEFAULT_MAX_ABORTS


@dataclass(frozen=True)
class ProgramLimits:
    """Limits of program code and of the computations that run it (see docs/security.md)."""

    #: seconds one call into V8 may run: a batch of containers, or the program's evaluation
    time_limit_s: float = 10.0
    #: MiB of V8 heap a runtime may use before the running call is ended
    memory_mb: int = 1024
    #: MiB of JSON a container (a contact with its reports and tasks) may take; a larger one is not run
    max_container_mb: float = 16.0
    #: time-outs or memory ends one user's computation may have before the rest of it is abandoned
    max_aborts: int = DEFAULT_MAX_ABORTS
    #: seconds an API read may spend computing its caller's tasks before it leaves them to the worker
    read_compute_s: float = 5.0
    #: containers of the stored population a new program version is tried on before it goes live
    preflight_containers: int = 300
    #: seconds that trial may take (a version that has not finished by then is refused)
    preflight_s: float = 5.0
    #: distinct program errors kept in the store (the least recently seen are dropped)
    max_stored_errors: int = 1000

    #: environment variable of each setting
    ENV: ClassVar[dict[str, str]] = {
        "time_limit_s": "KAZI_PROGRAM_TIME_LIMIT_S",
        "memory_mb": "KAZI_PROGRAM_MEMORY_MB",
        "max_container_mb": "KAZI_PROGRAM_MAX_CONTAINER_MB",
        "max_aborts": "KAZI_PROGRAM_MAX_ABORTS",
        "read_compute_s": "KAZI_READ_COMPUTE_S",
        "preflight_containers": "KAZI_PREFLIGHT_CONTAINERS",
        "preflight_s": "KAZI_PREFLIGHT_S",
        "max_stored_errors": "KAZI_PROGRAM_ERRORS_KEPT",
    }

    #: settings 0 makes sense for: no abort allowed, no pre-flight
    MAY_BE_ZERO: ClassVar[frozenset[str]] = frozenset({"max_aborts", "preflight_containers"})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ProgramLimits:
        """The defaults, overridden by the ``KAZI_...`` variables that are set."""
        env = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(cls.ENV[f.name])
            if raw is None or raw.strip() == "":
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{cls.ENV[f.name]}={raw!r} is not a number") from None
            if value < 0 or (value == 0 and f.name not in cls.MAY_BE_ZERO):
                raise ValueError(f"{cls.ENV[f.name]}={raw!r} must be positive")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def max_container_bytes(self) -> int:
        return int(self.max_container_mb * 1024 * 1024)
