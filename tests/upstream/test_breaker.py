"""The circuit breaker on its own, with a clock the test moves."""

from __future__ import annotations

import pytest

from app.domain.types import BreakerState
from app.upstream.breaker import CircuitBreaker
from tests.support.clock import Clock

pytestmark = pytest.mark.fast


class States:
    """Collects the states the breaker enters."""

    def __init__(self) -> None:
        self.seen: list[BreakerState] = []

    def breaker_state_changed(self, state: BreakerState) -> None:
        self.seen.append(state)


def _breaker(clock: Clock, states: States) -> CircuitBreaker:
    return CircuitBreaker(threshold=3, reset_seconds=10, observer=states, timer=clock)


def _probing(clock: Clock, states: States) -> CircuitBreaker:
    """A breaker opened by three faults, its reset time over and its one probe let out."""
    breaker = _breaker(clock, states)
    for _ in range(3):
        breaker.record_fault()
    clock.now += 10
    assert breaker.allow()
    return breaker


def test_opens_after_threshold_consecutive_faults_only() -> None:
    clock, states = Clock(), States()
    breaker = _breaker(clock, states)

    breaker.record_fault()
    breaker.record_fault()
    breaker.record_success()  # a success (or a 4xx) breaks the run
    breaker.record_fault()
    breaker.record_fault()
    assert breaker.allow()
    breaker.record_fault()

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert states.seen == [BreakerState.OPEN]


def test_one_probe_after_the_reset_time_then_closed_on_success() -> None:
    clock, states = Clock(), States()
    breaker = _breaker(clock, states)
    for _ in range(3):
        breaker.record_fault()

    clock.now += 9.5
    assert not breaker.allow()
    assert breaker.retry_after() == 1
    clock.now += 0.5
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert states.seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_reopens_for_a_full_reset_time() -> None:
    clock, states = Clock(), States()
    breaker = _probing(clock, states)

    breaker.record_fault()

    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 10
    clock.now += 9.9
    assert not breaker.allow()


def test_an_abandoned_probe_frees_the_slot() -> None:
    clock, states = Clock(), States()
    breaker = _probing(clock, states)
    probe = breaker.probe
    assert probe is not None

    breaker.record_abandoned(probe)

    assert breaker.allow()


def test_a_settled_probe_ending_late_leaves_the_next_probe_out() -> None:
    clock, states = Clock(), States()
    breaker = _probing(clock, states)
    first = breaker.probe
    assert first is not None
    breaker.record_fault()  # the probe's outcome: open again
    clock.now += 10
    assert breaker.allow()  # the next probe

    breaker.record_abandoned(first)

    assert breaker.probe == first + 1
    assert not breaker.allow()
