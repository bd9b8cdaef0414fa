"""One validation path for command-line options that name a file, a folder,
a device or a size.

Every check raises `core.errors.UsageError` whose message starts with the
option (e.g. "`--plot` ..."), so a command line turns it into one line and
exit 2 before any work. Probing never creates or changes anything: an
output path is judged by its nearest existing ancestor (`os.access`).

Stated maxima (named constants, quoted in the messages):

- `MAX_GRID_POINTS`: points of one grid option (`--thetas`, `--eps`).
- `MAX_STEPS`: an iteration count with no tighter meaning (`--resamples`).
- `MAX_ATTACK_STEPS`: PGD steps (`--steps`, `--adv-steps`): published
  evaluations use 10 to a few hundred; more changes nothing measurable.
- `MAX_TRAIN_STEPS`: optimiser steps of one synthetic model (`--train-steps`).
- `MAX_EPOCHS`: training epochs (`--epochs`): the paper trains 50 to 200.
- `MAX_ROTATIONS`: random rotations per image (`--k`).
- `MAX_GRID_ANGLES`: angles of a rotation grid (`--grid-points`): one per
  0.1 degree over [-180, 180].
- `MAX_BATCH`: images per step or forward pass (`--batch-size`): more than
  any of the data sets holds (CIFAR-10 and MNIST train on 50,000-60,000).
- `MAX_SAMPLES`: a sample count (`--n`, `--n-test`, `--train-subset`).
- `MAX_DIMENSION`: a model dimension (`theory.check --d`).
- `MAX_JOBS`: worker processes of one sweep (`--jobs`).
- `MAX_SEED`: seeds lie in [0, 2^63) (what a torch or numpy generator takes).
- A memory estimate must fit in `MEMORY_FRACTION` of the memory this
  process may use (physical memory, an address-space limit, a cgroup limit).

Paths are judged before any work: empty, a NUL byte, a name longer than
the file system allows, an output that exists as something other than a
regular file (a folder, a device, a FIFO), or any `OSError` while looking
at it: each is one `UsageError` naming the option.
"""
from __future__ import annotations

import ast
import json
import math
import os
import resource
import socket
import stat
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import UsageError

MAX_GRID_POINTS = 10_000
MAX_STEPS = 1_000_000
MAX_ATTACK_STEPS = 1_000
MAX_TRAIN_STEPS = 100_000
MAX_EPOCHS = 10_000
MAX_ROTATIONS = 360
MAX_GRID_ANGLES = 3_601
MAX_BATCH = 100_000
MAX_SEED = 2**63 - 1
MAX_SAMPLES = 100_000_000
MAX_DIMENSION = 1_000_000
MAX_JOBS = 256
MEMORY_FRACTION = 0.8
RAY_PROBE_SECONDS = 5.0
RAY_DEFAULT_PORTS = {"ray": 10001, "": 6379}


NAME_MAX, PATH_MAX = 255, 4096  # when the file system does not say
TEMP_NAME_MARGIN = 40  # an atomic write's temp file: ".NAME.<host>-<pid>.<random>.tmp"


def _flag(option: str) -> str:
    return f"`{option}`"


def _short(path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]}"


def _limit(anchor: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(anchor, name))
    except (OSError, ValueError, TypeError):
        return default


def _text(value, option: str, margin: int = 0) -> Path:
    """`value` as a path the OS can take: not empty, no NUL byte, every name
    (plus `margin` bytes for a temp file next to it) within NAME_MAX and
    the whole within PATH_MAX."""
    if value is None or not str(value).strip():
        raise UsageError(f"{_flag(option)} is an empty path")
    if "\0" in str(value):
        raise UsageError(f"{_flag(option)} {value!r} contains a NUL byte")
    path = Path(value).expanduser()
    anchor = _nearest_existing(path)
    anchor = anchor if anchor.is_dir() else anchor.parent
    name_max = _limit(anchor, "PC_NAME_MAX", NAME_MAX)
    for i, part in enumerate(path.parts):
        extra = margin if i == len(path.parts) - 1 else 0
        if len(os.fsencode(part)) + extra > name_max:
            raise UsageError(f"{_flag(option)} {_short(path)}: the name {_short(part)!r} is "
                             f"{len(os.fsencode(part))} bytes; this file system allows "
                             f"{name_max - extra}")
    if len(os.fsencode(str(path.absolute()))) + margin >= _limit(anchor, "PC_PATH_MAX", PATH_MAX):
        raise UsageError(f"{_flag(option)} {_short(path)}: the path is longer than this file "
                         "system allows")
    return path


def _os_errors(check):
    """`check(value, option, ...)` with any OSError turned into one UsageError
    naming the option (a path the OS refuses to look at)."""

    def checked(value, option, *args, **kwargs):
        try:
            return check(value, option, *args, **kwargs)
        except OSError as err:
            raise UsageError(f"{_flag(option)} {_short(value)}: {err.strerror or err}") from None

    checked.__name__, checked.__doc__ = check.__name__, check.__doc__
    return checked


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


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


@_os_errors
def output_file(value, option: str) -> Path:
    """A file to write (created or replaced atomically in its folder): never
    something that exists as anything but a regular file (a folder, a
    device such as /dev/null, a FIFO), which a rename would replace."""
    path = _text(value, option, TEMP_NAME_MARGIN)
    if str(value).endswith(os.sep):
        raise UsageError(f"{_flag(option)} {path} is a folder; give a file name")
    if os.path.lexists(path):
        if not path.exists():
            raise UsageError(f"{_flag(option)} {path} is a broken link")
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(f"{_flag(option)} {path} is a folder; give a file name")
        if not stat.S_ISREG(mode):
            raise UsageError(f"{_flag(option)} {path} is {_kind(mode)}; only a regular file "
                             "is ever replaced")
        if not _writable(path.parent):
            raise UsageError(f"{_flag(option)} {path}: folder {path.parent} is not writable")
        return path
    _creatable(path, option, "file")
    return path


def output_files(paths, option: str) -> list[Path]:
    """Every file one command writes for `option` (FILE.json and FILE.png,
    or the files of a folder), each checked as `output_file` before any work."""
    return [output_file(p, option) for p in paths]


@_os_errors
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


@_os_errors
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


@_os_errors
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


@_os_errors
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


def seed(value, option: str = "--seed") -> int:
    """A seed: an integer in [0, 2^63) (what torch and numpy generators take)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{_flag(option)} must be an integer, got {value!r}")
    if not 0 <= value <= MAX_SEED:
        raise UsageError(f"{_flag(option)} must be in [0, 2^63 - 1], got {value}")
    return value


def number(text) -> float:
    """A real number from a command line: '0.03', '1e-2' or a fraction '8/255'
    (as the literature writes eps); ValueError otherwise."""
    text = str(text).strip()
    if "/" in text:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if float(den) != 0 else math.nan
        if not math.isfinite(value):
            raise ValueError(f"not a finite fraction: {text!r}")
        return value
    return float(text)


PYTHON_LITERALS = {"True": True, "False": False, "None": None}


def keyword(text: str, option: str) -> tuple[str, object]:
    """'KEY=VALUE' -> (KEY, VALUE): VALUE read as JSON, or as Python's
    True / False / None, else kept as the string."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.isidentifier():
        raise UsageError(f"{_flag(option)}: expected KEY=VALUE, got {text!r}")
    if value in PYTHON_LITERALS:
        return key, PYTHON_LITERALS[value]
    try:
        return key, json.loads(value)
    except ValueError:
        pass
    try:  # Python's own spelling of numbers, tuples, strings: data only, never code
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return key, value


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
