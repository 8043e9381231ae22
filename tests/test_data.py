"""Dataset plug-ins: the embedded digits, Fashion-MNIST from Debian's package, and the real on-disk formats of
MNIST, CIFAR-10/100, SVHN and Tiny-ImageNet (small files written here, read by the real loaders)."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from atombench import config as cfgmod
from atombench import registry
from atombench.errors import DataError


def load(name, **options):
    cls = registry.datasets.get(name)
    return cls.load(cfgmod.parse(cls.Config, options))


def test_digits_split_normalisation_and_resize():
    d = load("digits")
    assert d.train_x.shape[1:] == (1, 8, 8) and len(d.train_x) + len(d.test_x) == 1797
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-3
    assert torch.bincount(d.test_y).min() >= 50  # stratified: every class in the test split
    again = load("digits")
    assert torch.equal(d.train_x, again.train_x) and d.tags["digits"]
    assert load("digits", size=16).train_x.shape[1:] == (1, 16, 16)
    assert load("digits", size=32).image_size == (32, 32)
    other = load("digits", split_seed=1)
    assert not torch.equal(d.train_y, other.train_y)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMBENCH_DATA", str(tmp_path))
    d = load("fashion_mnist")
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.num_classes == 10 and d.classes[0] == "T-shirt/top"
    assert abs(float(d.train_x.mean())) < 0.01 and abs(float(d.train_x.std()) - 1) < 0.01  # reference constants
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def write_idx(folder: Path, n_train=20, n_test=10, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def put(name, magic, dims, data):
        blob = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data.tobytes()
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(blob) if gz else blob)

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        put(f"{prefix}-images-idx3-ubyte", 0x803, (n, 28, 28), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        put(f"{prefix}-labels-idx1-ubyte", 0x801, (n,), (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("layout", ["torchvision", "flat", "flat_gz"])
def test_mnist_idx_layouts(tmp_path, monkeypatch, layout):
    monkeypatch.setenv("ATOMBENCH_DATA", str(tmp_path / "cache"))
    if layout == "torchvision":
        write_idx(tmp_path / "MNIST" / "raw")
    else:
        write_idx(tmp_path, gz=layout == "flat_gz")
    d = load("mnist", root=str(tmp_path))
    assert d.train_x.shape == (20, 1, 28, 28) and d.test_y.tolist() == list(range(10))
    assert d.mean == [0.1307] and d.tags["digits"]


def test_missing_and_truncated_mnist(tmp_path):
    with pytest.raises(DataError, match=f"dataset 'mnist': no idx files found \\(looked in {tmp_path}"):
        load("mnist", root=str(tmp_path))
    write_idx(tmp_path / "MNIST" / "raw")
    img = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:500])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load("mnist", root=str(tmp_path))


def write_cifar(root: Path, hundred=False, n=12):
    rng = np.random.default_rng(0)
    if hundred:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        for name in ("train", "test"):
            with open(base / name, "wb") as fh:
                pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                             "fine_labels": list(np.arange(n) % 100), "coarse_labels": [0] * n}, fh)
        with open(base / "meta", "wb") as fh:
            pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, fh)
        return
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": list(np.arange(n) % 10)}, fh)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)


def test_cifar10_and_100_pickles(tmp_path):
    write_cifar(tmp_path)
    d = load("cifar10", root=str(tmp_path), verify=False)
    assert d.train_x.shape == (60, 3, 32, 32) and d.test_x.shape == (12, 3, 32, 32) and d.num_classes == 10
    assert d.mean == [0.4914, 0.4822, 0.4465]
    # the pixel layout: channel-major rows of 3072 bytes
    raw = pickle.load(open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb"))["data"][0]
    expect = (torch.tensor(raw[:1024].reshape(32, 32)).float() / 255 - 0.4914) / 0.2023
    assert torch.allclose(d.train_x[0, 0], expect, atol=1e-5)
    with pytest.raises(DataError, match="dataset 'cifar10'"):  # md5 verification rejects the tiny files
        load("cifar10", root=str(tmp_path))
    write_cifar(tmp_path / "c100", hundred=True)
    d = load("cifar100", root=str(tmp_path / "c100"), verify=False)
    assert d.num_classes == 100 and d.train_x.shape == (12, 3, 32, 32)


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    (tmp_path / "svhn").mkdir()
    for split, n in (("train", 8), ("test", 4)):
        savemat(tmp_path / "svhn" / f"{split}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                 "y": np.array([[10], [1], [2], [3], [4], [5], [6], [7]][:n], dtype=np.uint8)})
    d = load("svhn", root=str(tmp_path), verify=False)
    assert d.train_x.shape == (8, 3, 32, 32) and d.train_y[0] == 0  # label 10 means digit 0
    assert d.tags["digits"]


def test_tiny_imagenet_folder(tmp_path):
    from PIL import Image

    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    (base).mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, carp\nn02\tsalamander\n")
    rng = np.random.default_rng(0)
    for w in wnids:
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                base / "train" / w / "images" / f"{w}_{i}.JPEG")
    (base / "val" / "images").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(base / "val" / "images" / "val_0.JPEG")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t10\t10\n")
    d = load("tiny_imagenet", root=str(tmp_path))
    assert d.train_x.shape == (6, 3, 64, 64) and d.test_y.tolist() == [1]
    assert d.classes == ["goldfish", "salamander"]
    (base / "train" / "n01" / "images" / "n01_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="n01_0.JPEG"):
        load("tiny_imagenet", root=str(tmp_path))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "tiny_imagenet", "fashion_mnist"])
def test_missing_folder_says_where_and_how(tmp_path, name):
    with pytest.raises(DataError) as exc:
        load(name, root=str(tmp_path / "nothing"))
    msg = str(exc.value)
    assert str(tmp_path / "nothing") in msg and ("download" in msg or "unpack" in msg)
    assert "\n" not in msg
