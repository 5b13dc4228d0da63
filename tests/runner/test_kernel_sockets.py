"""Kernel sockets live in a folder only their owner can enter."""

from __future__ import annotations

import stat
from pathlib import Path

from mktlab.runner import kernel


def test_socket_paths_are_in_a_private_folder() -> None:
    prefix = Path(kernel._socket_prefix())
    folder = prefix.parent
    assert folder.is_dir() and folder.name.startswith("mktlab-kernels-")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert Path(kernel._socket_prefix()).parent == folder and Path(kernel._socket_prefix()) != prefix
    manager = kernel.kernel_manager_class()(kernel_name="python3")
    assert manager.transport == "ipc" and Path(manager.ip).parent == folder
