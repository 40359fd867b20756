"""Tests of gexpred.split.train_test_split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gexpred.errors import ConfigError, InputError
from gexpred.split import train_test_split


def _ids(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def _test_set(df: pd.DataFrame) -> set[str]:
    return set(df.loc[df["split"] == "test", "sample"])


def test_output_shape_and_order():
    ids = _ids(20)
    df = train_test_split(ids, 0.25, seed=1)
    assert list(df.columns) == ["sample", "split"]
    assert df["sample"].tolist() == ids
    assert set(df["split"]) == {"train", "test"}


def test_deterministic_for_seed_and_different_for_another():
    ids = _ids(50)
    a = train_test_split(ids, 0.2, seed=0)
    b = train_test_split(ids, 0.2, seed=0)
    pd.testing.assert_frame_equal(a, b)
    others = [_test_set(train_test_split(ids, 0.2, seed=s)) for s in (1, 2, 3)]
    assert all(o != _test_set(a) for o in others)


def test_independent_of_sample_order():
    ids = _ids(30)
    a = train_test_split(ids, 0.3, seed=5)
    shuffled = list(np.random.default_rng(0).permutation(ids))
    b = train_test_split(shuffled, 0.3, seed=5)
    assert b["sample"].tolist() == shuffled
    assert _test_set(a) == _test_set(b)


@pytest.mark.parametrize("n,fraction", [(10, 0.2), (50, 0.2), (101, 0.33), (7, 0.5), (40, 0.1)])
def test_fraction_honoured(n, fraction):
    df = train_test_split(_ids(n), fraction, seed=0)
    assert (df["split"] == "test").sum() == round(fraction * n)


@pytest.mark.parametrize("n,fraction", [(4, 0.01), (5, 0.05), (4, 0.99), (6, 0.95), (10, 0.9)])
def test_at_least_one_test_and_two_train(n, fraction):
    df = train_test_split(_ids(n), fraction, seed=0)
    n_test = int((df["split"] == "test").sum())
    assert n_test >= 1 and n - n_test >= 2
    assert n_test == min(max(round(fraction * n), 1), n - 2)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_fraction(fraction):
    with pytest.raises(ConfigError):
        train_test_split(_ids(10), fraction)


def test_too_few_samples_and_duplicates():
    with pytest.raises(InputError, match="holds only 3 samples"):
        train_test_split(_ids(3), 0.3)
    with pytest.raises(InputError, match="S001"):
        train_test_split(["S000", "S001", "S001", "S002", "S003"], 0.3)


def test_stratified_keeps_class_proportions():
    ids = _ids(100)
    labels = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20, index=ids)
    df = train_test_split(ids, 0.2, seed=3, labels=labels)
    test = df[df["split"] == "test"]
    counts = labels.loc[test["sample"]].value_counts().to_dict()
    assert counts == {"a": 10, "b": 6, "c": 4}
    # deterministic, and the classes are sampled at random within
    pd.testing.assert_frame_equal(df, train_test_split(ids, 0.2, seed=3, labels=labels))
    assert _test_set(df) != _test_set(train_test_split(ids, 0.2, seed=4, labels=labels))


def test_stratified_proportions_within_one_sample_and_total_honoured():
    rng = np.random.default_rng(0)
    ids = _ids(47)
    labels = pd.Series(rng.choice(["x", "y", "z"], size=47, p=[0.6, 0.3, 0.1]), index=ids)
    df = train_test_split(ids, 0.25, seed=0, labels=labels)
    test = df[df["split"] == "test"]
    n_test = len(test)
    assert n_test == round(0.25 * 47)
    counts = labels.loc[test["sample"]].value_counts()
    for c, size in labels.value_counts().items():
        assert abs(counts.get(c, 0) - n_test * size / 47) < 1


def test_stratified_small_classes_still_hold_out_a_sample():
    ids = _ids(10)
    labels = pd.Series(["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"], index=ids)
    df = train_test_split(ids, 0.2, seed=0, labels=labels)
    n_test = int((df["split"] == "test").sum())
    assert n_test == 2
    # no class loses every sample to the test split
    train_labels = set(labels.loc[df.loc[df["split"] == "train", "sample"]])
    assert train_labels == set("abcde")


def test_stratified_needs_a_label_per_sample():
    ids = _ids(10)
    labels = pd.Series(["a"] * 9, index=ids[:9])
    with pytest.raises(InputError, match="S009"):
        train_test_split(ids, 0.2, labels=labels)


@pytest.mark.parametrize("n_samples", [1, 3])
def test_too_few_samples_names_the_data_file_and_what_collect_dropped(tmp_path, capsys, n_samples):
    """`gexpred split` said "Only 3 samples: at least 4 are needed ..." without the file it read or the way out
    (and "Only 1 samples"). It names the collected data, the count in good English, the fix, and the samples
    collecting dropped (here one: in the sample sheet but in no matrix) with where to see why."""
    from gexpred.cli import main

    samples = [f"s{i}" for i in range(n_samples)]
    (tmp_path / "m.tsv").write_text("gene\t" + "\t".join(samples) + "\n"
                                    + "".join(f"G{g}\t" + "\t".join(str(g + i) for i in range(n_samples)) + "\n"
                                              for g in range(3)))
    (tmp_path / "sheet.tsv").write_text("sample\tage\n" + "".join(f"{s}\t{40 + i}\n" for i, s in
                                                                    enumerate([*samples, "ghost"])))
    data = tmp_path / "collected.h5ad"
    assert main(["collect", "--matrix", str(tmp_path / "m.tsv"), "--sample-sheet", str(tmp_path / "sheet.tsv"),
                 "--out", str(data), "--dropped", str(tmp_path / "dropped.tsv")]) == 0
    capsys.readouterr()
    out = tmp_path / "splits.tsv"
    assert main(["split", "--data", str(data), "--out", str(out)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"'{data}'" in err and f"holds only {n_samples} sample{'' if n_samples == 1 else 's'}:" in err
    assert "add them to the expression matrices" in err and "dropped 1 sample:" in err and "Traceback" not in err
    assert not out.exists()
