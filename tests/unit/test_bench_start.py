"""The benchmarks' start line: no client can be released before its round's deadline is set
(a client that saw it unset stopped at once, so rounds ran short of clients)."""

from __future__ import annotations

import threading
import time

from bench.start import StartLine


def test_a_single_client_round_runs_for_its_time() -> None:
    line = StartLine(1, 0.05)
    line.wait()
    assert line.deadline > 0 and line.running()
    time.sleep(0.06)
    assert not line.running()


def test_every_client_released_sees_the_same_deadline() -> None:
    line = StartLine(9, 5.0)
    seen: list[float] = []

    def client() -> None:
        line.wait()
        seen.append(line.deadline)  # read at once, as a client's loop does

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    line.wait()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and set(seen) == {line.started + 5.0}
    assert line.started > 0
