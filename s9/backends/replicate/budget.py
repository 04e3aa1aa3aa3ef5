"""The budget, held during the run: every prediction's cost is reserved before its create is sent.

`budget.max_spend_usd` is also checked against the plan before a repro starts; this is what keeps a run within
it when the plan was wrong -- outputs that expired and are paid for again, predictions replaced, scenes added
by hand. Once a create would cross the line, the run stops creating: what is in flight finishes.
"""

from __future__ import annotations

import threading

from .client import NotCreated


class Budget:
    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.committed = 0.0  # reserved by creates of this run that were (or may have been) sent
        self.stopped = False

    def reserve(self, amount: float) -> None:
        """Reserve `amount` for a create about to be sent; `NotCreated` (nothing sent) when over the limit."""
        with self._lock:
            if self.limit is None:
                self.committed += amount
                return
            if self.stopped:
                raise NotCreated(
                    f"not created: this run stopped creating predictions before budget.max_spend_usd "
                    f"${self.limit:.2f} would be crossed (${self.committed:.2f} committed)")
            if self.committed + amount > self.limit + 1e-9:
                self.stopped = True
                raise NotCreated(
                    f"not created: ${amount:.2f} more would take this run to ${self.committed + amount:.2f}, over "
                    f"budget.max_spend_usd ${self.limit:.2f}; no more predictions are created in this run "
                    "(those in flight finish)")
            self.committed += amount

    def release(self, amount: float) -> None:
        """A reserved create certainly made nothing (refused, or never sent): give its amount back."""
        with self._lock:
            self.committed = max(0.0, self.committed - amount)
