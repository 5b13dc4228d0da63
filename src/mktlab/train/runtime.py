"""The one explicit JAX set-up of a process: the compile cache and one CPU device per core.

Nothing in mktlab changes JAX's settings on import. `setup()` is called by the notebook
side (`mktlab.session`), by the kernel the runner starts, by the tests and by the
benchmarks, before their first JAX computation.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from mktlab.config.paths import project_root

CACHE_ENV = "MKTLAB_JAX_CACHE"
CPU_DEVICES_ENV = "MKTLAB_CPU_DEVICES"
MAX_CPU_DEVICES = 8


def setup(*, cache_dir: str | Path | None = None, cpu_devices: int | None = None) -> None:
    """Enable the persistent compilation cache and one CPU device per core (idempotent)."""
    enable_compilation_cache(cache_dir)
    enable_cpu_devices(cpu_devices)


def enable_compilation_cache(directory: str | Path | None = None) -> Path | None:
    """Keep compiled XLA programs on disk so a second run of the same shapes skips compilation.

    The folder is `directory`, else `$MKTLAB_JAX_CACHE`, else `experiments/jax-cache` of the
    project; `MKTLAB_JAX_CACHE=off` disables it.
    """
    setting = str(directory) if directory else os.environ.get(CACHE_ENV, "")
    if setting.lower() == "off":
        return None
    if not setting:
        setting = str(project_root() / "experiments" / "jax-cache")
    path = Path(setting)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def cpu_device_count() -> int:
    """`$MKTLAB_CPU_DEVICES`, else one per core this process may use (at most 8)."""
    setting = os.environ.get(CPU_DEVICES_ENV, "")
    if setting and not setting.isdigit():
        raise ValueError(f"{CPU_DEVICES_ENV}={setting!r}: expected a whole number of CPU devices")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(setting) if setting else min(cores, MAX_CPU_DEVICES)


def enable_cpu_devices(count: int | None = None) -> bool:
    """Show JAX one CPU device per core, so a data-parallel step (`trainer.data_parallel`)
    can split each batch over the cores. Programs that are not split run on the first device.

    JAX reads the setting when it starts its backends: called after the first JAX
    computation, or when `XLA_FLAGS` already sets a device count, it changes nothing.
    Returns whether the setting was applied.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", max(count if count is not None else cpu_device_count(), 1))
    except RuntimeError:  # the backends already started: JAX keeps the devices it has
        return False
    return True
