"""Deterministic train/test splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError, InputError, plural, preview


def train_test_split(
    samples: list[str] | pd.Index,
    test_fraction: float = 0.2,
    seed: int = 0,
    labels: pd.Series | None = None,
    source: str = "the data",
    n_dropped: int = 0,
) -> pd.DataFrame:
    """Assign each sample to ``train`` or ``test``.

    Parameters
    ----------
    samples
        Sample ids, in the order of the data.
    test_fraction
        Fraction of samples held out (rounded, at least one sample; at least
        two samples are kept for training).
    seed
        Seed of the permutation: the same ids, fraction and seed always give
        the same split, whatever the order of the ids.
    labels
        Optional class labels indexed by sample; the split is then stratified:
        the test samples are shared out among the classes in proportion to
        their sizes (largest remainders), so each class is held out in
        proportion as nearly as whole samples allow.
    source
        The data file the sample ids come from, named in messages (e.g. ``"'results/data/collected.h5ad'"``).
    n_dropped
        How many samples combining the matrices dropped (``uns['n_dropped_samples']`` of the collected data),
        named when there are too few samples left.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` and ``split``, in the order of ``samples``.
    """
    samples = pd.Index([str(s) for s in samples])
    n = len(samples)
    if isinstance(test_fraction, bool) or not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"split.test_fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    if n < 4:
        dropped = (f" Collecting the data dropped {plural(n_dropped, 'sample')}: its dropped table "
                   f"(results/data/dropped.tsv in the workflow) says why (a sample missing from one of the joined "
                   f"matrices or from the sample sheet, or without any value)." if n_dropped else "")
        raise InputError(f"{source} holds only {plural(n, 'sample')}: at least 4 are needed to hold out a test split "
                         f"and still fit a model. Give more samples: add them to the expression matrices (one column "
                         f"each), with a row each in the sample sheet.{dropped}")
    if samples.has_duplicates:
        dup = samples[samples.duplicated()].unique().tolist()
        raise InputError(f"Sample ids {preview(dup)} occur more than once; every sample needs a unique id to be "
                         f"assigned to a split.")
    # The split must depend on the set of ids, not on their order in the data (which follows
    # the order of the input matrices): permute the ids in sorted order.
    by_id = np.argsort(samples.to_numpy(dtype=str), kind="stable")
    n_test = min(max(int(round(test_fraction * n)), 1), n - 2)
    if labels is None:
        groups = [by_id]
    else:
        lab_series = pd.Series(labels)
        lab_series.index = [str(i) for i in lab_series.index]
        if lab_series.index.has_duplicates:
            raise InputError("The class labels list some samples more than once; give one label per sample.")
        lab = lab_series.reindex(samples)
        if lab.isna().any():
            raise InputError(
                f"Samples {preview(samples[lab.isna().to_numpy()])} have no class label to stratify the split by. "
                f"Give every sample a label."
            )
        lab_arr = lab.astype(str).to_numpy()
        groups = [by_id[lab_arr[by_id] == c] for c in sorted(set(lab_arr))]
    # Test samples per group: n_test shared out in proportion to the group sizes (largest remainders).
    quota = np.array([n_test * len(g) / n for g in groups])
    counts = np.floor(quota).astype(int)
    remainder = quota - counts
    for i in np.argsort(-remainder, kind="stable")[: n_test - int(counts.sum())]:
        counts[i] += 1
    rng = np.random.default_rng(seed)
    is_test = np.zeros(n, dtype=bool)
    for idx, k in zip(groups, counts):
        is_test[rng.permutation(idx)[:k]] = True
    return pd.DataFrame({"sample": samples, "split": np.where(is_test, "test", "train")})
