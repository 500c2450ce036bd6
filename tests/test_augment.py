"""Symmetry augmentation (models/augment.py): exact physics for the study's probe, applied alike
to every key of a training sample."""

import numpy as np
import pytest

from ptychostudy.models.augment import DIHEDRAL, probe_symmetries, transform_images, transform_offsets
from ptychostudy.patches import extract_patches
from ptychostudy.conventions import expected_counts
from ptychostudy.simulate import make_object, make_probe


def transformed_scan(obj, pos, code):
    """The object transformed by element ``code`` about its array, and the positions with it."""
    h = obj.shape[0]
    o, p = obj, pos.copy()
    if code & 1:
        o, p = o.T, p[:, ::-1]
    if code & 2:
        o, p = o[::-1], p * [1, -1] + [0, h - 1]
    if code & 4:
        o, p = o[:, ::-1], p * [-1, 1] + [h - 1, 0]
    return np.ascontiguousarray(o), p


@pytest.mark.parametrize("code", DIHEDRAL)
def test_transformed_data_measure_the_transformed_object(code):
    n = 32
    probe = make_probe(n, 0.25, 3.0)
    assert probe_symmetries(probe) == DIHEDRAL  # circular pupil, radial defocus
    obj = make_object(96, 3)
    # integer positions: the simulator's sub-pixel shift (a Fourier shift on a padded window) is
    # an interpolation, not the physics, and is not exactly mirror-symmetric
    pos = np.round(np.random.default_rng(code).uniform(30, 66, (4, 2)))
    patches = extract_patches(obj, pos, n)
    counts = expected_counts(probe, patches)
    # 1. the transformed diffraction is exactly the diffraction of the transformed patches
    moved = transform_images(patches, code, axes=(1, 2))
    np.testing.assert_allclose(transform_images(counts, code, axes=(1, 2)), expected_counts(probe, moved),
                               rtol=1e-9, atol=1e-9 * counts.max())
    # 2. ... which are the patches of the transformed object at the transformed positions (all but
    # the one border row/column a flip wraps round), and the group's offsets move alike
    obj2, pos2 = transformed_scan(obj, pos, code)
    want = extract_patches(obj2, pos2, n)
    inner = (slice(None), slice(1 if code & 6 else 0, None), slice(1 if code & 6 else 0, None))
    np.testing.assert_allclose(moved[inner], want[inner], atol=1e-6)
    np.testing.assert_allclose(transform_offsets(pos - pos.mean(0), code), pos2 - pos2.mean(0), atol=1e-9)


def test_only_the_probes_own_symmetries_are_used():
    n = 32
    probe = make_probe(n, 0.25, 3.0)
    assert probe_symmetries(np.roll(probe, 3, axis=1)) == (0, 2)  # off-centre in x: only the y flip
    rng = np.random.default_rng(0)
    assert probe_symmetries(probe * np.exp(1j * rng.uniform(0, 1, (n, n)))) == (0,)
    assert probe_symmetries(None) == (0,)


def test_dataset_transforms_every_key_of_a_sample_alike(tmp_path):
    import tensorflow as tf

    from ptychostudy.io import save_npz
    from ptychostudy.models.data import make_dataset, make_synthetic_chunks

    chunks = make_synthetic_chunks(n=16, n_groups=12, chunk_size=12, seed=2)
    path = tmp_path / "chunk_0000.npz"
    save_npz(path, **chunks[0])
    diff = chunks[0]["diffraction"]
    rel = chunks[0]["coords_relative"]
    tf.random.set_seed(0)
    ds, _ = make_dataset([path], "pinn", 16, 4, batch_size=12, seed=1, shuffle_buffer=0, augment=DIHEDRAL)
    seen = set()
    for epoch in range(2):
        batch = next(iter(ds))
        for d, r in zip(batch["diffraction"].numpy(), batch["coords_relative"].numpy()):
            # find the group and the element that produced this sample
            hits = [(i, g) for i in range(len(diff)) for g in DIHEDRAL
                    if np.array_equal(transform_images(diff[i], g), d)
                    and np.allclose(transform_offsets(rel[i], g), r, atol=1e-5)]
            assert hits, "a sample is not a symmetry image of any group"
            seen.add(hits[0][1])
    assert len(seen) >= 4  # the draws vary across samples and epochs
    ds, _ = make_dataset([path], "baseline", 16, 4, batch_size=64, seed=1, shuffle_buffer=0, augment=DIHEDRAL)
    batch = next(iter(ds))
    patches = chunks[0]["patches"]
    amp = np.moveaxis(np.abs(patches), 3, 1).reshape(-1, 16, 16)
    for a, ph in zip(batch["amplitude"].numpy()[..., 0], batch["phase"].numpy()[..., 0]):
        hits = [g for g in DIHEDRAL for i in range(len(amp)) if np.allclose(transform_images(amp[i], g), a)]
        assert hits
        g = hits[0]
        k = [i for i in range(len(amp)) if np.allclose(transform_images(amp[i], g), a)][0]
        want = transform_images(np.angle(np.moveaxis(patches, 3, 1).reshape(-1, 16, 16)[k]), g)
        np.testing.assert_allclose(ph, want, atol=1e-5)  # the phase went with its amplitude
