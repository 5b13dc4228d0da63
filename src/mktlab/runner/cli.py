"""The `mktlab` command's entry point: the notebook kernel starts first, then everything else.

A plain run (`mktlab key=value ...`, no flags) executes one notebook, so its kernel
starts before this process imports Hydra, Papermill and MLflow, and imports JAX, Flax
and MLflow meanwhile: the notebook's first cell finds them loaded, about 3 s sooner.
A command with a flag (`-m` sweeps, `--cfg`, `--help`, ...) starts its kernels later,
one per job, as each job opens its run.
"""

from __future__ import annotations

import sys


def main() -> None:
    from mktlab.runner import kernel, setup_process

    setup_process()
    if not any(arg.startswith("-") for arg in sys.argv[1:]):
        kernel.start_early()
    from mktlab.runner.app import main as run

    kernel.settle_environment()
    run()


if __name__ == "__main__":
    main()
