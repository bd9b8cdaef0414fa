"""Atomic writes and provenance records for result files.

An atomic write goes to a temp file `.NAME.<host>-<pid>.<random>.tmp` in
the same folder, is fsynced and renamed over NAME. It never replaces
anything but a regular file (a folder, a device such as /dev/null, a FIFO
stay as they are: `UsageError`). Temp files that a killed writer left
(same host, process gone) are removed by the next write of the same NAME.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import platform
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy

from core.errors import UsageError
from core.lock import pid_alive

LEGACY_TEMP_SECONDS = 3600  # temp files of the earlier naming (no pid) older than this are left-overs


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def host_tag() -> str:
    """Eight hex digits naming this host in temp-file names."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def remove_dead_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files of atomic writes of `path` whose writer is gone:
    written on this host by a process that no longer runs (or, named the
    earlier way without a pid, older than LEGACY_TEMP_SECONDS). A live
    writer's temp file, or another host's, is never touched."""
    path = Path(path)
    own = re.compile(rf"^\.{re.escape(path.name)}\.([0-9a-f]{{8}})-(\d+)\.[^.]+\.tmp$")
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = own.match(tmp.name)
        try:
            if m is not None:
                dead = m.group(1) == host_tag() and not pid_alive(int(m.group(2)))
            else:
                dead = time.time() - tmp.lstat().st_mtime > LEGACY_TEMP_SECONDS
            if dead and stat.S_ISREG(tmp.lstat().st_mode):
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone meanwhile, or not ours to remove
            pass
    return removed


def check_replaceable(path: str | os.PathLike) -> None:
    """UsageError unless `path` is absent or a regular file (or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise UsageError(f"{path} is {kind}; only a regular file is ever replaced")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over.
    The file gets the mode a plain `open(path, "w")` would give (0666 less
    the umask), not mkstemp's 0600. Refuses to replace anything but a
    regular file; removes temp files that killed writers of `path` left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(path)
    remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{host_tag()}-{os.getpid()}.",
                               suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import torch  # local: importing torch takes 2-7 s here, and theory never needs it

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _torch_version() -> str | None:
    """torch's version without importing it (the loaded module's when there is one)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].__version__
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict:
    """Package version, git commit and interpreter facts for a result file."""
    try:
        version = metadata.version("invrob")
    except metadata.PackageNotFoundError:
        version = None
    return {
        "invrob_version": version,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": _torch_version(),
        "numpy": numpy.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
