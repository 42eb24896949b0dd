"""An exclusive lock on a run directory, so two processes never train into the same ``--out-dir``.

``RUN/.lock`` is locked with ``fcntl.flock`` (released by the kernel when the holder exits, even on
``kill -9``) and holds the holder's PID, which a refused second run names. The file itself is left
in place: deleting a lock file races with a process that is about to lock it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

__all__ = ["RunLock", "RunLockedError", "LOCK_NAME"]

LOCK_NAME = ".lock"


class RunLockedError(ValueError):
    """Another process holds the run directory's lock; the message names its PID."""


class RunLock:
    """Context manager holding an exclusive lock on ``run_dir`` (no-op where ``fcntl`` is missing)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks, no protection
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise RunLockedError(
                f"run directory {self.path.parent} is in use by {who} (lock {self.path}); wait for that run to "
                "finish or stop it, or choose another --out-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, UnicodeDecodeError):
        return None
