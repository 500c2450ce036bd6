"""Stitching: the merge of inference chunks is exact, whatever the chunking."""

import numpy as np
import pytest

from ptychostudy.io import DataError, load_npz, save_npz
from ptychostudy.patches import extract_patches
from ptychostudy.simulate import make_object
from ptychostudy.stitch import make_window, merge_arrays, merge_chunk_files, write_merged

L, N, C, G = 96, 16, 4, 23


@pytest.fixture(scope="module")
def groups():
    """G groups of C sub-pixel positions and their true patches, in inference layout."""
    rng = np.random.default_rng(5)
    obj = make_object(L, 11)
    centers = rng.uniform(N / 2 + 8, L - N / 2 - 8, size=(G, 2))
    rel = rng.uniform(-3, 3, size=(G, C, 2))
    positions = centers[:, None, :] + rel
    flat = extract_patches(obj, positions.reshape(-1, 2), N)
    patches = np.moveaxis(flat.reshape(G, C, N, N), 1, -1)  # (G, N, N, C)
    # perturb so the merge is not of perfectly consistent patches
    patches = (patches * (1 + 0.05 * rng.standard_normal(patches.shape))).astype(np.complex64)
    return obj, patches, positions


def write_chunks(tmp_path, patches, positions, size):
    paths = []
    for i, s in enumerate(range(0, len(patches), size)):
        p = tmp_path / f"size{size}" / f"chunk_{i:04d}.npz"
        save_npz(p, patches=patches[s : s + size], positions=positions[s : s + size],
                 group_index=np.arange(s, min(s + size, len(patches))), wall_time_s=0.5, N=N, chunk=i)
        paths.append(p)
    return paths


@pytest.mark.parametrize("kind", ["central", "probe"])
def test_chunked_merge_equals_unchunked(tmp_path, groups, kind):
    _, patches, positions = groups
    probe = np.exp(-((np.arange(N) - N / 2) ** 2)[:, None] / 20 - ((np.arange(N) - N / 2) ** 2)[None] / 20)
    window = make_window(N, kind, 0.5, probe=probe)
    ref_obj, ref_w = merge_arrays(patches, positions, (L, L), window)
    assert np.any(ref_w > 0)
    for size in (1, 7, G):
        paths = write_chunks(tmp_path, patches, positions, size)
        obj, w, wall = merge_chunk_files(paths, (L, L), window)
        assert obj.dtype == np.complex64 and w.dtype == np.float32
        assert np.max(np.abs(obj - ref_obj)) <= 1e-5
        assert np.max(np.abs(w - ref_w)) <= 1e-5
        assert wall == pytest.approx(0.5 * len(paths))


def test_reconciled_merge_is_chunk_invariant(tmp_path, groups):
    """Phase rounds stream the files again; the object must not depend on the chunking."""
    _, patches, positions = groups
    rng = np.random.default_rng(8)
    rotated = patches * np.exp(1j * rng.uniform(-np.pi, np.pi, (G, 1, 1, 1))).astype(np.complex64)
    window = make_window(N, "central", 0.5)
    ref_obj, ref_w = merge_arrays(rotated, positions, (L, L), window, phase_rounds=3)
    plain, _ = merge_arrays(rotated, positions, (L, L), window)
    assert np.max(np.abs(ref_obj - plain)) > 0.1  # the rounds do change the object
    for size in (1, 7, G):
        paths = write_chunks(tmp_path, rotated, positions, size)
        obj, w, _ = merge_chunk_files(paths, (L, L), window, phase_rounds=3)
        assert np.max(np.abs(obj - ref_obj)) <= 1e-5
        assert np.max(np.abs(w - ref_w)) <= 1e-5


def _phase_error(merged, obj, inner):
    """RMS phase error over ``inner`` after the best global phase (the gauge every arm keeps)."""
    m, o = merged[inner], obj[inner]
    g = np.angle(np.sum(np.conj(m) * o))
    return float(np.sqrt(np.mean(np.angle(m * np.exp(1j * g) / o) ** 2)))


@pytest.mark.parametrize("kind", ["central", "probe"])
def test_reconciliation_undoes_per_group_phase_offsets(kind):
    """True patches, each group rotated by its own random phase (what the PINN's likelihood
    cannot see): the plain merge averages the offsets away, the rounds recover the object up
    to one global phase, without the ground truth. (Offsets uniform in ±2 rad; fully random
    ones, ±π, converge far more slowly: 1.7 → 0.56 rad after 20 rounds on this grid.)"""
    obj = make_object(L, 3)
    rng = np.random.default_rng(1)
    xs = np.arange(20.0, 77.0, 4.0)
    centres = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2) + rng.uniform(-0.5, 0.5, (len(xs) ** 2, 2))
    positions = centres[:, None, :] + np.array([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])
    g = len(centres)
    patches = np.moveaxis(extract_patches(obj, positions.reshape(-1, 2), N).reshape(g, C, N, N), 1, -1)
    rotated = patches * np.exp(1j * rng.uniform(-2.0, 2.0, (g, 1, 1, 1)))
    probe = np.exp(-((np.arange(N) - N / 2) ** 2)[:, None] / 18 - ((np.arange(N) - N / 2) ** 2)[None] / 18)
    window = make_window(N, kind, 0.5, probe=probe)
    inner = (slice(28, 68), slice(28, 68))
    consistent, _ = merge_arrays(patches, positions, (L, L), window)
    plain, _ = merge_arrays(rotated, positions, (L, L), window)
    fixed, _ = merge_arrays(rotated, positions, (L, L), window, phase_rounds=10)
    assert _phase_error(consistent, obj, inner) < 0.01
    assert _phase_error(plain, obj, inner) > 0.25
    assert _phase_error(fixed, obj, inner) < 0.1
    assert np.abs(np.abs(fixed[inner]) - np.abs(obj[inner])).max() < 0.05


def test_merge_of_true_patches_recovers_object():
    obj = make_object(L, 3)
    xs = np.arange(20.0, 77.0, 4.0)
    positions = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2)
    patches = extract_patches(obj, positions, N)  # integer positions: exact slices
    merged, weight = merge_arrays(patches, positions, (L, L), make_window(N, "central", 0.5))
    inner = (slice(24, 72), slice(24, 72))
    assert np.max(np.abs(merged[inner] - obj[inner])) < 1e-5
    assert np.all(merged[weight == 0] == 0)
    assert merged[0, 0] == 0 and weight[0, 0] == 0  # far from every patch


def test_windows():
    w = make_window(N, "central", 0.5)
    assert w.shape == (N, N) and w.max() == 1.0
    assert w[N // 2, N // 2] == 1.0 and w[0, N // 2] == 0.0
    assert np.allclose(w[N // 2, N // 2 - 3 : N // 2 + 4], 1.0)  # flat centre (±N/4)
    assert np.allclose(w[1:, 1:], w[1:, 1:][::-1, ::-1])  # symmetric about pixel N/2
    assert np.all(make_window(N, "central", 1.0) == 1.0)
    probe = np.random.default_rng(0).standard_normal((N, N)) + 0j
    assert make_window(N, "probe", probe=probe).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kind"):
        make_window(N, "hann")
    with pytest.raises(ValueError, match="probe"):
        make_window(N, "probe")


def test_truncated_chunk_names_file(tmp_path, groups):
    _, patches, positions = groups
    (path,) = write_chunks(tmp_path, patches, positions, G)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=str(path.name)):
        merge_chunk_files([path], (L, L), make_window(N))


def test_chunk_with_wrong_positions_shape(tmp_path, groups):
    _, patches, positions = groups
    p = tmp_path / "bad.npz"
    save_npz(p, patches=patches, positions=positions[:, :2], wall_time_s=0.0)
    with pytest.raises(DataError, match="positions"):
        merge_chunk_files([p], (L, L), make_window(N))


def test_write_merged(tmp_path, groups):
    obj, patches, positions = groups
    phase_c = tmp_path / "test.npz"
    save_npz(phase_c, objectGuess=obj, probeGuess=np.ones((N, N), np.complex64))
    paths = write_chunks(tmp_path, patches, positions, 7)
    out = tmp_path / "merged.npz"
    info = write_merged(paths, phase_c, out, {"window": "central", "central_fraction": 0.5}, phase_rounds=2)
    d = load_npz(out, required=("object", "weight", "wall_time_s"))
    assert d["object"].shape == (L, L) and d["object"].dtype == np.complex64
    assert float(d["wall_time_s"]) == pytest.approx(0.5 * len(paths))
    assert info["n_chunks"] == len(paths) and info["phase_rounds"] == 2
    ref, _ = merge_arrays(patches, positions, (L, L), make_window(N, "central", 0.5), phase_rounds=2)
    assert np.max(np.abs(d["object"] - ref)) <= 1e-5
