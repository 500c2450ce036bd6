"""Phase D on disk: views, groups and chunk shards of one dose × view × split.

Group first, shard second: the groups of a split are formed once over all its view's positions
(``write_groups``), then cut into chunk files of ``chunk_size`` groups (``write_shards``). The
shard writer memory-maps the Phase C diffraction and gathers one chunk at a time, so its peak
memory follows the chunk, not the split; each later job reads exactly one chunk file.
"""

from __future__ import annotations

import logging

import numpy as np

from . import geometry, io
from .grouping import group_positions
from .patches import extract_patches

log = logging.getLogger(__name__)

CHUNK_KEYS = (
    "diffraction",
    "coords_relative",
    "coords_center",
    "group_index",
    "member_index",
    "patches",
    "probeGuess",
    "N",
    "gridsize",
)


def view_index(lattice: np.ndarray, view_names: np.ndarray, view: str, path="phase C file") -> np.ndarray:
    """Indices (into a Phase C split) of the positions on ``view``'s raster."""
    names = [str(v) for v in view_names]
    if view not in names:
        raise io.DataError(f"{path}: key 'view_names' has {names}; expected it to contain view '{view}'")
    return np.flatnonzero(lattice == names.index(view)).astype(np.int64)


def make_groups(
    phase_c: dict,
    view: str,
    gridsize: int,
    k: int,
    n_groups,
    seeds: dict,
    what: str = "n_groups",
    path="phase C file",
) -> tuple[dict, dict]:
    """Groups of one view of one split (indices into the split's arrays) and its measured overlap."""
    vidx = view_index(phase_c["lattice"], phase_c["view_names"], view, path)
    pos = np.stack([phase_c["xcoords"], phase_c["ycoords"]], axis=1)
    g = group_positions(pos[vidx], gridsize, k, n_groups, seeds["grouping"], seeds["subsampling"], what)
    members = vidx[g["members"]]  # view-local → split indices
    groups = dict(
        view_index=vidx,
        members=members,
        seed_index=vidx[g["seed_index"]],
        coords_center=g["coords_center"],
        coords_relative=g["coords_relative"],
        n_groups=np.int64(len(members)),
        gridsize=np.int64(gridsize),
        neighbor_count=np.int64(k),
    )
    diameter = float(phase_c["probe_diameter"])
    overlap = geometry.measured_overlap(pos[vidx], diameter)
    overlap.update(
        n_patterns=int(len(vidx)),
        n_groups=int(len(members)),
        photons_per_px2=geometry.fluence_per_area(pos[vidx], float(phase_c["dose"])) if "dose" in phase_c else None,
        group_footprint_overlap=geometry.footprint_overlap_fraction(g["coords_relative"], diameter),
        max_member_offset_px=float(np.abs(g["coords_relative"]).max()) if len(members) else 0.0,
    )
    return groups, overlap


def write_groups(phase_c_path, groups_path, overlap_path, view, gridsize, k, n_groups, seeds, what="n_groups"):
    """Phase D, file level: read the split's positions, group, write groups.npz and overlap.json.

    ``overlap.json`` describes the view's data: measured linear (and disc-area) overlap to the
    nearest neighbour, patterns, groups, photons per object pixel², the fraction of group members
    whose probe footprint overlaps another member's, and the largest member offset.
    """
    keys = ("xcoords", "ycoords", "lattice", "view_names", "probe_diameter", "dose")
    phase_c = io.load_npz(phase_c_path, required=keys, only=keys)
    groups, overlap = make_groups(phase_c, view, gridsize, k, n_groups, seeds, what, phase_c_path)
    overlap.update(view=view)
    io.save_npz(groups_path, **groups)
    io.save_json(overlap_path, overlap)
    log.info("%s: %d groups, measured overlap %s", groups_path, len(groups["members"]), overlap)
    return groups, overlap


def gather_chunk(phase_c_path, obj: np.ndarray, xy: np.ndarray, groups: dict, sl: slice, n: int) -> dict:
    """Arrays of one chunk: groups ``sl``, reading only their members' patterns from the split file."""
    members = groups["members"][sl]
    b, c = members.shape
    flat = members.ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    diff = io.read_npz_rows(phase_c_path, "diffraction", uniq)[inverse].reshape(b, c, n, n)
    patches = extract_patches(obj, xy[flat], n).reshape(b, c, n, n)
    return dict(
        diffraction=np.ascontiguousarray(diff.transpose(0, 2, 3, 1), dtype=np.float32),
        patches=np.ascontiguousarray(patches.transpose(0, 2, 3, 1), dtype=np.complex64),
        coords_relative=groups["coords_relative"][sl],
        coords_center=groups["coords_center"][sl],
        group_index=np.arange(sl.start, sl.stop, dtype=np.int64),
        member_index=members,
    )


#: a chunk's mean Σ amplitude² per pattern may differ from the dose by this factor (the object's
#: local transmission varies along the scan); intensities stored instead of amplitudes give
#: Σ counts², orders of magnitude above it
COUNTS_FACTOR = 3.0


class ShardSource:
    """A split's inputs for sharding: positions, object, probe and groups in memory, diffraction memory-mapped."""

    def __init__(self, phase_c_path, groups_path, chunk_size: int):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.phase_c_path, self.groups_path, self.chunk_size = phase_c_path, groups_path, chunk_size
        keys = ("xcoords", "ycoords", "probeGuess", "objectGuess", "N", "dose")
        small = io.load_npz(phase_c_path, required=keys, only=keys)
        self.n = int(small["N"])
        self.obj, self.probe, self.dose = small["objectGuess"], small["probeGuess"], small["dose"]
        io.check_array(phase_c_path, "xcoords", small["xcoords"], ndim=1)
        io.check_array(phase_c_path, "ycoords", small["ycoords"], shape=small["xcoords"].shape)
        io.check_array(phase_c_path, "probeGuess", small["probeGuess"], shape=(self.n, self.n))
        self.xy = np.stack([small["xcoords"], small["ycoords"]], axis=1)
        _, shape, dtype = io.npz_member_layout(phase_c_path, "diffraction")
        io.check_array(phase_c_path, "diffraction", np.empty((0,) + shape[1:], dtype), dtype=np.float32)
        if shape != (len(self.xy), self.n, self.n):
            raise io.DataError(
                f"{phase_c_path}: key 'diffraction' has shape {shape}, expected ({len(self.xy)}, {self.n}, {self.n})"
            )
        self.groups = io.load_npz(groups_path, required=("members", "coords_center", "coords_relative", "gridsize"))
        self.n_groups = len(self.groups["members"])
        self.n_chunks = -(-self.n_groups // chunk_size)

    def check_plan(self, n_chunks: int) -> None:
        """The chunk count planned from the config must match the data (else: mixed runs)."""
        if n_chunks != self.n_chunks:
            raise ValueError(
                f"{self.groups_path}: {self.n_groups} groups at chunk_size {self.chunk_size} make "
                f"{self.n_chunks} chunks, but {n_chunks} were planned (config and data from different runs?)"
            )

    def write_chunk(self, i: int, path) -> None:
        """Gather chunk ``i`` (groups i·chunk_size …) and write it atomically."""
        if not 0 <= i < self.n_chunks:
            raise ValueError(f"{self.groups_path}: chunk {i} out of range (0..{self.n_chunks - 1})")
        sl = slice(i * self.chunk_size, min((i + 1) * self.chunk_size, self.n_groups))
        chunk = gather_chunk(self.phase_c_path, self.obj, self.xy, self.groups, sl, self.n)
        io.check_amplitudes(self.phase_c_path, "diffraction", chunk["diffraction"])
        io.check_counts(self.phase_c_path, chunk["diffraction"], float(self.dose), 1 / COUNTS_FACTOR, COUNTS_FACTOR)
        io.save_npz(
            path,
            **chunk,
            probeGuess=self.probe,
            N=np.int64(self.n),
            gridsize=self.groups["gridsize"],
            dose=self.dose,
            chunk=np.int64(i),
            n_chunks=np.int64(self.n_chunks),
            n_groups=np.int64(self.n_groups),
        )


def write_shards(phase_c_path, groups_path, chunk_paths: list, chunk_size: int) -> None:
    """Write every chunk of a split, one at a time (memory: one chunk, not the split)."""
    source = ShardSource(phase_c_path, groups_path, chunk_size)
    source.check_plan(len(chunk_paths))
    for i, path in enumerate(chunk_paths):
        source.write_chunk(i, path)


#: keys every chunk must hold for inference (a subset of CHUNK_KEYS)
INFERENCE_KEYS = ("diffraction", "coords_relative", "coords_center", "group_index", "member_index", "N")


def validate_chunk(path, chunk: dict) -> None:
    """Shapes, dtypes and amplitude sanity of a loaded chunk; DataError names file and key."""
    diff = chunk["diffraction"]
    io.check_array(path, "diffraction", diff, dtype=np.float32, ndim=4)
    b, n0, _, c = diff.shape
    n = int(chunk["N"]) if "N" in chunk else n0
    io.check_array(path, "diffraction", diff, shape=(None, n, n, None))
    if c not in (1, 4):
        raise io.DataError(f"{path}: key 'diffraction' has {c} channels (shape {diff.shape}); expected C = gridsize² = 1 or 4")
    if "gridsize" in chunk and int(chunk["gridsize"]) ** 2 != c:
        raise io.DataError(f"{path}: key 'diffraction' has {c} channels but key 'gridsize' is {int(chunk['gridsize'])}")
    io.check_amplitudes(path, "diffraction", diff)
    if "coords_relative" in chunk:
        io.check_array(path, "coords_relative", chunk["coords_relative"], shape=(b, c, 2))
        if not np.all(np.isfinite(chunk["coords_relative"])):
            raise io.DataError(f"{path}: key 'coords_relative' contains NaN or infinite values")
    if "coords_center" in chunk:
        io.check_array(path, "coords_center", chunk["coords_center"], shape=(b, 2))
    if "group_index" in chunk:
        io.check_array(path, "group_index", chunk["group_index"], shape=(b,))
    if "member_index" in chunk:
        io.check_array(path, "member_index", chunk["member_index"], shape=(b, c))
    if "patches" in chunk:
        io.check_array(path, "patches", chunk["patches"], shape=(b, n, n, c))
    if "probeGuess" in chunk:
        io.check_array(path, "probeGuess", chunk["probeGuess"], shape=(n, n))


def load_chunk(path, required: tuple = INFERENCE_KEYS, optional: tuple | None = None, *,
               n: int | None = None, c: int | None = None) -> dict:
    """Read one chunk NPZ, validate it (:func:`validate_chunk`), and check it against a model's N and C.

    With ``optional`` given, only ``required`` plus those of ``optional`` present are read (NPZ
    members load lazily): training never loads the true patches for the PINN, inference never
    loads them at all. Errors (:class:`ptychostudy.io.DataError`) name the file and the key.
    """
    only = None if optional is None else tuple(required) + tuple(optional)
    chunk = io.load_npz(path, required=required, only=only)
    validate_chunk(path, chunk)
    _, n0, n1, c0 = chunk["diffraction"].shape
    if n is not None and (n0, n1) != (n, n):
        raise io.DataError(f"{path}: key 'diffraction' has patterns of {n0}x{n1}; expected N={n} (the model's)")
    if c is not None and c0 != c:
        raise io.DataError(f"{path}: key 'diffraction' has {c0} channels; expected C={c} (the model's gridsize²)")
    return chunk
