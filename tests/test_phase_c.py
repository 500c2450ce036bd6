"""Phase C: three independent splits, streamed files, determinism, and the validator."""

import numpy as np
import pytest
import yaml

from conftest import ROOT
from ptychostudy import geometry, io
from ptychostudy.config import SPLITS, build_plan
from ptychostudy.phase_c import fine_structure, load_object, shared_content, validate_phase_c, write_phase_c
from ptychostudy.metrics import region_from_positions, truth_phase
from ptychostudy.simulate import make_object, make_probe, simulate_amplitudes

#: bounds of the independence tests (docs/design.md, "Splits"): the normalised cross-correlation
#: of a view's scored test crop with any symmetry of the train or validation object, at any
#: shift. Fine structure (the image minus its 4-px Gaussian blur): chance level ≈ 0.1 at the
#: default size; the raw phase and amplitude: the smooth background field has few degrees of
#: freedom, chance level ≈ 0.47. A copied or mirrored region scores 1.
FINE_BOUND, RAW_BOUND = 0.2, 0.6


def _phase_c(cfg, dose, tmp_path):
    plan = build_plan(cfg)
    paths = {s: tmp_path / f"{s}.npz" for s in SPLITS}
    write_phase_c(plan.geometry, dose, paths)
    return plan, {s: io.load_npz(p) for s, p in paths.items()}


def test_every_split_has_its_own_object_and_the_same_scan_design(tiny_cfg, tmp_path):
    plan, data = _phase_c(tiny_cfg, 1000, tmp_path)
    objects = [data[s]["objectGuess"] for s in SPLITS]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.allclose(objects[a], objects[b])
    for s in SPLITS:
        validate_phase_c(tmp_path / f"{s}.npz")
        assert str(data[s]["split"]) == s
        assert data[s]["objectGuess"].shape == (plan.object_size,) * 2
        for vid, view in enumerate(plan.view_names):
            # the counts follow from the config alone (static DAG): every view has grid² patterns
            assert np.sum(data[s]["lattice"] == vid) == plan.views[view].n_positions(s) == plan.geometry.grid**2


def test_one_beam_for_every_split(tiny_cfg, tmp_path):
    """The probe is scaled once per dose over all splits' patterns: the same probe in every file,
    and the mean counts per pattern over all splits equal the dose."""
    _, data = _phase_c(tiny_cfg, 10000, tmp_path)
    for s in SPLITS[1:]:
        np.testing.assert_array_equal(data[s]["probeGuess"], data["train"]["probeGuess"])
    totals = np.concatenate([np.sum(data[s]["diffraction"].astype(np.float64) ** 2, axis=(1, 2)) for s in SPLITS])
    assert abs(totals.mean() / 10000 - 1) < 5 / np.sqrt(10000 * len(totals))


def test_same_seeds_give_identical_data_and_splits_draw_their_own(tiny_cfg, tmp_path):
    _, a = _phase_c(tiny_cfg, 1000, tmp_path / "a")
    _, b = _phase_c(tiny_cfg, 1000, tmp_path / "b")
    for s in SPLITS:
        for key in a[s]:
            np.testing.assert_array_equal(a[s][key], b[s][key])
    tiny_cfg["seeds"]["simulation"] = 43
    _, c = _phase_c(tiny_cfg, 1000, tmp_path / "c")
    assert not np.array_equal(c["test"]["objectGuess"], a["test"]["objectGuess"])


def test_streamed_phase_c_equals_the_in_memory_simulation(tiny_cfg, tmp_path):
    """Phase C writes batch by batch; the file equals one in-memory Poisson draw of the same
    expected counts (probe scaled over all splits, the split's own noise seed)."""
    from ptychostudy.config import load_probe, split_seed
    from ptychostudy.patches import extract_patches
    from ptychostudy.conventions import expected_counts
    from ptychostudy.simulate import dose_scaled_probe, illumination_totals

    plan, data = _phase_c(tiny_cfg, 1000, tmp_path)
    g = plan.geometry
    probe = load_probe(g.probe, g.N)
    totals = np.concatenate([illumination_totals(load_object(g, s), probe, g.scan_positions(s)[0]) for s in SPLITS])
    scaled = dose_scaled_probe(probe, totals, 1000.0)
    np.testing.assert_array_equal(data["test"]["probeGuess"], scaled)
    pos, _ = g.scan_positions("test")
    lam = expected_counts(scaled, extract_patches(load_object(g, "test"), pos, g.N))
    rng = np.random.default_rng(split_seed(g.simulation_seed, "test", 2, 1000))
    if len(pos) <= 256:  # one batch: the same draw in one call
        np.testing.assert_array_equal(data["test"]["diffraction"], np.sqrt(rng.poisson(lam)).astype(np.float32))


def _scored_crops(plan, split_data):
    pos = np.stack([split_data["xcoords"], split_data["ycoords"]], axis=1)
    for vid, view in enumerate(plan.view_names):
        p = pos[split_data["lattice"] == vid]
        yield view, region_from_positions(p[:, 0], p[:, 1], split_data["objectGuess"].shape)


@pytest.mark.parametrize("config", ["config/config.yaml"])
def test_test_content_is_independent_of_train_and_validation_content(config):
    """No symmetry the augmentation uses, and no shift, maps training or validation content onto
    what the test split scores: the NCC of each view's scored test crop (phase and amplitude,
    raw and fine structure) with every dihedral transform of the train and validation objects,
    at every shift, stays below the stated bounds. (The bounds are chance levels of crops of a
    hundred pixels and more, as the default study scores; the tiny test config's crops of a
    few dozen pixels have too few degrees of freedom for a statistic.)"""
    plan = build_plan(yaml.safe_load((ROOT / config).read_text()))
    g = plan.geometry
    objects = {s: load_object(g, s) for s in SPLITS}
    pos, lattice = g.scan_positions("test")
    test = {"xcoords": pos[:, 0], "ycoords": pos[:, 1], "lattice": lattice, "objectGuess": objects["test"]}
    images = {s: {"phase": truth_phase(objects[s]), "amplitude": np.abs(objects[s]).astype(np.float64)}
              for s in SPLITS}
    for view, (sy, sx) in _scored_crops(plan, test):
        for comp in ("phase", "amplitude"):
            crop = images["test"][comp][sy, sx]
            fine = fine_structure(images["test"][comp])[sy, sx]
            for other in ("train", "validation"):
                raw = shared_content(crop, images[other][comp])
                detail = shared_content(fine, fine_structure(images[other][comp]))
                assert raw < RAW_BOUND and detail < FINE_BOUND, (config, view, comp, other, raw, detail)


def test_the_independence_statistic_catches_mirrored_and_copied_content():
    """The old design's failure (the test half mirrored the train half) scores ~1; so does half a
    crop copied from training content, far above the bounds."""
    obj = make_object(256, 3, 16.0)
    phase = truth_phase(obj)
    mirrored = np.flipud(phase)[40:140, 60:160]
    assert shared_content(mirrored, phase) > 0.99
    assert shared_content(fine_structure(np.flipud(phase))[40:140, 60:160], fine_structure(phase)) > 0.99
    other = truth_phase(make_object(256, 4, 16.0))
    half = other[40:140, 60:160].copy()
    half[:, :50] = phase.T[40:140, 60:110]  # half of the crop is a transposed training region
    assert shared_content(fine_structure(half), fine_structure(phase)) > FINE_BOUND
    assert shared_content(fine_structure(other[40:140, 60:160]), fine_structure(phase)) < FINE_BOUND


def _write(tmp_path, **over):
    obj = make_object(64, 0, 8.0)
    pos = np.array([[30.0, 30.0], [34.0, 31.0], [31.0, 35.0]])
    amp, probe = simulate_amplitudes(obj, make_probe(16, 0.5, 2.0), pos, 1e4, np.random.default_rng(0))
    d = dict(diffraction=amp, xcoords=pos[:, 0], ycoords=pos[:, 1], probeGuess=probe, objectGuess=obj,
             scan_index=np.arange(3), dose=np.int64(10000), N=np.int64(16))
    d.update(over)
    d = {k: v for k, v in d.items() if v is not None}
    path = tmp_path / "split.npz"
    io.save_npz(path, **d)
    return path, d


def test_validator_accepts_a_canonical_file(tmp_path):
    path, _ = _write(tmp_path)
    validate_phase_c(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: {"diffraction": None}, "missing key(s) ['diffraction']"),
        (lambda d: {"diffraction": d["diffraction"] ** 2}, "intensities stored?"),
        (lambda d: {"diffraction": -d["diffraction"]}, "negative values"),
        (lambda d: {"diffraction": np.where(d["diffraction"] > 1, np.nan, d["diffraction"]).astype(np.float32)},
         "NaN"),
        (lambda d: {"xcoords": d["xcoords"][:2]}, "key 'xcoords' has shape"),
        (lambda d: {"diffraction": d["diffraction"].astype(np.float64)}, "dtype float64, expected float32"),
    ],
)
def test_validator_names_file_and_key(tmp_path, change, message):
    _, good = _write(tmp_path)
    path, _ = _write(tmp_path, **change(good))
    with pytest.raises(io.DataError) as err:
        validate_phase_c(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_group_footprint_overlap_follows_the_view(tiny_cfg, tmp_path):
    """Dense groups' members overlap their neighbours; the sparse view's much less."""
    from ptychostudy.shards import make_groups

    plan, data = _phase_c(tiny_cfg, 1000, tmp_path)
    frac = {}
    for view in plan.view_names:
        _, overlap = make_groups(data["train"], view, 2, 7, "all", {"grouping": 1, "subsampling": 2})
        frac[view] = overlap["group_footprint_overlap"]
        assert overlap["n_patterns"] == plan.geometry.grid**2
        step = plan.views[view].step
        assert np.isclose(overlap["photons_per_px2"], 1000 / overlap["mean_nn_distance_px"] ** 2, rtol=0.25)
        assert abs(overlap["mean_nn_distance_px"] - step) < 0.25 * step
    assert frac["dense"] == 1.0 and frac["sparse"] < frac["dense"]
    assert geometry.footprint_overlap_fraction(np.array([[[0, 0], [30, 0]]]), 20.0) == 0.0
