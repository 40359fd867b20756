"""Fixtures shared by the tests of reading, combining and user-facing errors."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so every run draws the same 'random' matrices."""
    return np.random.default_rng(20240611)


@pytest.fixture
def make_frame(rng: np.random.Generator) -> Callable[..., pd.DataFrame]:
    """Factory of genes x samples DataFrames of random float64 values.

    Values span many orders of magnitude (and both signs) so that text round
    trips test exact float parsing, not just a few easy decimals.
    """

    def make(
        n_genes: int = 7,
        n_samples: int = 5,
        genes: list[str] | None = None,
        samples: list[str] | None = None,
    ) -> pd.DataFrame:
        genes = genes if genes is not None else [f"GENE{i}" for i in range(n_genes)]
        samples = samples if samples is not None else [f"S{j}" for j in range(n_samples)]
        mantissa = rng.standard_normal((len(genes), len(samples)))
        exponent = rng.integers(-12, 12, size=(len(genes), len(samples)))
        values = mantissa * np.power(10.0, exponent)
        return pd.DataFrame(values, index=pd.Index(genes, name="gene"), columns=samples)

    return make


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write text (UTF-8) or bytes to ``tmp_path / name`` and return the path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
        return path

    return _write


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what ``gexpred.cli.main`` does to the root logger.

    ``main`` replaces the root handlers with a stream handler bound to the
    (captured) stderr and a file handler; without this, later tests would log
    into closed streams and leave the log file open.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)


# --------------------------------------------------------------------------- bad matrices
# Each case writes one faulty matrix and returns (path, words the error must contain
# besides the file name): the offending gene, sample, value or line.
def _bad_cases() -> dict[str, Callable[[Callable[[str, str | bytes], Path]], tuple[Path, list[str]]]]:
    ok_rows = "G1\t1.5\t2\nG2\t3\t4\n"
    return {
        "missing file": lambda w: (w("x.tsv", "") .parent / "does_not_exist.tsv", ["does not exist"]),
        "empty file": lambda w: (w("empty.tsv", b""), ["empty", "0 bytes"]),
        "header only": lambda w: (w("header.tsv", "gene\tS1\tS2\n"), ["header but no rows"]),
        "ragged row (too many)": lambda w: (
            w("ragged.tsv", "gene\tS1\tS2\nG1\t1\t2\nG2\t3\t4\t5\nG3\t1\t2\n"), ["line 3", "'G2'", "ragged"]
        ),
        "ragged row (too few)": lambda w: (
            w("short.tsv", "gene\tS1\tS2\nG1\t1\t2\nG2\t3\t4\nG3\t1\n"), ["line 4", "'G3'", "ragged"]
        ),
        "duplicate gene ids": lambda w: (
            w("dupgene.tsv", "gene\tS1\tS2\nTP53\t1\t2\nBRCA1\t3\t4\nTP53\t5\t6\n"), ["duplicate gene", "'TP53'"]
        ),
        "duplicate sample ids": lambda w: (
            w("dupsample.tsv", "gene\tS1\tPAT7\tPAT7\nG1\t1\t2\t3\nG2\t3\t4\t5\n"),
            ["duplicate sample", "'PAT7'"],
        ),
        "missing gene id": lambda w: (
            w("nogene.tsv", "gene\tS1\tS2\nG1\t1\t2\n\t3\t4\nG3\t5\t6\n"), ["without a gene id", "'G1'"]
        ),
        "non-numeric cells": lambda w: (
            w("text.tsv", "gene\tS1\tS2\nG1\t1\t2\nMYC\t3\thigh\nG3\tlow\t4\n"),
            ["non-numeric", "'MYC'", "'S2'", "'high'", "'G3'", "'S1'", "'low'"],
        ),
        "NaN value": lambda w: (
            w("nan.tsv", "gene\tS1\tS2\nG1\t1\t2\nEGFR\tNA\t4\n"), ["missing or infinite", "'EGFR'", "'S1'"]
        ),
        "Inf value": lambda w: (
            w("inf.tsv", "gene\tS1\tS2\nG1\t1\t2\nKRAS\t3\t-inf\n"), ["missing or infinite", "'KRAS'", "'S2'"]
        ),
        "gz that is not gzip": lambda w: (w("plain.tsv.gz", "gene\tS1\tS2\n" + ok_rows), [".gz", "not gzip"]),
        "truncated gzip": lambda w: (w("cut.tsv.gz", _truncated_gzip()), ["truncated"]),
        "h5ad that is not HDF5": lambda w: (w("fake.h5ad", "gene\tS1\n" + ok_rows), ["not an HDF5"]),
        "parquet that is not parquet": lambda w: (w("fake.parquet", "gene,S1\nG1,1\n"), ["not a parquet"]),
        "unsupported extension": lambda w: (w("matrix.xlsx", "gene\tS1\n" + ok_rows), ["'.xlsx'", "Supported"]),
        "binary file named .tsv": lambda w: (w("binary.tsv", bytes(range(256)) * 8), ["not a text table"]),
        "latin-1 file named .tsv": lambda w: (
            w("latin1.tsv", "gene\tS1\nG1\t1\nCAF\xc9\t2\n".encode("latin-1")), ["not UTF-8", "line 3"]
        ),
    }


def _truncated_gzip() -> bytes:
    rows = "".join(f"G{i}\t{i * 0.731:.6f}\t{(i * 7919) % 10007}\n" for i in range(5000))
    data = gzip.compress(("gene\tS1\tS2\n" + rows).encode())
    return data[: len(data) // 2]


BAD_CASES = _bad_cases()


@pytest.fixture(params=sorted(BAD_CASES))
def bad_matrix(request: pytest.FixtureRequest, write: Callable[[str, str | bytes], Path]) -> tuple[Path, list[str]]:
    """One faulty matrix per parameter: (path, words its error message must contain)."""
    return BAD_CASES[request.param](write)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small networks train fastest on one thread, and do not slow down when the CPU is shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



# The modules that run the workflow end to end, longest first (``pytest --durations``: about 1-5 minutes each on
# 2 cores, where a unit-test module takes seconds). ``make test`` hands whole modules to its two pytest-xdist
# workers in collection order (``--dist loadfile --no-loadscope-reorder``): starting the long ones first lets
# the short ones fill the gaps, so that the two workers end together instead of one finishing a long run alone.
LONGEST_FIRST = ("test_workflow_options.py", "test_workflow_tasks.py", "test_report_captions.py", "test_workflow.py",
                 "test_slurm.py", "test_safety.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
