"""Metrics: agreement with scikit-image, perfect scores, registration, FRC behaviour."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ptychostudy import metrics as M
from ptychostudy.conventions import fourier_shift
from ptychostudy.simulate import make_object

L = 128
REGION = (slice(24, 104), slice(20, 108))


@pytest.fixture(scope="module")
def truth():
    return make_object(L, 7)


def noisy(obj, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return (obj + sigma * (rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape))).astype(np.complex64)


def test_metrics_agree_with_independent_computation(truth):
    t = np.abs(truth).astype(np.float64)
    r = np.abs(noisy(truth, 0.05)).astype(np.float64)
    values, _ = M.component_metrics(r, t)
    rng = t.max() - t.min()
    assert values["mae"] == pytest.approx(np.mean(np.abs(r - t)), rel=1e-12)
    assert values["mse"] == pytest.approx(np.mean((r - t) ** 2), rel=1e-12)
    assert values["psnr"] == pytest.approx(peak_signal_noise_ratio(t, r, data_range=rng), rel=1e-12)
    ref = structural_similarity(t, r, data_range=rng, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert values["ssim"] == pytest.approx(ref, rel=1e-12)
    # MS-SSIM with one scale is SSIM itself
    assert M.ms_ssim(r, t, scales=1) == pytest.approx(ref, rel=1e-10)
    assert 0 < values["ms_ssim"] <= 1


def test_ms_ssim_scales_adapt_to_image_size():
    assert M.ms_ssim_scales((256, 256)) == 5  # 256 / 2**4 = 16 ≥ 11
    assert M.ms_ssim_scales((100, 300)) == 4  # 100 / 8 = 12.5 ≥ 11 > 100 / 16
    assert M.ms_ssim_scales((11, 40)) == 1
    assert M.ms_ssim_scales((10, 40)) == 0
    assert np.isnan(M.ms_ssim(np.zeros((8, 8)), np.ones((8, 8))))


@pytest.mark.parametrize("scale,phase", [(1.0, 0.0), (1.7, 0.9), (0.3, -2.8)])
def test_perfect_reconstruction_scores_perfectly(truth, scale, phase):
    a = M.align(truth * scale * np.exp(1j * phase), truth, REGION)
    assert a.offset == (0.0, 0.0)
    assert a.scale == pytest.approx(1 / scale, rel=1e-6)
    assert a.phase_offset == pytest.approx(-phase, abs=1e-6)
    values, curves = M.evaluate(a)
    for comp in M.COMPONENTS:
        v = values[comp]
        assert v["mae"] < 1e-6 and v["mse"] < 1e-12
        assert v["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert v["ms_ssim"] == pytest.approx(1.0, abs=1e-6)
        assert v["psnr"] > 100
        freq, frc = curves[comp]
        assert np.isnan(frc[0]) and np.allclose(frc[1:], 1.0, atol=1e-6)  # ring 0: means removed
        assert v["frc50_px"] == pytest.approx(2.0) and v["frc17_px"] == pytest.approx(2.0)
        assert v["frc50_ring"] == len(freq)


def test_registration_recovers_subpixel_shift(truth):
    dy, dx = 2.3, -1.7
    moved = fourier_shift(truth[None].astype(np.complex128), np.array([[dx, dy]]))[0]  # content moves by (dy, dx)
    a = M.align(moved * 0.8 * np.exp(0.5j), truth, REGION)
    assert a.offset[0] == pytest.approx(-dy, abs=0.05)
    assert a.offset[1] == pytest.approx(-dx, abs=0.05)
    assert a.truth.shape == (80, 88) and a.crop == (24, 104, 20, 108)
    values, _ = M.evaluate(a)
    assert values["phase"]["ssim"] > 0.98 and values["amplitude"]["ssim"] > 0.98


def test_large_shift_is_not_applied_and_is_recorded(truth):
    moved = fourier_shift(truth[None].astype(np.complex128), np.array([[0.0, 12.0]]))[0]
    a = M.align(moved, truth, REGION, max_shift=8.0)
    assert a.shift_rejected and a.offset == (0.0, 0.0)
    assert a.measured[0] == pytest.approx(-12.0, abs=0.1)  # what it measured, though not applied


@pytest.mark.parametrize("c_truth, c_recon", [(0.7, 0.0), (0.0, -2.0), (2.5, 1.1), (np.pi, -np.pi / 2), (-3.0, 3.0)])
def test_no_metric_depends_on_the_absolute_phase(truth, c_truth, c_recon):
    """A constant added to the truth's phase, and another to the reconstruction's, changes every
    metric by less than 1e-9 (complex128 inputs: the pipeline's own rounding is not the question)."""
    t = truth.astype(np.complex128)
    r = noisy(truth, 0.1).astype(np.complex128) * np.exp(0.3j * np.cos(np.arange(L) / 9.0))[None, :]
    r = fourier_shift(r[None], np.array([[0.4, -0.3]]))[0]

    def score(t, r):
        values, curves = M.evaluate(M.align(r, t, REGION))
        return values, curves

    base, base_curves = score(t, r)
    moved, moved_curves = score(t * np.exp(1j * c_truth), r * np.exp(1j * c_recon))
    for comp in M.COMPONENTS:
        for k, v in base[comp].items():
            assert moved[comp][k] == pytest.approx(v, abs=1e-9), (comp, k)
        np.testing.assert_allclose(moved_curves[comp][1], base_curves[comp][1], atol=1e-9)
    # the flat object too
    flat, _ = score(t, np.ones_like(t))
    flat2, _ = score(t * np.exp(1j * c_truth), np.ones_like(t) * np.exp(1j * c_recon))
    assert flat2["phase"]["ssim"] == pytest.approx(flat["phase"]["ssim"], abs=1e-9)


def test_phase_images_are_shifted_so_the_truth_minimum_is_zero(truth):
    r, t = M.components(noisy(truth, 0.05), truth)["phase"]
    assert t.min() == pytest.approx(0.0, abs=1e-12)
    # the difference is the wrapped phase error, whatever the frame
    err = np.angle(noisy(truth, 0.05).astype(np.complex128) * np.conj(truth.astype(np.complex128)))
    np.testing.assert_allclose(r - t, err, atol=1e-9)
    # figures show the truth exactly as the metrics see it, whatever phase constant it carries
    np.testing.assert_allclose(M.display_phase(truth * np.exp(0.7j)), t, atol=1e-9)


def test_trivial_scores_worse_than_noisy_but_good(truth):
    good, _ = M.evaluate(M.align(noisy(truth, 0.05), truth, REGION))
    flat, _ = M.evaluate(M.align(np.ones_like(truth), truth, REGION))
    for comp in M.COMPONENTS:
        assert good[comp]["ssim"] > flat[comp]["ssim"]
        assert good[comp]["ms_ssim"] > flat[comp]["ms_ssim"]
        assert good[comp]["mae"] < flat[comp]["mae"]
        assert good[comp]["psnr"] > flat[comp]["psnr"]
        assert good[comp]["frc50_px"] < flat[comp]["frc50_px"]


def test_zero_reconstruction_is_not_a_perfect_phase(truth):
    values, _ = M.evaluate(M.align(np.zeros_like(truth), truth, REGION))
    assert values["phase"]["mae"] > 0.1 and values["phase"]["ssim"] < 0.5


def test_frc_of_noisy_image_falls_below_one(truth):
    t = np.angle(truth[REGION]).astype(np.float64)
    r = t + np.random.default_rng(1).normal(0, 0.5, t.shape)
    freq, frc = M.frc_curve(r, t)
    assert freq[0] == 0 and freq[-1] == pytest.approx(0.5)
    assert frc[1] > 0.9  # low frequencies survive
    assert np.nanmin(frc) < 0.5 and np.all(frc[-5:] < 0.9)
    px50, ring50 = M.frc_resolution(freq, frc, 0.5)
    px17, ring17 = M.frc_resolution(freq, frc, 1 / 7)
    assert 2 < px50 and ring50 < len(freq)
    assert px17 <= px50 and ring17 >= ring50  # the looser threshold resolves finer


def test_frc_resolution_interpolates_crossing():
    freq = np.arange(6) / 10.0
    frc = np.array([1.0, 0.9, 0.7, 0.3, 0.1, 0.0])
    px, ring = M.frc_resolution(freq, frc, 0.5)
    assert ring == 3
    assert px == pytest.approx(1 / 0.25)  # halfway between rings 2 (0.7) and 3 (0.3)
    px, ring = M.frc_resolution(freq, np.ones(6), 0.5)
    assert ring == 6 and px == pytest.approx(2.0)  # never crossed: Nyquist
    px, ring = M.frc_resolution(freq, np.full(6, np.nan), 0.5)
    assert ring == 1 and px == np.inf  # no signal at all


def test_flat_image_has_no_frc(truth):
    t = np.abs(truth[REGION]).astype(np.float64)
    freq, frc = M.frc_curve(np.full(t.shape, 0.8), t)
    assert np.all(np.isnan(frc))
    assert M.frc_resolution(freq, frc, 1 / 7) == (np.inf, 1)


def test_region_helpers():
    sy, sx = M.region_from_positions([10.4, 30.6], [20.2, 50.9], (64, 64))
    assert (sy, sx) == (slice(20, 52), slice(10, 32))
    mask = np.zeros((64, 64), bool)
    mask[5:9, 7:30] = True
    assert M.region_slices(mask) == (slice(5, 9), slice(7, 30))
    assert M.region_slices((1, 2, 3, 4)) == (slice(1, 2), slice(3, 4))


def test_small_region_grows_to_ssim_window(truth):
    a = M.align(truth, truth, (slice(60, 66), slice(30, 90)))
    assert a.truth.shape == (M.SSIM_WINDOW, 60)
