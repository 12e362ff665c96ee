"""The work queue: one entry per route, one worker per route, failures backed off."""

from __future__ import annotations

import threading
import time

import pytest

from modelroute.operator.workqueue import ShutDown, WorkQueue, backoff


def test_a_key_is_queued_once_however_often_it_is_added() -> None:
    queue = WorkQueue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_a_key_added_while_worked_on_comes_back_after_done_not_before() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")
    assert queue.get(0) is None  # not to a second worker meanwhile
    queue.done("a")
    assert queue.get(0) == "a"
    queue.done("a")
    assert queue.get(0) is None


def test_retries_back_off_exponentially_and_forget_resets() -> None:
    queue = WorkQueue(base=0.5, cap=300)
    delays = [queue.retry("a") for _ in range(12)]
    for number, delay in enumerate(delays, start=1):
        nominal = min(300.0, 0.5 * 2 ** (number - 1))
        assert 0.75 * nominal <= delay <= 1.25 * nominal
    assert queue.failures("a") == 12
    queue.forget("a")
    assert queue.failures("a") == 0


def test_add_after_waits_and_an_add_meanwhile_goes_first() -> None:
    queue = WorkQueue()
    queue.add_after("a", 0.2)
    assert queue.get(0.05) is None
    started = time.monotonic()
    assert queue.get(1) == "a"
    assert time.monotonic() - started >= 0.1
    queue.done("a")
    queue.add_after("b", 30)
    queue.add("b")  # a watch event: no need to wait for the retry
    assert queue.get(0) == "b"


def test_shut_down_wakes_waiting_workers() -> None:
    queue = WorkQueue()
    ended = threading.Event()

    def worker() -> None:
        try:
            queue.get()
        except ShutDown:
            ended.set()

    thread = threading.Thread(target=worker)
    thread.start()
    queue.shut_down()
    thread.join(2)
    assert ended.is_set()
    with pytest.raises(ShutDown):
        queue.get(0)


@pytest.mark.parametrize("failures", [1, 5, 20])
def test_backoff_is_capped(failures: int) -> None:
    assert backoff(failures, 1.0, 10.0) <= 12.5
