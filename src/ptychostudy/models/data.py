"""Chunk files → model inputs: validated loading, a metadata scan, and a streaming tf.data pipeline.

Training never holds a whole split: :class:`ChunkStream` reads one chunk file at a time (chunk
order shuffled each epoch, samples shuffled within the chunk), and ``tf.data`` adds a bounded
shuffle buffer across chunk boundaries and prefetching. Memory is about one chunk plus the
buffer, whatever the split size. Also here: :func:`make_synthetic_chunks`, small simulated
chunks in the Phase D contract for tests and benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..io import DataError, check_amplitudes, check_array, load_npz

#: keys every chunk must hold for inference
CHUNK_KEYS = ("diffraction", "coords_relative", "coords_center", "group_index", "member_index", "N")
#: keys each model needs for training
TRAIN_KEYS = {
    "pinn": ("diffraction", "coords_relative", "probeGuess", "N"),
    "baseline": ("diffraction", "patches", "member_index", "N"),
}
MODEL_KINDS = tuple(TRAIN_KEYS)


def check_kind(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}; expected one of {list(MODEL_KINDS)}")
    return kind


def validate_chunk(path, chunk: dict) -> None:
    """Shapes, dtypes and amplitude sanity of a loaded chunk; DataError names file and key."""
    diff = chunk["diffraction"]
    check_array(path, "diffraction", diff, dtype=np.float32, ndim=4)
    b, n0, _, c = diff.shape
    n = int(chunk["N"]) if "N" in chunk else n0
    check_array(path, "diffraction", diff, shape=(None, n, n, None))
    if c not in (1, 4):
        raise DataError(f"{path}: key 'diffraction' has {c} channels (shape {diff.shape}); expected C = gridsize² = 1 or 4")
    if "gridsize" in chunk and int(chunk["gridsize"]) ** 2 != c:
        raise DataError(f"{path}: key 'diffraction' has {c} channels but key 'gridsize' is {int(chunk['gridsize'])}")
    check_amplitudes(path, "diffraction", diff)
    if "coords_relative" in chunk:
        check_array(path, "coords_relative", chunk["coords_relative"], shape=(b, c, 2))
        if not np.all(np.isfinite(chunk["coords_relative"])):
            raise DataError(f"{path}: key 'coords_relative' contains NaN or infinite values")
    if "coords_center" in chunk:
        check_array(path, "coords_center", chunk["coords_center"], shape=(b, 2))
    if "group_index" in chunk:
        check_array(path, "group_index", chunk["group_index"], shape=(b,))
    if "member_index" in chunk:
        check_array(path, "member_index", chunk["member_index"], shape=(b, c))
    if "patches" in chunk:
        check_array(path, "patches", chunk["patches"], shape=(b, n, n, c))
    if "probeGuess" in chunk:
        check_array(path, "probeGuess", chunk["probeGuess"], shape=(n, n))


def load_chunk(path, required: tuple = CHUNK_KEYS, optional: tuple | None = None) -> dict:
    """Read one chunk NPZ and validate it.

    With ``optional`` given, only ``required`` plus those of ``optional`` present are read (NPZ
    members load lazily): training never loads the true patches for the PINN, inference never
    loads them at all.
    """
    only = None if optional is None else tuple(required) + tuple(optional)
    chunk = load_npz(path, required=required, only=only)
    validate_chunk(path, chunk)
    return chunk


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
    first = load_chunk(paths[0], TRAIN_KEYS[kind], optional=("gridsize",))
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
    """The training samples of a chunk: per group (PINN) or per member pattern (Baseline).

    Baseline samples carry ``pattern`` (the member's index in the split) so that a pattern
    shared by several groups can be used once per epoch.
    """
    diff = chunk["diffraction"].astype(np.float32)
    if kind == "pinn":
        return {"diffraction": diff, "coords_relative": chunk["coords_relative"].astype(np.float32)}
    b, n, _, c = diff.shape
    patches = chunk["patches"]

    def per_pattern(a):  # (B, N, N, C) -> (B·C, N, N, 1), member-major within a group
        return np.ascontiguousarray(np.moveaxis(a, 3, 1).reshape(b * c, n, n, 1))

    return {
        "diffraction": per_pattern(diff),
        "amplitude": per_pattern(np.abs(patches).astype(np.float32)),
        "phase": per_pattern(np.angle(patches).astype(np.float32)),
        "pattern": chunk["member_index"].astype(np.int64).reshape(b * c),
    }


class ChunkStream:
    """A re-iterable generator over the samples of a list of chunk files.

    Each call starts an epoch: the chunk order is permuted with ``(seed, epoch)``, each chunk is
    read once (:func:`load_chunk`) and its samples are yielded in a random order. Only one chunk
    is held at a time. For the Baseline a diffraction pattern that belongs to several groups
    (neighbouring groups share members; about C groups per pattern when every position seeds
    a group) is yielded once per epoch: its first occurrence, remembered by its index in the
    split (a set of integers, not of patterns).
    """

    def __init__(self, paths: list, kind: str, seed: int = 0):
        self.paths = [str(p) for p in paths]
        self.kind = check_kind(kind)
        self.seed = int(seed)
        self.epoch = 0

    def __call__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        seen = set()
        for idx in rng.permutation(len(self.paths)):
            path = self.paths[idx]
            samples = samples_from_chunk(load_chunk(path, TRAIN_KEYS[self.kind], optional=("gridsize",)), self.kind)
            pattern = samples.pop("pattern", None)
            count = len(samples["diffraction"])
            for i in rng.permutation(count):
                if pattern is not None:
                    if pattern[i] in seen:
                        continue
                    seen.add(pattern[i])
                yield {k: v[i] for k, v in samples.items()}


def output_signature(kind: str, n: int, c: int) -> dict:
    import tensorflow as tf

    if kind == "pinn":
        return {
            "diffraction": tf.TensorSpec((n, n, c), tf.float32),
            "coords_relative": tf.TensorSpec((c, 2), tf.float32),
        }
    spec = tf.TensorSpec((n, n, 1), tf.float32)
    return {"diffraction": spec, "amplitude": spec, "phase": spec}


def make_dataset(paths: list, kind: str, n: int, c: int, batch_size: int, seed: int = 0,
                 shuffle_buffer: int = 256, prefetch: int = 2):
    """Streaming ``tf.data.Dataset`` of sample batches (dicts); each iteration is one epoch.

    Returns ``(dataset, stream)``; ``stream.epoch`` counts the epochs started.
    """
    import tensorflow as tf

    stream = ChunkStream(paths, kind, seed)
    ds = tf.data.Dataset.from_generator(stream, output_signature=output_signature(kind, n, c))
    if shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).prefetch(prefetch)
    return ds, stream


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
) -> list[dict]:
    """Simulated chunks in the Phase D contract (diffraction, coords, true patches, probe).

    Positions are a jittered raster with ``step`` (pixels); a gridsize-2 group is a 2×2 block of
    neighbouring raster nodes (its members' offsets are about ±step/2, sub-pixel when jittered);
    groups are drawn from the blocks in a seeded order. The probe is the study's synthetic
    fly-scan probe at N, scaled to ``dose`` photons per pattern; counts are Poisson.
    """
    from ..patches import SHIFT_PAD, extract_patches
    from ..simulate import make_object, make_probe, simulate_amplitudes

    rng = np.random.default_rng(seed)
    if side is None:
        side = max(int(math.ceil(math.sqrt(n_groups))) + gridsize - 1, gridsize)
    margin = n / 2 + SHIFT_PAD + 2 + jitter * step
    size = int(math.ceil(2 * margin + (side - 1) * step)) + 2
    size += size % 2
    axis = margin + step * np.arange(side)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([xx.ravel(), yy.ravel()], axis=1) + rng.uniform(-jitter * step, jitter * step, (side * side, 2))
    obj = make_object(size, seed + 1)
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
