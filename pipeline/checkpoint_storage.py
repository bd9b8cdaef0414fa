"""Where a cluster sweep keeps its training checkpoints (`--checkpoint-storage`).

A Ray task trains its run in a store folder on its own node. Without a
checkpoint storage the checkpoint stays there: a task retried on another
node starts its run over. With one, the task copies the run's training state
(`config.json` and `checkpoint.pt`, written every epoch) to
``STORAGE/<run key>/`` as soon as it changes, and a task that starts a run
first fetches that state when it is further along than its own, so a retry
on any node resumes from the last finished epoch.

    storage = open_storage("s3://bucket/invrob-checkpoints")  # or a local path
    storage.write("abc123/checkpoint.pt", data)
    storage.read("abc123/checkpoint.pt") -> bytes | None

A storage location is a local folder (a path, or ``file://``), or any URI
that ``pyarrow.fs`` or ``fsspec`` opens (``s3://``, ``gs://``, ``hdfs://``,
...; those packages are optional and only imported for such a URI). Every
write goes to a temporary name first and is then moved over the final name,
so a reader never sees half a checkpoint.
"""
from __future__ import annotations

import importlib
import os
import uuid
from pathlib import Path

from core import validate
from core.errors import UsageError
from core.io import atomic_write_bytes
from empirics.train import CHECKPOINT, CONFIG
from empirics.train.folder import read_checkpoint

OPTION = "--checkpoint-storage"


class LocalFiles:
    """A folder on this machine (or a file system every node mounts)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        atomic_write_bytes(self.root / name, data)


class ArrowFiles:
    """A `pyarrow.fs.FileSystem` and a base path in it."""

    def __init__(self, fs, root: str):
        self.fs, self.root = fs, root.rstrip("/")

    def read(self, name: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(f"{self.root}/{name}") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = f"{self.root}/{name}"
        folder, _, base = path.rpartition("/")
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.{base}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as fh:
            fh.write(data)
        self.fs.move(tmp, path)


class FsspecFiles:
    """An `fsspec` file system and a base path in it."""

    def __init__(self, fs, root: str):
        self.fs, self.root = fs, root.rstrip("/")

    def read(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(f"{self.root}/{name}")
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = f"{self.root}/{name}"
        folder, _, base = path.rpartition("/")
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.{base}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def open_storage(uri: str, option: str = OPTION):
    """The storage that `uri` names; UsageError naming `option` when no
    installed library opens it (a local folder is checked to be writable)."""
    text = str(uri).strip() if uri is not None else ""
    if not text:
        raise UsageError(f"`{option}` is empty")
    if "://" not in text or text.startswith("file://"):
        path = text[len("file://"):] if text.startswith("file://") else text
        return LocalFiles(validate.output_dir(path, option))
    scheme = text.split("://", 1)[0]
    errors = []
    arrow = _optional("pyarrow.fs")
    if arrow is not None:
        try:
            fs, path = arrow.FileSystem.from_uri(text)
            return ArrowFiles(fs, path)
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... per scheme
            errors.append(f"pyarrow: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    fsspec = _optional("fsspec")
    if fsspec is not None:
        try:
            fs, path = fsspec.core.url_to_fs(text)
            return FsspecFiles(fs, path)
        except Exception as err:  # unknown protocol, missing backend package, bad URI
            errors.append(f"fsspec: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    why = "; ".join(errors) if errors else "neither pyarrow nor fsspec is installed"
    raise UsageError(f"`{option}` {text!r}: cannot open a {scheme}:// file system ({why})")


# ------------------------------------------------------------ a run's training state
STATE_FILES = (CONFIG, CHECKPOINT)  # config first: a checkpoint is only read next to its config


def save_state(storage, key: str, folder: str | os.PathLike) -> bool:
    """Copy the run folder's training state to `storage` under `key`;
    False when the folder holds no checkpoint yet."""
    folder = Path(folder)
    data = {}
    for name in STATE_FILES:
        try:
            data[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            return False
    for name in STATE_FILES:
        storage.write(f"{key}/{name}", data[name])
    return True


def _epoch(path: Path) -> int:
    """The epoch a checkpoint file records; -1 when absent or unreadable."""
    try:
        return int(read_checkpoint(path)["epoch"])
    except (OSError, UsageError, KeyError, TypeError, ValueError):
        return -1


def restore_state(storage, key: str, folder: str | os.PathLike) -> int:
    """Put the stored training state of `key` into `folder` when it is
    further along than the folder's own checkpoint; return the epoch the
    folder then resumes from (0: from the start). Call while holding the
    folder's lock."""
    folder = Path(folder)
    config, ckpt = (storage.read(f"{key}/{name}") for name in STATE_FILES)
    local = max(_epoch(folder / CHECKPOINT), 0)
    if config is None or ckpt is None:
        return local
    folder.mkdir(parents=True, exist_ok=True)
    fetched = folder / f".{CHECKPOINT}.fetched"
    atomic_write_bytes(fetched, ckpt)
    remote = _epoch(fetched)
    if remote <= local:
        fetched.unlink()
        return local
    atomic_write_bytes(folder / CONFIG, config)
    os.replace(fetched, folder / CHECKPOINT)
    return remote
