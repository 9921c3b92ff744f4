"""Wall and CPU seconds per named stage of one scene, measured in the process that does the work.

CPU is `time.process_time()`: every thread of this process (Blender's render threads, numba's and the
compositor's pools), so a worker subprocess measures itself. Stages must not nest: their sum is meant
to account for the scene's wall time. Threads that work ahead in the background (the layered
compositor's pool, which composites the next frames while this thread writes and simulates) would
have their CPU counted to whatever stage is running; `count_background` moves it to its own stage.
"""
from __future__ import annotations

import resource
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter, process_time


class StageClock:
    def __init__(self) -> None:
        self._wall0, self._cpu0 = perf_counter(), process_time()
        self.stages: dict[str, dict[str, float]] = {}
        self._background: tuple[str, Callable[[], float]] | None = None

    def count_background(self, stage: str, cpu_seconds: Callable[[], float]) -> None:
        """From now on, the CPU that `cpu_seconds()` (a running total of background threads) gains
        during any stage counts to `stage`, the rest of the process's CPU to the stage running."""
        self._background = (stage, cpu_seconds)

    @contextmanager
    def stage(self, name: str):
        background = self._background
        wall, cpu = perf_counter(), process_time()
        behind = background[1]() if background else 0.0
        try:
            yield
        finally:
            moved = background[1]() - behind if background else 0.0
            acc = self.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            acc["wall_s"] += perf_counter() - wall
            acc["cpu_s"] += process_time() - cpu - moved
            if moved:
                self.stages.setdefault(background[0], {"wall_s": 0.0, "cpu_s": 0.0})["cpu_s"] += moved

    def each(self, name: str, items: Iterable) -> Iterator:
        """`items`, the time spent producing each one counted to stage `name`."""
        it = iter(items)
        while True:
            with self.stage(name):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def report(self) -> dict:
        """Totals since construction, the stages, and this process's peak RSS so far (a worker that
        makes several scenes reports the largest of them)."""
        return {"wall_s": perf_counter() - self._wall0, "cpu_s": process_time() - self._cpu0,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "stages": self.stages}


_END = object()
