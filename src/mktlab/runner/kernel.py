"""Notebook kernels: private Unix sockets, and kernels started ahead of their notebook.

This module imports only `jupyter_client`, so that `mktlab` can start a kernel before it
imports Hydra, Papermill and MLflow.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from jupyter_client import AsyncKernelClient, BlockingKernelClient, KernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import CaselessStrEnum, DottedObjectName

from mktlab.runner.standby import MAX_SOCKET_PATH, private_dir, startup

# Seconds a kernel may take to start: parallel jobs on a loaded machine start slowly.
KERNEL_START_TIMEOUT = 180
# What every model notebook imports first (JAX, Flax, optax, MLflow, matplotlib, pandas):
# a warm kernel imports it while the runner composes the config and opens the run.
# Imported without binding a name: the notebook's namespace starts empty, as in a kernel started for it.
# It first has the kernel watch this process (`kernel_state.watch`): the kernel is started on its own
# (a parked kernel outlives its command) and leaves by itself when this process is gone.
WARM_UP = ("__import__('mktlab.runner.kernel_state', fromlist=['_']).watch({owner}); "
           "[__import__(m) for m in ('mktlab.session', 'mktlab.evaluation.plots', 'mlflow.store.tracking.sqlalchemy_store')]; "
           "__import__('mktlab.session', fromlist=['_']).runtime.setup(); "
           "__import__('mktlab.runner.kernel_state', fromlist=['_']).snapshot()")
STATE = "__import__('mktlab.runner.kernel_state', fromlist=['_'])"


class PromptKernelClient(AsyncKernelClient):
    """The asynchronous client nbclient gets, ready as soon as the kernel has answered.

    jupyter_client's `wait_for_ready` ends by draining IOPub until no message came for
    0.2 s: 0.2 s of every notebook, and of every job of a sweep. This one takes the
    kernel_info request's own `idle` status on IOPub as the sign that IOPub is connected and
    drained of that request, and asks again (as jupyter_client does) if it does not come.
    Messages of no request of nbclient's are ignored by nbclient whenever they come.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            request = self.kernel_info()
            try:
                reply = await self._async_recv_reply(request, timeout=1)
                if await self._idle_status_of(request, within=0.5):
                    self._handle_kernel_info_reply(reply)
                    return
            except (TimeoutError, queue.Empty):
                pass
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _idle_status_of(self, request: str, *, within: float) -> bool:
        until = time.monotonic() + within
        while (left := until - time.monotonic()) > 0:
            try:
                message = await self.get_iopub_msg(timeout=left)
            except queue.Empty:
                return False
            if (message["msg_type"] == "status" and message["parent_header"].get("msg_id") == request
                    and message["content"].get("execution_state") == "idle"):
                return True
        return False


class TrackingKernelManager(KernelManager):
    """A kernel manager that hands Papermill asynchronous clients and remembers them (`clients`).

    nbclient awaits its client inside an event loop: a blocking client's wait for output
    would hold that loop, so the check that the kernel is still alive never ran and a
    kernel that died (out of memory, killed) left the run hanging. With an asynchronous
    client nbclient notices the death within a second or two. Papermill leaves the client
    it used connected when it did not start the kernel itself; `WarmKernel.shutdown` closes
    every client, so no socket or heartbeat thread outlives its run.
    """

    client_class = DottedObjectName("mktlab.runner.kernel.PromptKernelClient")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)
        self.clients.append(client)
        return client

    def blocking_client(self) -> BlockingKernelClient:
        """A blocking client for this process's own requests (the warm-up, each job's preparation), remembered too.

        It has a session of its own: a kernel routes replies by the client's session id, and
        Papermill's clients share the manager's, so with the same id this client's replies
        would go to whichever of them connected last."""
        session = self.session.clone()
        session.session = uuid.uuid4().hex  # its own id: the kernel's replies come back to this client
        info = {**self.get_connection_info(), "session": session, "connection_file": self.connection_file, "parent": self}
        client = BlockingKernelClient(**info)
        self.clients.append(client)
        return client

    def exit_description(self) -> str:
        """How the kernel process ended, e.g. `killed by signal 9 (SIGKILL)`; empty while it runs."""
        process = getattr(self.provisioner, "process", None)
        code = None if process is None else process.poll()
        if code is None:
            return ""
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            hint = " (out of memory, or killed)" if -code == signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exited with status {code}"


class UnixSocketKernelManager(TrackingKernelManager):
    """A kernel reached over Unix sockets with a name of its own in the temp folder.

    Over TCP each kernel is handed free ports that are only reserved once it binds them,
    so jobs starting kernels at the same moment (a parallel sweep) can be handed the same
    port and one kernel dies at start. Socket files under a fresh random name cannot
    collide; the kernel removes them when it shuts down.
    """

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    def _ip_default(self) -> str:
        return _socket_prefix()


def _socket_prefix() -> str:
    return str(private_dir() / uuid.uuid4().hex[:16])


def kernel_manager_class() -> type[KernelManager]:
    """Unix sockets where the platform has them and the socket paths fit; TCP otherwise."""
    if sys.platform == "win32" or len(_socket_prefix()) + len("-65535") > MAX_SOCKET_PATH:
        return TrackingKernelManager
    return UnixSocketKernelManager


def notebook_kernel_name(notebook: Path) -> str:
    """The kernel spec a notebook names in its metadata (what Papermill would start), python3 if none."""
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
        return str(metadata.get("kernelspec", {}).get("name") or "python3")
    except (OSError, ValueError, AttributeError):  # Papermill reports an unreadable notebook itself
        return "python3"


class WarmKernel:
    """A kernel started before its notebook runs, importing `WARM_UP` in the meantime, and
    reusable for job after job of a sweep.

    Started with a working directory (`cwd`) it is the kernel Papermill would start there.
    Started early, before the run's folder exists, it waits in an empty scratch folder.
    Either way the notebook then runs in it as in a kernel of its own: same kernel spec,
    same environment, its cells in order.

    `prepare(cwd, tracking)`, called as soon as a job's folder and config are known, gives
    the kernel a clean slate for the job (`kernel_state.new_job`: an empty namespace, the
    job's folder and environment) and opens the tracking store while the runner opens the
    run. Papermill connects only once all this is done (`ready` waits for it): a client
    that connects while the kernel is busy can wait for its first answer until it gives
    up. After the job, `detach()` closes Papermill's clients so the next job can use the
    kernel; `shutdown()` stops it (at the latest when this process exits).
    """

    def __init__(self, kernel_name: str = "python3", cwd: Path | None = None) -> None:
        self.kernel_name = kernel_name
        self.environment = dict(os.environ)
        self.manager = kernel_manager_class()(kernel_name=kernel_name)
        self._scratch = None if cwd is not None else Path(tempfile.mkdtemp(prefix="mktlab-warm-"))
        self.jobs = 0  # jobs this kernel has run
        atexit.register(self.shutdown)
        # independent: not stopped with this process (`kernel_state.watch` stops it, unless it is parked)
        self.manager.start_kernel(cwd=str(cwd if cwd is not None else self._scratch), independent=True)
        self._client = self.manager.blocking_client()
        self._client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        self._client.execute(WARM_UP.format(owner=os.getpid()), silent=True, store_history=False)
        self._prepared: tuple[Path, str] | None = None  # (folder, id of the request that moves there)

    @classmethod
    def adopt(cls, record: Mapping[str, Any]) -> WarmKernel | None:
        """The parked kernel of `record` (`park`), now serving this process; None if it cannot (it ended,
        its wait is over, or code it imported changed since it started: it then leaves by itself)."""
        kernel = cls.__new__(cls)
        kernel.kernel_name, kernel.environment = record["kernel_name"], dict(os.environ)
        kernel.manager = kernel_manager_class()(kernel_name=kernel.kernel_name)
        kernel.manager.load_connection_info(record["connection"])
        kernel.manager.provisioner = AdoptedProvisioner.of(kernel.manager, int(record["pid"]))
        kernel._scratch, kernel.jobs, kernel._prepared = None, 0, None
        if not kernel.manager.is_alive():
            return None
        kernel._client = kernel.manager.blocking_client()
        kernel._client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        answer = kernel._ask(f"{STATE}.adopt({os.getpid()})", timeout=5.0)
        if answer != "ok":
            kernel._client.stop_channels()
            if answer is None:  # no answer: not a kernel to wait for
                kernel.manager.shutdown_kernel(now=True)
            return None
        atexit.register(kernel.shutdown)
        return kernel

    def _ask(self, expression: str, *, timeout: float) -> str | None:
        """The value (a string) of `expression` in the kernel, None when it does not answer within `timeout` seconds."""
        msg_id = self._client.execute("", silent=True, store_history=False, user_expressions={"answer": expression})
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = self._client.get_shell_msg(timeout=left)
            except queue.Empty:
                return None
            if reply["parent_header"].get("msg_id") == msg_id:
                value = reply["content"].get("user_expressions", {}).get("answer", {})
                text = value.get("data", {}).get("text/plain") if value.get("status") == "ok" else None
                return text.strip("'\"") if text is not None else None
        return None

    def park(self, seconds: float) -> bool:
        """Leave this kernel running, its job forgotten (`kernel_state.park`), for `seconds` in which a later
        command of this user, with the same Python and start-up environment, can adopt it (`adopt_parked`).
        Returns False when it could not be parked (it is then stopped)."""
        for client in [c for c in getattr(self.manager, "clients", []) if c is not self._client]:
            client.stop_channels()
        pid = getattr(self.manager.provisioner, "pid", None)
        if pid is None or self._ask(f"{STATE}.park({float(seconds)!r}) or 'parked'", timeout=5.0) != "parked":
            self.shutdown()
            return False
        connection = {k: v.decode() if isinstance(v, bytes) else v for k, v in self.manager.get_connection_info().items()}
        record = {"pid": pid, "kernel_name": self.kernel_name, "python": sys.executable, "startup": startup(self.environment),
                  "connection": connection, "until": time.time() + seconds}
        folder = _parking_dir()
        temporary = folder / f".{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.chmod(temporary, 0o600)  # it holds the kernel's key
        temporary.rename(folder / f"{pid}.json")
        atexit.unregister(self.shutdown)
        self._client.stop_channels()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return True

    def startup_environment_changed(self) -> bool:
        """Whether a variable read at process start differs between this kernel's start and now."""
        return startup(os.environ) != startup(self.environment)

    def serves(self, kernel_name: str) -> bool:
        """Whether this kernel can run a notebook of `kernel_name` now: the same kernel spec, alive,
        started with the environment's start-up variables as they are now."""
        return kernel_name == self.kernel_name and not self.startup_environment_changed() and self.manager.is_alive()

    def prepare(self, cwd: Path, tracking: Mapping[str, Any] | None = None, environment: Mapping[str, str] | None = None) -> None:
        """Give the kernel a clean slate for a job in `cwd` with this process's environment (and the job's
        own `environment` on top) and, given the run's `tracking` config, open its store there as the
        notebook's first cell will; returns at once. A store that fails to open here is left to the
        notebook to report."""
        if self._prepared is not None:
            return
        uri = tracking["uri"] if tracking is not None else None
        code = f"{STATE}.new_job({str(cwd)!r}, {({**os.environ, **(environment or {})})!r}, {uri!r})"
        self._prepared = (cwd, self._client.execute(code, silent=True, store_history=False))

    def open_store(self, tracking_uri: str) -> None:
        """Have the kernel open the tracking store at `tracking_uri` now, for the jobs to come; returns at once."""
        self._client.execute(f"{STATE}.open_store({tracking_uri!r})", silent=True, store_history=False)

    def ready(self, cwd: Path) -> KernelManager | None:
        """The kernel's manager once the warm-up and `prepare` are done, with the kernel
        working in `cwd`; None if the kernel has died (Papermill then starts one of its own)."""
        self.prepare(cwd)
        prepared_cwd, msg_id = self._prepared
        if prepared_cwd != cwd:
            raise ValueError(f"the kernel was prepared for {prepared_cwd}, not {cwd}")
        deadline = time.monotonic() + KERNEL_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                reply = self._client.get_shell_msg(timeout=1)
            except queue.Empty:
                if not self.manager.is_alive():
                    return None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                if reply["content"].get("status") != "ok":
                    raise OSError(f"the notebook kernel could not enter {cwd}: {reply['content'].get('evalue')}")
                self.jobs += 1
                return self.manager
        raise TimeoutError(f"the notebook kernel did not answer within {KERNEL_START_TIMEOUT} s")

    def detach(self) -> None:
        """Close the clients a job opened (Papermill's), keeping the kernel and this process's own client,
        and have the kernel forget the job (`kernel_state.clear`) while this process records it."""
        clients = getattr(self.manager, "clients", [])
        for client in [c for c in clients if c is not self._client]:
            client.stop_channels()
        clients[:] = [self._client]
        self._prepared = None
        self._client.execute(f"{STATE}.clear()", silent=True, store_history=False)

    def shutdown(self) -> None:
        """Close every client, stop the kernel at once (its records are flushed by then), and
        remove its sockets and scratch folder."""
        atexit.unregister(self.shutdown)
        for client in getattr(self.manager, "clients", []):
            client.stop_channels()
        if self.manager.has_kernel:
            # In a thread of its own: after Ctrl-C this thread's event loop still holds
            # Papermill's interrupted tasks, which must not run again.
            stopper = threading.Thread(target=self.manager.shutdown_kernel, kwargs={"now": True})
            stopper.start()
            stopper.join()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _parking_dir() -> Path:
    folder = private_dir() / "parked"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


class AdoptedProcess:
    """What jupyter_client's local provisioner needs of its kernel's `Popen`, for a kernel this process did
    not start (a parked one): its exit is seen by polling, not waited for (it is another process's child)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        import psutil

        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:  # ended, not yet reaped
                    self.returncode = 0
            except (ProcessLookupError, psutil.NoSuchProcess):
                self.returncode = 0
            except PermissionError:  # the pid is someone else's now
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still runs")
            time.sleep(0.05)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class AdoptedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner for a kernel another process started (a parked kernel): signals go
    to its process group (it leads one: kernels start in a session of their own), its end is polled."""

    @classmethod
    def of(cls, manager: KernelManager, pid: int) -> AdoptedProvisioner:
        provisioner = cls(kernel_id=manager.kernel_id or uuid.uuid4().hex, kernel_spec=manager.kernel_spec, parent=manager)
        provisioner.process, provisioner.pid, provisioner.pgid = AdoptedProcess(pid), pid, pid
        return provisioner


_parking = 0.0  # seconds this process's last kernel waits for the next command (`allow_parking`); 0: it stops


def allow_parking(seconds: float) -> None:
    """Let this process adopt a parked kernel for its first notebook and park its last kernel for `seconds`
    (the `mktlab` command, where its notebooks run in this process; never a launcher's worker)."""
    global _parking
    _parking = seconds


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # adopted by another command meanwhile
        return 0.0


def adopt_parked() -> WarmKernel | None:
    """A parked kernel for this process, the most recently parked first, if one waits with this process's
    Python and start-up environment; the parked records of kernels that ended are removed."""
    folder, wanted = _parking_dir(), startup(os.environ)
    for path in sorted(folder.glob("*.json"), key=_modified, reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            fits = record["python"] == sys.executable and record["startup"] == wanted and record["kernel_name"] == "python3"
            ended = record["until"] < time.time() or AdoptedProcess(int(record["pid"])).poll() is not None
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not (fits or ended):
            continue
        claimed = path.with_name(f".{path.stem}.{os.getpid()}.claimed")
        try:
            path.rename(claimed)  # one process wins the record
        except OSError:
            continue
        claimed.unlink(missing_ok=True)
        if ended:  # its record is removed; a record that does not fit and has not ended is left above
            continue
        try:
            kernel = WarmKernel.adopt(record)
        except Exception:  # its sockets are gone, ...: a fresh kernel serves instead
            kernel = None
        if kernel is not None:
            return kernel
    return None


# The kernel waiting for this process's next notebook: started early (a plain `mktlab` run), or
# kept from the previous job of a sweep, or started as a replacement while a job ran.
_waiting: WarmKernel | None = None


def start_early() -> None:
    """Start a kernel now, before the notebook and the run's folder are known (see `kernel_for`).

    A kernel that cannot start here is left to Papermill, which reports why in the run."""
    global _waiting
    if _waiting is None and _parking > 0:
        _waiting = adopt_parked()
    if _waiting is None:
        _waiting = _start()


def waiting() -> bool:
    """Whether a live kernel waits for this process's next notebook."""
    return _waiting is not None and _waiting.manager.is_alive()


def open_store_early(tracking_uri: str) -> None:
    """Have the kernel waiting for this process's next notebook open the store at `tracking_uri` now (a sweep's
    start: this process validates the jobs and opens the parent run meanwhile), not when the first job prepares it."""
    if _waiting is not None:
        try:
            _waiting.open_store(tracking_uri)
        except Exception:  # a kernel that cannot take it now opens the store when its job starts
            pass


def settle_environment() -> None:
    """Take the environment as it is now as the one the waiting kernel was started for.

    Called once the runner's own imports are done (MLflow sets a private session variable
    on import); variables a job sets later reach the kernel when the job starts
    (`WarmKernel.prepare`), or, read only at a process's start, give it a fresh kernel."""
    if _waiting is not None:
        _waiting.environment = dict(os.environ)


def kernel_for(notebook: Path, cwd: Path, tracking: Mapping[str, Any] | None = None,
               environment: Mapping[str, str] | None = None) -> WarmKernel | None:
    """A warm kernel for `notebook`, prepared for `cwd`, `tracking` and `environment` (`WarmKernel.prepare`):
    the waiting one if it still serves, else one started now in `cwd`.

    None when no kernel could be started: Papermill then starts one and reports the failure."""
    global _waiting
    waiting, _waiting = _waiting, None
    kernel_name = notebook_kernel_name(notebook)
    if waiting is not None and not waiting.serves(kernel_name):
        waiting.shutdown()
        waiting = None
    kernel = waiting if waiting is not None else _start(kernel_name, cwd)
    if kernel is not None:
        kernel.prepare(cwd, tracking, environment)
    return kernel


def release(kernel: WarmKernel, *, reuse: bool, keep: bool = True, park: bool = False) -> None:
    """After a job: keep its kernel for the next job (`reuse`, `keep`, the kernel alive), else stop it, or
    with `park` (the command's only job) park it for the next command where this process may (`allow_parking`).

    With `reuse`, a kernel that died, cannot serve again or must not be kept (`keep=False`: the
    job was interrupted) is replaced at once, so the next job's kernel starts while this
    process records the finished one."""
    global _waiting
    if reuse and keep and kernel.manager.is_alive() and _waiting is None:
        kernel.detach()
        _waiting = kernel
        return
    if park and keep and _parked(kernel):
        return
    kernel.shutdown()
    if reuse and _waiting is None:
        _waiting = _start(kernel.kernel_name)


def stop_waiting() -> None:
    """Stop the waiting kernel, if any (the end of a sweep), or park it for the next command where this process may
    (`allow_parking`)."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is not None and not _parked(waiting):
        waiting.shutdown()


def _parked(kernel: WarmKernel) -> bool:
    """Whether `kernel` is now parked for the next command: this process may park (`allow_parking`) and the kernel
    lives and agreed (`WarmKernel.park`, which stops a kernel that did not)."""
    return _parking > 0 and kernel.manager.is_alive() and kernel.park(_parking)


def _start(kernel_name: str = "python3", cwd: Path | None = None) -> WarmKernel | None:
    try:
        return WarmKernel(kernel_name, cwd)
    except Exception:  # no such kernel spec, no sockets, ...: Papermill's own start says what is wrong
        return None
