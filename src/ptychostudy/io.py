"""NPZ/CSV/JSON I/O with atomic writes and validation that names the file and the key.

Every output is written to a temporary name in its destination folder, flushed to disk and
renamed on success (docs/design.md, "Bad input and interrupted runs"), so an interrupted job
never leaves a file that looks complete.
Files load with ``allow_pickle=False``: only plain arrays, never pickled objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """An input file that violates the data contract; the message names the file and the key."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import (os.umask can only be read by setting it; not thread-safe to repeat)
_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the permissions a plain open() would (umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)  # the bytes reach the disk before the name does: a power loss leaves no empty file
        os.replace(tmp, path)
        _fsync(path.parent)  # and the rename itself is durable
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Atomically write an uncompressed NPZ of plain arrays (scalars become 0-d arrays)."""
    clean = {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{path}: key '{key}' would need pickling (dtype object)")
        clean[key] = arr
    with atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **clean)


class NpzWriter:
    """An uncompressed NPZ written member by member; a large array can be streamed in row blocks.

    ``with npz_writer(path) as w: w.add("x", x); with w.stream("diffraction", shape, dtype) as put:
    put(block)`` writes exactly what ``np.savez`` would (``np.load`` and :func:`read_npz_rows`
    read it), but a streamed array is never held whole: memory is one block.
    """

    def __init__(self, zf: zipfile.ZipFile, path):
        self._zf, self._path, self._keys = zf, path, set()

    def _member(self, key: str):
        if key in self._keys:
            raise ValueError(f"{self._path}: key '{key}' written twice")
        self._keys.add(key)
        return self._zf.open(key + ".npy", "w", force_zip64=True)

    def add(self, key: str, value) -> None:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{self._path}: key '{key}' would need pickling (dtype object)")
        with self._member(key) as fh:
            np.lib.format.write_array(fh, arr, allow_pickle=False)

    @contextlib.contextmanager
    def stream(self, key: str, shape: tuple, dtype):
        """Yield ``put(block)``: blocks of rows, in order, that together fill ``shape``."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        row = int(np.prod(shape[1:], dtype=np.int64))
        written = 0
        with self._member(key) as fh:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_2_0(fh, header)

            def put(block):
                nonlocal written
                block = np.ascontiguousarray(block, dtype=dtype)
                if block.shape[1:] != shape[1:] or written + block.shape[0] > shape[0]:
                    raise ValueError(f"{self._path}: block of shape {block.shape} does not fit key '{key}' {shape}")
                fh.write(block.reshape(-1, row).tobytes() if row else b"")
                written += block.shape[0]

            yield put
        if written != shape[0]:
            raise ValueError(f"{self._path}: key '{key}' got {written} of {shape[0]} rows")


@contextlib.contextmanager
def npz_writer(path: str | os.PathLike):
    """An :class:`NpzWriter` on a temporary file that becomes ``path`` only if the block succeeds."""
    with atomic_path(path, ".npz") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            yield NpzWriter(zf, path)


def save_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path, ".json") as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_csv(path: str | os.PathLike, frame) -> None:
    """Atomically write a pandas DataFrame as CSV (no index)."""
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(path: str | os.PathLike, fig, **kwargs) -> None:
    """Atomically save a matplotlib figure; the format follows ``path``'s suffix."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path, "." + fmt) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)


def load_npz(path: str | os.PathLike, required: tuple = (), only: tuple | None = None) -> dict:
    """Load the arrays of an NPZ into memory (all, or just the keys ``only``).

    A missing, truncated or corrupt file, or a missing ``required`` key, raises DataError.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in required if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {missing}; keys present: {sorted(f.files)}")
            return {k: f[k] for k in f.files if only is None or k in only}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable NPZ (truncated or corrupt?): {exc}") from exc


def check_array(path, key: str, arr: np.ndarray, *, dtype=None, ndim=None, shape=None) -> None:
    """Raise DataError naming file and key when ``arr`` has the wrong dtype, rank or shape."""
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise DataError(f"{path}: key '{key}' has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if ndim is not None and arr.ndim != ndim:
        raise DataError(f"{path}: key '{key}' has shape {arr.shape}, expected {ndim} dimensions")
    if shape is not None:
        for i, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise DataError(
                    f"{path}: key '{key}' has shape {arr.shape}, expected {tuple(shape)} (axis {i})"
                )


def check_amplitudes(path, key: str, arr: np.ndarray) -> None:
    """Diffraction must be amplitudes sqrt(counts): finite and non-negative."""
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: key '{key}' contains NaN or infinite values; expected amplitudes sqrt(counts)")
    if arr.size and arr.min() < 0:
        raise DataError(
            f"{path}: key '{key}' has negative values (min {arr.min():.3g}); expected amplitudes sqrt(counts) ≥ 0"
        )


def check_counts(path, diffraction: np.ndarray, dose: float, low: float, high: float) -> None:
    """Amplitudes, not intensities: the mean total Σ amplitude² per pattern must lie in
    [low, high] × the dose (intensities stored by mistake give Σ counts², far above it).
    ``diffraction``: patterns on axes 1 and 2."""
    if diffraction.size == 0 or dose <= 0:
        return
    mean_total = float(np.mean(np.sum(diffraction.astype(np.float64) ** 2, axis=(1, 2))))
    if not low <= mean_total / dose <= high:
        raise DataError(
            f"{path}: key 'diffraction': mean Σ amplitude² per pattern is {mean_total:.4g} but key 'dose' is "
            f"{dose:.4g}; expected amplitudes sqrt(counts) (intensities stored?)"
        )


def npz_member_layout(path: str | os.PathLike, key: str) -> tuple[int, tuple, np.dtype]:
    """Byte offset, shape and dtype of array ``key`` stored uncompressed (C order) in an NPZ."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(key + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise DataError(f"{path}: key '{key}' is compressed; expected an uncompressed NPZ (np.savez)")
            with open(path, "rb") as fh:
                fh.seek(info.header_offset)
                header = fh.read(30)
                name_len = int.from_bytes(header[26:28], "little")
                extra_len = int.from_bytes(header[28:30], "little")
                fh.seek(info.header_offset + 30 + name_len + extra_len)
                version = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fh)
                offset = fh.tell()
    except KeyError as exc:
        with zipfile.ZipFile(path) as zf:
            present = sorted(n.removesuffix(".npy") for n in zf.namelist())
        raise DataError(f"{path}: missing key(s) ['{key}']; keys present: {present}") from exc
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable NPZ (truncated or corrupt?): {exc}") from exc
    if dtype.hasobject or fortran:
        raise DataError(f"{path}: key '{key}' must be a plain C-ordered array")
    end = offset + int(np.prod(shape)) * dtype.itemsize
    if end > path.stat().st_size:
        raise DataError(f"{path}: key '{key}' is truncated ({path.stat().st_size} bytes, needs {end})")
    return offset, tuple(shape), dtype


def read_npz_rows(path: str | os.PathLike, key: str, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (first axis) of array ``key`` of an uncompressed NPZ, read with pread.

    Only the requested rows are read, so a job can gather a few patterns of a large split
    without holding (or mapping) the split; consecutive rows are read in one call.
    """
    offset, shape, dtype = npz_member_layout(path, key)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
        raise DataError(f"{path}: key '{key}' has {shape[0]} rows; asked for row {rows.max()}")
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.empty((len(rows),) + shape[1:], dtype=dtype)
    flat = out.reshape(len(rows), -1).view(np.uint8)
    # runs of consecutive (sorted) rows become one read each
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    fd = os.open(path, os.O_RDONLY)
    try:
        for run in np.split(np.arange(len(rows)), breaks):
            if not len(run):
                continue
            first, count = int(sorted_rows[run[0]]), len(run)
            buf = os.pread(fd, count * row_bytes, offset + first * row_bytes)
            if len(buf) != count * row_bytes:
                raise DataError(f"{path}: key '{key}' is truncated")
            flat[order[run]] = np.frombuffer(buf, dtype=np.uint8).reshape(count, row_bytes)
    finally:
        os.close(fd)
    return out
