"""One writer per folder: `RunLock(folder)`.

The lock is a file `folder/.lock` created atomically (`O_CREAT | O_EXCL`)
holding JSON {pid, host, started, start_ticks} (start_ticks: when the
process started, so a recycled pid does not keep a lock alive). A second writer gets a UsageError naming
the owner. A lock whose owner is a dead process on this host is stale: it is
taken over: removed under an flock on `folder/.lock.guard` after reading it
again (so of several processes taking over at once, one removes it and the
O_EXCL create decides who owns the new lock); the guard file is removed
after each take-over (a guard left by a killed take-over is removed by the
next owner).
A lock from another host is never taken over (its pid cannot be checked).

    with RunLock(run_dir):
        ...write into run_dir...
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from core.errors import UsageError

LOCK_FILE = ".lock"
GUARD_FILE = ".lock.guard"  # exists only while a take-over runs


def _host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when a process `pid` exists on this host (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) holds no lock
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), so a
    recycled pid is told apart from the process that took a lock; None
    where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def read_owner(path: Path) -> dict | None:
    """The JSON of a lock file; {} when unreadable or half-written; None if absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


class RunLock:
    """Exclusive writer lock on `folder` (created if absent); re-entrant
    within one process."""

    _held: dict[str, int] = {}  # lock path -> depth, for this process

    def __init__(self, folder: str | os.PathLike, what: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.what = what or str(self.folder)
        self._key = None

    # ------------------------------------------------------------ acquire
    def _create(self) -> bool:
        record = {"pid": os.getpid(), "host": _host(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "start_ticks": process_start(os.getpid())}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def _stale(self, owner: dict) -> bool:
        """The owner is a dead process on this host (or its pid now names
        a process started later)."""
        if owner.get("host") != _host() or not isinstance(owner.get("pid"), int):
            return False
        if not pid_alive(owner["pid"]):
            return True
        recorded, now = owner.get("start_ticks"), process_start(owner["pid"])
        return isinstance(recorded, int) and now is not None and now != recorded

    def _take_over(self, owner: dict) -> None:
        """Remove the stale lock `owner`. Take-overs are serialised by an flock
        on a guard file and the lock is re-read under it, so a lock that
        another process has meanwhile taken (or re-taken) is never removed:
        locks are only created with O_EXCL and only their owner or a
        take-over removes them."""
        guard = self._guard()
        try:
            if read_owner(self.path) == owner:
                self.path.unlink(missing_ok=True)
        finally:
            self._drop_guard(guard)

    def _guard(self) -> int:
        """An flock on `folder/.lock.guard`, on the file that is at that path
        now: a guard removed by the holder before us is opened afresh, so
        removing it after use never lets two processes in at once."""
        path = self.path.with_name(GUARD_FILE)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _drop_guard(self, fd: int) -> None:
        """Remove the guard file (while holding it) and release it."""
        try:
            self.path.with_name(GUARD_FILE).unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock

    def _remove_leftover_guard(self) -> None:
        """A guard file a killed take-over left behind (we hold the lock now)."""
        if os.path.lexists(self.path.with_name(GUARD_FILE)):
            try:
                self._drop_guard(self._guard())
            except OSError:
                pass

    def _busy(self, owner: dict) -> UsageError:
        return UsageError(
            f"{self.what} is being written by pid {owner.get('pid')} on "
            f"{owner.get('host')} (since {owner.get('started')}); wait for it to finish, "
            f"or remove {self.path} if that process is gone")

    def check(self) -> None:
        """Raise the second writer's UsageError if another live process holds
        the lock now (takes nothing)."""
        owner = read_owner(self.path)
        if not owner:
            return
        if owner.get("pid") == os.getpid() and owner.get("host") == _host():
            return
        if not self._stale(owner):
            raise self._busy(owner)

    def acquire(self) -> "RunLock":
        key = str(self.path.resolve()) if self.path.parent.exists() else str(self.path)
        if RunLock._held.get(key):
            RunLock._held[key] += 1
            self._key = key
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {self.folder}: {err.strerror or err}") from None
        key = str(self.path.resolve())
        for attempt in range(50):
            try:
                if self._create():
                    break
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise UsageError(f"cannot write in {self.folder}: {err.strerror}") from None
                raise
            owner = read_owner(self.path)
            if owner is None:  # released meanwhile
                continue
            if not owner:  # being written right now, or damaged: look again shortly
                time.sleep(0.02)
                if attempt < 25:
                    continue
                owner = read_owner(self.path)
                if owner == {}:  # stays unreadable: a writer killed mid-write
                    self._take_over(owner)
                    continue
                if owner is None:
                    continue
            if self._stale(owner):
                self._take_over(owner)
                continue
            raise self._busy(owner)
        else:
            raise UsageError(f"cannot take the lock {self.path}: it keeps changing")
        RunLock._held[key] = 1
        self._key = key
        self._remove_leftover_guard()
        return self

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        RunLock._held[key] -= 1
        if RunLock._held[key]:
            return
        del RunLock._held[key]
        owner = read_owner(self.path)
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == _host():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
