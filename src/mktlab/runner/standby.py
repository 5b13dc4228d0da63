"""What waits between `mktlab` commands: a runner on standby, its kernels' private folder and settings.

A plain run or a basic-launcher sweep spends seconds before its first job starts importing its
runner (Hydra, MLflow, Papermill, nbclient, ...). When it ends, it leaves a runner on standby: a
process that has imported all of that and waits on a Unix socket in this user's private folder.
The next such command (same user, Python and start-up variables) hands it its arguments, working
folder, environment and terminal (its standard input, output and error, passed as file
descriptors) and waits: the standby forks, and the fork runs the command as the command's own
process would, in a copy of the warm runner, with mktlab's own modules imported afresh. Signals the
command gets (Ctrl-C, SIGTERM, SIGHUP) are passed on; a command killed outright takes its fork with
it. The standby leaves after `MKTLAB_KERNEL_IDLE` seconds without a command (the wait of the kernel
a command parks, `kernel.park`) and as soon as a module it imported, or a folder of its import
path, changed on disk: the command then runs by itself.

Only the standard library here: the command's entry point imports this module first, and a command
served by a standby imports nothing else.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path

# Seconds a finished command's kernel and runner wait for the next `mktlab` command (same user, Python and
# start-up environment) to use them, warm: imports done, compiled programs and caches kept. 0: none waits.
IDLE_ENV = "MKTLAB_KERNEL_IDLE"
DEFAULT_IDLE = 300.0
# Variables read when a process starts (JAX, XLA, threads, libraries, Python itself): a kernel or a runner started
# with other values cannot take new ones, so a command whose values differ gets fresh ones. Others it is handed.
STARTUP_VARIABLES = ("XLA_", "JAX_", "TF_", "CUDA_", "NVIDIA_", "LD_", "PYTHON", "OMP_", "MKL_", "OPENBLAS_",
                     "MKTLAB_CPU_DEVICES", "MKTLAB_JAX_CACHE", "MKTLAB_ROOT", "PATH", "VIRTUAL_ENV", "HOME", "JUPYTER")
# Longest Unix socket path a process can bind (sun_path is 108 bytes on Linux).
MAX_SOCKET_PATH = 100
_LENGTH = struct.Struct("!I")


def idle_seconds() -> float:
    """`MKTLAB_KERNEL_IDLE` in seconds (`DEFAULT_IDLE` when unset); raises ValueError naming the variable when it is not a number >= 0."""
    text = os.environ.get(IDLE_ENV, "").strip()
    if not text:
        return DEFAULT_IDLE
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{IDLE_ENV} must be the seconds a finished command's kernel and runner wait for the next one (0: none waits), not {text!r}")
    return seconds


def startup(environment: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environment` that a process reads at its start (`STARTUP_VARIABLES`)."""
    return {k: v for k, v in environment.items() if k.startswith(STARTUP_VARIABLES)}


_PRIVATE_DIR: Path | None = None


def private_dir() -> Path:
    """A folder only this user can enter (mode 0700) for the kernels' sockets, the parked kernels' records and the
    standby runner: one per user in the temp folder, since what waits there outlives the process that made it (a
    folder of that name that is someone else's, or open to others, is not used: a fresh one is made for this process)."""
    global _PRIVATE_DIR
    if _PRIVATE_DIR is None or not _PRIVATE_DIR.is_dir():
        uid = os.getuid() if hasattr(os, "getuid") else None
        shared = Path(tempfile.gettempdir()) / f"mktlab-kernels-{uid if uid is not None else 'user'}"
        try:
            shared.mkdir(mode=0o700, exist_ok=True)
            status = shared.stat()
            private = status.st_uid == uid and status.st_mode & 0o077 == 0 if uid is not None else True
        except OSError:
            private = False
        if private:
            _PRIVATE_DIR = shared
        else:
            import shutil

            _PRIVATE_DIR = Path(tempfile.mkdtemp(prefix="mktlab-kernels-"))  # mkdtemp: readable and writable by its owner only
            atexit.register(shutil.rmtree, _PRIVATE_DIR, True)
    return _PRIVATE_DIR


def changed_since(started: float, folders: Iterable[str], modules: Iterable[object]) -> str | None:
    """A folder of `folders` (an import path) or a source file of `modules` that changed (or went) since `started`
    (seconds since the epoch): a package installed or removed, code edited. None if none did."""
    for folder in folders:
        try:
            if folder and os.stat(folder).st_mtime > started:
                return folder
        except OSError:
            continue
    for module in modules:
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            if os.stat(path).st_mtime > started:
                return path
        except OSError:
            return path
    return None


def available() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds") and sys.platform == "linux"


def _home(environment: Mapping[str, str]) -> Path:
    """The standby runner's files for `environment` and this process's import path: `<key>.sock`, `<key>.json` (its pid), `<key>.log`."""
    locale = {k: v for k, v in environment.items() if k.startswith(("LANG", "LC_"))}  # the standby's encodings were set at its start
    key = hashlib.sha256(json.dumps([sys.executable, sys.path, sorted(startup(environment).items()), sorted(locale.items())]).encode()).hexdigest()[:16]
    folder = private_dir() / "standby"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / key


def _send(connection: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    header = _LENGTH.pack(len(data))
    if fds:
        socket.send_fds(connection, [header], fds)
    else:
        connection.sendall(header)
    connection.sendall(data)


def _receive(connection: socket.socket, *, fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (and up to `fds` file descriptors); None at the end of the connection. The descriptors received
    are closed if the message cannot be read whole."""
    if fds:
        header, received, _, _ = socket.recv_fds(connection, _LENGTH.size, fds)
    else:
        header, received = connection.recv(_LENGTH.size, socket.MSG_WAITALL), []
    try:
        if len(header) < _LENGTH.size:
            return None, received
        (length,) = _LENGTH.unpack(header)
        data = b""
        while len(data) < length:
            chunk = connection.recv(length - len(data))
            if not chunk:
                return None, received
            data += chunk
        return json.loads(data), received
    except BaseException:
        for fd in received:
            os.close(fd)
        raise


# --- the command's side -------------------------------------------------------------------------------------------

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _connect(home: Path) -> socket.socket | None:
    path = home.with_suffix(".sock")
    if len(str(path)) > MAX_SOCKET_PATH or not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if connection.fileno() <= 2:  # a standard stream is closed: the socket took its place, and cannot be passed on as it
        connection.close()
        return None
    try:
        connection.connect(str(path))
    except OSError:  # a standby that ended without removing its socket
        connection.close()
        return None
    return connection


def serve_here(args: list[str]) -> int | None:
    """Have a standby runner run this command (`mktlab` + `args`); returns its exit code, or None when no standby
    could (none waits, or the one waiting is stale): the command then runs in this process."""
    if not available():
        return None
    try:
        if idle_seconds() <= 0:
            return None
        connection = _connect(_home(os.environ))
    except (OSError, ValueError):
        return None
    if connection is None:
        return None
    ignored = [int(signum) for signum in FORWARDED_SIGNALS if signal.getsignal(signum) is signal.SIG_IGN]  # nohup, `&` in a script
    with connection:
        try:
            request = {"command": "run", "args": args, "argv0": sys.argv[0], "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path,
                       "ignored": ignored, "umask": _umask(), "nice": os.getpriority(os.PRIO_PROCESS, 0),
                       "cpus": sorted(os.sched_getaffinity(0))}
            _send(connection, request, [0, 1, 2])
            started, _ = _receive(connection)
        except OSError:
            return None
        except KeyboardInterrupt:  # before the command started: the fork sees the connection close and ends
            print("mktlab: interrupted before the command started", file=sys.stderr)
            return 130
        if not started or "pid" not in started:  # stale: it leaves, and this process runs the command
            return None
        pid = int(started["pid"])
        forwarded: list[int] = []

        def forward(signum: int, _frame: object) -> None:
            forwarded.append(signum)
            try:
                os.kill(pid, signum)
            except OSError:
                pass

        for signum in FORWARDED_SIGNALS:
            if signum not in ignored:
                signal.signal(signum, forward)
        while True:
            try:
                ended, _ = _receive(connection)
                break
            except InterruptedError:
                continue
            except OSError:
                ended = None
                break
    if (ended is None or "exit" not in ended) and forwarded:  # ended by the signal passed on, as this process would have
        return 128 + forwarded[-1]
    if ended is None or "exit" not in ended:
        print(f"mktlab: the runner that served this command (pid {pid}) ended before it said how the command ended", file=sys.stderr)
        return 1
    return int(ended["exit"])


def start(environment: Mapping[str, str], modules: Iterable[str]) -> None:
    """Leave a runner on standby for the next command with `environment` (the command's, as it started), which
    imports `modules` (what this command imported) first, unless one already waits or none may (`MKTLAB_KERNEL_IDLE=0`)."""
    if not available():
        return
    try:
        idle = idle_seconds()
        if idle <= 0:
            return
        home = _home(environment)
        connection = _connect(home)
        if connection is not None:
            with connection:
                _send(connection, {"command": "ping"})
            return
        names = [name for name in modules if not name.startswith(("mktlab", "__main__", "__mp_main__"))]
        listing = home.with_suffix(f".{os.getpid()}.modules")
        listing.write_text(json.dumps(names), encoding="utf-8")
        env = {**environment, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.pop("PYTHONSTARTUP", None)
        subprocess.Popen([sys.executable, "-P", "-m", "mktlab.runner.standby", str(home), str(listing), str(idle)], env=env,
                         cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    except (OSError, ValueError):  # no standby: the next command runs by itself
        return


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- the standby's side -------------------------------------------------------------------------------------------


class Standby:
    """The runner waiting on `home`.sock; each command it serves runs in a fork of it (`_run`)."""

    def __init__(self, home: Path, idle: float, started: float) -> None:
        self.home, self.idle = home, idle
        self.started = started
        self.children: set[int] = set()
        self.last_active = time.monotonic()
        self.listener: socket.socket | None = None
        self.log = open(home.with_suffix(".log"), "w", buffering=1, encoding="utf-8")  # noqa: SIM115  (what this standby did)

    def note(self, text: str) -> None:
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {text}\n")

    def listen(self) -> None:
        """Bind a fresh socket, then put it in place at once (a standby started meanwhile for the same key is replaced)."""
        path = self.home.with_suffix(".sock")
        temporary = self.home.with_name(f".{self.home.name}.{os.getpid()}.sock")
        temporary.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(temporary))
        os.chmod(temporary, 0o600)
        self.listener.listen(16)
        self.listener.settimeout(1.0)
        self.inode = temporary.stat().st_ino
        os.replace(temporary, path)
        record = self.home.with_name(f".{self.home.name}.{os.getpid()}.json")
        record.write_text(json.dumps({"pid": os.getpid(), "started": self.started, "python": sys.executable}), encoding="utf-8")
        os.replace(record, self.home.with_suffix(".json"))
        self.note(f"waiting on {path}, {self.idle:g} s without a command")

    def ours(self) -> bool:
        try:
            return self.home.with_suffix(".sock").stat().st_ino == self.inode
        except OSError:
            return False

    def serve(self) -> None:
        assert self.listener is not None
        while True:
            self._reap()
            if not self.ours():
                self.note("another standby took this place: leaving")
                break
            if not self.children and time.monotonic() - self.last_active > self.idle:
                self.note("no command came: leaving")
                break
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.last_active = time.monotonic()
            try:
                if not self._answer(connection):
                    break
            finally:
                connection.close()
        self.leave()

    def _answer(self, connection: socket.socket) -> bool:
        """Serve one connection; False when this standby must leave."""
        connection.settimeout(10)
        try:
            peer_uid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
            if peer_uid != os.getuid():  # the folder is this user's alone; a command of someone else's is not run
                return True
            request, fds = _receive(connection, fds=3)
        except (OSError, ValueError, TypeError):  # a broken or malformed request: nothing is run
            return True
        if not isinstance(request, dict) or request.get("command") != "run" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return True
        changed = changed_since(self.started, sys.path, list(sys.modules.values()))
        if changed is not None or threading.active_count() > 1:
            why = f"{changed} changed since it started" if changed else "it runs threads, which a fork would not have"
            self.note(f"stale ({why}): leaving, the command runs by itself")
            for fd in fds:
                os.close(fd)
            try:
                _send(connection, {"stale": why})
            except OSError:
                pass
            return False
        for stream in (sys.stdout, sys.stderr):  # nothing the standby wrote reaches a command's terminal
            stream.flush()
        pid = os.fork()
        if pid == 0:
            _run(connection, self.listener, request, fds, self.log)  # never returns
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        self.note(f"serving {pid}: a command of {len(request.get('args', []))} argument(s) in {request.get('cwd')}")  # no values: they may hold credentials
        return True

    def _reap(self) -> None:
        for child in list(self.children):
            try:
                done, _ = os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                done = child
            if done:
                self.children.discard(child)
                self.last_active = time.monotonic()

    def leave(self) -> None:
        if self.ours():
            self.home.with_suffix(".sock").unlink(missing_ok=True)
            self.home.with_suffix(".json").unlink(missing_ok=True)
        self.log.close()


def _run(connection: socket.socket, listener: socket.socket | None, request: dict, fds: list[int], log: io.TextIOBase) -> None:
    """In the fork: become the command's process (`_become`), run the command, send its exit code and end. Ends by
    itself (SIGKILL) if the command's process is killed meanwhile. A fork that cannot become the command's process
    ends before it says it started: the command then runs by itself, as if no standby waited."""
    try:
        if listener is not None:
            listener.close()
        log.close()
        _become(request, fds)
        connection.settimeout(None)
        _send(connection, {"pid": os.getpid()})
    except BaseException:
        os._exit(1)
    threading.Thread(target=_end_with, args=(connection,), name="mktlab-command-watch", daemon=True).start()
    code = 1
    try:
        from mktlab.runner.cli import run_command

        code = run_command(list(request["args"]))
    except KeyboardInterrupt:
        code = 130
    except SystemExit as done:
        from mktlab.runner.cli import exit_status

        code = exit_status(done.code)
    except BaseException:
        traceback.print_exc()
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            _send(connection, {"exit": code})
        except OSError:
            pass
        os._exit(code)


def _become(request: dict, fds: list[int]) -> None:
    """Take on the command's signals' usual handling, terminal (`fds`: its standard input, output and error), working
    folder, environment, import path and arguments."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    for signum in request.get("ignored", []):  # as the command ignores them (nohup, a script's `&`)
        signal.signal(signum, signal.SIG_IGN)
    os.umask(int(request.get("umask", 0o022)))
    niceness = int(request.get("nice", 0)) - os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > 0:  # `nice mktlab ...` (a process may lower its own priority, not raise it)
        os.nice(niceness)
    if request.get("cpus"):  # `taskset ... mktlab ...`
        os.sched_setaffinity(0, request["cpus"])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # the same stream objects (a handler made at an import holds them), now on the command's descriptors and
    # buffered as in a process of the command's own: standard output line by line on a terminal, standard error
    # always. Their encodings are the command's: it has the standby's `LANG`, `LC_*` and `PYTHON*` variables.
    sys.stdout.reconfigure(line_buffering=sys.stdout.isatty())
    sys.stderr.reconfigure(line_buffering=True)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = request["path"]
    sys.argv = [request.get("argv0") or "mktlab", *request["args"]]
    tempfile.tempdir = None
    global _PRIVATE_DIR
    _PRIVATE_DIR = None
    import importlib

    importlib.invalidate_caches()


def _end_with(connection: socket.socket) -> None:
    """End this process when the command's process is gone (its end of the connection closed before the exit code came)."""
    try:
        while connection.recv(1, socket.MSG_PEEK):
            time.sleep(0.2)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """`python -m mktlab.runner.standby HOME MODULES IDLE`: import the modules listed in the file MODULES, then wait."""
    started = time.time()  # before the imports: a file changed while they ran counts as changed
    home, listing, idle = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))
    finally:
        listing.unlink(missing_ok=True)
    import importlib

    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # a module importable only in its own context: the command imports it itself
            sys.modules.pop(name, None)
    try:
        from hydra.core.plugins import Plugins

        Plugins.instance()  # the launchers and sweepers installed, found once
    except Exception:
        pass
    import gc

    gc.collect()
    gc.freeze()  # the imports live as long as the standby; each fork's collections walk only what its command makes
    standby = Standby(home, idle, started)
    standby.listen()
    standby.serve()


if __name__ == "__main__":
    main()
