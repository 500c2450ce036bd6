"""Neighbour groups: for each seed position, its K nearest neighbours, choose C of them.

A group always contains its seed, so ``n_groups: all`` (one group per seed) covers every
position. Candidates of a seed are the C(K−1, C−1) ways to add C−1 of its K−1 nearest other
positions. Groups are taken in a fixed priority order: first one randomly drawn candidate per
seed (in seed order), then all remaining candidates in a random order (oversampling); a group
equal as a set to an earlier one is skipped, so no group repeats. Everything is drawn from the
grouping seed; the seeds themselves are subsampled with the subsampling seed when fewer groups
than positions are asked for.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree


class GroupingError(ValueError):
    """More groups requested than distinct ones exist, or too few positions for K."""


def neighbour_table(positions: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each position's k nearest positions, itself first."""
    if len(positions) < k:
        raise GroupingError(f"neighbor_count K={k} exceeds the {len(positions)} positions available")
    _, idx = cKDTree(positions).query(positions, k=k)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(positions), k)
    # exact duplicates of positions could put the seed second; force the seed first
    self_first = idx[:, 0] == np.arange(len(positions))
    if not self_first.all():
        for row in np.flatnonzero(~self_first):
            others = idx[row][idx[row] != row][: k - 1]
            idx[row] = np.concatenate([[row], others])
    return idx


def _candidates(nbrs: np.ndarray, c: int) -> np.ndarray:
    """(n, M, c) candidate groups per seed: the seed plus c−1 of its k−1 neighbours."""
    k = nbrs.shape[1]
    combos = np.array(list(itertools.combinations(range(1, k), c - 1)), dtype=np.int64).reshape(-1, c - 1)
    seed_col = np.zeros((len(combos), 1), dtype=np.int64)
    cols = np.concatenate([seed_col, combos], axis=1)  # (M, c) columns into the neighbour table
    return nbrs[:, cols]


def group_positions(
    positions: np.ndarray,
    gridsize: int,
    k: int,
    n_groups: int | str,
    grouping_seed: int,
    subsampling_seed: int,
    what: str = "n_groups",
) -> dict:
    """Form groups of C = gridsize² members; returns members, seeds, centres and relative offsets.

    ``what`` names the config key in error messages (e.g. ``n_groups.train``).
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    c = gridsize**2
    want = n if n_groups == "all" else int(n_groups)
    if c == 1:
        if want > n:
            raise GroupingError(
                f"{what}: requested {want} groups but only {n} distinct groups exist "
                f"({n} positions, gridsize=1: one group per position)"
            )
        seeds = np.arange(n) if want == n else np.sort(
            np.random.default_rng(subsampling_seed).choice(n, want, replace=False)
        )
        members = seeds[:, None]
    else:
        nbrs = neighbour_table(positions, k)
        cand = _candidates(nbrs, c)  # (n, M, c)
        m = cand.shape[1]
        rng = np.random.default_rng(grouping_seed)
        if want < n:
            seeds = np.sort(np.random.default_rng(subsampling_seed).choice(n, want, replace=False))
        else:
            seeds = np.arange(n)
        cand = cand[seeds]
        order = np.argsort(rng.random(cand.shape[:2]), axis=1)  # random candidate order per seed
        cand = np.take_along_axis(cand, order[:, :, None], axis=1)
        first = cand[:, 0]
        rest = cand[:, 1:].reshape(-1, c)
        rest = rest[rng.permutation(len(rest))]
        pool = np.concatenate([first, rest])  # priority order
        keys = np.sort(pool, axis=1)
        _, first_idx = np.unique(keys, axis=0, return_index=True)
        unique_in_order = np.sort(first_idx)
        if want > len(unique_in_order):
            raise GroupingError(
                f"{what}: requested {want} groups but only {len(unique_in_order)} distinct groups exist "
                f"({n} positions, K={k}, C={c}: at most {n} × C({k - 1},{c - 1}) = {n * m})"
            )
        members = pool[unique_in_order[:want]]
        seeds = members[:, 0]
    pos = positions[members]  # (G, C, 2)
    centre = pos.mean(axis=1)
    return {
        "members": members.astype(np.int64),
        "seed_index": np.asarray(seeds, dtype=np.int64),
        "coords_center": centre,
        "coords_relative": pos - centre[:, None, :],
    }
