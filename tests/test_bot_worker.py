"""The inference pool's admission and shutdown rules, and the per-user rate limiter."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve.bot_worker import InferencePool, PoolClosedError, QueueFullError, RateLimiter


def test_admission_is_bounded_and_released() -> None:
    pool = InferencePool(workers=1, capacity=2)
    with pool.admit(), pool.admit():
        assert pool.admitted == 2
        with pytest.raises(QueueFullError):
            with pool.admit():
                pass
    assert pool.admitted == 0
    with pool.admit():  # slots come back, also after an exception inside
        pass
    with pytest.raises(ValueError):
        with pool.admit():
            raise ValueError("job failed")
    assert pool.admitted == 0


def test_jobs_run_on_worker_threads_with_timings() -> None:
    async def scenario() -> None:
        pool = InferencePool(workers=2, capacity=4)
        main_thread = threading.get_ident()
        done = await pool.run(lambda a, *, b: (a + b, threading.get_ident()), 2, b=3)
        assert done.result[0] == 5 and done.result[1] != main_thread
        assert done.ran_s >= 0 and done.waited_s >= 0
        with pytest.raises(ZeroDivisionError):  # exceptions reach the caller
            await pool.run(lambda: 1 / 0)
        assert pool.running == 0
        await pool.shutdown()

    asyncio.run(scenario())


def test_shutdown_finishes_running_jobs_and_refuses_waiting_ones() -> None:
    async def scenario() -> None:
        pool = InferencePool(workers=1, capacity=3)
        release = threading.Event()
        started = threading.Event()

        def slow() -> str:
            started.set()
            release.wait(10)
            return "finished"

        running = asyncio.create_task(pool.run(slow))
        await asyncio.to_thread(started.wait, 10)
        waiting = asyncio.create_task(pool.run(lambda: "should not run"))
        await asyncio.sleep(0.05)
        pool.close()
        release.set()
        assert (await running).result == "finished"
        with pytest.raises(PoolClosedError):
            await waiting
        with pytest.raises(PoolClosedError):
            with pool.admit():
                pass
        with pytest.raises(PoolClosedError):
            await pool.run(lambda: None)
        await pool.shutdown()

    asyncio.run(scenario())


def test_rate_limiter_sliding_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(2, window_s=60, clock=lambda: now[0])
    assert limiter.retry_after("alice") == 0
    limiter.record("alice")
    now[0] += 10
    limiter.record("alice")
    assert limiter.retry_after("alice") == pytest.approx(50)
    assert limiter.retry_after("bob") == 0  # per user
    now[0] += 50.5  # the first event left the window
    assert limiter.retry_after("alice") == 0


def test_rate_limiter_off() -> None:
    limiter = RateLimiter(0)
    for _ in range(100):
        limiter.record("x")
    assert limiter.retry_after("x") == 0
