"""Servers the tests start for real: an `mlflow server` on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def mlflow_server(folder: Path, *, backend: str | None = None, command: list[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Iterator[str]:
    """An `mlflow server` on 127.0.0.1 serving artifacts from `folder`; yields its URL.

    `backend` is passed through the environment (`MLFLOW_BACKEND_STORE_URI`), never the command
    line, as `make mlflow-server` does; `command` replaces the default command (given the port).
    """
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "server.log"
    environment = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend or f"sqlite:///{folder / 'server.db'}", **(env or {})}
    argv = command or [MLFLOW, "server", "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--workers", "1"]
    with open(log_path, "w") as log:
        # a session of its own: its workers share the group, stopped together
        server = subprocess.Popen([*argv, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, server, log_path)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
