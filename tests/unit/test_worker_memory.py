"""The worker's memory trimmer (worker/memory.py): glibc's malloc_trim, on a timer, off the
event loop's thread."""

from __future__ import annotations

import asyncio
import threading

from gproxy_mp.worker.memory import find_malloc_trim, run_trimmer


def test_glibc_offers_malloc_trim_and_it_answers_whether_it_released_memory() -> None:
    trim = find_malloc_trim()
    assert trim is not None, "this test machine runs glibc"
    assert trim() in (0, 1)


async def test_the_trimmer_trims_every_interval_on_another_thread() -> None:
    threads: list[int] = []
    three = asyncio.Event()
    loop = asyncio.get_running_loop()

    def trim() -> int:
        threads.append(threading.get_ident())
        if len(threads) == 3:
            loop.call_soon_threadsafe(three.set)
        return 0

    task = asyncio.create_task(run_trimmer(trim, interval=0.01))
    try:
        await asyncio.wait_for(three.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert threading.get_ident() not in threads
