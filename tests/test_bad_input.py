"""The bad-input battery: every wrong input stops its job with an error that names the file, the
key and what was expected, exits non-zero, and leaves no output that looks complete.

Config errors go through the real ``snakemake -n`` (they must stop the run at parse time, before
any job); data errors go through the workflow script that first reads the file, in a fresh
process, exactly as Snakemake runs it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_script

from ptychostudy import io
from ptychostudy.shards import ShardSource, write_groups

# ---- config: `snakemake -n` stops at parse time ---------------------------------------------


def _probe_file(tmp_path, shape):
    path = tmp_path / "user_probe.npz"
    io.save_npz(path, probeGuess=np.ones(shape, np.complex64))
    return path


CONFIG_CASES = {
    "k_below_c": (lambda c, t: c.update(neighbor_count=3), ["neighbor_count", "K ≥ C = gridsize² = 4, got 3"]),
    "dose_zero": (lambda c, t: c.update(doses=[1000, 0]), ["doses", "less than or equal to the minimum of 0"]),
    "dose_negative": (lambda c, t: c.update(doses=[-10]), ["doses", "-10"]),
    "chunk_size_zero": (lambda c, t: c.update(chunk_size=0), ["chunk_size", "0"]),
    "unknown_key": (lambda c, t: c.update(chunk_sise=16), ["chunk_sise", "unexpected"]),
    "overlap_one": (lambda c, t: c["views"]["dense"].update(overlap=1.0), ["overlap", "1.0"]),
    "unknown_model": (lambda c, t: c.update(models=["pinn", "ptychonn"]), ["models", "ptychonn", "'pinn', 'baseline', 'ptychi'"]),
    "user_probe_shape": (
        lambda c, t: c.update(probe={"path": str(_probe_file(t, (16, 16))), "diameter": "auto"}),
        ["probe.path", "user_probe.npz", "shape (16, 16), expected (32, 32)"],
    ),
    "user_probe_key": (
        lambda c, t: (io.save_npz(t / "no_probe.npz", objectGuess=np.ones((8, 8), np.complex64)),
                      c.update(probe={"path": str(t / "no_probe.npz")})),
        ["probe.path", "no_probe.npz", "no key 'probeGuess'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_stops_snakemake_at_parse_time(case, tiny_cfg, tmp_path):
    edit, needles = CONFIG_CASES[case]
    edit(tiny_cfg, tmp_path)
    bad = tmp_path / f"{case}.yaml"
    bad.write_text(yaml.safe_dump(tiny_cfg))
    work = tmp_path / "work"
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                          "--configfile", str(bad)], capture_output=True, text=True, timeout=120)
    text = res.stdout + res.stderr
    assert res.returncode != 0, text[-2000:]
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text[-2000:]}"
    assert not (work / "results").exists()


def test_config_error_names_the_config_file(tiny_cfg, tmp_path):
    tiny_cfg["neighbor_count"] = 2
    bad = tmp_path / "named.yaml"
    bad.write_text(yaml.safe_dump(tiny_cfg))
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d",
                          str(tmp_path), "--configfile", str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and f"{bad}: config key 'neighbor_count'" in res.stdout + res.stderr


# ---- data: the job that reads the file stops and writes nothing ------------------------------


@pytest.fixture(scope="module")
def phase_d(tiny_phase_c, tmp_path_factory):
    """A good Phase C test split of the tiny config and its dense-view groups."""
    d = tmp_path_factory.mktemp("bad_input")
    plan = tiny_phase_c["plan"]
    write_groups(tiny_phase_c["test"], d / "groups.npz", d / "overlap.json", "dense", 2, 7, "all", plan.seeds)
    return {"phase_c": tiny_phase_c["test"], "groups": d / "groups.npz", "plan": plan}


def _shard(phase_d, tmp_path, phase_c):
    out = tmp_path / "chunks" / "chunk_0000.npz"
    n_chunks = ShardSource(phase_d["phase_c"], phase_d["groups"], 16).n_chunks
    res = run_script("shard_chunk.py", tmp_path, check=False,
                     input={"phase_c": str(phase_c), "groups": str(phase_d["groups"])},
                     output={"chunk": str(out)}, params={"chunk_size": 16, "n_chunks": n_chunks},
                     wildcards={"chunk": "0000"})
    return res, out


def _bad_phase_c(phase_d, tmp_path, **change):
    d = io.load_npz(phase_d["phase_c"])
    d.update(change)
    d = {k: v for k, v in d.items() if v is not None}
    path = tmp_path / "bad_phase_c.npz"
    io.save_npz(path, **d)
    return path, d


PHASE_C_CASES = {
    "no_diffraction": (lambda d: {"diffraction": None}, ["missing key(s) ['diffraction']"]),
    "intensities": (lambda d: {"diffraction": d["diffraction"] ** 2},
                    ["key 'diffraction'", "expected amplitudes sqrt(counts) (intensities stored?)"]),
    "nan": (lambda d: {"diffraction": np.where(d["diffraction"] > 2, np.nan, d["diffraction"]).astype(np.float32)},
            ["key 'diffraction' contains NaN", "expected amplitudes"]),
    "negative": (lambda d: {"diffraction": -d["diffraction"]}, ["key 'diffraction' has negative values"]),
    "short_ycoords": (lambda d: {"ycoords": d["ycoords"][:-3]}, ["key 'ycoords' has shape", "expected"]),
    "short_diffraction": (lambda d: {"diffraction": d["diffraction"][:-3]}, ["key 'diffraction' has shape", "expected"]),
}


@pytest.mark.parametrize("case", sorted(PHASE_C_CASES))
def test_bad_phase_c_file_stops_the_shard_job(case, phase_d, tmp_path):
    change, needles = PHASE_C_CASES[case]
    good = io.load_npz(phase_d["phase_c"])
    path, _ = _bad_phase_c(phase_d, tmp_path, **change(good))
    res, out = _shard(phase_d, tmp_path, path)
    text = res.stderr + res.log
    assert res.returncode != 0
    assert str(path) in text, text[-2000:]
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text[-2000:]}"
    assert not out.exists() and not list(out.parent.glob("*.npz*"))


def test_good_phase_c_file_shards(phase_d, tmp_path):
    """The control of the battery: the same job on the untouched file succeeds."""
    res, out = _shard(phase_d, tmp_path, phase_d["phase_c"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert io.load_npz(out)["diffraction"].shape[0] == 16


@pytest.fixture(scope="module")
def model_and_chunk(phase_d, tmp_path_factory):
    """A (tiny, untrained) PINN saved as the workflow saves it, and a good chunk of its N."""
    d = tmp_path_factory.mktemp("bad_chunk")
    chunk = d / "chunk_0000.npz"
    ShardSource(phase_d["phase_c"], phase_d["groups"], 16).write_chunk(0, chunk)
    code = (
        "import sys, numpy as np\n"
        "from ptychostudy.runtime import configure_tensorflow\n"
        "configure_tensorflow(1)\n"
        "from ptychostudy.models.pinn import NetConfig, build_pinn\n"
        "build_pinn(NetConfig(32, 4, 2, pad=16), np.ones((32, 32), np.complex64)).save(sys.argv[1])\n"
    )
    model = d / "model.keras"
    subprocess.run([sys.executable, "-c", code, str(model)], check=True, capture_output=True,
                   env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return model, chunk


def _infer(tmp_path, model, chunk):
    out = tmp_path / "pred" / "chunk_0000.npz"
    res = run_script("infer_chunk.py", tmp_path, check=False,
                     input={"model": str(model), "chunk": str(chunk)}, output={"pred": str(out)},
                     params={"batch_size": 8}, wildcards={})
    return res, out


def test_truncated_chunk_stops_the_inference_job(model_and_chunk, tmp_path):
    model, good = model_and_chunk
    cut = tmp_path / "chunk_0000.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    res, out = _infer(tmp_path, model, cut)
    text = res.stderr + res.log
    assert res.returncode != 0 and f"{cut}" in text and "truncated or corrupt" in text, text[-2000:]
    assert not out.exists() and not list(out.parent.glob("*.npz*"))


def test_chunk_of_another_n_stops_the_inference_job(model_and_chunk, tmp_path):
    model, good = model_and_chunk
    d = io.load_npz(good)
    other = tmp_path / "chunk_0000.npz"  # as if copied from a run at N=16
    io.save_npz(other, **dict(d, diffraction=np.ascontiguousarray(d["diffraction"][:, ::2, ::2]), N=np.int64(16),
                              patches=np.ascontiguousarray(d["patches"][:, ::2, ::2]),
                              probeGuess=np.ascontiguousarray(d["probeGuess"][::2, ::2])))
    res, out = _infer(tmp_path, model, other)
    text = res.stderr + res.log
    assert res.returncode != 0 and f"{other}" in text, text[-2000:]
    assert "key 'diffraction' has shape (16, 16, 16, 4), expected (B, 32, 32, 4)" in text, text[-2000:]
    assert not out.exists() and not list(out.parent.glob("*.npz*"))


def test_good_chunk_infers(model_and_chunk, tmp_path):
    """The control: the same job on the untouched chunk writes its predictions."""
    res, out = _infer(tmp_path, *model_and_chunk)
    assert res.returncode == 0, res.stderr[-2000:]
    assert io.load_npz(out)["patches"].shape == (16, 32, 32, 4)


def test_corrupt_chunk_stops_training_without_a_model(model_and_chunk, tmp_path):
    _, good = model_and_chunk
    cut = tmp_path / "chunk_0000.npz"
    cut.write_bytes(good.read_bytes()[:5000])
    out = tmp_path / "m"
    res = run_script("train_model.py", tmp_path, check=False, input={"chunks": [str(cut)], "validation": [str(good)]},
                     output={"model": str(out / "model.keras"), "history": str(out / "history.csv"),
                             "curve": str(out / "loss.png")},
                     params={"training": {"epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "patience": 1,
                                          "seed": 0}, "model_cfg": {"filters": 2}},
                     wildcards={"model": "pinn"})
    text = res.stderr + res.log
    assert res.returncode != 0 and f"{cut}" in text and "truncated or corrupt" in text, text[-2000:]
    assert not out.exists() or not list(out.iterdir())
