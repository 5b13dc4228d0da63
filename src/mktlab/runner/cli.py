"""The `mktlab` command's entry point: the notebook kernel starts first, then everything else.

A plain run (`mktlab key=value ...`, no flags) executes one notebook, and a sweep on the
basic launcher (`mktlab -m ...` without `hydra/launcher=...`) executes its jobs one after
another in this process's kernel, so that kernel starts before this process imports Hydra,
Papermill and MLflow, and imports JAX, Flax and MLflow meanwhile: the first notebook's first
cell finds them loaded, about 3 s sooner. Other commands (`--cfg`, `--help`, a sweep whose
jobs run in worker processes) start their kernels where their jobs run.

Before any of that, a plain run or a basic-launcher sweep asks a runner on standby (`standby`),
left by an earlier command, to run it in a fork of its warm runner; one that ran by itself
leaves such a runner for the next command.
"""

from __future__ import annotations

import atexit
import os
import sys

MULTIRUN_FLAGS = ("-m", "--multirun")


def runs_notebooks_here(args: list[str]) -> bool:
    """Whether this process executes the command's notebooks itself: a plain run, or a sweep on the
    basic launcher (no `hydra/launcher=` override; a sweep config that picks a launcher of its own
    leaves the early kernel unused, and the sweep's end stops it)."""
    flags = [arg for arg in args if arg.startswith("-")]
    if not flags:
        return True
    return set(flags) <= set(MULTIRUN_FLAGS) and not any(arg.startswith("hydra/launcher=") for arg in args)


def run_command(args: list[str]) -> int:
    """Run the `mktlab` command of `args` (as typed after `mktlab`); returns its exit code."""
    from mktlab.runner import kernel, setup_process, setup_sweep_process, standby

    setup_process()
    if any(arg in MULTIRUN_FLAGS for arg in args):
        setup_sweep_process()
    if runs_notebooks_here(args):
        try:
            kernel.allow_parking(standby.idle_seconds())
        except ValueError as error:
            print(f"mktlab: {error}", file=sys.stderr)
            return 2
        kernel.start_early()
    from mktlab.runner.app import main as run

    kernel.settle_environment()
    try:
        run()
    except SystemExit as done:
        return exit_status(done.code)
    except KeyboardInterrupt:  # a sweep stopped by Ctrl-C (a single run ends in the runner, exit code 130 too)
        from mktlab.runner.background import wait_for_records

        wait_for_records()  # the jobs that ended before are recorded whole
        sweep = any(arg in MULTIRUN_FLAGS for arg in args)
        print("mktlab: interrupted; " + ("the runs that had started are recorded KILLED or as they ended, the sweep's parent run FAILED"
                                         if sweep else "before the notebook ran"), file=sys.stderr)
        return 130
    return 0


def exit_status(code: object) -> int:
    """The process's exit status for `sys.exit(code)`: None is 0, a number itself, anything else (a message) is printed, then 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: int) -> None:
    """End this process once its work is done: the exit handlers run (the runs recorded in the background, the kernels
    stopped, the logs flushed), then the process ends at once. Tearing the interpreter down (its modules, the kernel
    clients' sockets) would take about a second more of every command and do nothing a user sees."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


def main() -> None:
    """The console entry point of `mktlab`: a runner on standby runs the command if one waits (`standby`), else this
    process does, and leaves a runner on standby for the next command."""
    args = sys.argv[1:]
    if not runs_notebooks_here(args):
        sys.exit(run_command(args))
    from mktlab.runner import standby

    code = standby.serve_here(args)
    if code is not None:
        sys.exit(code)
    environment = dict(os.environ)  # as the command started, before the runner's settings
    code = run_command(args)
    standby.start(environment, list(sys.modules))
    leave(code)

if __name__ == "__main__":
    main()
