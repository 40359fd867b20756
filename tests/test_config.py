"""The demo config validates, and its generic settings equal the schema's defaults.

A user's `--configfile` replaces config/config.yaml (only the schema's defaults are
kept), so the generic settings of the demo file must be exactly those defaults:
otherwise a user's run would silently differ from what the demo file documents.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DATASET_KEYS = {"matrices", "sample_sheet", "gold_standard", "targets", "predictors", "normalization", "task", "new_batches",
                "binarize"}


def load_demo() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_validates():
    cfg = load_demo()
    validate(cfg, schema=str(SCHEMA))
    assert cfg["targets"] and cfg["matrices"]
    for path in cfg["matrices"] + [cfg["sample_sheet"], cfg["predictors"]["from"]]:
        assert (REPO / path).is_file(), path


def test_generic_settings_equal_schema_defaults():
    demo = load_demo()
    minimal = {"matrices": demo["matrices"], "targets": demo["targets"]}
    filled = copy.deepcopy(minimal)
    validate(filled, schema=str(SCHEMA))
    for key, value in demo.items():
        if key in DATASET_KEYS:
            continue
        assert key in filled, f"{key} has no schema default"
        assert filled[key] == value, f"config/config.yaml's {key} differs from the schema default"


def test_every_schema_key_documented():
    schema = yaml.safe_load(SCHEMA.read_text())
    doc = (REPO / "config" / "README.md").read_text()
    for key, sub in schema["properties"].items():
        inner_keys = list(sub.get("properties", {}))
        if inner_keys:
            for inner in inner_keys:
                assert f"`{key}.{inner}`" in doc, f"{key}.{inner}"
        else:
            assert f"`{key}`" in doc, key
    for inner in ("top_correlated", "from"):  # the mapping form of `predictors`
        assert f"`{inner}`" in doc


@pytest.mark.parametrize("bad", [{"normalization": "zscor"}, {"models": ["svm"]}, {"split": {"seed": -1}},
                                 {"mlp": {"hidden": [0]}}, {"unknown_key": 1}])
def test_schema_rejects(bad):
    from snakemake.exceptions import WorkflowError

    cfg = {"matrices": ["m.tsv"], "targets": ["G"], **bad}
    with pytest.raises(WorkflowError):
        validate(cfg, schema=str(SCHEMA))


def test_search_mlp_schema_accepts_every_searchable_setting():
    """search.mlp in the schema lists exactly the settings the package's search varies, and each accepts a list
    of values the mlp section itself accepts (a candidate is the mlp section with one of them)."""
    from gexpred.search import _settings_fields

    schema = yaml.safe_load(SCHEMA.read_text())
    space = schema["properties"]["search"]["properties"]["mlp"]["properties"]
    searchable = set(_settings_fields()) - {"device", "ensemble", "refit"}
    assert set(space) == searchable
    demo = load_demo()
    for key in sorted(searchable):
        value = copy.deepcopy(demo["mlp"].get(key, schema["properties"]["mlp"]["properties"][key].get("default")))
        cfg = {"matrices": demo["matrices"], "targets": demo["targets"], "search": {"mlp": {key: [value]}}}
        validate(cfg, schema=str(SCHEMA))
    cfg = {"matrices": demo["matrices"], "targets": demo["targets"],
           "search": {"mlp": {"loss": ["mae", "mse"], "huber_delta": [0.5, 1.0]}}}
    validate(cfg, schema=str(SCHEMA))


@pytest.mark.parametrize("path", [("split", "seed"), ("mlp", "seed"), ("search", "seed"), ("importance", "seed"),
                                  ("recovery", "network", "seed")])
def test_negative_seeds_are_refused_by_the_schema(path):
    """Every seed of the config reaches a NumPy or PyTorch generator, which takes seeds >= 0 only: the schema
    refuses a negative one before anything runs."""
    from snakemake.exceptions import WorkflowError

    cfg = {"matrices": ["m.tsv"], "targets": ["G0"]}
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = -1
    with pytest.raises(WorkflowError, match="minimum"):
        validate(cfg, schema=str(SCHEMA))
    node[path[-1]] = 0
    validate(cfg, schema=str(SCHEMA))
