"""The benchmark scripts' own logic (benchmarks/ are scripts, not tests; their cheap helpers are checked here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _bench_peers():
    pytest.importorskip("snakemake")
    path = REPO / "benchmarks" / "bench_peers.py"
    spec = importlib.util.spec_from_file_location("bench_peers_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _schema_default(section: str, key: str):
    """A nested default read straight from the schema file (not through the code under test)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    node = schema["properties"][section]["properties"][key]
    if node.get("type") == "object" and not node.get("default"):  # {}: filled from its own properties' defaults
        return {k: v["default"] for k, v in node["properties"].items() if "default" in v}
    return node["default"]


def test_bench_peers_config_keeps_the_other_defaults():
    """``--config`` with ``mlp: {loss: mse}`` changes the loss only: the other mlp settings stay the schema's
    (they fell back to MLPSettings' own defaults, lr 0.001, batches of 32, one network, when the section was
    replaced), and a search section without ``penalized`` keeps the penalised search's defaults."""
    bench = _bench_peers()
    cfg = bench.schema_defaults({"mlp": {"loss": "mse"}, "search": {"mlp": {}}})
    assert cfg["mlp"]["loss"] == "mse"
    for key in ("lr", "batch_size", "patience", "ensemble", "refit", "hidden"):
        assert cfg["mlp"][key] == _schema_default("mlp", key), key
    assert cfg["search"]["mlp"] == {}
    assert cfg["search"]["penalized"] == _schema_default("search", "penalized")
    assert cfg["search"]["prune"] == _schema_default("search", "prune")
    # nothing set: every section the schema's
    plain = bench.schema_defaults()
    assert plain["mlp"]["lr"] == _schema_default("mlp", "lr")
    assert plain["search"]["mlp"] == _schema_default("search", "mlp")
