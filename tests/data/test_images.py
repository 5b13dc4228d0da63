"""Image data: the IDX reader on files written here (and each malformed case), the loaders, the class filter."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import composed, data_config
from mktlab.config import ConfigError
from mktlab.data import DataError, DataFileError
from mktlab.data import images as image_data
from mktlab.data.images import IDX_FILES, load_images, read_idx, read_idx_pair, write_idx


def write_mnist_like(folder: Path, *, n_train: int = 120, n_test: int = 40, seed: int = 0) -> Path:
    """The four standard files of a tiny 28x28 data set with 10 balanced classes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28))
        write_idx(folder / IDX_FILES[f"{prefix}_images"], images)
        write_idx(folder / IDX_FILES[f"{prefix}_labels"], labels)
    return folder


def raw_idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape) + payload


def test_idx_round_trip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x-idx3-ubyte.gz", images), ndim=3), images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "y-idx1-ubyte", labels), ndim=1), labels)  # uncompressed too


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("magic.gz", gzip.compress(raw_idx(0x0801, (2, 2, 2), bytes(8))), "wrong magic number 0x00000801"),
        ("float.gz", gzip.compress(raw_idx(0x0D03, (1, 2, 2), bytes(16))), "wrong magic number 0x00000d03"),
        ("short-data.gz", gzip.compress(raw_idx(0x0803, (2, 28, 28), bytes(1000))), "truncated: the header announces 2 x 28 x 28 = 1568 values, the file holds 1000"),
        ("short-header.gz", gzip.compress(raw_idx(0x0803, (2,), b"")), "shorter than the 16-byte header"),
        ("tiny.gz", gzip.compress(b"\x00\x00"), "shorter than the 4-byte IDX magic number"),
        ("long.gz", gzip.compress(raw_idx(0x0803, (1, 2, 2), bytes(5))), "size mismatch: the header announces 1 x 2 x 2 = 4 values, the file holds 5"),
        ("not-gzip.gz", raw_idx(0x0803, (1, 2, 2), bytes(4)), "not a valid gzip file"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith(".gz") else "",  # gzip bytes carry a timestamp
)
def test_malformed_idx_files_name_the_file_and_the_problem(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFileError) as error:
        read_idx(path, ndim=3)
    assert str(path) in str(error.value) and message in str(error.value)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    good = write_idx(tmp_path / "good.gz", np.ones((10, 28, 28)))
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(DataFileError, match=r"cut-idx3-ubyte\.gz: truncated gzip stream"):
        read_idx(cut, ndim=3)


def test_missing_file_and_count_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="absent.gz: not found"):
        read_idx(tmp_path / "absent.gz", ndim=1)
    images = write_idx(tmp_path / "i.gz", np.zeros((3, 4, 4)))
    labels = write_idx(tmp_path / "l.gz", np.zeros(2))
    with pytest.raises(DataFileError, match=r"i\.gz: size mismatch: 3 images but 2 labels in .*l\.gz"):
        read_idx_pair(images, labels)


def test_digits_default_scaled_and_split() -> None:
    data = load_images(data_config("digits"), seed=0, cache_dir="unused")
    assert data.image_shape == (8, 8, 1) and data.num_classes == 10
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    all_images = np.concatenate([data.train.images, data.val.images, data.test.images])
    assert all_images.dtype == np.float32 and all_images.min() == -1.0 and all_images.max() == 1.0
    assert set(np.unique(data.test.labels)) == set(range(10))  # stratified
    again = load_images(data_config("digits"), seed=7, cache_dir="unused")  # the split is the data set's, not the run's
    np.testing.assert_array_equal(again.test.labels, data.test.labels)


def test_class_filter_keeps_only_those_labels_and_the_full_split_for_the_classifier() -> None:
    data = load_images(data_config("digits", classes=[3, 7]), seed=0, cache_dir="unused")
    for split in (data.train, data.val, data.test):
        assert set(np.unique(split.labels)) == {3, 7}
    assert set(np.unique(data.full_train.labels)) == set(range(10))
    assert data.summary()["num_classes"] == 2
    with pytest.raises(DataError, match=r"data.classes=\[12\]"):
        load_images(data_config("digits", classes=[12]), seed=0, cache_dir="unused")
    with pytest.raises(ConfigError, match=r"data.classes=\[12\]: expected labels from 0 to 9"):  # refused before any run, too
        composed("model=gan", "data.classes=[12]")


def test_mnist_from_a_folder(tmp_path: Path) -> None:
    folder = write_mnist_like(tmp_path / "mnist")
    data = load_images(data_config("mnist", path=str(folder), val_frac=0.25), seed=0, cache_dir=str(tmp_path))
    assert data.image_shape == (28, 28, 1)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 30, 40)
    assert -1.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    sub = load_images(data_config("mnist", path=str(folder), subsample=60), seed=0, cache_dir=str(tmp_path))
    assert len(sub.train) + len(sub.val) == 60 and len(sub.test) == 20


def test_mnist_errors_name_the_file(tmp_path: Path) -> None:
    folder = write_mnist_like(tmp_path / "bad")
    (folder / IDX_FILES["test_labels"]).write_bytes(gzip.compress(raw_idx(0x0803, (1, 1, 1), b"\x00")))
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte\.gz: wrong magic number"):
        load_images(data_config("mnist", path=str(folder)), seed=0, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="needs data.path .* or data.download=true"):
        load_images(data_config("mnist"), seed=0, cache_dir=str(tmp_path / "empty"))


def test_download_checks_pinned_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A download (here from file:// URLs) is verified against the pinned checksums and then read from the cache."""
    mirror = write_mnist_like(tmp_path / "mirror")
    checksums = {name: "md5:" + hashlib.md5((mirror / name).read_bytes()).hexdigest() for name in IDX_FILES.values()}
    monkeypatch.setitem(image_data.IDX_SOURCES, "mnist", (mirror.as_uri() + "/", checksums))
    cfg = data_config("mnist", download=True)
    data = load_images(cfg, seed=0, cache_dir=str(tmp_path / "cache"))
    assert len(data.test) == 40 and (tmp_path / "cache" / "mnist" / IDX_FILES["train_images"]).is_file()
    cached = load_images(data_config("mnist"), seed=0, cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(cached.train.images, data.train.images)  # verified cache copies need no download

    bad = dict(checksums, **{IDX_FILES["test_images"]: "md5:" + "0" * 32})
    monkeypatch.setitem(image_data.IDX_SOURCES, "mnist", (mirror.as_uri() + "/", bad))
    with pytest.raises(DataError, match="failed its checksum"):
        load_images(cfg, seed=0, cache_dir=str(tmp_path / "other-cache"))


def test_pinned_checksums_are_torchvisions() -> None:
    assert image_data.IDX_SOURCES["mnist"][1]["train-images-idx3-ubyte.gz"] == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert image_data.IDX_SOURCES["fashion_mnist"][1]["t10k-labels-idx1-ubyte.gz"] == "md5:bb300cfdad3c16e7a12a480ee83cd310"
