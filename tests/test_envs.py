"""The conda environments of the rules pin what pyproject.toml pins."""

import re
import tomllib

import yaml

from conftest import ROOT


def pins(requirements):
    """name -> specifier for pinned (==) or bounded requirements."""
    out = {}
    for req in requirements:
        if not isinstance(req, str) or req.startswith("-e"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req.strip())
        out[m.group(1).lower()] = m.group(3).replace(" ", "")
    return out


def test_env_files_match_pyproject():
    project = pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    seen = set()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        for name, spec in pins(pip).items():
            assert name in project, f"{env.name}: {name} is not a dependency in pyproject.toml"
            assert spec == project[name], f"{env.name}: {name}{spec} but pyproject.toml has {name}{project[name]}"
            seen.add(name)
    assert {"tensorflow", "torch", "torchvision", "ptychi", "numpy"} <= seen


def test_every_rule_names_an_environment():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = len(re.findall(r"^rule \w+:", text, re.M))
        assert text.count("conda:") == rules, smk.name
