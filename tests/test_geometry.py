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
    pos, lattice = plan.scan_positions()
    for vid, name in enumerate(plan.view_names):
        sel = pos[lattice == vid]
        assert len(sel) == 2 * plan.views[name].n_positions("train")
        m = geometry.measured_overlap(sel, plan.probe_diameter)
        assert abs(m["linear"] - plan.views[name].overlap) < 1e-9


def test_jittered_views_stay_near_their_overlap(tiny_cfg):
    plan = build_plan(tiny_cfg)
    pos, lattice = plan.scan_positions()
    lin = {n: geometry.measured_overlap(pos[lattice == i], plan.probe_diameter)["linear"]
           for i, n in enumerate(plan.view_names)}
    assert abs(lin["dense"] - 0.7) < 0.05 and abs(lin["sparse"] - 0.2) < 0.08
