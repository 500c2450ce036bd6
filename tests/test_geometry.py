"""Scan geometry: measured overlap against analytic values, lattice counts, view overlaps."""

import numpy as np

from ptychostudy import geometry
from ptychostudy.config import build_plan


def test_measured_overlap_of_a_square_raster_is_analytic():
    d, step = 40.0, 12.0
    g = np.arange(8) * step
    pos = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    m = geometry.measured_overlap(pos, d)
    assert np.isclose(m["linear"], 1 - step / d)
    r = d / 2
    lens = 2 * r * r * np.arccos(step / d) - step / 2 * np.sqrt(d * d - step * step)
    assert np.isclose(m["area"], lens / (np.pi * r * r))


def test_disc_overlap_limits():
    assert np.isclose(geometry.disc_overlap_fraction(0.0, 10.0), 1.0)
    assert np.isclose(geometry.disc_overlap_fraction(10.0, 10.0), 0.0)


def test_views_reach_their_overlap_and_counts_follow_from_the_config(tiny_cfg):
    tiny_cfg["scan"]["jitter"] = 0.0
    plan = build_plan(tiny_cfg)
    for split in ("train", "validation", "test"):
        pos, lattice = plan.scan_positions(split)
        for vid, name in enumerate(plan.view_names):
            sel = pos[lattice == vid]
            assert len(sel) == plan.views[name].n_positions(split) == tiny_cfg["scan"]["grid"] ** 2
            m = geometry.measured_overlap(sel, plan.probe_diameter)
            assert abs(m["linear"] - plan.views[name].overlap) < 1e-9


def test_every_view_has_the_same_patterns_and_a_sparser_view_a_larger_field(tiny_cfg):
    """The overlap axis changes only the overlap: same number of patterns, fluence per area
    falls as the step grows, the field grows with it; the object holds the widest view."""
    plan = build_plan(tiny_cfg)
    pos, lattice = plan.scan_positions("test")
    dense, sparse = pos[lattice == 0], pos[lattice == 1]
    assert len(dense) == len(sparse)
    ratio = plan.views["sparse"].step / plan.views["dense"].step
    assert np.isclose(np.ptp(sparse, axis=0).mean() / np.ptp(dense, axis=0).mean(), ratio, rtol=0.1)
    f_dense, f_sparse = (geometry.fluence_per_area(p, 1000.0) for p in (dense, sparse))
    assert np.isclose(f_dense / f_sparse, ratio**2, rtol=0.15)
    half = plan.N / 2
    assert pos.min() - half >= 0 and pos.max() + half <= plan.object_size
    centre = plan.object_size / 2
    assert np.allclose(dense.mean(axis=0), centre, atol=1.0) and np.allclose(sparse.mean(axis=0), centre, atol=1.0)


def test_jittered_views_stay_near_their_overlap(tiny_cfg):
    plan = build_plan(tiny_cfg)
    pos, lattice = plan.scan_positions("train")
    lin = {n: geometry.measured_overlap(pos[lattice == i], plan.probe_diameter)["linear"]
           for i, n in enumerate(plan.view_names)}
    assert abs(lin["dense"] - 0.7) < 0.05 and abs(lin["sparse"] - 0.2) < 0.08


def test_footprint_overlap_fraction_counts_members_with_an_overlapping_neighbour():
    d = 10.0
    groups = np.array([[[0, 0], [5, 0], [0, 5], [5, 5]],       # all within D of another
                       [[0, 0], [20, 0], [0, 20], [20, 20]],   # none
                       [[0, 0], [9.9, 0], [40, 0], [60, 0]]])  # two of four
    assert np.isclose(geometry.footprint_overlap_fraction(groups, d), (4 + 0 + 2) / 12)
