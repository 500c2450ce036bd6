"""Shards: chunked == unchunked (bitwise) for any chunk size; chunk contents; bad chunk files."""

import numpy as np
import pytest

from ptychostudy import io
from ptychostudy.patches import extract_patches
from ptychostudy.shards import ShardSource, load_chunk, write_groups, write_shards


@pytest.fixture(scope="module")
def grouped(tiny_phase_c, tmp_path_factory):
    d = tmp_path_factory.mktemp("groups")
    plan = tiny_phase_c["plan"]
    write_groups(tiny_phase_c["test"], d / "groups.npz", d / "overlap.json", "dense", 2, 7, "all", plan.seeds)
    return tiny_phase_c["test"], d / "groups.npz"


def unchunked(phase_c_path, groups_path):
    """Gather every group at once, independently of the shard writer."""
    pc = io.load_npz(phase_c_path)
    g = io.load_npz(groups_path)
    n = int(pc["N"])
    diff = pc["diffraction"][g["members"]].transpose(0, 2, 3, 1)
    xy = np.stack([pc["xcoords"], pc["ycoords"]], 1)[g["members"].ravel()]
    patches = extract_patches(pc["objectGuess"], xy, n).reshape(len(g["members"]), -1, n, n).transpose(0, 2, 3, 1)
    return dict(diffraction=diff, patches=patches, coords_relative=g["coords_relative"],
                coords_center=g["coords_center"], member_index=g["members"],
                group_index=np.arange(len(g["members"])))


@pytest.mark.parametrize("chunk_size", [1, 7, 24, 1000])
def test_concatenated_chunks_equal_the_unchunked_gather(grouped, tmp_path, chunk_size):
    phase_c, groups = grouped
    n_groups = len(io.load_npz(groups)["members"])
    n_chunks = -(-n_groups // chunk_size)
    paths = [tmp_path / f"chunk_{i:04d}.npz" for i in range(n_chunks)]
    write_shards(phase_c, groups, paths, chunk_size)
    chunks = [load_chunk(p) for p in paths]
    assert [len(c["group_index"]) for c in chunks[:-1]] == [chunk_size] * (n_chunks - 1)
    ref = unchunked(phase_c, groups)
    for key, want in ref.items():
        got = np.concatenate([c[key] for c in chunks])
        assert got.dtype == want.dtype or key in ("diffraction", "patches")
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=key)


def test_chunk_holds_the_contract(grouped, tmp_path):
    phase_c, groups = grouped
    src = ShardSource(phase_c, groups, 24)
    src.write_chunk(0, tmp_path / "c.npz")
    c = load_chunk(tmp_path / "c.npz", n=32, c=4)
    assert c["diffraction"].shape == (24, 32, 32, 4) and c["diffraction"].dtype == np.float32
    assert c["patches"].dtype == np.complex64 and c["coords_relative"].shape == (24, 4, 2)
    assert int(c["n_chunks"]) == src.n_chunks and int(c["chunk"]) == 0


def test_planned_chunk_count_must_match_data(grouped):
    phase_c, groups = grouped
    with pytest.raises(ValueError, match="chunks, but 99 were planned"):
        ShardSource(phase_c, groups, 24).check_plan(99)


def test_truncated_or_mismatched_chunk_names_file_and_key(grouped, tmp_path):
    phase_c, groups = grouped
    good = tmp_path / "c.npz"
    ShardSource(phase_c, groups, 24).write_chunk(0, good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(io.DataError, match="cut.npz.*truncated or corrupt"):
        load_chunk(cut)
    with pytest.raises(io.DataError, match="key 'diffraction'.*expected N=64"):
        load_chunk(good, n=64)
