"""Checksummed downloads into a cache folder.

A file reaches the cache only after its checksum matched: it is written to a temporary
name beside the target and renamed into place, so a failed or refused download leaves
nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from mktlab.data.errors import ChecksumError, DataError

CHUNK = 1 << 20


def parse_checksum(checksum: str) -> tuple[str, str]:
    """`"md5:abc..."` or `"sha256:abc..."` -> (algorithm, hex digest)."""
    algorithm, _, digest = checksum.partition(":")
    if not digest or algorithm not in hashlib.algorithms_available:
        raise ValueError(f"checksum {checksum!r}: expected '<algorithm>:<hex digest>', e.g. 'sha256:9f86...'")
    return algorithm, digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, checksum: str, cache_dir: str | Path, *, filename: str | None = None, timeout: float = 60) -> Path:
    """Download `url` into `cache_dir` unless a verified copy is already there.

    Args:
        url: what to download (http, https or file URL).
        checksum: the pinned checksum, `"<algorithm>:<hex digest>"`.
        cache_dir: the cache folder.
        filename: the cached file's name (default: the URL's last part).
        timeout: seconds to wait for the server.

    Returns:
        The cached file's path.

    Raises:
        ChecksumError: the download does not match `checksum`; nothing is cached.
        DataError: the download failed.
    """
    algorithm, expected = parse_checksum(checksum)
    cache_dir = Path(cache_dir)
    target = cache_dir / (filename or url.rstrip("/").rsplit("/", 1)[-1])
    if target.is_file() and file_digest(target, algorithm) == expected:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {target.name}", leave=False) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"download of {url} failed its checksum: expected {algorithm} {expected}, got {actual}; "
                "nothing was cached"
            )
        os.replace(tmp, target)
        return target
    except (urllib.error.URLError, OSError) as error:
        raise DataError(f"could not download {url}: {error}") from error
    finally:
        tmp.unlink(missing_ok=True)


def extract_zip(archive: Path, dest_dir: Path) -> Path:
    """Extract `archive` into `dest_dir` once (atomically); returns `dest_dir`."""
    marker = dest_dir / ".extracted"
    if marker.is_file():
        return dest_dir
    tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        (tmp / ".extracted").write_text(archive.name)
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        os.replace(tmp, dest_dir)
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive} is not a valid zip archive: {error}") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir
