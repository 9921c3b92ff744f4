"""Files that appear whole or not at all: written under a temporary name beside the target, then renamed.

Every file nfs_synth writes this way has one temporary name, `<name>.tmp-<pid>-<8 hex>`: the pid
tells cleanup whose it is, and `nfs-synth validate` can name it a stray. Files get the mode the
umask gives, as with open().
"""
from __future__ import annotations

import glob
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_MARK = ".tmp-"


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `target` to write to: renamed onto `target` when the block ends, removed
    when it raises. Close the file before the block ends."""
    target = Path(target)
    tmp = target.with_name(f"{target.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, target)             # atomic on one file system
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def temporaries(target: str | os.PathLike, pid: int | None = None) -> list[Path]:
    """The temporaries of `target` that exist now; only those of process `pid` when it is given."""
    target = Path(target)
    owner = "" if pid is None else f"{pid}-"
    return list(target.parent.glob(f"{glob.escape(target.name)}{TMP_MARK}{owner}*"))
