"""Servers the tests start for real, each on a free loopback port: an `mlflow server` (directly, or
the way `make mlflow-server` starts it), the MLflow UI, JupyterLab, and a PostgreSQL server."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MLFLOW = str(BIN / "mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A server process in a session of its own (its workers share the group and stop together).

    Started by `start`; `wait` returns once `health` answers HTTP 200 (or raises with the end of
    its log); `stop` ends the whole group.
    """

    def __init__(self, argv: Sequence[str], *, url: str, health: str, log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.argv, self.url, self.health, self.log, self.cwd = list(argv), url, health, log, cwd
        self.env = dict(os.environ if env is None else env)
        self.headers = dict(headers or {})
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.ready_after: float | None = None  # seconds from start to the first healthy answer

    def start(self) -> "Service":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env=self.env, cwd=self.cwd)
        self.started_at = time.perf_counter()
        return self

    def wait(self, timeout: float = 240) -> "Service":
        deadline = time.time() + timeout
        while True:
            try:
                request = urllib.request.Request(self.health, headers=self.headers)
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        self.ready_after = self.ready_after or time.perf_counter() - self.started_at
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{self.argv[0]} did not start on {self.url}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    @contextlib.contextmanager
    def running(self, *, wait: bool = True) -> Iterator["Service"]:
        """Started, (waited for,) and stopped at the end of the block."""
        self.start()
        try:
            yield self.wait() if wait else self
        finally:
            self.stop()


@contextlib.contextmanager
def mlflow_server(folder: Path, *, backend: str | None = None, command: list[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Iterator[str]:
    """An `mlflow server` on 127.0.0.1 serving artifacts from `folder`; yields its URL.

    `backend` is passed through the environment (`MLFLOW_BACKEND_STORE_URI`), never the command
    line, as `make mlflow-server` does; `command` replaces the default command (given the port).
    """
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend or f"sqlite:///{folder / 'server.db'}", **(env or {})}
    argv = command or [MLFLOW, "server", "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with Service([*argv, "--port", str(port)], url=url, health=f"{url}/health", log=folder / "server.log", env=environment).running():
        yield url


def make_mlflow_server(folder: Path, *, backend_file: Path) -> Service:
    """`make mlflow-server` with the backend store's URI in `backend_file` (read by the Makefile into the
    server's environment), its artifacts under `folder`, on a free port (not started yet).

    The project's environment is this interpreter's (`BIN=`), taken as installed (`-o` its stamp).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_BACKEND_STORE_URI", "MAKEFLAGS", "MFLAGS")}
    argv = ["make", "--no-print-directory", "-o", ".venv/.installed-dev", "mlflow-server", f"BIN={BIN}", f"BACKEND_FILE={backend_file}",
            "HOST=127.0.0.1", f"PORT={port}", "SERVER_WORKERS=1", f"ARTIFACTS={folder / 'artifacts'}"]
    return Service(argv, url=url, health=f"{url}/health", log=folder / "server.log", env=env, cwd=ROOT)


def mlflow_ui(folder: Path, *, store_uri: str, artifacts: Path) -> Service:
    """`mlflow ui` on a store, as `make mlflow-ui` starts it, on a free port (not started yet)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [MLFLOW, "ui", "--backend-store-uri", store_uri, "--default-artifact-root", str(artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return Service(argv, url=url, health=f"{url}/health", log=folder / "ui.log")


def jupyter_lab(folder: Path, *, notebooks: Path, env: Mapping[str, str] | None = None) -> tuple[Service, str]:
    """JupyterLab serving `notebooks` on a free port with a fresh token (given through the environment, not
    the command line), its settings and workspaces under `folder`; returns the service (not started) and the token."""
    port = free_port()
    token = secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, **(env or {}), "JUPYTER_TOKEN": token, "JUPYTER_CONFIG_DIR": str(folder / "config"),
                   "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    argv = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}", f"--LabApp.user_settings_dir={folder / 'settings'}",
            f"--LabApp.workspaces_dir={folder / 'workspaces'}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if os.geteuid() == 0 else [])]
    service = Service(argv, url=url, health=f"{url}/api/status", log=folder / "lab.log", env=environment,
                      headers={"Authorization": f"token {token}"})
    return service, token


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (`initdb`, `pg_ctl`, `postgres`, `psql`): Debian's newest."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are missing: `make postgres` installs Debian's postgresql")


@contextlib.contextmanager
def postgres_server(database: str = "mlflow", user: str = "mlflow") -> Iterator[str]:
    """A PostgreSQL server of its own on a free loopback port, with a database owned by `user` whose
    password is fresh; yields `postgresql://user:password@127.0.0.1:port/database`.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user of Debian's
    package (`runuser`). It lives in a new folder of the system's temporary folder (which that user
    can reach) and is removed at the end. Durability is off: a test's database needs none.
    """
    programs = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="mktlab-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port, password = folder / "data", free_port(), secrets.token_urlsafe(18)

    def run(*argv: str, stdin: str | None = None) -> None:
        done = subprocess.run([*as_owner, *argv], input=stdin, capture_output=True, text=True, timeout=180, cwd=folder)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    try:
        run(str(programs / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--auth-local=trust",
            "--auth-host=scram-sha-256", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(programs / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "postgres.log"), "-w", "-t", "120", "start")
        try:
            # the password goes through psql's input, never a command line
            run(str(programs / "psql"), "-h", str(folder), "-p", str(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q",
                stdin=f"CREATE ROLE {user} LOGIN PASSWORD '{password}';\nCREATE DATABASE {database} OWNER {user};\n")
            yield f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([*as_owner, str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=120, cwd=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
