"""What failing program code may cost one computation (one user's round), so that no program makes a round
endless.

A computation runs its containers in batches, each under the runtime's time and memory limits. A batch that
exceeds a limit is split to find the container(s) responsible (:mod:`kazi.program.js.runtime`); each such
abort costs a full time limit. A computation whose program code exceeds the limits more than ``max_aborts``
times (a callback that loops for every contact) is abandoned: its containers keep their task documents, one
error says why, and the round goes on with the next user. ``deadline`` (a :func:`time.monotonic` instant)
bounds the whole computation when someone waits for it (an API read, a program's pre-flight): past it the
computation is interrupted (:class:`kazi.errors.ComputationInterrupted`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

#: limit-exceeding containers (time-outs, memory ends) one computation may have before it is abandoned
DEFAULT_MAX_ABORTS = 3


@dataclass
class Budget:
    """One computation's allowance (mutable: the runtime spends it)."""

    max_aborts: int = DEFAULT_MAX_ABORTS
    deadline: float | None = None
    aborts: int = 0

    def spend(self) -> bool:
        """Count one abort; False once the computation has had more than it may."""
        self.aborts += 1
        return self.aborts <= self.max_aborts

    @property
    def exhausted(self) -> bool:
        return self.aborts > self.max_aborts

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


def with_deadline(seconds: float | None, max_aborts: int = DEFAULT_MAX_ABORTS) -> Budget:
    """A budget ending ``seconds`` from now (None: no deadline)."""
    return Budget(max_aborts=max_aborts, deadline=None if seconds is None else time.monotonic() + seconds)
