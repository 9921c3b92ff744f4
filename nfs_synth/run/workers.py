"""Where scenes run: render worker processes, and the pools (joblib, Dask) that feed them.

Every pool slot (a joblib thread in the driver, or a Dask worker thread) owns one *render worker*: a
child process (`python -m nfs_synth.run.workers`) that runs one work unit at a time and is replaced after
`max_units` units, after any failure and on a timeout. Doing this below the pool gives the same hard
per-scene timeout, recycling and crash isolation under joblib and under a Dask cluster we do not own
(Dask cannot recycle or kill another user's worker processes; joblib/loky cannot interrupt a running
task). The child dies with its slot (PR_SET_PDEATHSIG), so killing the driver or a Dask worker also
stops its renders; whatever temporaries they leave are removed on the next run.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from nfs_synth.errors import PoolError

FAULT_ENV = "NFS_SYNTH_FAULT"
FAULT_KINDS = ("raise", "oserror", "crash", "hang")
_HEADER = struct.Struct("<Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])   # holds nfs_synth/ and blender_scenes/


class UnitFailed(RuntimeError):
    """One attempt at a work unit failed (exception, dead worker process or timeout). `transient`: worth
    another attempt (a killed worker, a timeout, an OSError), unlike an error the same input repeats."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


# ---------------------------------------------------------------- fault injection (tests only)

def parse_faults(text: str) -> dict[int, tuple[str, int | None]]:
    """`raise:3,crash:1:1` -> {3: ('raise', None), 1: ('crash', 1)}: KIND:SCENE[:FIRST_N_ATTEMPTS]."""
    faults = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        try:
            if parts[0] not in FAULT_KINDS or len(parts) not in (2, 3):
                raise ValueError
            faults[int(parts[1])] = (parts[0], int(parts[2]) if len(parts) == 3 else None)
        except ValueError:
            raise ValueError(f"{FAULT_ENV}={text!r}: expected KIND:SCENE[:ATTEMPTS] with KIND one of "
                             f"{', '.join(FAULT_KINDS)}, e.g. raise:3 or crash:1:1") from None
    return faults


def fault_hook(index: int, attempt: int):
    """The per-frame hook of a unit: injects the fault `NFS_SYNTH_FAULT` asks for, after frame 0
    (so a temporary file exists), or None when no fault applies. The only reader of the variable."""
    kind, attempts = parse_faults(os.environ.get(FAULT_ENV, "")).get(index, (None, None))
    if kind is None or (attempts is not None and attempt >= attempts):
        return None

    def hook(frame: int) -> None:
        if frame == 0:
            if kind == "raise":
                raise RuntimeError(f"injected fault in scene {index}")
            if kind == "oserror":
                raise OSError(f"injected I/O fault in scene {index}")
            if kind == "crash":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)                        # "hang": only the timeout ends it
    return hook


# ---------------------------------------------------------------- render worker process (child)

def _write_msg(fd: int, obj) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_msg(fd: int):
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, size))


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:                                   # parent already gone
        os._exit(1)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker_main(parent_pid: int) -> None:
    """Loop: read (unit, threads, attempt), run it, answer ('ok', entry, stats) or ('error', text,
    transient)."""
    _die_with_parent(parent_pid)
    channel = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)     # Blender prints to fd 1: keep the channel clean
    while True:
        try:
            unit, threads, attempt = _read_msg(0)
        except EOFError:
            return                                     # slot closed us (recycling) or died
        started = time.perf_counter()
        try:
            entry = unit.run(threads, fault_hook(unit.index, attempt))
            reply = ("ok", entry, {"pid": os.getpid(), "rss_mb": _rss_mb(),
                                   "unit_s": time.perf_counter() - started})
        except Exception as err:                       # reported to the slot, which decides on retries
            reply = ("error", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}",
                     isinstance(err, OSError))
        _write_msg(channel, reply)


class RenderWorker:
    """The slot's side of one render worker process: start lazily, send a unit, wait with timeout."""

    def __init__(self, max_units: int = 20):
        self.max_units = max_units
        self.proc: subprocess.Popen | None = None
        self.units = 0
        self.run_id: str | None = None          # the driver run whose unit it is running (interrupt_run)

    def _start(self, threads: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        # The simulators' numba kernels would otherwise start a thread per core in every worker.
        env["NUMBA_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen([sys.executable, "-m", "nfs_synth.run.workers", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env)
        self.units = 0

    def run(self, unit, threads: int, attempt: int, timeout: float | None) -> tuple[dict, dict]:
        started = time.perf_counter()
        if self.proc is None or self.proc.poll() is not None:
            self._start(threads)
        if self.run_id in _interrupted_runs:   # interrupted while this slot was between units
            self.stop(kill=True)
            raise UnitFailed("interrupted", transient=False)
        self.units += 1
        try:
            _write_msg(self.proc.stdin.fileno(), (unit, threads, attempt))
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                self._lost(unit, f"timed out after {timeout:g} s (worker process {{pid}} killed)", kill=True)
            reply = _read_msg(self.proc.stdout.fileno())
        except (EOFError, BrokenPipeError):
            self._lost(unit, "worker process {pid} died (exit status {code})")
        if reply[0] != "ok":
            self.stop()                    # a failed unit may leave Blender in any state: start afresh
            raise UnitFailed(reply[1], transient=reply[2])
        if self.units >= self.max_units:
            self.stop()
        return reply[1], reply[2] | {"slot_s": time.perf_counter() - started}

    def _lost(self, unit, why: str, kill: bool = False):
        """The process is gone or must go: remove it and the temporaries only it could have made."""
        proc = self.proc
        self.stop(kill=kill)
        unit.remove_temporaries(proc.pid)
        raise UnitFailed(why.format(pid=proc.pid, code=proc.returncode), transient=True)

    def stop(self, kill: bool = False) -> None:
        """End the process: close its input (it exits after the current unit) or kill it. The slot and an
        interrupt may both call this: whoever takes the process first ends it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ---------------------------------------------------------------- what a pool slot runs

@dataclass(frozen=True)
class Policy:
    """How a slot runs units: attempts, timeout, recycling and the Cycles thread share."""

    retries: int = 2
    timeout: float | None = None
    max_units: int = 20
    threads: int | None = None            # None: the machine's cores / slots on that machine
    slots_per_host: int | dict = 1        # an int, or {host: slots} for a cluster
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)   # what `interrupt_run` stops

    def threads_here(self) -> int:
        if self.threads:
            return self.threads
        slots = self.slots_per_host
        if isinstance(slots, dict):
            slots = slots.get(_this_host(), 1)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, cores // max(1, slots))


@dataclass
class Outcome:
    entry: dict
    # Of the last attempt: worker pid and RSS after it, seconds inside the worker (unit_s) and seen by
    # the slot (slot_s: + worker start when it had to, transfer, recycling).
    stats: dict = field(default_factory=dict)


_slot = threading.local()
# Pools may reuse threads across runs, and a thread's worker outlives a run: weak references let a
# finished thread's worker go, while `stop_workers` still reaches every live one.
_workers: weakref.WeakSet[RenderWorker] = weakref.WeakSet()
_workers_lock = threading.Lock()
# Runs stopped by Ctrl-C: their units still queued end at once, and no worker process starts for them.
# Per run, not per process, so that a shared Dask cluster keeps serving other drivers.
_interrupted_runs: set[str] = set()


def run_unit(unit, policy: Policy) -> Outcome:
    """Run `unit` in this slot's render worker, retrying transient failures only; a unit that fails for
    good gives its failure entry. Runs in a joblib thread or a Dask worker thread."""
    worker = getattr(_slot, "worker", None)
    if worker is None:
        worker = _slot.worker = RenderWorker()
        with _workers_lock:
            _workers.add(worker)
    worker.max_units = policy.max_units
    worker.run_id = policy.run_id
    for attempt in range(policy.retries + 1):
        if policy.run_id in _interrupted_runs:
            return Outcome(unit.failure_entry("interrupted", attempt))
        try:
            entry, stats = worker.run(unit, policy.threads_here(), attempt, policy.timeout)
            return Outcome(entry | {"attempts": attempt + 1}, stats)
        except UnitFailed as err:
            if not err.transient:        # the same input fails the same way: retrying only costs time
                return Outcome(unit.failure_entry(str(err).strip(), attempt + 1))
            error = str(err).strip()
    return Outcome(unit.failure_entry(error, policy.retries + 1))


def interrupt_run(run_id: str) -> None:
    """Ctrl-C of the driver of `run_id`: kill the worker processes running its units (Blender dies with
    them), which then remove their temporaries; its queued units end without starting."""
    _interrupted_runs.add(run_id)
    with _workers_lock:
        for worker in list(_workers):
            if worker.run_id == run_id and worker.proc is not None:
                worker.proc.kill()


def stop_workers() -> None:
    """Close this process's idle render workers (end of a run; on Dask through `client.run`)."""
    with _workers_lock:
        for worker in list(_workers):
            worker.stop()


def _this_host() -> str:
    try:
        from distributed import get_worker

        return get_worker().address.split("://")[-1].rsplit(":", 1)[0]
    except (ImportError, ValueError):
        return socket.gethostname()


# ---------------------------------------------------------------- pools

class LocalPool:
    """N slots as joblib threads in the driver, each driving one render worker process."""

    def __init__(self, workers: int):
        if workers < 1:
            raise PoolError(f"--workers must be at least 1, got {workers}")
        self.slots = workers
        self.slots_per_host: int | dict = workers

    def map_unordered(self, fn, items):
        """Yield (item, result, error text or None) as they finish."""
        from joblib import Parallel, delayed

        jobs = Parallel(n_jobs=self.slots, backend="threading", return_as="generator_unordered")
        yield from jobs(delayed(_guarded)(fn, item) for item in items)

    def interrupt(self, run_id: str) -> None:
        interrupt_run(run_id)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        stop_workers()


def _guarded(fn, item):
    try:
        return item, fn(item), None
    except Exception as err:           # a bug outside the unit: report it against the unit
        return item, None, f"{type(err).__name__}: {err}"


# `--cluster slurm:N`: one single-threaded Dask worker per SLURM job, so one render worker per job. Only
# what dask-jobqueue's own configuration (~/.config/dask/jobqueue.yaml, DASK_JOBQUEUE__SLURM__* variables)
# leaves unset: give a job the CPUs Cycles should use with job-cpu, and a longer walltime than its 30 min.
SLURM_DEFAULTS = {"cores": 1, "processes": 1, "memory": "4GB"}
SLURM_WAIT_S = 600          # for the first worker: its job may queue


def start_cluster(kind: str, count: int):
    """A Dask cluster of `count` single-threaded workers: local processes, or SLURM jobs."""
    if kind == "local":
        from distributed import LocalCluster

        return LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        import dask
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise PoolError("--cluster slurm:N needs dask-jobqueue: pip install 'nfs_synth[slurm]'") from None
    settings = {k: v for k, v in SLURM_DEFAULTS.items() if dask.config.get(f"jobqueue.slurm.{k}") is None}
    cluster = SLURMCluster(**settings)
    cluster.scale(jobs=count)
    return cluster


class DaskPool:
    """Slots are the threads of a Dask cluster: an existing scheduler, or a cluster this driver starts
    (`start_cluster`: local worker processes or SLURM jobs) and closes."""

    def __init__(self, scheduler: str | None = None, cluster: tuple[str, int] | None = None):
        from distributed import Client

        self.cluster = None
        self.futures: dict = {}             # of the current map, for `interrupt`
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="10s")
            else:
                self.cluster = start_cluster(*cluster)
                self.client = Client(self.cluster)
                # SLURM jobs start when the queue lets them; count the slots once all have joined
                self.client.wait_for_workers(cluster[1], timeout=SLURM_WAIT_S)
        except (OSError, TimeoutError) as err:
            if self.cluster is not None:
                self.cluster.close()
            where = scheduler or f"{cluster[0]}:{cluster[1]} cluster (its workers did not all start in {SLURM_WAIT_S} s)"
            raise PoolError(f"cannot reach the Dask scheduler of {where}: {err}") from None
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        self.slots = sum(w["nthreads"] for w in workers) or 1
        self.slots_per_host = dict(Counter(w["host"] for w in workers for _ in range(w["nthreads"])))

    def map_unordered(self, fn, items):
        from distributed import as_completed

        self.futures = futures = {self.client.submit(fn, item, pure=False): item for item in items}
        for future in as_completed(futures):
            item = futures.pop(future)
            if future.status == "finished":
                yield item, future.result(), None
            else:                          # e.g. KilledWorker: the task's worker died repeatedly
                yield item, None, f"{type(future.exception()).__name__}: {future.exception()}"
            future.release()

    def interrupt(self, run_id: str) -> None:
        """Cancel the queued units and kill the running ones' worker processes on every Dask worker."""
        self.client.cancel(list(self.futures))
        self.client.run(interrupt_run, run_id)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.cluster is None:
                self.client.run(stop_workers)     # free the render workers on a shared cluster
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def parse_cluster(text: str) -> tuple[str, int]:
    """`local:N` -> ('local', N); `slurm:N` -> ('slurm', N)."""
    kind, _, count = text.partition(":")
    if kind not in ("local", "slurm") or not count.isdigit() or int(count) < 1:
        raise PoolError(f"--cluster {text!r}: expected local:N or slurm:N with N >= 1, e.g. local:4")
    return kind, int(count)


def add_pool_arguments(p) -> None:
    """The options shared by `generate.py` and `nfs-synth simulate`."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="render worker processes on this machine (default 1)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask.distributed scheduler")
    where.add_argument("--cluster", metavar="local:N|slurm:N",
                       help="start a Dask cluster of N workers: local processes, or SLURM jobs (dask-jobqueue)")
    p.add_argument("--threads", type=int, default=None,
                   help="Cycles threads per render worker (default: recipe, else cores / workers per machine)")
    p.add_argument("--retries", type=int, default=2,
                   help="extra attempts for a scene whose worker died, timed out or hit an OSError (default 2)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per-attempt time limit of one scene (default none)")
    p.add_argument("--max-scenes-per-worker", type=int, default=20, metavar="M",
                   help="replace a render worker process after M scenes (default 20)")
    p.add_argument("--no-progress", action="store_true")


def check_pool_arguments(args) -> None:
    """Syntax checks that must fail (status 2) before anything is started or created."""
    for name in ("retries", "threads", "max_scenes_per_worker"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "retries" else 1):
            raise PoolError(f"--{name.replace('_', '-')} must be at least {0 if name == 'retries' else 1}")
    if args.timeout is not None and args.timeout <= 0:
        raise PoolError("--timeout must be positive")
    if args.cluster:
        parse_cluster(args.cluster)
    if not args.scheduler and not args.cluster and args.workers < 1:
        raise PoolError(f"--workers must be at least 1, got {args.workers}")


def open_pool(args):
    """The pool the arguments ask for (connects to a scheduler: PoolError if unreachable)."""
    if args.scheduler:
        return DaskPool(scheduler=args.scheduler)
    if args.cluster:
        return DaskPool(cluster=parse_cluster(args.cluster))
    return LocalPool(args.workers)


def policy_for(args, pool, recipe_threads: int = 0) -> Policy:
    return Policy(retries=args.retries, timeout=args.timeout, max_units=args.max_scenes_per_worker,
                  threads=args.threads or recipe_threads or None, slots_per_host=pool.slots_per_host)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
