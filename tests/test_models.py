"""PtychoPINN and Baseline: gradients, training from streamed chunks, batch independence, save/load, inference."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest

from ptychostudy.runtime import configure_tensorflow

tf = configure_tensorflow(1)

import keras  # noqa: E402

from ptychostudy.config import ConfigError  # noqa: E402
from ptychostudy.io import DataError, load_npz, save_npz  # noqa: E402
from ptychostudy.models import data as mdata  # noqa: E402
from ptychostudy.models.baseline import build_baseline  # noqa: E402
from ptychostudy.models.infer import Predictor, infer_chunk_file, predict_chunk  # noqa: E402
from ptychostudy.models.pinn import NetConfig, build_pinn  # noqa: E402
from ptychostudy.models.train import TrainingConfig, fit, make_loss, train_model  # noqa: E402

N = 32
TRAINING = {"epochs": 4, "batch_size": 8, "learning_rate": 3e-3, "patience": 0, "seed": 0}


@pytest.fixture(scope="module")
def chunks():
    return mdata.make_synthetic_chunks(n=N, gridsize=2, n_groups=24, chunk_size=8, dose=1e4, step=5.0, seed=2)


@pytest.fixture(scope="module")
def chunk_paths(chunks, tmp_path_factory):
    d = tmp_path_factory.mktemp("chunks")
    paths = []
    for c in chunks:
        paths.append(str(d / f"chunk_{int(c['chunk']):04d}.npz"))
        save_npz(paths[-1], **c)
    return paths


def _pinn(chunks, filters=4):
    pad = 8
    return build_pinn(NetConfig(N, 4, filters, pad=pad, log_scale=1.0), chunks[0]["probeGuess"])


def _inputs(c, sl=slice(None)):
    return {
        "diffraction": tf.constant(c["diffraction"][sl]),
        "coords_relative": tf.constant(c["coords_relative"][sl], tf.float32),
    }


@pytest.mark.parametrize("kind", ["pinn", "baseline"])
def test_gradients_reach_every_trainable_weight(chunks, kind):
    c = chunks[0]
    if kind == "pinn":
        model = _pinn(chunks)
        batch = _inputs(c)
    else:
        model = build_baseline(NetConfig(N, 4, 4, log_scale=1.0))
        s = mdata.samples_from_chunk(c, "baseline")
        s.pop("pattern")
        batch = {k: tf.constant(v[:8]) for k, v in s.items()}
    loss_fn = make_loss(kind, model)
    with tf.GradientTape() as tape:
        loss, _ = loss_fn(batch, True)
    grads = tape.gradient(loss, model.trainable_variables)
    names = [v.path for v in model.trainable_variables]
    assert any("log_scale" in n for n in names)
    for name, g in zip(names, grads):
        assert g is not None, name
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 0, name


def test_group_alone_equals_group_in_batch_of_64(chunks):
    model = _pinn(chunks)
    c = chunks[0]
    big = {k: np.concatenate([c[k]] * 8) for k in ("diffraction", "coords_relative")}  # 64 groups
    full = model(_inputs(big), training=False)
    alone = model(_inputs(c, slice(5, 6)), training=False)
    for key in ("amplitude", "phase", "counts"):
        a, b = full[key].numpy()[5:6], alone[key].numpy()
        assert np.allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max()), key
    pred_big = Predictor(model, batch_size=64)(big["diffraction"])
    pred_one = Predictor(model, batch_size=1)(c["diffraction"][5:6])
    assert np.allclose(pred_big[5:6], pred_one, atol=1e-5)


def test_stream_reads_each_chunk_once_per_epoch(chunk_paths, monkeypatch):
    reads = []
    real = mdata.load_chunk

    def counting(path, required=mdata.CHUNK_KEYS, optional=None):
        reads.append(path)
        return real(path, required, optional)

    monkeypatch.setattr(mdata, "load_chunk", counting)
    ds, stream = mdata.make_dataset(chunk_paths, "pinn", N, 4, batch_size=5, seed=3, shuffle_buffer=16)
    orders = []
    for epoch in range(3):
        start = len(reads)
        n = sum(int(b["diffraction"].shape[0]) for b in ds)
        assert n == 24
        assert sorted(reads[start:]) == sorted(chunk_paths)
        orders.append(reads[start:])
    assert stream.epoch == 3 and len(reads) == 3 * len(chunk_paths)
    assert len({tuple(o) for o in orders}) > 1  # chunk order is reshuffled between epochs


def test_baseline_stream_yields_each_pattern_once(chunk_paths, chunks):
    ds, _ = mdata.make_dataset(chunk_paths, "baseline", N, 4, batch_size=7, seed=0, shuffle_buffer=0)
    n = sum(int(b["diffraction"].shape[0]) for b in ds)
    assert n == len(np.unique(np.concatenate([c["member_index"].ravel() for c in chunks])))


@pytest.mark.parametrize("kind", ["pinn", "baseline"])
def test_training_lowers_the_loss_and_saves_a_loadable_model(chunk_paths, chunks, kind, tmp_path):
    out = tmp_path / kind
    res = train_model(kind, chunk_paths, TRAINING, {"filters": 4}, out / "model.keras", out / "history.csv",
                      out / "loss.png")
    hist = pd.read_csv(out / "history.csv")
    assert list(hist["epoch"]) == [1, 2, 3, 4]
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    if kind == "baseline":
        assert {"mae_amplitude", "mae_phase"} <= set(hist.columns)
    else:
        assert res["net"]["pad"] >= np.abs(np.concatenate([c["coords_relative"] for c in chunks])).max()
    assert (out / "loss.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if ".part" in p.name]

    model = keras.models.load_model(out / "model.keras")
    pred = predict_chunk(model, chunks[1], batch_size=5)
    assert pred.shape == chunks[1]["diffraction"].shape and pred.dtype == np.complex64
    # save → load gives identical predictions
    again = keras.models.load_model(out / "model.keras")
    assert np.array_equal(predict_chunk(again, chunks[1], batch_size=5), pred)
    if kind == "pinn":
        assert np.allclose(model.get_layer("counts").probe_real.numpy(), chunks[0]["probeGuess"].real)
    # inference file per the contract
    res = infer_chunk_file(out / "model.keras", chunk_paths[1], tmp_path / "pred" / "chunk_0001.npz", batch_size=5)
    got = load_npz(tmp_path / "pred" / "chunk_0001.npz")
    assert set(got) == {"patches", "positions", "group_index", "member_index", "wall_time_s", "N", "chunk"}
    assert np.allclose(got["patches"], pred, atol=1e-6)
    c = chunks[1]
    assert np.allclose(got["positions"], c["coords_center"][:, None, :] + c["coords_relative"])
    assert got["positions"].dtype == np.float64 and int(got["chunk"]) == 1 and int(got["N"]) == N
    assert np.array_equal(got["group_index"], c["group_index"]) and res["n_groups"] == len(c["group_index"])


def test_early_stopping_restores_the_best_epoch():
    """A loss that only grows after epoch 1: stop after `patience` more epochs, keep epoch 1's weights."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    w0 = float(model.weights[0].numpy().ravel()[0])
    steps = tf.Variable(0.0, trainable=False)

    def loss_fn(batch, training):
        steps.assign_add(1.0)
        return steps + 1e-3 * tf.reduce_sum(model(batch["diffraction"])), {}

    ds = tf.data.Dataset.from_tensor_slices({"diffraction": np.ones((6, 1), np.float32)}).batch(2)
    cfg = TrainingConfig.from_dict(dict(TRAINING, epochs=20, learning_rate=0.1, patience=2))
    hist = fit(model, ds, loss_fn, cfg)
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    # Adam moves the weight by about the learning rate per step: 3 steps in epoch 1
    assert float(model.weights[0].numpy().ravel()[0]) == pytest.approx(w0 - 0.3, abs=0.02)


def test_inference_rejects_a_chunk_of_another_size(chunks, tmp_path):
    model = _pinn(chunks)
    model.save(tmp_path / "m.keras")
    other = mdata.make_synthetic_chunks(n=16, gridsize=2, n_groups=2, chunk_size=2, step=3.0)[0]
    save_npz(tmp_path / "chunk_0000.npz", **other)
    with pytest.raises(DataError, match=r"chunk_0000.npz: key 'diffraction'.*N=32"):
        infer_chunk_file(tmp_path / "m.keras", tmp_path / "chunk_0000.npz", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()
    one = mdata.make_synthetic_chunks(n=N, gridsize=1, n_groups=2, chunk_size=2)[0]
    with pytest.raises(DataError, match="C=4"):
        predict_chunk(model, one)


def test_bad_chunks_and_configs_are_named(chunk_paths, chunks, tmp_path):
    bad = dict(chunks[0], diffraction=chunks[0]["diffraction"] - 1.0)
    save_npz(tmp_path / "neg.npz", **bad)
    with pytest.raises(DataError, match="neg.npz: key 'diffraction' has negative values"):
        mdata.load_chunk(tmp_path / "neg.npz")
    no_probe = {k: v for k, v in chunks[0].items() if k != "probeGuess"}
    save_npz(tmp_path / "np.npz", **no_probe)
    with pytest.raises(DataError, match=r"np.npz: missing key\(s\) \['probeGuess'\]"):
        mdata.scan_chunks([str(tmp_path / "np.npz")], "pinn")
    with pytest.raises(ConfigError, match="training.patience"):
        TrainingConfig.from_dict({k: v for k, v in TRAINING.items() if k != "patience"})
    with pytest.raises(ConfigError, match="training.learning_rate"):
        TrainingConfig.from_dict(dict(TRAINING, learning_rate=-1.0))
    with pytest.raises(ConfigError, match="model.filter"):
        train_model("pinn", chunk_paths, TRAINING, {"filter": 4}, tmp_path / "m.keras", tmp_path / "h.csv",
                    tmp_path / "c.png")
    assert not (tmp_path / "m.keras").exists()


SCRIPT_RUNNER = """
import runpy, sys, types
from types import SimpleNamespace as NS
class Named(list):
    def __init__(self, items=(), **named):
        super().__init__(items); self.__dict__.update(named)
args = {args!r}
smk = NS(
    input=Named(**args["input"]), output=Named(**args["output"]), params=NS(**args["params"]),
    wildcards=NS(**args["wildcards"]), threads=1, log=[args["log"]],
)
runpy.run_path(args["script"], init_globals={{"snakemake": smk}}, run_name="__main__")
"""


def _run_script(script, tmp_path, **args):
    """Run a workflow script in a fresh process (only its own imports) with a stand-in `snakemake`."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    args = dict(args, script=str(root / "workflow" / "scripts" / script), log=str(tmp_path / f"{script}.log"))
    env = dict(os.environ, PYTHONPATH=str(root / "src"), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT_RUNNER.format(args=args)], check=False, capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return (tmp_path / f"{script}.log").read_text()


def test_workflow_scripts_train_and_infer(chunk_paths, tmp_path):
    out = tmp_path / "pinn"
    log = _run_script(
        "train_model.py", tmp_path,
        input={"chunks": chunk_paths[:1]},
        output={"model": str(out / "model.keras"), "history": str(out / "history.csv"), "curve": str(out / "loss.png")},
        params={"training": dict(TRAINING, epochs=1), "model_cfg": {"filters": 2}},
        wildcards={"model": "pinn"},
    )
    assert "pinn trained" in log and (out / "model.keras").is_file()
    pred = tmp_path / "pred" / "chunk_0002.npz"
    log = _run_script(
        "infer_chunk.py", tmp_path,
        input={"model": str(out / "model.keras"), "chunk": chunk_paths[2]},
        output={"pred": str(pred)}, params={"batch_size": 4}, wildcards={},
    )
    got = load_npz(pred)
    assert got["patches"].shape == (8, N, N, 4) and int(got["chunk"]) == 2 and "patterns/s" in log
