"""Chunk files → model inputs: validated loading, a metadata scan, and a streaming tf.data pipeline.

Training never holds a whole split: :func:`make_dataset` streams one chunk file at a time (chunk
order shuffled each epoch, samples shuffled within the chunk) with a bounded shuffle buffer
across chunk boundaries and prefetching, all in ``tf.data``. Memory is about one chunk plus the
buffer, whatever the split size. Also here: :func:`make_synthetic_chunks`, small simulated
chunks in the Phase D contract for tests and benchmarks.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..config import NETWORKS
from ..io import DataError, load_npz, npz_member_layout
from ..shards import load_chunk

#: keys each model needs for training
TRAIN_KEYS = {
    "pinn": ("diffraction", "coords_relative", "probeGuess", "N"),
    "baseline": ("diffraction", "patches", "member_index", "N"),
}
assert set(TRAIN_KEYS) == set(NETWORKS)


def check_kind(kind: str) -> str:
    if kind not in NETWORKS:
        raise ValueError(f"unknown model {kind!r}; expected one of {list(NETWORKS)}")
    return kind


def read_chunk_keys(path, keys: tuple) -> dict:
    """Read only ``keys`` of a chunk NPZ (members load lazily, so the rest is never read)."""
    return load_npz(path, required=keys, only=keys)


@dataclass(frozen=True)
class ChunkSummary:
    """What training needs to know about a split before streaming it."""

    N: int
    C: int
    n_groups: int
    max_offset: float  # largest |coords_relative| component (pixels) over all groups
    mean_total_counts: float  # mean Σ counts per pattern in the first chunk
    probe: np.ndarray | None  # probeGuess of the first chunk (dose-scaled)


def scan_chunks(paths: list, kind: str) -> ChunkSummary:
    """Check that the chunks agree (N, C, probe) and collect the numbers the model is built from.

    Reads the small keys of every chunk and the diffraction of the first only.
    """
    check_kind(kind)
    if not paths:
        raise ValueError("no training chunk files given")
    first = load_chunk(paths[0], TRAIN_KEYS[kind], optional=("gridsize", "probeGuess"))
    diff = first["diffraction"].astype(np.float64)
    n, c = diff.shape[1], diff.shape[3]
    mean_total = float(np.mean(np.sum(diff**2, axis=(1, 2))))
    probe = first.get("probeGuess")
    n_groups, max_offset = 0, 0.0
    for path in paths:
        keys = ("N", "coords_relative") + (("probeGuess",) if kind == "pinn" else ())
        meta = read_chunk_keys(path, keys)
        if int(meta["N"]) != n:
            raise DataError(f"{path}: key 'N' is {int(meta['N'])}, expected {n} as in {paths[0]}")
        rel = meta["coords_relative"]
        if rel.ndim != 3 or rel.shape[1:] != (c, 2):
            raise DataError(f"{path}: key 'coords_relative' has shape {rel.shape}, expected (B, {c}, 2) as in {paths[0]}")
        if kind == "pinn" and not np.allclose(meta["probeGuess"], probe, rtol=1e-5, atol=1e-6 * np.abs(probe).max()):
            raise DataError(f"{path}: key 'probeGuess' differs from the probe in {paths[0]}; one model needs one probe")
        n_groups += rel.shape[0]
        if rel.size:
            max_offset = max(max_offset, float(np.abs(rel).max()))
    return ChunkSummary(n, c, n_groups, max_offset, mean_total, probe)


def samples_from_chunk(chunk: dict, kind: str) -> dict:
    """The training samples of a loaded chunk, in memory: per group (PINN) or per member pattern
    (Baseline, member-major within a group). The in-memory reference of :func:`make_dataset`."""
    diff = chunk["diffraction"].astype(np.float32)
    if kind == "pinn":
        return {"diffraction": diff, "coords_relative": chunk["coords_relative"].astype(np.float32)}
    b, n, _, c = diff.shape
    patches = chunk["patches"]

    def per_pattern(a):  # (B, N, N, C) -> (B·C, N, N, 1)
        return np.ascontiguousarray(np.moveaxis(a, 3, 1).reshape(b * c, n, n, 1))

    return {
        "diffraction": per_pattern(diff),
        "amplitude": per_pattern(np.abs(patches).astype(np.float32)),
        "phase": per_pattern(np.angle(patches).astype(np.float32)),
        "pattern": chunk["member_index"].astype(np.int64).reshape(b * c),
    }


#: chunk members streamed per model kind, with the dtype each must be stored in (little-endian)
STREAM_KEYS = {
    "pinn": {"diffraction": "<f4", "coords_relative": "<f8"},
    "baseline": {"diffraction": "<f4", "patches": "<c8"},
}


def _layout(path, kinds: dict) -> dict:
    """key -> (byte offset, rows) of each streamed member of an uncompressed chunk NPZ, checked."""
    out = {}
    for key, want in kinds.items():
        offset, shape, dtype = npz_member_layout(path, key)
        if dtype.str != want:
            raise DataError(f"{path}: key '{key}' is stored as {dtype.str}, expected {want} (the Phase D contract)")
        out[key] = (offset, shape[0])
    return out


def first_occurrences(member_index: list) -> list:
    """Per chunk, a (B, C) mask of the member patterns seen for the first time in file order.

    Neighbouring groups share members (about C groups per pattern when every position seeds a
    group): the Baseline uses each pattern once per epoch.
    """
    if not member_index:
        return []
    flat = np.concatenate([m.ravel() for m in member_index])
    keep = np.zeros(flat.shape, bool)
    keep[np.unique(flat, return_index=True)[1]] = True  # index of each value's first occurrence
    parts = np.split(keep, np.cumsum([m.size for m in member_index])[:-1])
    return [k.reshape(m.shape) for k, m in zip(parts, member_index)]


def make_dataset(paths: list, kind: str, n: int, c: int, batch_size: int, seed: int = 0,
                 shuffle_buffer: int = 256, prefetch: int = 2, augment: tuple = (0,), shuffle: bool = True):
    """Streaming ``tf.data.Dataset`` of sample batches (dicts); each iteration is one epoch.

    Every chunk is validated once (:func:`load_chunk`, one file at a time). The epochs then run
    on TensorFlow ops alone: the chunk order is permuted each epoch, each chunk's members are
    read from the file as fixed-length records (``FixedLengthRecordDataset`` at the member's
    byte offset in the uncompressed NPZ), shuffled within the chunk, then mixed across chunk
    boundaries by a ``shuffle_buffer``-sample buffer, optionally transformed by a random symmetry
    among ``augment`` (element codes of :mod:`.augment`; ``(0,)``: none), batched and prefetched. Memory: about one
    chunk plus the buffer, whatever the split. (A Python-generator source, ``from_generator``,
    was measured to slow every training step that follows it about 2× on a 2-core CPU.)

    With ``shuffle=False`` (evaluation: the validation loss) chunks and samples come in file
    order, unshuffled and unaugmented, every sample once per iteration.

    Returns ``(dataset, info)``; ``info``: n_chunks and n_samples (per epoch).
    """
    import tensorflow as tf

    check_kind(kind)
    if not paths:
        raise ValueError("no training chunk files given")
    paths = [str(p) for p in paths]
    keys = STREAM_KEYS[kind]
    layouts, members, sizes = [], [], []
    for path in paths:
        chunk = load_chunk(path, TRAIN_KEYS[kind], optional=("gridsize",), n=n, c=c)
        if kind == "baseline":
            members.append(chunk["member_index"])
        del chunk
        layouts.append(_layout(path, keys))
        sizes.append(os.path.getsize(path))
    rows = np.array([lay["diffraction"][1] for lay in layouts], np.int64)
    record = {"diffraction": n * n * c * 4, "coords_relative": c * 2 * 8, "patches": n * n * c * 8}
    offsets = {k: tf.constant([lay[k][0] for lay in layouts], tf.int64) for k in keys}
    t_paths, t_rows, t_sizes = tf.constant(paths), tf.constant(rows), tf.constant(sizes, tf.int64)
    if kind == "baseline":
        keep = first_occurrences(members)
        starts = tf.constant(np.concatenate([[0], np.cumsum(rows)[:-1]]), tf.int64)
        t_keep = tf.constant(np.concatenate(keep).reshape(-1, c) if keep else np.zeros((0, c), bool))
        n_samples = int(sum(k.sum() for k in keep))
    else:
        n_samples = int(rows.sum())

    def member(i, key, dtype, shape):
        off, nbytes = offsets[key][i], record[key]
        ds = tf.data.FixedLengthRecordDataset(
            t_paths[i], nbytes, header_bytes=off, footer_bytes=t_sizes[i] - off - nbytes * t_rows[i])
        return ds.map(lambda r: tf.reshape(tf.io.decode_raw(r, dtype), shape))

    def chunk_samples(i):
        diff = member(i, "diffraction", tf.float32, (n, n, c))
        if kind == "pinn":
            rel = member(i, "coords_relative", tf.float64, (c, 2)).map(lambda x: tf.cast(x, tf.float32))
            ds = tf.data.Dataset.zip({"diffraction": diff, "coords_relative": rel})
        else:
            patches = member(i, "patches", tf.float32, (n, n, c, 2))
            mask = tf.data.Dataset.from_tensor_slices(t_keep[starts[i]:starts[i] + t_rows[i]])

            def patterns(d, p, k):  # one group -> its C member patterns, first occurrences only
                per = lambda a: tf.transpose(a, [2, 0, 1])[..., None]  # noqa: E731  (N, N, C) -> (C, N, N, 1)
                z = tf.complex(p[..., 0], p[..., 1])
                return tf.data.Dataset.from_tensor_slices(
                    ({"diffraction": per(d), "amplitude": per(tf.abs(z)), "phase": per(tf.math.angle(z))}, k))

            ds = tf.data.Dataset.zip(diff, patches, mask).flat_map(patterns)
            ds = ds.filter(lambda sample, k: k).map(lambda sample, k: sample)
        if not shuffle:
            return ds
        # within the chunk (holds one chunk's samples)
        return ds.shuffle(int(rows.max()) * (c if kind == "baseline" else 1), seed=seed)

    order = tf.data.Dataset.range(len(paths))
    if shuffle:
        order = order.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = order.flat_map(chunk_samples)
    if shuffle and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if shuffle and tuple(augment) != (0,):
        from .augment import augment_fn

        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, draws).map(augment_fn(kind, tuple(augment)))
    ds = ds.batch(batch_size).prefetch(prefetch)
    return ds, {"n_chunks": len(paths), "n_samples": n_samples}


# ---- synthetic chunks for tests and benchmarks ---------------------------------------------


def make_synthetic_chunks(
    n: int = 32,
    gridsize: int = 2,
    n_groups: int = 16,
    chunk_size: int = 8,
    dose: float = 1e5,
    step: float = 6.0,
    jitter: float = 0.2,
    seed: int = 0,
    side: int | None = None,
    object_seed: int | None = None,
    shift: float = 0.0,
) -> list[dict]:
    """Simulated chunks in the Phase D contract (diffraction, coords, true patches, probe).

    Positions are a jittered raster with ``step`` (pixels); a gridsize-2 group is a 2×2 block of
    neighbouring raster nodes (its members' offsets are about ±step/2, sub-pixel when jittered);
    groups are drawn from the blocks in a seeded order. The probe is the study's synthetic
    fly-scan probe at N, scaled to ``dose`` photons per pattern; counts are Poisson.
    ``object_seed`` (default ``seed + 1``) fixes the object, so that a second call with another
    ``seed`` and a ``shift`` (pixels, added to every position) scans the same object at new,
    held-out positions with new noise.
    """
    from ..patches import SHIFT_PAD, extract_patches
    from ..simulate import make_object, make_probe, simulate_amplitudes

    rng = np.random.default_rng(seed)
    if side is None:
        side = max(int(math.ceil(math.sqrt(n_groups))) + gridsize - 1, gridsize)
    margin = n / 2 + SHIFT_PAD + 2 + jitter * step
    size = int(math.ceil(2 * margin + (side - 1) * step + step)) + 2  # room for a shift of up to one step
    size += size % 2
    axis = margin + step * np.arange(side)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([xx.ravel(), yy.ravel()], axis=1) + rng.uniform(-jitter * step, jitter * step, (side * side, 2))
    pos += float(np.clip(shift, 0.0, step))
    obj = make_object(size, seed + 1 if object_seed is None else object_seed)
    probe = make_probe(n, 0.25, 6.0)
    diff, probe = simulate_amplitudes(obj, probe, pos, dose, rng)
    truth = extract_patches(obj, pos, n)

    node = np.arange(side * side).reshape(side, side)
    if gridsize == 1:
        blocks = node.reshape(-1, 1)
    else:
        blocks = np.stack(
            [node[:-1, :-1].ravel(), node[:-1, 1:].ravel(), node[1:, :-1].ravel(), node[1:, 1:].ravel()], axis=1
        )
    order = np.concatenate([rng.permutation(len(blocks)) for _ in range(math.ceil(n_groups / len(blocks)))])
    members = blocks[order[:n_groups]].astype(np.int64)
    centre = pos[members].mean(axis=1)
    rel = pos[members] - centre[:, None, :]
    n_chunks = math.ceil(n_groups / chunk_size)
    chunks = []
    for i in range(n_chunks):
        s = slice(i * chunk_size, min((i + 1) * chunk_size, n_groups))
        m = members[s]
        chunks.append(
            {
                "diffraction": np.moveaxis(diff[m], 1, -1).astype(np.float32),
                "coords_relative": rel[s].astype(np.float64),
                "coords_center": centre[s].astype(np.float64),
                "group_index": np.arange(n_groups, dtype=np.int64)[s],
                "member_index": m,
                "patches": np.moveaxis(truth[m], 1, -1).astype(np.complex64),
                "probeGuess": probe.astype(np.complex64),
                "N": np.int64(n),
                "gridsize": np.int64(gridsize),
                "dose": np.float64(dose),
                "chunk": np.int64(i),
                "n_chunks": np.int64(n_chunks),
                "n_groups": np.int64(n_groups),
            }
        )
    return chunks
