"""The retry budget on its own, with a clock the test moves."""

from __future__ import annotations

import pytest

from app.upstream.retry_budget import RetryBudget
from tests.support.clock import Clock

pytestmark = pytest.mark.fast


def test_retries_are_bounded_by_the_ratio_plus_a_floor() -> None:
    budget = RetryBudget(ratio=0.2, window_seconds=10, min_retries=3, timer=Clock())
    for _ in range(100):
        budget.record_call()

    granted = sum(budget.try_retry() for _ in range(100))

    assert granted == 3 + 20


def test_the_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.0, window_seconds=10, min_retries=2, timer=clock)
    assert budget.try_retry()
    assert budget.try_retry()
    assert not budget.try_retry()

    clock.now += 10.5

    assert budget.try_retry()


def test_idle_calls_fall_out_of_the_window() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=1.0, window_seconds=10, min_retries=0, timer=clock)
    for _ in range(50):
        budget.record_call()
    clock.now += 60

    assert not budget.try_retry()
