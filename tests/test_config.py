"""Config validation: the schema and the plan reject bad studies at parse time, naming the key."""

import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from conftest import ROOT
from ptychostudy.config import ConfigError, build_plan

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def check(cfg):
    """What the Snakefile does at parse time."""
    validate(cfg, SCHEMA)
    return build_plan(cfg)


@pytest.mark.parametrize("name", ["config/config.yaml", "config/study_fly64.yaml", "tests/data/tiny.yaml"])
def test_shipped_configs_validate(name):
    plan = check(yaml.safe_load((ROOT / name).read_text()))
    assert plan.C == 4 and set(plan.view_names) == {"dense", "sparse"}


def test_study_config_is_the_full_design():
    cfg = yaml.safe_load((ROOT / "config/study_fly64.yaml").read_text())
    plan = check(cfg)
    assert plan.doses == (1000, 10000, 100000) and plan.N == 128 and plan.neighbor_count == 7
    assert cfg["views"]["dense"]["overlap"] == 0.7 and cfg["views"]["sparse"]["overlap"] == 0.2
    assert cfg["seeds"] == {"simulation": 42, "grouping": 123, "subsampling": 456}
    assert len(plan.replicates) == 3  # the study measures its spread across training seeds
    for view in plan.views.values():  # thousands of positions per split, the same in every view
        assert view.n_positions("test") == plan.views["dense"].n_positions("test") > 5000
    assert plan.n_chunks("dense", "test") >= 2  # a split is several chunk jobs


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c.update(neighbor_count=3), "neighbor_count"),
        (lambda c: c.update(doses=[1000, -5]), "doses"),
        (lambda c: c.update(doses=[0]), "doses"),
        (lambda c: c.update(chunk_size=0), "chunk_size"),
        (lambda c: c.update(chunk_sise=10), "chunk_sise"),
        (lambda c: c["views"]["dense"].update(overlap=1.0), "overlap"),
        (lambda c: c["views"]["sparse"].update(overlap=-0.1), "overlap"),
        (lambda c: c.update(models=["pinn", "ptychonn"]), "ptychonn"),
        (lambda c: c.pop("seeds"), "seeds"),
        (lambda c: c.update(replicates=[]), "replicates"),
        (lambda c: c.update(replicates=[7, 7]), "replicates"),
        (lambda c: c["scan"].pop("grid"), "grid"),
        (lambda c: c["n_groups"].update(validation=0), "validation"),
        (lambda c: c.update(object={"size": 20}), "object.size"),
        (lambda c: c["ptychi"].update(noise_model="laplace"), "laplace"),
    ],
)
def test_bad_config_names_the_key(tiny_cfg, edit, key):
    edit(tiny_cfg)
    with pytest.raises((ConfigError, Exception)) as err:
        check(tiny_cfg)
    assert key in str(err.value)


def test_k_below_c_is_a_plan_error(tiny_cfg):
    tiny_cfg["neighbor_count"] = 3
    with pytest.raises(ConfigError, match="neighbor_count.*K ≥ C = gridsize² = 4"):
        build_plan(tiny_cfg)


def test_snakemake_stops_at_parse_time_naming_the_key(tmp_path, tiny_cfg):
    tiny_cfg["neighbor_count"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny_cfg))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode != 0
    assert "neighbor_count" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


def test_schema_and_training_agree_on_patience(tiny_cfg):
    """0 means "no early stopping" in the training code; the schema accepts it, and no less."""
    from ptychostudy.models.train import TrainingConfig

    tiny_cfg["training"]["patience"] = 0
    check(tiny_cfg)
    cfg = TrainingConfig.from_dict(dict(tiny_cfg["training"], seed=0))
    assert cfg.patience == 0
    tiny_cfg["training"]["patience"] = -1
    with pytest.raises(Exception, match="patience"):
        check(tiny_cfg)
    with pytest.raises(ConfigError, match="training.patience"):
        TrainingConfig.from_dict(dict(tiny_cfg["training"], seed=0))


def test_stitch_defaults_reconcile_the_pinn_only(tiny_cfg):
    tiny_cfg.pop("stitch", None)
    check(tiny_cfg)
    assert tiny_cfg["stitch"] == {"window": "probe", "central_fraction": 0.5, "reconcile": ["pinn"], "phase_rounds": 5}
    tiny_cfg["stitch"]["reconcile"] = ["ptychi"]
    with pytest.raises(Exception, match="ptychi"):
        check(tiny_cfg)
