"""Checksummed downloads from a loopback HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from mktlab.data import ChecksumError, DataError
from mktlab.data import movielens
from mktlab.data.download import fetch


@pytest.fixture
def server(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_good_checksum_caches_the_file(server, tmp_path: Path) -> None:
    served, url = server
    (served / "data.bin").write_bytes(b"ratings" * 1000)
    digest = hashlib.sha256(b"ratings" * 1000).hexdigest()
    cache = tmp_path / "cache"
    path = fetch(f"{url}/data.bin", f"sha256:{digest}", cache)
    assert path == cache / "data.bin" and path.read_bytes() == b"ratings" * 1000
    (served / "data.bin").unlink()  # a second fetch is served from the cache
    assert fetch(f"{url}/data.bin", f"sha256:{digest}", cache) == path


def test_bad_checksum_is_refused_and_nothing_cached(server, tmp_path: Path) -> None:
    served, url = server
    (served / "data.bin").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="failed its checksum: expected sha256 0000"):
        fetch(f"{url}/data.bin", "sha256:" + "0" * 64, cache)
    assert list(cache.iterdir()) == []


def test_unreachable_url_is_a_data_error(server, tmp_path: Path) -> None:
    _, url = server
    with pytest.raises(DataError, match="could not download"):
        fetch(f"{url}/missing.zip", "md5:" + "0" * 32, tmp_path)


def test_movielens_archive_download_and_extract(server, tmp_path: Path, monkeypatch) -> None:
    served, url = server
    with zipfile.ZipFile(served / "ml-100k.zip", "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t10\t4\t100\n2\t10\t3\t200\n")
        zf.writestr("ml-100k/u.item", "10|Heat (1995)|x\n")
    md5 = hashlib.md5((served / "ml-100k.zip").read_bytes()).hexdigest()
    monkeypatch.setitem(movielens.ARCHIVES, "ml-100k", (f"{url}/ml-100k.zip", f"md5:{md5}"))
    table = movielens.load_ratings_table("ml-100k", path=None, download=True, cache_dir=str(tmp_path / "cache"))
    assert len(table.ratings) == 2 and table.titles[10] == "Heat (1995)"
    assert f"md5:{md5}" in table.source
