"""Phase C physics: Parseval, dose scaling, Poisson statistics, determinism, split, validator."""

import numpy as np
import pytest

from ptychostudy import io
from ptychostudy.config import build_plan
from ptychostudy.dataset import simulate_dose, validate_phase_c
from ptychostudy.patches import extract_patches
from ptychostudy.simulate import (
    expected_counts,
    make_object,
    make_probe,
    probe_diameter,
    simulate_amplitudes,
)


def test_forward_model_obeys_parseval():
    probe = make_probe(32, 0.5, 6.0)
    patches = extract_patches(make_object(96, 1), np.array([[40.3, 50.7], [48.0, 48.0]]), 32)
    counts = expected_counts(probe, patches)
    exit_energy = np.sum(np.abs(probe[None] * patches.astype(np.complex128)) ** 2, axis=(1, 2))
    np.testing.assert_allclose(counts.sum(axis=(1, 2)), exit_energy, rtol=1e-6)


def test_forward_model_puts_zero_frequency_at_centre():
    flat = np.ones((1, 16, 16), dtype=np.complex64)
    counts = expected_counts(np.ones((16, 16), np.complex64), flat)
    assert np.unravel_index(np.argmax(counts[0]), (16, 16)) == (8, 8)


def test_probe_looks_like_a_focused_probe():
    probe = make_probe(64, 0.25, 3.0)
    inten = np.abs(probe) ** 2
    assert np.isclose(inten.sum(), 1.0, rtol=1e-5)
    # bright core near the centre, curved (non-flat) phase over the core
    assert np.unravel_index(np.argmax(inten), inten.shape) in {(31, 31), (31, 32), (32, 31), (32, 32)}
    core = inten > 0.1 * inten.max()
    assert np.ptp(np.angle(probe)[core]) > 0.5
    assert 10 < probe_diameter(probe) < 64


@pytest.mark.parametrize("dose", [1e3, 1e4, 1e5])
def test_mean_counts_per_pattern_match_dose(dose):
    obj = make_object(128, 3)
    pos = np.stack(np.meshgrid(np.arange(40, 90, 5.3), np.arange(40, 90, 5.3)), -1).reshape(-1, 2)
    amp, probe = simulate_amplitudes(obj, make_probe(32, 0.5, 6.0), pos, dose, np.random.default_rng(1))
    totals = np.sum(amp.astype(np.float64) ** 2, axis=(1, 2))
    # the expected mean is exactly the dose; Poisson spread of the mean is sqrt(dose / n)
    assert abs(totals.mean() - dose) < 5 * np.sqrt(dose / len(pos))
    assert amp.dtype == np.float32 and amp.min() >= 0


def test_counts_have_poisson_variance():
    obj = np.ones((64, 64), np.complex64) * 0.8
    pos = np.full((4000, 2), 32.0)
    amp, probe = simulate_amplitudes(obj, make_probe(16, 0.5, 2.0), pos, 2000.0, np.random.default_rng(5))
    counts = amp.astype(np.float64) ** 2
    lam = expected_counts(probe, extract_patches(obj, pos[:1], 16))[0]
    pix = lam > 5
    mean, var = counts.mean(0)[pix], counts.var(0)[pix]
    np.testing.assert_allclose(mean, lam[pix], rtol=0.1)
    np.testing.assert_allclose(var / mean, 1.0, atol=0.15)
    assert np.allclose(counts, np.round(counts), atol=1e-3)  # integer counts stored as sqrt


def test_same_seeds_give_identical_data(tiny_cfg):
    plan = build_plan(tiny_cfg)
    a, b = simulate_dose(plan, 1000), simulate_dose(plan, 1000)
    for split in ("train", "test"):
        for key in a[split]:
            np.testing.assert_array_equal(a[split][key], b[split][key])
    other = simulate_dose(build_plan({**tiny_cfg, "seeds": {**tiny_cfg["seeds"], "simulation": 43}}), 1000)
    assert not np.array_equal(other["train"]["diffraction"], a["train"]["diffraction"])


def test_split_puts_every_position_on_its_side(tiny_cfg):
    plan = build_plan(tiny_cfg)
    data = simulate_dose(plan, 1000)
    assert np.all(data["train"]["ycoords"] < plan.midline)
    assert np.all(data["test"]["ycoords"] >= plan.midline)
    ids = np.concatenate([data["train"]["scan_index"], data["test"]["scan_index"]])
    assert sorted(ids) == list(range(len(ids)))
    # the counts follow from the config alone (static DAG)
    for split in ("train", "test"):
        for vid, view in enumerate(plan.view_names):
            assert np.sum(data[split]["lattice"] == vid) == plan.views[view].n_positions(split)


def _write(tmp_path, **over):
    obj = make_object(64, 0)
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
