"""Wall and CPU seconds per named stage of one scene, measured in the process that does the work.

CPU is `time.process_time()`: every thread of this process (Blender's render threads, numba's and the
compositor's pools), so a worker subprocess measures itself. Stages must not nest: their sum is meant
to account for the scene's wall time.
"""
from __future__ import annotations

import resource
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter, process_time


class StageClock:
    def __init__(self) -> None:
        self._wall0, self._cpu0 = perf_counter(), process_time()
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str):
        wall, cpu = perf_counter(), process_time()
        try:
            yield
        finally:
            acc = self.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            acc["wall_s"] += perf_counter() - wall
            acc["cpu_s"] += process_time() - cpu

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
