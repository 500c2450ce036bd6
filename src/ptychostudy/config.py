"""The study's typed configuration and its static plan (positions, groups, chunks per cell).

The Snakefile validates the raw YAML against ``workflow/schemas/config.schema.yaml`` (types,
ranges, unknown keys) and then builds :class:`StudyPlan` here, which adds the checks a schema
cannot express (K ≥ C, view steps, object sizes) and computes, from the config alone, how many
scan positions, groups and chunks every dose × view × split has. That is what makes the DAG
static: ``snakemake -n`` lists every chunk job before any data exists.

The split protocol (docs/design.md, "Splits"): train, validation and test are three separate
objects drawn from one generator with their own seeds, each scanned by every view. Nothing of
one split's object is in another's, whatever shift or symmetry is applied. Every view scans a
``scan.grid`` × ``scan.grid`` raster at its own step, centred on the object, so every view has
the same number of patterns; a sparser view scans a larger field, and the object is sized for
the widest view.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import geometry
from .patches import SHIFT_PAD, padded_size

#: the three splits, in the order their seeds are derived
SPLITS = ("train", "validation", "test")
#: splits Phase G reconstructs and scores; validation only chooses (epochs, recipes)
SCORED_SPLITS = ("train", "test")
#: the neural-network arms (trained in Phase E, predicted per chunk)
NETWORKS = ("pinn", "baseline")
KNOWN_MODELS = NETWORKS + ("ptychi",)
#: `training` keys a network's own section may set for itself (e.g. pinn.epochs overrides training.epochs)
MODEL_TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "loss_weight", "augment")
#: pixels between a patch's shift window and the object's edge (room for rounding)
EDGE_PAD = 2


class ConfigError(ValueError):
    """A config value that is out of range or inconsistent; the message names the key."""


def _fail(key: str, expected: str, got) -> None:
    raise ConfigError(f"config key '{key}': expected {expected}, got {got!r}")


def split_seed(seed: int, split: str, stream: int, *more: int) -> list[int]:
    """Entropy of one split's random stream: ``stream`` 0 object, 1 scan jitter, 2 Poisson noise.

    Each split draws from its own seed sequence, so the three objects are independent draws of
    one generator and adding a view or a dose never changes another split's content.
    """
    return [int(seed), SPLITS.index(split), int(stream), *(int(m) for m in more)]


def network_training(cfg: dict, model: str, seed: int) -> dict:
    """A network's training settings: ``training`` with the network's own overrides, and its seed."""
    own = {k: v for k, v in cfg.get(model, {}).items() if k in MODEL_TRAINING_KEYS}
    return dict(cfg["training"], seed=int(seed), **own)


def network_architecture(cfg: dict, model: str) -> dict:
    """A network's architecture keys (its section without the training overrides)."""
    return {k: v for k, v in cfg.get(model, {}).items() if k not in MODEL_TRAINING_KEYS}


@dataclass(frozen=True)
class ProbeConfig:
    path: str = ""
    pupil_radius: float = 0.25
    defocus: float = 3.0
    diameter: float | str = "auto"
    energy_fraction: float = 0.9


@dataclass(frozen=True)
class ViewPlan:
    """One overlap view: its raster step and, per split, positions, groups and chunks."""

    name: str
    overlap: float
    step: float
    grid: int
    jitter: float
    n_groups_request: dict  # split -> "all" | int

    def n_positions(self, split: str | None = None) -> int:
        """Positions of the view in any split: a grid × grid raster."""
        return self.grid * self.grid

    def n_groups(self, split: str) -> int:
        req = self.n_groups_request[split]
        return self.n_positions(split) if req == "all" else int(req)

    @property
    def half_extent(self) -> float:
        """Largest distance (pixels, per axis) of a jittered position from the object centre."""
        return 0.5 * (self.grid - 1) * self.step + self.jitter * self.step


@dataclass(frozen=True)
class ScanGeometry:
    """Everything Phase C reads: the simulation's inputs, and nothing a later phase may change.

    The ``simulate_dose`` rule gets this (``as_params``) as its only parameter, so editing a
    training, grouping or LSQML key never reruns the simulation.
    """

    N: int
    object_size: int
    object_path: str
    object_scale: float
    probe: ProbeConfig
    probe_diameter: float
    grid: int
    jitter: float
    views: tuple  # ((name, step), ...) in config order: the lattice ids
    simulation_seed: int

    @property
    def view_names(self) -> tuple:
        return tuple(name for name, _ in self.views)

    @property
    def centre(self) -> float:
        return self.object_size / 2.0

    def scan_positions(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """One split's scan: positions (n, 2) as (x, y) and the lattice (view) id of each.

        The union of the views' rasters, all centred on the object; deterministic under
        ``seeds.simulation`` and the split, identical for every dose.
        """
        rng = np.random.default_rng(split_seed(self.simulation_seed, split, 1))
        pos, lattice = [], []
        for vid, (_, step) in enumerate(self.views):
            p = geometry.jittered_raster(self.centre, self.grid, step, self.jitter, rng)
            pos.append(p)
            lattice.append(np.full(len(p), vid, dtype=np.int64))
        return np.concatenate(pos), np.concatenate(lattice)

    def as_params(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, d: dict) -> ScanGeometry:
        d = dict(d)
        d["probe"] = ProbeConfig(**d["probe"])
        d["views"] = tuple((str(n), float(s)) for n, s in d["views"])
        return cls(**d)


@dataclass(frozen=True)
class StudyPlan:
    raw: dict = field(repr=False)
    N: int
    gridsize: int
    neighbor_count: int
    chunk_size: int
    doses: tuple
    models: tuple
    seeds: dict
    replicates: tuple  # training seeds, one replicate each
    object_size: int
    probe: ProbeConfig
    probe_diameter: float
    views: dict  # name -> ViewPlan
    margin: float

    # ---- derived -------------------------------------------------------------------------
    @property
    def C(self) -> int:
        return self.gridsize**2

    @property
    def nn_models(self) -> tuple:
        return tuple(m for m in self.models if m in NETWORKS)

    def n_chunks(self, view: str, split: str) -> int:
        return math.ceil(self.views[view].n_groups(split) / self.chunk_size)

    def chunk_ids(self, view: str, split: str) -> list[str]:
        return [f"{i:04d}" for i in range(self.n_chunks(view, split))]

    @cached_property
    def view_names(self) -> tuple:
        return tuple(self.views)

    @cached_property
    def geometry(self) -> ScanGeometry:
        obj = self.raw.get("object", {})
        first = next(iter(self.views.values()))
        return ScanGeometry(
            N=self.N,
            object_size=self.object_size,
            object_path=str(obj.get("path", "")),
            object_scale=float(obj.get("feature_scale", 0.5)) * self.N,
            probe=self.probe,
            probe_diameter=self.probe_diameter,
            grid=first.grid,
            jitter=first.jitter,
            views=tuple((v.name, v.step) for v in self.views.values()),
            simulation_seed=int(self.seeds["simulation"]),
        )

    def scan_positions(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        return self.geometry.scan_positions(split)


def required_object_size(n: int, half_extent: float, margin: float) -> int:
    """Smallest even object side that holds every patch (with its shift window) of a raster
    reaching ``half_extent`` pixels from the centre, plus ``margin``."""
    reach = half_extent + n / 2.0 + SHIFT_PAD + (padded_size(n) - n - 2 * SHIFT_PAD) + EDGE_PAD + margin
    size = 2 * math.ceil(reach)
    return size


def _load_npz_key(path: str, key: str, cfg_key: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config key '{cfg_key}': file {path} does not exist")
    with np.load(p, allow_pickle=False) as f:
        if key not in f:
            raise ConfigError(f"config key '{cfg_key}': {path} has no key '{key}' (keys: {list(f.keys())})")
        return np.asarray(f[key])


def object_key(split: str) -> str:
    """Key of a split's object in the NPZ of ``object.path``."""
    return f"objectGuess_{split}"


def load_probe(probe: ProbeConfig, n: int) -> np.ndarray:
    """The unit-intensity probe the study uses: synthetic, or ``probeGuess`` from the user's NPZ."""
    from .simulate import make_probe

    if probe.path:
        arr = _load_npz_key(probe.path, "probeGuess", "probe.path").astype(np.complex64)
        if arr.shape != (n, n):
            raise ConfigError(
                f"config key 'probe.path': probeGuess in {probe.path} has shape {arr.shape}, expected ({n}, {n}) (N)"
            )
        return (arr / np.sqrt(np.sum(np.abs(arr) ** 2))).astype(np.complex64)
    return make_probe(n, probe.pupil_radius, probe.defocus)


def _object_size(cfg: dict, required: int) -> int:
    """The object side: ``object.size`` (``auto``: the smallest that holds the widest view), or
    the side of the user's objects (``object.path``, one per split)."""
    obj = cfg.get("object", {})
    if obj.get("path"):
        sizes = set()
        for split in SPLITS:
            shape = _load_npz_key(obj["path"], object_key(split), "object.path").shape
            if len(shape) != 2 or shape[0] != shape[1]:
                raise ConfigError(
                    f"config key 'object.path': {object_key(split)} must be square 2-D, got shape {shape}")
            sizes.add(int(shape[0]))
        if len(sizes) != 1:
            raise ConfigError(f"config key 'object.path': the split objects differ in size {sorted(sizes)}")
        size, key = sizes.pop(), "object.path"
    else:
        req = obj.get("size", "auto")
        if req == "auto":
            return required
        size, key = int(req), "object.size"
    if size < required:
        raise ConfigError(
            f"config key '{key}': the object is {size} px, but the widest view's raster with its patches "
            f"needs {required} px (scan.grid, the view steps and N); expected ≥ {required}"
        )
    return size


def build_plan(cfg: dict) -> StudyPlan:
    """Semantic checks and the static plan of a (schema-validated) config dict."""
    n = int(cfg["N"])
    gridsize = int(cfg["gridsize"])
    k = int(cfg["neighbor_count"])
    if n < 8 or n % 2:
        _fail("N", "an even integer ≥ 8", n)
    if gridsize not in (1, 2):
        _fail("gridsize", "1 or 2", gridsize)
    if k < gridsize**2:
        _fail("neighbor_count", f"K ≥ C = gridsize² = {gridsize**2}", k)
    if int(cfg["chunk_size"]) <= 0:
        _fail("chunk_size", "a positive number of groups per chunk", cfg["chunk_size"])
    for d in cfg["doses"]:
        if not (isinstance(d, (int, float)) and d > 0):
            _fail("doses", "positive photon counts per pattern", d)
    if len(set(int(d) for d in cfg["doses"])) != len(cfg["doses"]):
        _fail("doses", "distinct integer photon counts", cfg["doses"])
    for m in cfg["models"]:
        if m not in KNOWN_MODELS:
            _fail("models", f"names among {list(KNOWN_MODELS)}", m)
    replicates = cfg.get("replicates", [])
    if not replicates or any(not isinstance(r, int) or r < 0 for r in replicates):
        _fail("replicates", "a non-empty list of training seeds (integers ≥ 0)", replicates)
    if len(set(replicates)) != len(replicates):
        _fail("replicates", "distinct training seeds", replicates)

    pc = cfg.get("probe", {})
    probe = ProbeConfig(**{key: pc[key] for key in pc})
    if probe.diameter == "auto":
        from .simulate import probe_diameter

        diameter = probe_diameter(load_probe(probe, n), probe.energy_fraction)
    else:
        diameter = float(probe.diameter)
        if diameter <= 0:
            _fail("probe.diameter", "'auto' or a positive number of pixels", probe.diameter)

    scan = cfg.get("scan", {})
    jitter = float(scan.get("jitter", 0.0))
    if not 0 <= jitter < 0.25:
        _fail("scan.jitter", "a fraction of the step in [0, 0.25)", jitter)
    grid = int(scan.get("grid", 0))
    margin = float(scan.get("margin", 0.0))
    top_groups = cfg["n_groups"]
    need = k if gridsize > 1 else 1
    if grid * grid < need:
        _fail("scan.grid", f"a raster of at least K = {need} positions (grid² ≥ K)", grid)
    plan_views = {}
    for name, v in cfg["views"].items():
        f = float(v["overlap"])
        if not 0 <= f < 1:
            _fail(f"views.{name}.overlap", "a linear overlap in [0, 1)", f)
        groups = {s: v.get("n_groups", {}).get(s, top_groups.get(s, "all")) for s in SPLITS}
        for s in SPLITS:
            req = groups[s]
            if req != "all" and (not isinstance(req, int) or req <= 0):
                _fail(f"n_groups.{s}", "'all' or a positive integer", req)
        plan_views[name] = ViewPlan(name, f, (1.0 - f) * diameter, grid, jitter, groups)
    widest = max(v.half_extent for v in plan_views.values())
    size = _object_size(cfg, required_object_size(n, widest, margin))
    return StudyPlan(raw=cfg, N=n, gridsize=gridsize, neighbor_count=k, chunk_size=int(cfg["chunk_size"]),
                     doses=tuple(int(d) for d in cfg["doses"]), models=tuple(cfg["models"]),
                     seeds=dict(cfg["seeds"]), replicates=tuple(int(r) for r in replicates), object_size=size,
                     probe=probe, probe_diameter=diameter, views=plan_views, margin=margin)
