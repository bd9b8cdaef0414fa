"""One validation path for command-line options that name a file, a folder,
a device or a size.

Every check raises `core.errors.UsageError` whose message starts with the
option (e.g. "`--plot` ..."), so a command line turns it into one line and
exit 2 before any work. Probing never creates or changes anything: an
output path is judged by its nearest existing ancestor (`os.access`).

Stated maxima (named constants, quoted in the messages):

- `MAX_GRID_POINTS`: points of one grid option (`--thetas`, `--eps`).
- `MAX_STEPS`: an iteration count (`--steps`, `--train-steps`, `--epochs`,
  `--resamples`, ...).
- `MAX_SAMPLES`: a sample count (`--n`, `--n-test`, `--train-subset`).
- `MAX_DIMENSION`: a model dimension (`theory.check --d`).
- `MAX_JOBS`: worker processes of one sweep (`--jobs`).
- A memory estimate must fit in `MEMORY_FRACTION` of the memory this
  process may use (physical memory, an address-space limit, a cgroup limit).
"""
from __future__ import annotations

import math
import os
import resource
import socket
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import UsageError

MAX_GRID_POINTS = 10_000
MAX_STEPS = 1_000_000
MAX_SAMPLES = 100_000_000
MAX_DIMENSION = 1_000_000
MAX_JOBS = 256
MEMORY_FRACTION = 0.8
RAY_PROBE_SECONDS = 5.0
RAY_DEFAULT_PORTS = {"ray": 10001, "": 6379}


def _flag(option: str) -> str:
    return f"`{option}`"


def _text(value, option: str) -> Path:
    if value is None or not str(value).strip():
        raise UsageError(f"{_flag(option)} is an empty path")
    if "\0" in str(value):
        raise UsageError(f"{_flag(option)} {value!r} contains a NUL byte")
    return Path(value).expanduser()


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (without resolving links away)."""
    p = path if path.is_absolute() else Path.cwd() / path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    return p


def _writable(folder: Path) -> bool:
    """Files can be created in `folder` by this process."""
    return os.access(folder, os.W_OK | os.X_OK)


def _creatable(path: Path, option: str, kind: str) -> None:
    """`path` does not exist: it can be created as a `kind` ('file'/'folder')."""
    anchor = _nearest_existing(path)
    if not anchor.is_dir():
        raise UsageError(f"{_flag(option)} {path}: {anchor} is not a folder, so the {kind} "
                         "cannot be created")
    if not _writable(anchor):
        raise UsageError(f"{_flag(option)} {path}: folder {anchor} is not writable")


def output_file(value, option: str) -> Path:
    """A file to write (created or replaced atomically in its folder)."""
    path = _text(value, option)
    if path.is_dir() or str(value).endswith(os.sep):
        raise UsageError(f"{_flag(option)} {path} is a folder; give a file name")
    if path.exists():
        if not _writable(path.parent):
            raise UsageError(f"{_flag(option)} {path}: folder {path.parent} is not writable")
        return path
    _creatable(path, option, "file")
    return path


def output_dir(value, option: str) -> Path:
    """A folder to write into (created if absent)."""
    path = _text(value, option)
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{_flag(option)} {path} is a file, not a folder")
        if not _writable(path):
            raise UsageError(f"{_flag(option)} {path}: folder is not writable")
        return path
    if os.path.lexists(path):
        raise UsageError(f"{_flag(option)} {path} is a broken link")
    _creatable(path, option, "folder")
    return path


def input_file(value, option: str) -> Path:
    """A file to read."""
    path = _text(value, option)
    if path.is_dir():
        raise UsageError(f"{_flag(option)} {path} is a folder, not a file")
    if not path.is_file():
        raise UsageError(f"{_flag(option)} {path} does not exist")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{_flag(option)} {path} is not readable")
    return path


def input_dir(value, option: str) -> Path:
    """A folder to read."""
    path = _text(value, option)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{_flag(option)} {path} is a file, not a folder")
    if not path.is_dir():
        raise UsageError(f"{_flag(option)} {path} does not exist")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"{_flag(option)} {path}: folder is not readable")
    return path


def folder_path(value, option: str) -> Path:
    """A folder that is read if present (a data folder, a store being read):
    not empty, not a file; absence is left to the reader to report."""
    path = _text(value, option)
    if os.path.lexists(path) and not path.is_dir():
        raise UsageError(f"{_flag(option)} {path} is not a folder")
    return path


def device(value, option: str = "--device"):
    """A torch.device that exists here (None: CUDA when present, else CPU)."""
    import torch  # local: importing torch takes 2-7 s here; theory.check validates no device

    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(value).strip()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"{_flag(option)} {value!r} is not a device; use cpu, cuda or "
                         "cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise UsageError(f"{_flag(option)} {value!r}: only cpu and cuda devices are supported")
    if not torch.cuda.is_available():
        raise UsageError(f"{_flag(option)} {value!r}: CUDA is not available on this machine")
    n = torch.cuda.device_count()
    if dev.index is not None and dev.index >= n:
        raise UsageError(f"{_flag(option)} {value!r}: this machine has {n} CUDA device(s) "
                         f"(cuda:0 .. cuda:{n - 1})")
    return dev


def count(value, option: str, low: int = 1, high: int = MAX_STEPS) -> int:
    """An integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{_flag(option)} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{_flag(option)} must be in [{low}, {high:,}], got {value:,}")
    return value


def finite(value, option: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{_flag(option)} must be a finite number, got {value!r}")
    return float(value)


def grid_size(n_points: float, option: str, high: int = MAX_GRID_POINTS) -> int:
    """The number of points of a grid, at most `high` (checked before building it)."""
    if not math.isfinite(n_points):
        raise UsageError(f"{_flag(option)} must have finitely many points")
    if n_points > high:
        raise UsageError(f"{_flag(option)} would have {n_points:,.0f} points; at most "
                         f"{high:,} are allowed")
    return int(n_points)


def physical_memory() -> int | None:
    """Bytes of memory this process may use (None when unknown): physical
    memory, lowered by an address-space limit (ulimit -v) or a cgroup v2
    memory.max where one is set."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        pass
    try:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(soft)
    except (OSError, ValueError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    return min(limits) if limits else None


def memory(nbytes: float, option: str, what: str = "this run") -> None:
    """`nbytes` (an estimate of the peak) must fit in the machine's memory."""
    total = physical_memory()
    if total is None:
        return
    if not math.isfinite(nbytes) or nbytes > MEMORY_FRACTION * total:
        raise UsageError(f"{_flag(option)}: {what} needs about {nbytes / 2**30:,.1f} GiB of "
                         f"memory, more than this process may use ({total / 2**30:,.1f} GiB)")


def ray_address(value, option: str = "--ray", timeout: float = RAY_PROBE_SECONDS) -> str:
    """A Ray address ('auto', 'local', ray://host:port, host:port) whose host
    answers on its port within `timeout` seconds ('auto'/'local' are not probed)."""
    if value is None or not str(value).strip():
        raise UsageError(f"{_flag(option)} is an empty address")
    text = str(value).strip()
    if text in ("auto", "local"):
        return text
    parts = urlsplit(text if "://" in text else f"//{text}")
    if parts.scheme not in RAY_DEFAULT_PORTS:
        raise UsageError(f"{_flag(option)} {text!r}: expected auto, local, ray://HOST:PORT "
                         "or HOST:PORT")
    try:
        host, port = parts.hostname, parts.port or RAY_DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise UsageError(f"{_flag(option)} {text!r}: the port is not a number") from None
    if not host:
        raise UsageError(f"{_flag(option)} {text!r}: no host")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise UsageError(f"{_flag(option)} {text!r}: cannot reach {host}:{port} ({reason})") from None
    return text
