"""Phase C physics: the probe, dose scaling, Poisson statistics, the object generator, streaming
(the forward model itself: tests/test_conventions.py)."""

import numpy as np
import pytest

from ptychostudy.conventions import expected_counts
from ptychostudy.patches import extract_patches
from ptychostudy.simulate import (
    make_object,
    make_probe,
    probe_diameter,
    simulate_amplitudes,
)


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


def test_objects_spread_fine_structure_everywhere():
    """No central feature: every quarter of the object holds about as much fine structure (edges)
    as any other, and two seeds give independent objects."""
    from ptychostudy.phase_c import fine_structure

    obj = make_object(256, [1, 2, 0], 16.0)
    detail = np.abs(fine_structure(np.angle(obj)))
    quarters = [detail[y:y + 128, x:x + 128].mean() for y in (0, 128) for x in (0, 128)]
    assert max(quarters) / min(quarters) < 1.6
    centre = detail[96:160, 96:160].mean()
    assert centre < 1.6 * np.mean(quarters)
    other = make_object(256, [1, 2, 1], 16.0)
    assert abs(np.corrcoef(np.angle(obj).ravel(), np.angle(other).ravel())[0, 1]) < 0.2
    assert 0 < np.abs(obj).min() and np.abs(obj).max() <= 1.0
    assert np.ptp(np.angle(obj)) < 2 * np.pi - 1  # no 2π wraps


def test_streaming_simulation_equals_the_in_memory_one():
    from ptychostudy.simulate import amplitude_batches, dose_scaled_probe, illumination_totals

    obj = make_object(96, 2, 8.0)
    pos = np.stack(np.meshgrid(np.arange(30, 66, 4.3), np.arange(30, 66, 4.3)), -1).reshape(-1, 2)
    probe = make_probe(32, 0.5, 3.0)
    amp, scaled = simulate_amplitudes(obj, probe, pos, 1e4, np.random.default_rng(3), batch=7)
    scaled2 = dose_scaled_probe(probe, illumination_totals(obj, probe, pos, batch=5), 1e4)
    np.testing.assert_allclose(scaled2, scaled, rtol=1e-6)
    blocks = list(amplitude_batches(obj, scaled, pos, np.random.default_rng(3), batch=7))
    np.testing.assert_array_equal(np.concatenate(blocks), amp)
