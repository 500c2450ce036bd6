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
    info = write_merged(paths, phase_c, out, {"window": "central", "central_fraction": 0.5})
    d = load_npz(out, required=("object", "weight", "wall_time_s"))
    assert d["object"].shape == (L, L) and d["object"].dtype == np.complex64
    assert float(d["wall_time_s"]) == pytest.approx(0.5 * len(paths))
    assert info["n_chunks"] == len(paths)
