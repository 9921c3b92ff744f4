"""One driver per scene: a second driver on scenes that another is making in the same folder refuses.

A driver holds a POSIX record lock (fcntl.lockf) on the bytes START..STOP-1 of `OUT/.drivers/lock`, its
scene range. Shards of a job array lock disjoint ranges and run side by side; two drivers of overlapping
ranges cannot. The kernel drops the lock when the process dies, however it dies, so a killed driver never
leaves the folder stuck. Record locks also work across hosts on NFS (lockd). A holder file per driver
(`OUT/.drivers/START-STOP.json`: pid, host, start time, command) only serves to name the holder.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from nfs_synth.corpus.atomic import write_text
from nfs_synth.errors import BusyError

DRIVERS = ".drivers"


def _holder_path(folder: Path, scenes: range) -> Path:
    return folder / DRIVERS / f"{scenes.start:07d}-{scenes.stop:07d}.json"


def _try_lock(fd: int, scenes: range) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, len(scenes), scenes.start)
        return True
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise


def _holders(folder: Path, fd: int, scenes: range) -> list[str]:
    """Who holds scenes of `scenes`: the holder files of overlapping ranges that are locked (a killed
    driver's file stays behind), most recent first. Called only while this process holds no lock here:
    the test locks it takes are dropped with the descriptor."""
    found = []
    for path in (folder / DRIVERS).glob("*-*.json"):
        try:
            info = json.loads(path.read_text())
            start, stop = info["scenes"]
        except (OSError, ValueError, KeyError, TypeError):
            continue                       # being written or removed just now
        if start < scenes.stop and scenes.start < stop and not _try_lock(fd, range(start, stop)):
            found.append((info["started"], f"pid {info['pid']} on {info['host']} since "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['started']))} "
                          f"(scenes {start}..{stop - 1}: {info['command']})"))
    return [text for _, text in sorted(found, reverse=True)]


@contextmanager
def driver_lock(folder: str | os.PathLike, scenes: range, noun: str = "scenes"):
    """Hold the scenes `scenes` of `folder` for the block; BusyError when another live driver holds any."""
    if not scenes:                         # nothing to make (an empty shard): nothing to hold
        yield
        return
    folder = Path(folder)
    (folder / DRIVERS).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / DRIVERS / "lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(fd, scenes):
            who = _holders(folder, fd, scenes) or ["a driver whose holder file is gone"]
            raise BusyError(f"{folder}: {noun} {scenes.start}..{scenes.stop - 1} are being made by another "
                            f"driver: {'; '.join(who)}. Wait for it, stop it, or choose other scenes "
                            "(--scenes / --shard)")
        holder = _holder_path(folder, scenes)
        write_text(holder, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                       "scenes": [scenes.start, scenes.stop], "command": " ".join(sys.argv)}))
        try:
            yield
        finally:
            holder.unlink(missing_ok=True)
    finally:
        os.close(fd)                       # releases the lock
