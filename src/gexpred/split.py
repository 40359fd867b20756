"""Deterministic train/test splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError


def train_test_split(
    samples: list[str] | pd.Index,
    test_fraction: float = 0.2,
    seed: int = 0,
    labels: pd.Series | None = None,
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
        the same split.
    labels
        Optional class labels indexed by sample; the split is then stratified
        so each class is held out in proportion.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` and ``split``, in the order of ``samples``.
    """
    samples = pd.Index([str(s) for s in samples])
    n = len(samples)
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"split.test_fraction must be between 0 and 1 (exclusive); got {test_fraction}.")
    if n < 4:
        raise ConfigError(f"Only {n} samples: at least 4 are needed to hold out a test split and still fit a model.")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(n, dtype=bool)
    if labels is None:
        groups = [np.arange(n)]
    else:
        lab = labels.reindex(samples).astype(str).to_numpy()
        groups = [np.flatnonzero(lab == c) for c in sorted(set(lab))]
    for idx in groups:
        k = int(round(test_fraction * len(idx)))
        if labels is None:
            k = min(max(k, 1), len(idx) - 2)
        chosen = rng.permutation(idx)[:k]
        is_test[chosen] = True
    return pd.DataFrame({"sample": samples, "split": np.where(is_test, "test", "train")})
