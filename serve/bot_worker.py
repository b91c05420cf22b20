"""Admission control and the inference pool: the bot's CPU work happens here, off the event loop.

* :class:`InferencePool` runs jobs on a fixed number of threads (onnxruntime releases the GIL, so
  threads give real parallelism without copying models into processes) and admits at most
  ``capacity`` jobs at once, running plus waiting. A full pool refuses at once
  (:class:`QueueFullError`) instead of letting a queue grow that users would wait on for minutes.
  On shutdown, jobs already running finish; admitted jobs that have not started yet fail with
  :class:`PoolClosedError` so that their users can be told to send again.
* :class:`RateLimiter` is a per-user sliding window of accepted requests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class QueueFullError(RuntimeError):
    """Every slot of the pool is taken; the caller should ask the user to try again shortly."""


class PoolClosedError(RuntimeError):
    """The pool is shutting down; the job was not started."""


@dataclass(frozen=True)
class Finished(Generic[T]):
    """A job's result and where its time went."""

    result: T
    waited_s: float  # admitted to the executor until a worker picked it up
    ran_s: float  # time on the worker


class InferencePool:
    """A bounded thread pool for blocking jobs; use :meth:`admit` around a request, :meth:`run` for its jobs."""

    def __init__(self, workers: int, capacity: int, *, name: str = "inference") -> None:
        if workers < 1 or capacity < workers:
            raise ValueError(f"need workers >= 1 and capacity >= workers, got workers={workers} capacity={capacity}")
        self.workers = workers
        self.capacity = capacity
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._closing = False

    @property
    def admitted(self) -> int:
        """Requests holding a slot (running, waiting for a worker, or between their jobs)."""
        return self._admitted

    @property
    def running(self) -> int:
        """Jobs on a worker right now."""
        return self._running

    @property
    def closing(self) -> bool:
        return self._closing

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the ``capacity`` slots for the duration of a request, or raise at once."""
        with self._lock:
            if self._closing:
                raise PoolClosedError("the inference pool is shutting down")
            if self._admitted >= self.capacity:
                raise QueueFullError(f"all {self.capacity} slots are taken")
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Finished[T]:
        """Run ``fn(*args, **kwargs)`` on a worker thread; :class:`PoolClosedError` if closing before it starts."""
        submitted = time.perf_counter()

        def job() -> Finished[T]:
            started = time.perf_counter()
            with self._lock:
                if self._closing:
                    raise PoolClosedError("the inference pool is shutting down")
                self._running += 1
            try:
                result = fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1
            return Finished(result, started - submitted, time.perf_counter() - started)

        if self._closing:
            raise PoolClosedError("the inference pool is shutting down")
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def close(self) -> None:
        """Admit nothing more and start no waiting job; running jobs go on."""
        with self._lock:
            self._closing = True

    async def shutdown(self) -> None:
        """:meth:`close`, then wait for the running jobs (without blocking the event loop)."""
        self.close()
        await asyncio.to_thread(self._executor.shutdown, wait=True)


class RateLimiter:
    """At most ``limit`` accepted events per key in any ``window_s`` seconds (``limit=0``: unlimited).

    Memory follows the active users: once per window every key whose last event left the window is dropped,
    so a stream of one-off users (200,000 in an hour) does not accumulate.
    """

    def __init__(self, limit: int, window_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[Hashable, collections.deque[float]] = {}
        self._next_sweep = clock() + window_s

    def __len__(self) -> int:
        """Keys remembered now (users with an event in the last window, until the next sweep)."""
        return len(self._events)

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may be served again; 0.0 when it may now."""
        if self.limit <= 0:
            return 0.0
        events = self._recent(key)
        if len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window_s - self._clock())

    def record(self, key: Hashable) -> None:
        """Count one accepted event for ``key``."""
        if self.limit > 0:
            now = self._clock()
            self._events.setdefault(key, collections.deque()).append(now)
            if now >= self._next_sweep:
                self.sweep()

    def sweep(self) -> None:
        """Forget every key whose newest event is out of the window (amortised: one pass per window; the bot
        also calls it periodically, so an idle bot lets go of its last users)."""
        now = self._clock()
        horizon = now - self.window_s
        for key in [key for key, events in self._events.items() if events[-1] <= horizon]:
            del self._events[key]
        self._next_sweep = now + self.window_s

    def _recent(self, key: Hashable) -> collections.deque[float]:
        events = self._events.get(key)
        if events is None:
            return collections.deque()
        horizon = self._clock() - self.window_s
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]  # forget idle users, so memory follows the active ones
        return events
