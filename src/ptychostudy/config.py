"""The study's typed configuration and its static plan (positions, groups, chunks per cell).

The Snakefile validates the raw YAML against ``workflow/schemas/config.schema.yaml`` (types,
ranges, unknown keys) and then builds :class:`StudyPlan` here, which adds the checks a schema
cannot express (K ≥ C, view steps, objects large enough) and computes, from the config alone,
how many scan positions, groups and chunks every dose × view × split has. That is what makes
the DAG static: ``snakemake -n`` lists every chunk job before any data exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import geometry
from .patches import SHIFT_PAD

SPLITS = ("train", "test")
KNOWN_MODELS = ("pinn", "baseline", "ptychi")
#: `training` keys a network's own section may set for itself (e.g. pinn.epochs overrides training.epochs)
MODEL_TRAINING_KEYS = ("epochs", "batch_size", "learning_rate", "loss_weight", "augment")


class ConfigError(ValueError):
    """A config value that is out of range or inconsistent; the message names the key."""


def _fail(key: str, expected: str, got) -> None:
    raise ConfigError(f"config key '{key}': expected {expected}, got {got!r}")


@dataclass(frozen=True)
class ProbeConfig:
    path: str = ""
    pupil_radius: float = 0.25
    defocus: float = 3.0
    diameter: float | str = "auto"
    energy_fraction: float = 0.9


@dataclass(frozen=True)
class ViewPlan:
    """One overlap view: its lattice step and, per split, positions, groups and chunks."""

    name: str
    overlap: float
    step: float
    half_count: int
    jitter: float
    n_groups_request: dict  # split -> "all" | int

    def n_positions(self, split: str) -> int:
        # 2m columns × m rows on each side of the midline
        return 2 * self.half_count * self.half_count

    def n_groups(self, split: str) -> int:
        req = self.n_groups_request[split]
        return self.n_positions(split) if req == "all" else int(req)


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
    def midline(self) -> float:
        return self.object_size / 2.0

    @property
    def nn_models(self) -> tuple:
        return tuple(m for m in self.models if m in ("pinn", "baseline"))

    def half_span(self, step: float, jitter: float) -> float:
        """Half-width of the region where a view's jittered positions keep patches inside the object."""
        return (self.object_size - self.N) / 2.0 - SHIFT_PAD - 2 - self.margin - jitter * step

    def n_chunks(self, view: str, split: str) -> int:
        return math.ceil(self.views[view].n_groups(split) / self.chunk_size)

    def chunk_ids(self, view: str, split: str) -> list[str]:
        return [f"{i:04d}" for i in range(self.n_chunks(view, split))]

    @cached_property
    def view_names(self) -> tuple:
        return tuple(self.views)

    def scan_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """The dose's full scan: positions (n, 2) (x, y) and the lattice id of each (view order).

        Deterministic under ``seeds.simulation``; identical for every dose.
        """
        rng = np.random.default_rng(self.seeds["simulation"])
        pos, lattice = [], []
        for vid, v in enumerate(self.views.values()):
            p = geometry.jittered_raster(
                self.object_size / 2.0,
                self.half_span(v.step, v.jitter),
                v.step,
                v.jitter,
                rng,
            )
            pos.append(p)
            lattice.append(np.full(len(p), vid, dtype=np.int64))
        return np.concatenate(pos), np.concatenate(lattice)


def _load_npz_key(path: str, key: str, cfg_key: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config key '{cfg_key}': file {path} does not exist")
    with np.load(p, allow_pickle=False) as f:
        if key not in f:
            raise ConfigError(f"config key '{cfg_key}': {path} has no key '{key}' (keys: {list(f.keys())})")
        return np.asarray(f[key])


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

    pc = cfg.get("probe", {})
    probe = ProbeConfig(**{key: pc[key] for key in pc})
    if probe.diameter == "auto":
        from .simulate import probe_diameter

        diameter = probe_diameter(load_probe(probe, n), probe.energy_fraction)
    else:
        diameter = float(probe.diameter)
        if diameter <= 0:
            _fail("probe.diameter", "'auto' or a positive number of pixels", probe.diameter)

    obj = cfg.get("object", {})
    if obj.get("path"):
        shape = _load_npz_key(obj["path"], "objectGuess", "object.path").shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ConfigError(f"config key 'object.path': objectGuess must be square 2-D, got shape {shape}")
        size = int(shape[0])
    else:
        size = int(obj.get("size", 0))

    scan = cfg.get("scan", {})
    jitter = float(scan.get("jitter", 0.0))
    if not 0 <= jitter < 0.25:
        _fail("scan.jitter", "a fraction of the step in [0, 0.25)", jitter)
    margin = float(scan.get("margin", 0.0))
    top_groups = cfg["n_groups"]
    plan_views = {}
    partial = dict(raw=cfg, N=n, gridsize=gridsize, neighbor_count=k, chunk_size=int(cfg["chunk_size"]),
                   doses=tuple(int(d) for d in cfg["doses"]), models=tuple(cfg["models"]),
                   seeds=dict(cfg["seeds"]), object_size=size, probe=probe,
                   probe_diameter=diameter, margin=margin)
    tmp = StudyPlan(views={}, **partial)
    for name, v in cfg["views"].items():
        f = float(v["overlap"])
        if not 0 <= f < 1:
            _fail(f"views.{name}.overlap", "a linear overlap in [0, 1)", f)
        step = (1.0 - f) * diameter
        m = geometry.half_lattice_count(tmp.half_span(step, jitter), step)
        groups = {s: v.get("n_groups", {}).get(s, top_groups[s]) for s in SPLITS}
        view = ViewPlan(name, f, step, m, jitter, groups)
        for s in SPLITS:
            npos = view.n_positions(s)
            need = k if gridsize > 1 else 1
            if npos < need:
                raise ConfigError(
                    f"config key 'views.{name}.overlap': the {s} split of view '{name}' has {npos} "
                    f"positions (step {step:.1f} px on a {size}-px object with N={n}); "
                    f"expected at least {need}: enlarge object.size or lower the step"
                )
            req = groups[s]
            if req != "all" and (not isinstance(req, int) or req <= 0):
                _fail(f"n_groups.{s}", "'all' or a positive integer", req)
        plan_views[name] = view
    return StudyPlan(views=plan_views, **partial)
