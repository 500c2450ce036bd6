"""Atomic writes: a failed write leaves nothing behind; a finished one is a normal file."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from ptychostudy import io


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(TypeError):
        io.save_npz(target, good=np.ones(3), bad=np.array([object()], dtype=object))
    with pytest.raises(RuntimeError), io.atomic_path(target, ".npz") as tmp:
        open(tmp, "wb").write(b"half")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_umask_permissions_and_round_trips(tmp_path):
    target = tmp_path / "out.npz"
    io.save_npz(target, a=np.arange(4, dtype=np.float32), n=7)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    d = io.load_npz(target)
    assert d["a"].dtype == np.float32 and np.array_equal(d["a"], np.arange(4)) and int(d["n"]) == 7
