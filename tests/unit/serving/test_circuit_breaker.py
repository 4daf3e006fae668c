from __future__ import annotations

import threading

import pytest

from hybridroute.errors import ConfigError
from hybridroute.serving.cloud_client import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _opened(clock: FakeClock, failures: int = 3, reset_s: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, reset_s, clock=clock)
    for _ in range(failures):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_starts_closed_and_lets_calls_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))


def test_opens_after_n_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_stays_open_until_reset_then_half_opens(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(9.999)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(0.001)
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_trial_through(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(10.0)
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()


def test_successful_trial_closes(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_failed_trial_reopens_for_a_full_reset_period(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(9.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()


def test_failed_trial_reopens_even_with_a_large_threshold(clock: FakeClock) -> None:
    breaker = _opened(clock, failures=5)
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN


def test_a_trial_that_never_reports_does_not_block_forever(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(10.0)
    assert breaker.allow()  # this caller vanishes without reporting
    clock.advance(5.0)
    assert not breaker.allow()
    clock.advance(5.0)
    assert breaker.allow()


def test_late_failures_while_open_do_not_extend_the_open_period(clock: FakeClock) -> None:
    breaker = _opened(clock)
    clock.advance(5.0)
    breaker.record_failure()  # a call that started before the circuit opened
    clock.advance(5.0)
    assert breaker.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize(
    ("failures", "reset_s", "field"), [(0, 1.0, "failures"), (3, 0.0, "reset_s"), (3, -1.0, "reset_s")]
)
def test_rejects_bad_settings(failures: int, reset_s: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        CircuitBreaker(failures, reset_s)


def test_counts_failures_from_many_threads_exactly(clock: FakeClock) -> None:
    breaker = CircuitBreaker(800, 10.0, clock=clock)

    def fail_many() -> None:
        for _ in range(100):
            breaker.record_failure()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.state is BreakerState.OPEN  # exactly 800 counted; a lost update would leave it closed
