"""Turns: batches taken in order reach their patients in that order, and no turn is lost."""

from __future__ import annotations

import threading
import time

import pytest

from core.turns import Turns


def test_a_later_turn_waits_until_the_earlier_one_is_released() -> None:
    turns = Turns()
    first, second = turns.take(), turns.take()
    order: list[str] = []

    def later() -> None:
        with turns.turn(second):
            order.append("second")

    with turns.turn(first):
        waiting = threading.Thread(target=later)
        waiting.start()
        time.sleep(0.1)
        order.append("first")
        turns.release()  # as the engine does once the batch's patients are locked
        waiting.join(5)
        order.append("first's commit")
    assert order == ["first", "second", "first's commit"]


def test_a_turn_that_fails_still_lets_the_next_one_go() -> None:
    turns = Turns()
    first, second = turns.take(), turns.take()
    with pytest.raises(RuntimeError), turns.turn(first):
        raise RuntimeError("the batch failed before its patients were locked")
    done = threading.Event()

    def next_batch() -> None:
        with turns.turn(second):
            done.set()

    thread = threading.Thread(target=next_batch)
    thread.start()
    thread.join(5)
    assert done.is_set()


def test_release_outside_a_turn_does_nothing() -> None:
    turns = Turns()
    turns.release()
    with turns.turn(turns.take()):
        turns.release()
        turns.release()
