"""Pacing requests to the account's rate limits, so a batch of thousands of scenes gets no avoidable 429.

Replicate limits creating predictions to 600 a minute and every other endpoint to 3000 a minute, with short
bursts allowed, and answers 429 with a Retry-After past that (accounts low on credit much sooner: 6 a minute).
`Pacer` is a token bucket in its virtual-scheduling form (GCRA): each caller reserves the next free send time
under a lock and sleeps until then, so hundreds of waiting threads cost no wake-ups and go out in the order
they asked (no thundering herd, no starvation). A 429 pauses the whole bucket for its Retry-After and halves
the rate; successes bring the rate back up step by step to the configured one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """At most `per_minute` sends a minute on average, `burst` at once. Thread-safe."""

    def __init__(self, per_minute: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a pacer needs a positive rate and a burst of at least 1")
        self.base_interval = 60.0 / per_minute
        self.interval = self.base_interval  # grows after a 429, shrinks back with successes
        self.burst = burst
        self.clock = clock
        self._tat = 0.0  # theoretical arrival time of the next send (GCRA)
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers spent waiting, summed (for the run's stats)
        self.pauses = 0  # 429s that paused the bucket

    @property
    def per_minute(self) -> float:
        return 60.0 / self.interval

    def _reserve(self, give_up: float | None = None) -> float | None:
        """The time this caller may send at, and the slot taken; None, and nothing taken, when that is after
        `give_up` (a caller that gives up holds no slot the others then wait behind)."""
        with self._lock:
            now = self.clock()
            tolerance = (self.burst - 1) * self.interval
            slot = max(now, self._tat - tolerance, self._paused_until)
            if give_up is not None and slot > give_up:
                return None
            self._tat = max(self._tat, slot) + self.interval
            return slot

    def acquire(self, canceled: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Wait for a send slot; False when `canceled` is set first, or no slot comes within `timeout` s."""
        started = self.clock()
        give_up = None if timeout is None else started + timeout
        while True:
            slot = self._reserve(give_up)
            if slot is None:
                return False
            delay = slot - self.clock()
            if delay > 0:
                if canceled is not None:
                    if canceled.wait(delay):
                        return False
                else:
                    time.sleep(delay)
            elif canceled is not None and canceled.is_set():
                return False
            with self._lock:
                # A 429 that arrived while this caller slept moved the bucket on: take a slot after the pause.
                if self.clock() >= self._paused_until:
                    self.waited += self.clock() - started
                    return True

    def pause(self, seconds: float) -> None:
        """The server said to wait (a 429's Retry-After): nobody sends before then, and the bucket starts empty
        (no burst right after the pause). The first 429 of an episode halves the rate; the 429s of requests
        already in flight when it came do not halve it again."""
        with self._lock:
            now = self.clock()
            self.pauses += 1
            if now >= self._paused_until:  # a new episode
                self.interval = min(self.interval * 2, 60.0)  # never slower than one a minute
            self._paused_until = max(self._paused_until, now + max(0.0, seconds))
            tolerance = (self.burst - 1) * self.interval
            self._tat = max(self._tat, self._paused_until + tolerance)

    def succeeded(self) -> None:
        """A send went through: creep back towards the configured rate (a tenth of the way each time)."""
        if self.interval > self.base_interval:
            with self._lock:
                self.interval = max(self.base_interval, self.interval - (self.interval - self.base_interval) / 10
                                    - self.base_interval / 100)
