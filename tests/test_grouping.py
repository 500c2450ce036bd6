"""Grouping: geometry of groups, coverage, oversampling determinism/uniqueness, the error case."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptychostudy.grouping import GroupingError, group_positions


@pytest.fixture
def positions():
    r = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(12) * 5.0, np.arange(10) * 5.0), -1).reshape(-1, 2)
    return grid + r.uniform(-0.5, 0.5, grid.shape)


def test_members_are_among_the_seeds_k_nearest(positions):
    g = group_positions(positions, 2, 7, 300, 123, 456)
    _, nbrs = cKDTree(positions).query(positions, k=7)
    for seed, members in zip(g["seed_index"], g["members"]):
        assert members[0] == seed
        assert set(members) <= set(nbrs[seed])
        assert len(set(members)) == 4


def test_offsets_are_member_minus_centre(positions):
    g = group_positions(positions, 2, 7, "all", 123, 456)
    pos = positions[g["members"]]
    np.testing.assert_allclose(g["coords_center"], pos.mean(axis=1))
    np.testing.assert_allclose(g["coords_relative"], pos - g["coords_center"][:, None])
    np.testing.assert_allclose(g["coords_relative"].sum(axis=1), 0, atol=1e-12)


def test_all_gives_one_group_per_position_covering_every_position(positions):
    g = group_positions(positions, 2, 7, "all", 123, 456)
    assert len(g["members"]) == len(positions)
    assert set(np.unique(g["members"])) == set(range(len(positions)))


def test_gridsize_one_is_the_position_itself(positions):
    g = group_positions(positions, 1, 1, "all", 1, 2)
    np.testing.assert_array_equal(g["members"][:, 0], np.arange(len(positions)))
    np.testing.assert_allclose(g["coords_relative"], 0)


def test_oversampling_is_deterministic_and_never_repeats(positions):
    a = group_positions(positions, 2, 7, 1500, 123, 456)
    b = group_positions(positions, 2, 7, 1500, 123, 456)
    c = group_positions(positions, 2, 7, 1500, 124, 456)
    np.testing.assert_array_equal(a["members"], b["members"])
    assert not np.array_equal(a["members"], c["members"])
    keys = {tuple(sorted(m)) for m in a["members"]}
    assert len(keys) == 1500
    # the first groups are the one-per-seed groups, so every position is still covered
    assert set(np.unique(a["members"][: len(positions)])) == set(range(len(positions)))


def test_subsampling_uses_its_own_seed(positions):
    a = group_positions(positions, 2, 7, 50, 123, 456)
    b = group_positions(positions, 2, 7, 50, 123, 457)
    assert len(a["members"]) == 50 and len(set(a["seed_index"])) == 50
    assert set(a["seed_index"]) != set(b["seed_index"])


def test_asking_for_more_groups_than_exist_gives_both_numbers(positions):
    n = len(positions)
    with pytest.raises(GroupingError, match=r"n_groups.train: requested 99999 groups but only \d+ distinct"):
        group_positions(positions, 2, 7, 99999, 123, 456, what="n_groups.train")
    with pytest.raises(GroupingError, match=f"requested {n + 1} groups but only {n}"):
        group_positions(positions, 1, 1, n + 1, 123, 456)
