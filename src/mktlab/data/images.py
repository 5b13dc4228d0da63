"""Images for generative models: scikit-learn's 8x8 digits, MNIST and Fashion-MNIST.

Every source gives the same thing: grey images as float32 arrays of shape
`(n, height, width, 1)` scaled to [-1, 1] (the generator's tanh range), integer labels,
and three splits. The split does not depend on the run's seed: every run of a data
set is scored against the same held-out images, so FIDs of different runs (and seeds)
compare, and the evaluation classifier is trained once per data set.

MNIST and Fashion-MNIST are read from the standard gzip IDX files
(`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
`t10k-labels-idx1-ubyte.gz`) in `data.path`, or downloaded with pinned checksums into
the cache. The IDX format: a big-endian header (two zero bytes, a type code, the number
of dimensions, then each dimension as a 4-byte integer) followed by the values.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mktlab.data.schemas import ImageDataConfig
from mktlab.data.download import fetch, file_digest, parse_checksum
from mktlab.data.errors import DataError, DataFileError
from mktlab.data.splits import stratified_split, subsample

SPLIT_SEED = 0  # fixed: the held-out images are the same in every run (see the module docstring)

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# Mirrors and MD5 checksums as torchvision pins them (torchvision.datasets.MNIST / FashionMNIST).
IDX_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}

CLASS_NAMES = {
    "digits": tuple(str(d) for d in range(10)),
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}

IDX_UBYTE = 0x08  # the type code of unsigned bytes, the only type MNIST-style files use


# --------------------------------------------------------------------------- IDX files


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed when the name ends in `.gz`).

    Args:
        path: the file.
        ndim: the number of dimensions expected (3 for images, 1 for labels).

    Raises:
        DataFileError: the file is missing, not gzip, truncated, has another magic
            number, or holds more or fewer values than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "not found")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except EOFError as error:
        raise DataFileError(path, f"truncated gzip stream ({error}); download the file again") from error
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DataFileError(path, f"not a valid gzip file ({error})") from error
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataFileError(path, f"truncated: {len(raw)} bytes, shorter than the 4-byte IDX magic number")
    magic = int.from_bytes(raw[:4], "big")
    expected_magic = (IDX_UBYTE << 8) | ndim
    if magic != expected_magic:
        raise DataFileError(
            path,
            f"wrong magic number 0x{magic:08x} (expected 0x{expected_magic:08x}: an IDX file of unsigned bytes "
            f"with {ndim} dimension{'s' if ndim > 1 else ''}); is this the right file?",
        )
    if len(raw) < header:
        raise DataFileError(path, f"truncated: {len(raw)} bytes, shorter than the {header}-byte header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    actual = len(raw) - header
    if actual < expected:
        raise DataFileError(path, f"truncated: the header announces {' x '.join(map(str, shape))} = {expected} values, the file holds {actual}")
    if actual > expected:
        raise DataFileError(path, f"size mismatch: the header announces {' x '.join(map(str, shape))} = {expected} values, the file holds {actual}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write `array` (unsigned bytes) as an IDX file, gzip-compressed when the name ends in `.gz`."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = ((IDX_UBYTE << 8) | array.ndim).to_bytes(4, "big")
    raw += b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
    return path


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images `(n, h, w)` and labels `(n,)` from a pair of IDX files that must agree on `n`."""
    images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise DataFileError(images_path, f"size mismatch: {len(images)} images but {len(labels)} labels in {labels_path}")
    return images, labels


def idx_folder(source: str, cfg: ImageDataConfig, cache_dir: str | Path) -> Path:
    """The folder holding the four IDX files of `source`: `data.path`, a download, or the cache."""
    if cfg.path is not None:
        return Path(cfg.path)
    base_url, checksums = IDX_SOURCES[source]
    folder = Path(cache_dir) / source
    if cfg.download:
        for name, checksum in checksums.items():
            fetch(base_url + name, checksum, folder)
        return folder
    cached = all((folder / name).is_file() and file_digest(folder / name, parse_checksum(c)[0]) == parse_checksum(c)[1]
                 for name, c in checksums.items())
    if not cached:
        raise DataError(
            f"data.source={source} needs data.path (a folder with {', '.join(IDX_FILES.values())}) "
            f"or data.download=true to fetch them into {folder}"
        )
    return folder


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # float32 (n, height, width, 1) in [-1, 1]
    labels: np.ndarray  # int32 (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def only(self, classes: tuple[int, ...]) -> "ImageSplit":
        keep = np.isin(self.labels, classes)
        return ImageSplit(self.images[keep], self.labels[keep])


@dataclass(frozen=True)
class ImageData:
    """Three splits of one image data set.

    `train` feeds the GAN; `val` is scored every `trainer.sample_every` epochs; `test`
    gives the final metrics and their real-data reference. With `data.classes` set these
    hold only those classes, while `full_train` / `full_val` keep every class: the
    evaluation classifier learns them all.
    """

    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    full_train: ImageSplit
    full_val: ImageSplit
    class_names: tuple[str, ...]
    source: str
    classes: tuple[int, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """A digest of the full training split (what the evaluation classifier learns from)."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.full_train.images).tobytes())
        digest.update(np.ascontiguousarray(self.full_train.labels).tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, float]:
        return {
            "num_train": len(self.train),
            "num_val": len(self.val),
            "num_test": len(self.test),
            "image_size": self.image_size,
            "num_classes": self.num_classes if self.classes is None else len(self.classes),
        }


def to_unit_range(pixels: np.ndarray, max_value: float) -> np.ndarray:
    """Pixels in [0, max_value] -> float32 in [-1, 1] with a channel axis."""
    return (pixels.astype(np.float32) * (2.0 / max_value) - 1.0)[..., None]


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return to_unit_range(bunch.images, 16.0), bunch.target.astype(np.int32), np.zeros((0, 8, 8, 1), np.float32), np.zeros(0, np.int32)


def _idx(source: str, cfg: ImageDataConfig, cache_dir: str | Path):
    folder = idx_folder(source, cfg, cache_dir)
    found = {key: folder / name if (folder / name).is_file() or not (folder / name[:-3]).is_file() else folder / name[:-3]
             for key, name in IDX_FILES.items()}  # an unpacked copy without `.gz` is read too
    train_x, train_y = read_idx_pair(found["train_images"], found["train_labels"])
    test_x, test_y = read_idx_pair(found["test_images"], found["test_labels"])
    return to_unit_range(train_x, 255.0), train_y.astype(np.int32), to_unit_range(test_x, 255.0), test_y.astype(np.int32)


def load_images(cfg: ImageDataConfig, *, seed: int, cache_dir: str) -> ImageData:
    """Read and split the images `cfg` names.

    Digits: a stratified split of the 1797 images by `val_frac` / `test_frac`. MNIST and
    Fashion-MNIST: the t10k files are the test split, `val_frac` of the training file the
    validation split. `subsample` keeps a sample of the training records (and the same
    share of the test file). The split is seeded by `SPLIT_SEED`, not `seed`.
    """
    del seed  # the split is the data set's, not the run's (see the module docstring)
    if cfg.source == "digits":
        pool_x, pool_y, test_x, test_y = _digits()
    elif cfg.source in IDX_SOURCES:
        pool_x, pool_y, test_x, test_y = _idx(cfg.source, cfg, cache_dir)
    else:
        raise DataError(f"data.source={cfg.source!r}: expected digits, {', '.join(IDX_SOURCES)}")
    keep = subsample(len(pool_y), cfg.subsample, seed=SPLIT_SEED)
    if cfg.subsample is not None and len(test_y):
        test_keep = subsample(len(test_y), max(1, round(cfg.subsample * len(test_y) / len(pool_y))), seed=SPLIT_SEED)
        test_x, test_y = test_x[test_keep], test_y[test_keep]
    pool_x, pool_y = pool_x[keep], pool_y[keep]
    test_frac = cfg.test_frac if cfg.source == "digits" else 0.0
    train_idx, val_idx, test_idx = stratified_split(pool_y, val_frac=cfg.val_frac, test_frac=test_frac, seed=SPLIT_SEED)
    if cfg.source == "digits":
        test_x, test_y = pool_x[test_idx], pool_y[test_idx]
    full_train = ImageSplit(pool_x[train_idx], pool_y[train_idx])
    full_val = ImageSplit(pool_x[val_idx], pool_y[val_idx])
    test = ImageSplit(test_x, test_y)
    names = CLASS_NAMES[cfg.source]
    classes = None
    if cfg.classes is not None:
        classes = tuple(sorted(set(int(c) for c in cfg.classes)))
        unknown = [c for c in classes if not 0 <= c < len(names)]
        if unknown or not classes:
            raise DataError(f"data.classes={list(cfg.classes)}: the labels of {cfg.source} are 0..{len(names) - 1}")
    if classes:
        train, val, test = full_train.only(classes), full_val.only(classes), test.only(classes)
    else:
        train, val = full_train, full_val
    if len(train) == 0:
        raise DataError(f"no training images left in {cfg.source} (data.classes={cfg.classes}, data.subsample={cfg.subsample})")
    return ImageData(train, val, test, full_train, full_val, names, source=cfg.source, classes=classes)
