"""Races for the tests that need real row locks (the PostgreSQL pass): actions released together in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def at_once(*actions: Callable[[], object], join_seconds: float = 60) -> list[BaseException | object]:
    """Run the actions in threads released together by a barrier, each on its own database connection; returns each
    one's result or the exception it raised, in order. Fails when an action is still running after ``join_seconds``
    (a lock that never came free)."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[BaseException | object] = [None] * len(actions)

    def run(index: int, action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = action()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcomes[index] = error
        finally:
            connection.close()  # the thread's own connection

    threads = [threading.Thread(target=run, args=(index, action)) for index, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=join_seconds)
    assert not any(thread.is_alive() for thread in threads), f"an action still ran after {join_seconds} s"
    return outcomes
