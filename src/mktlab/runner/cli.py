"""The `mktlab` command's entry point: the notebook kernel starts first, then everything else.

A plain run (`mktlab key=value ...`, no flags) executes one notebook, and a sweep on the
basic launcher (`mktlab -m ...` without `hydra/launcher=...`) executes its jobs one after
another in this process's kernel, so that kernel starts before this process imports Hydra,
Papermill and MLflow, and imports JAX, Flax and MLflow meanwhile: the first notebook's first
cell finds them loaded, about 3 s sooner. Other commands (`--cfg`, `--help`, a sweep whose
jobs run in worker processes) start their kernels where their jobs run.
"""

from __future__ import annotations

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


def main() -> None:
    from mktlab.runner import kernel, setup_process, setup_sweep_process

    setup_process()
    if any(arg in MULTIRUN_FLAGS for arg in sys.argv[1:]):
        setup_sweep_process()
    if runs_notebooks_here(sys.argv[1:]):
        kernel.start_early()
    from mktlab.runner.app import main as run

    kernel.settle_environment()
    try:
        run()
    except KeyboardInterrupt:  # a sweep stopped by Ctrl-C (a single run ends in the runner, exit code 130 too)
        from mktlab.runner.background import wait_for_records

        wait_for_records()  # the jobs that ended before are recorded whole
        sweep = any(arg in MULTIRUN_FLAGS for arg in sys.argv[1:])
        print("mktlab: interrupted; " + ("the runs that had started are recorded KILLED or as they ended, the sweep's parent run FAILED"
                                         if sweep else "before the notebook ran"), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
