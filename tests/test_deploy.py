"""Tests of model bundles (gexpred.deploy), `gexpred predict` and `gexpred monitor` (gexpred.monitor).

Expected values are computed here independently: closed-form least squares on z-scored values, the
PSI and KS statistics from their definitions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gexpred.cli import main
from gexpred.deploy import fingerprint, load_bundle, subset_normalization, verify_bundle, write_bundle
from gexpred.errors import ConfigError, InputError
from gexpred.monitor import Thresholds, drift_table, psi
from gexpred.preprocess import apply_normalization, fit_normalization

pytestmark = pytest.mark.usefixtures("restore_logging")

GENES = ["gA", "gB", "gC", "gD"]
PREDICTORS = ["gA", "gB", "gC"]
TARGET = "gD"
BETA = np.array([0.8, -0.5, 0.3])


def _raw(n: int, seed: int, shift: dict[str, float] | None = None, noise: float = 0.3) -> pd.DataFrame:
    """Samples x genes on a log-expression-like scale; gD depends linearly on gA..gC."""
    rng = np.random.default_rng(seed)
    X = rng.normal(8.0, 1.0, size=(n, 3))
    for g, s in (shift or {}).items():
        X[:, PREDICTORS.index(g)] += s
    y = 1.0 + (X - 8.0) @ BETA + 8.0 + rng.normal(0, noise, n)
    return pd.DataFrame(np.column_stack([X, y]), index=[f"s{seed}_{i}" for i in range(n)], columns=GENES)


def _write_matrix(df: pd.DataFrame, path) -> str:
    df.T.to_csv(path, sep="\t", index_label="gene")
    return str(path)


@pytest.fixture
def linear_bundle(tmp_path):
    """A bundle of OLS on z-scored genes, fitted here with numpy."""
    return _linear_bundle(tmp_path)


def _linear_bundle(tmp_path, interval: dict | None = None):
    """:func:`linear_bundle`, with ``interval`` (the card's prediction interval) if given."""
    train = _raw(200, seed=1)
    norm = fit_normalization(train.to_numpy(), GENES, list(train.index), ["zscore"])
    Z = apply_normalization(train.to_numpy(), GENES, list(train.index), norm)
    A = np.column_stack([np.ones(len(Z)), Z[:, :3]])
    coef = np.linalg.lstsq(A, Z[:, 3], rcond=None)[0]
    ref = pd.DataFrame(Z[:, :3], columns=PREDICTORS)
    ref.insert(0, "sample", list(train.index))
    ref["prediction"] = A @ coef
    ref["observed"] = Z[:, 3]
    design = {"predictors": PREDICTORS, "covariates": {}, "interactions": [], "terms": PREDICTORS}
    test = _raw(50, seed=2)  # a test split: its per-sample squared errors, as the bundle step keeps them
    Zt = apply_normalization(test.to_numpy(), GENES, list(test.index), norm)
    test_losses = (Zt[:, 3] - np.column_stack([np.ones(len(Zt)), Zt[:, :3]]) @ coef) ** 2
    path = write_bundle(tmp_path / "models" / TARGET / "ols", target=TARGET, model="ols", task="regression",
                        classes=None,
                        model_params={"kind": "linear", "terms": PREDICTORS, "intercept": coef[0],
                                      "coef": coef[1:].tolist()},
                        preprocessing={"normalization": subset_normalization(norm, [*PREDICTORS, TARGET]),
                                       "design": design},
                        reference=ref, metrics={"test": {"n": 50, "mse": float(test_losses.mean())}},
                        training_fingerprint=fingerprint(Z, list(train.index), GENES), test_losses=test_losses,
                        interval=interval)
    (path.parent / "best.json").write_text(json.dumps({"model": "ols"}))  # as `gexpred best` writes it
    return path, norm, coef


def test_bundle_card_and_checksums(linear_bundle):
    path, _, _ = linear_bundle
    card = verify_bundle(path)
    assert sorted(card["files"]) == ["model.json", "preprocessing.json", "reference.tsv"]
    assert card["target"] == TARGET and card["versions"]["numpy"] == np.__version__
    assert len(card["training_fingerprint"]) == 64 and card["created"]
    import hashlib

    for name, digest in card["files"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
    # the saved normalization holds only the genes the model needs
    prep = json.loads((path / "preprocessing.json").read_text())
    assert prep["normalization"]["genes"] == [*PREDICTORS, TARGET]
    assert len(prep["normalization"]["steps"][0]["mean"]) == 4


def test_predict_applies_saved_preprocessing(tmp_path, linear_bundle):
    path, norm, coef = linear_bundle
    new = _raw(30, seed=2)
    new["extra1"] = 1.0
    new["extra2"] = 2.0
    src = _write_matrix(new[["extra1", *PREDICTORS, "extra2"]], tmp_path / "new.tsv")  # no target gene needed
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--bundle", str(path.parent), "--input", src, "--out", str(out),
                 "--log", str(tmp_path / "p.log")]) == 0
    got = pd.read_csv(out, sep="\t", index_col="sample")
    # independent: z-score with the training means and SDs, then the linear model
    mean = np.asarray(norm["steps"][0]["mean"][:3])
    sd = np.asarray(norm["steps"][0]["sd"][:3])
    want = coef[0] + ((new[PREDICTORS].to_numpy() - mean) / sd) @ coef[1:]
    np.testing.assert_allclose(got.loc[new.index, "predicted"], want, rtol=1e-12)
    assert (got["model"] == "ols").all() and (got["target"] == TARGET).all()
    assert "2 genes the model does not use are ignored" in (tmp_path / "p.log").read_text()


def test_a_sample_gets_the_same_linear_prediction_alone_in_a_pair_or_in_any_order():
    """A linear or logistic bundle's prediction of a sample is the same float whether the sample is scored alone,
    in a batch of 2, in the whole batch or in another order (BLAS's X @ coef differed in the last bits with the
    batch's size: 4e-16 on the demo's bundles), and equals the exactly rounded sum (math.fsum) to 1e-13. The
    neighbour intervals' distances are BLAS products still: a sample's distance agrees to 1e-12 relative, not
    bit for bit (README: Determinism)."""
    import math

    from gexpred.deploy import interval_scale, neighbour_difficulty, predict_design

    rng = np.random.default_rng(21)
    X = rng.normal(size=(101, 15)) * 10.0 ** rng.uniform(-2, 2, size=15)
    coef = rng.normal(size=15)
    for params in ({"kind": "linear", "intercept": 0.3, "coef": coef.tolist()},
                   {"kind": "logistic", "coef": rng.normal(size=(16, 2)).tolist()}):
        full = predict_design(params, X)
        alone = np.concatenate([predict_design(params, X[[i]]) for i in range(len(X))])
        pairs = np.concatenate([predict_design(params, X[i:i + 2]) for i in range(0, len(X), 2)])
        order = rng.permutation(len(X))
        shuffled = np.empty_like(full)
        shuffled[order] = predict_design(params, X[order])
        for other in (alone, pairs, shuffled, predict_design(params, np.asfortranarray(X))):
            assert np.array_equal(full, other)
    exact = np.array([math.fsum([0.3, *(x * coef)]) for x in X])
    np.testing.assert_allclose(predict_design({"kind": "linear", "intercept": 0.3, "coef": coef.tolist()}, X),
                               exact, rtol=1e-13, atol=1e-13)
    R = rng.normal(size=(120, 15))
    folds, scale = np.arange(120) % 5, interval_scale(R)
    full = neighbour_difficulty(R, folds, X, 10, scale)
    alone = np.concatenate([neighbour_difficulty(R, folds, X[[i]], 10, scale) for i in range(len(X))])
    np.testing.assert_allclose(alone, full, rtol=1e-12)


def test_a_single_unused_gene_is_logged_in_the_singular(tmp_path, linear_bundle):
    # the log read "1 genes the model does not use are ignored"
    path, _, _ = linear_bundle
    new = _raw(10, seed=4)
    new["extra1"] = 1.0
    src = _write_matrix(new[["extra1", *PREDICTORS]], tmp_path / "new.tsv")
    assert main(["predict", "--bundle", str(path.parent), "--input", src, "--out", str(tmp_path / "pred.tsv"),
                 "--log", str(tmp_path / "p.log")]) == 0
    assert "1 gene the model does not use is ignored" in (tmp_path / "p.log").read_text()


@pytest.mark.parametrize("edit, needle", [
    (lambda prep, params: params["coef"].pop(), "one coefficient for each of the design's 3 terms"),
    (lambda prep, params: prep["normalization"]["steps"][0]["sd"].pop(), "a mean and an sd for each of its 4 genes"),
    (lambda prep, params: prep["design"].pop("terms"), "lacks the design's predictors or terms"),
    (lambda prep, params: params.update(kind="forest"), "unknown model kind 'forest'"),
    (lambda prep, params: prep["normalization"]["steps"][0]["sd"].__setitem__(1, 0.0), "an sd that is not positive"),
    (lambda prep, params: prep["normalization"]["steps"].insert(0, {"method": "log_cpm"}),
     "(log_cpm) does not hold a positive scale, prior_count and log_base"),
    (lambda prep, params: prep["normalization"]["steps"][0].update(method="vst"), "unknown method 'vst'"),
])
def test_an_edited_bundle_with_matching_checksums_is_refused_by_name(tmp_path, linear_bundle, edit, needle):
    """A bundle whose files were edited and whose card's checksums were updated to match passes verification;
    its content is then checked before use, so the prediction stops with one message naming the inconsistency
    instead of a KeyError or a shape error halfway through."""
    from gexpred.deploy import CARD, sha256_file

    path, _, _ = linear_bundle
    prep = json.loads((path / "preprocessing.json").read_text())
    params = json.loads((path / "model.json").read_text())
    edit(prep, params)
    (path / "preprocessing.json").write_text(json.dumps(prep))
    (path / "model.json").write_text(json.dumps(params))
    card = json.loads((path / CARD).read_text())
    for name in ("preprocessing.json", "model.json"):
        card["files"][name] = sha256_file(path / name)
    (path / CARD).write_text(json.dumps(card))
    with pytest.raises(InputError, match="inconsistent although its files match their checksums") as exc:
        load_bundle(path)
    assert needle in str(exc.value)
    src = _write_matrix(_raw(5, seed=3), tmp_path / "new.tsv")
    err = tmp_path / "err.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(err)]) == 1
    assert not (tmp_path / "p.tsv").exists() and "Traceback" not in err.read_text()


def test_a_best_json_naming_a_missing_bundle_says_so(tmp_path, linear_bundle):
    """A target directory whose best.json names a model without a bundle there was refused as 'not a model bundle
    nor a target directory with best.json', which it is; now the message names the missing bundle and the others."""
    path, _, _ = linear_bundle
    (path.parent / "best.json").write_text(json.dumps({"model": "mlp"}))
    with pytest.raises(InputError) as exc:
        load_bundle(path.parent)
    text = str(exc.value)
    assert f"names the model 'mlp', but '{path.parent / 'mlp'}' holds no bundle" in text
    assert f"give one of the bundles there: '{path}'" in text


@pytest.mark.parametrize("damage", ["edit_model", "delete_file", "extra_file", "edit_card"])
def test_tampered_bundle_is_refused(tmp_path, linear_bundle, damage):
    path, _, _ = linear_bundle
    if damage == "edit_model":
        params = json.loads((path / "model.json").read_text())
        params["intercept"] += 1.0
        (path / "model.json").write_text(json.dumps(params))
    elif damage == "delete_file":
        (path / "reference.tsv").unlink()
    elif damage == "extra_file":
        (path / "weights.pt").write_bytes(b"\x80\x04not a state dict")
    else:
        card = json.loads((path / "card.json").read_text())
        card["files"]["model.json"] = "0" * 64
        (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="fails verification"):
        load_bundle(path)
    src = _write_matrix(_raw(5, seed=3), tmp_path / "new.tsv")
    err = tmp_path / "err.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(err)]) == 1
    assert not (tmp_path / "p.tsv").exists()
    assert "refusing to use it" in err.read_text()


def test_missing_predictor_and_bad_values(tmp_path, linear_bundle):
    path, _, _ = linear_bundle
    new = _raw(10, seed=4)
    src = _write_matrix(new.drop(columns=["gB"]), tmp_path / "missing.tsv")
    log = tmp_path / "e.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(log)]) == 1
    text = " ".join(log.read_text().split())
    assert "missing.tsv) lacks 1 of the 3 predictor genes of the model: 'gB'" in text
    assert not (tmp_path / "p.tsv").exists()
    new.iloc[2, 0] = np.nan
    src = _write_matrix(new, tmp_path / "nan.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(log)]) == 1
    text = " ".join(log.read_text().split())
    assert "nan.tsv" in text and ("'gA'" in text or "missing" in text.lower())
    assert not (tmp_path / "p.tsv").exists()


@pytest.mark.parametrize("kind, needle", [
    ("transposed", "The batch's samples 'gA', 'gB', 'gC' are genes of the model instead: the matrix looks transposed."),
    ("lower case", "Close matches: 'gA' -> 'GA', 'gB' -> 'GB', 'gC' -> 'GC' (ids are case-sensitive)."),
    ("versions", "Close matches: 'gA' -> 'gA.3', 'gB' -> 'gB.3', 'gC' -> 'gC.3' (ids must match exactly, version "
                 "suffixes such as '.17' included: strip them from the batch's matrices)."),
])
def test_a_batch_lacking_the_models_genes_says_why(tmp_path, linear_bundle, kind, needle):
    """A batch written samples x genes, or with its genes spelt otherwise (letter case, Ensembl-like version
    suffixes), lacked 'every' predictor gene, and the message said only that (an audit); as the collect step does
    for the run's own matrices, it now says the matrix looks transposed, or names the close matches."""
    path, _, _ = linear_bundle
    new = _raw(6, seed=4)
    if kind == "transposed":
        new.to_csv(tmp_path / "batch.tsv", sep="\t", index_label="sample")  # samples in rows
    else:
        rename = str.upper if kind == "lower case" else (lambda g: f"{g}.3")
        _write_matrix(new.rename(columns=rename), tmp_path / "batch.tsv")
    log = tmp_path / "e.log"
    assert main(["predict", "--bundle", str(path), "--input", str(tmp_path / "batch.tsv"), "--out",
                 str(tmp_path / "p.tsv"), "--log", str(log)]) == 1
    text = " ".join(log.read_text().split())
    assert "lacks 3 of the 3 predictor genes of the model: 'gA', 'gB', 'gC'" in text and needle in text, text
    assert "Traceback" not in text and not (tmp_path / "p.tsv").exists()


def test_a_sheet_listing_more_samples_than_the_batch_is_no_warning(tmp_path):
    """The pipeline reads a batch's covariates from the run's sample sheet (no new_batch_sheets entry), which
    lists every training sample: each deploy job warned 'sample sheet ... lists 240 samples that are in no
    matrix; ignored', the documented way to give covariates read as a mistake (an audit). Those rows are now
    counted in the log's info; a batch sample without a row is still refused by name. The predictions equal the
    linear model computed here; one sample is logged in the singular."""
    coef = [0.5, -0.25, 0.75, 2.0]  # gA, gB, gC, site[T.b]
    path = _covariate_bundle(tmp_path, coef, ["site[T.b]"],
                             {"site": {"type": "categorical", "levels": ["a", "b"], "reference": "a"}})
    new = _raw(3, seed=5)
    src = _write_matrix(new[PREDICTORS], tmp_path / "new.tsv")
    site = {s: v for s, v in zip([*new.index, "train1", "train2"], ["b", "a", "b", "a", "a"])}
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tsite\n" + "".join(f"{s}\t{v}\n" for s, v in site.items()))
    out, log = tmp_path / "pred.tsv", tmp_path / "p.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out",
                 str(out), "--log", str(log)]) == 0
    lines = log.read_text().splitlines()
    about_sheet = [line for line in lines if "sample sheet" in line]
    assert len(about_sheet) == 1 and " INFO " in about_sheet[0], about_sheet
    assert about_sheet[0].endswith(f"sample sheet '{sheet}': 2 rows not in the batch ignored")
    got = pd.read_csv(out, sep="\t").set_index("sample").loc[new.index, "predicted"].to_numpy()
    want = 1.0 + new[PREDICTORS].to_numpy() @ np.array(coef[:3]) + coef[3] * np.array([site[s] == "b"
                                                                                       for s in new.index])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    one = _write_matrix(new[PREDICTORS].iloc[:1], tmp_path / "one.tsv")
    assert main(["predict", "--bundle", str(path), "--input", one, "--sample-sheet", str(sheet), "--out",
                 str(out), "--log", str(tmp_path / "one.log")]) == 0
    text = (tmp_path / "one.log").read_text()
    assert "for 1 sample, on" in text and "4 rows not in the batch ignored" in text
    # a batch sample the sheet lacks is refused, by name
    sheet.write_text("sample\tsite\n" + "".join(f"{s}\t{v}\n" for s, v in list(site.items())[1:]))
    log = tmp_path / "e.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out",
                 str(tmp_path / "p2.tsv"), "--log", str(log)]) == 1
    assert f"no row for 1 of the 3 samples in the matrices, e.g. '{new.index[0]}'" in " ".join(log.read_text().split())


def test_a_gap_in_a_gene_the_model_does_not_use_is_no_reason_to_refuse_the_batch(tmp_path, linear_bundle):
    path, _, coef = linear_bundle
    new = _raw(8, seed=5)
    new["gE"] = np.arange(8.0)
    new.loc[new.index[3], "gE"] = np.nan  # a gene the model ignores
    src = _write_matrix(new, tmp_path / "gap.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv")]) == 0
    got = pd.read_csv(tmp_path / "p.tsv", sep="\t")["predicted"].to_numpy()
    train = _raw(200, seed=1)  # the bundle's training samples: z-scores with their mean and sd, here by numpy
    z = (new[PREDICTORS] - train[PREDICTORS].mean()) / train[PREDICTORS].std(ddof=1)
    np.testing.assert_allclose(got, coef[0] + z.to_numpy() @ coef[1:], rtol=1e-12)
    # a gap in a gene the model uses is refused by gene and sample, with a fix that applies to a batch
    new.loc[new.index[5], "gB"] = np.nan
    src = _write_matrix(new, tmp_path / "gap2.tsv")
    log = tmp_path / "e.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p2.tsv"),
                 "--log", str(log)]) == 1
    text = " ".join(log.read_text().split())
    assert f"gene 'gB' of sample '{new.index[5]}'" in text and "leave those samples out of the batch" in text
    assert "config key" not in text and "Traceback" not in text
    assert not (tmp_path / "p2.tsv").exists()


def test_a_batch_on_another_scale_is_predicted_with_a_warning_naming_it(tmp_path, linear_bundle):
    """Unlogged values for a model of log values (the demo's new batch as 2**x: predictions of 532 to 8760 where
    the training predictions span -2.96 to 1.22, before with nothing said) and log values for a model of raw
    counts."""
    path, _, _ = linear_bundle
    new = _raw(10, seed=6)
    train = _raw(200, seed=1)
    log = tmp_path / "p.log"
    src = _write_matrix(new, tmp_path / "same.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(log)]) == 0
    assert "WARNING" not in log.read_text()
    src = _write_matrix(2.0**new, tmp_path / "unlogged.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(log)]) == 0
    text = " ".join(log.read_text().split())
    z = (2.0 ** new["gA"].iloc[0] - train["gA"].mean()) / train["gA"].std(ddof=1)  # numpy's z of sample 0
    zref = (train["gA"] - train["gA"].mean()) / train["gA"].std(ddof=1)
    assert (f"10 of 10 samples have values of input 'gA' (and 2 more of its 3 inputs) more than the training "
            f"range's width beyond the training range (e.g. sample '{new.index[0]}': {z:.4g} where the training "
            f"samples span {zref.min():.4g} to {zref.max():.4g}") in text
    # a model of raw counts (log_cpm first) given log-CPM values
    rng = np.random.default_rng(0)
    counts = pd.DataFrame(rng.poisson(200, size=(40, 4)).astype(float), columns=GENES,
                          index=[f"c{i}" for i in range(40)])
    norm = fit_normalization(counts.to_numpy(), GENES, list(counts.index), ["log_cpm"])
    logcpm = np.log2(counts.div(counts.sum(axis=1), axis=0) * 1e6 + 1)  # edgeR's log-CPM, prior count 1
    ref = pd.DataFrame({"sample": counts.index, **{g: logcpm[g] for g in PREDICTORS}, "prediction": 0.0,
                        "observed": 0.0})
    bundle = write_bundle(tmp_path / "cpm", target=TARGET, model="ols", task="regression", classes=None,
                          model_params={"kind": "linear", "terms": PREDICTORS, "intercept": 0.0, "coef": [1, 1, 1]},
                          preprocessing={"normalization": subset_normalization(norm, PREDICTORS),
                                         "design": {"predictors": PREDICTORS, "covariates": {}, "interactions": [],
                                                    "terms": PREDICTORS}},
                          reference=ref.reset_index(drop=True), metrics={}, training_fingerprint="x")
    for batch, warned in ((counts.iloc[:5], False), (logcpm.iloc[:5], True)):
        log.write_text("")
        src = _write_matrix(batch, tmp_path / "b.tsv")
        assert main(["predict", "--bundle", str(bundle), "--input", src, "--out", str(tmp_path / "p.tsv"),
                     "--log", str(log)]) == 0
        text = " ".join(log.read_text().split())
        assert ("starts with 'log_cpm', made for raw counts, but every value of the new batch" in text) == warned
        assert ("the batch looks log-scaled already" in text) == warned
        if warned:  # the README promises the input, sample and value: the largest value, found with pandas
            sample, gene = batch[PREDICTORS].stack().idxmax()
            assert (f"(largest {batch[PREDICTORS].to_numpy().max():.4g}, sample {sample!r}, gene {gene!r})"
                    in text)


def test_predict_says_the_scale_of_its_predictions(tmp_path, linear_bundle, capsys):
    """The predictions of a z-scored target are z-scores, not values on the scale of the input matrices: the
    help and the log say so."""
    path, _, coef = linear_bundle
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "after the bundle's normalization" in " ".join(capsys.readouterr().out.split())
    new = _raw(4, seed=7)
    log = tmp_path / "p.log"
    assert main(["predict", "--bundle", str(path), "--input", _write_matrix(new, tmp_path / "n.tsv"),
                 "--out", str(tmp_path / "p.tsv"), "--log", str(log)]) == 0
    assert "on the model's scale: after the saved normalization (zscore) of the target" in " ".join(
        log.read_text().split())
    train = _raw(200, seed=1)  # the written numbers are the z-scores numpy computes
    z = (new[PREDICTORS] - train[PREDICTORS].mean()) / train[PREDICTORS].std(ddof=1)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.tsv", sep="\t")["predicted"],
                               coef[0] + z.to_numpy() @ coef[1:], rtol=1e-12)


def test_predict_and_monitor_help_name_the_interval_columns_and_the_truth_a_log_cpm_model_takes(tmp_path, capsys):
    """`predict --help` listed the columns 'sample, target, model, predicted' of a regression model's predictions,
    without the interval pi_low, pi_high the README promises and the command writes; `monitor --help` offered
    --truth TABLE for every model, which a log-CPM model refuses. The help now names every column written (a
    log-CPM bundle with an interval: prediction -/+ its half-width, computed here) and the refusal's way out."""
    rng = np.random.default_rng(0)
    counts = pd.DataFrame(rng.poisson(50, size=(40, 4)).astype(float), columns=GENES,
                          index=[f"c{i}" for i in range(40)])
    norm = fit_normalization(counts.to_numpy(), GENES, list(counts.index), ["log_cpm"])
    ref = pd.DataFrame({"sample": counts.index, **{g: 0.0 for g in PREDICTORS}, "prediction": 0.0, "observed": 0.0})
    coef = np.array([0.1, 0.5, -0.25, 0.2])
    path = write_bundle(tmp_path / "b", target=TARGET, model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": PREDICTORS, "intercept": coef[0],
                                      "coef": coef[1:].tolist()},
                        preprocessing={"normalization": subset_normalization(norm, [*PREDICTORS, TARGET]),
                                       "design": {"predictors": PREDICTORS, "covariates": {}, "interactions": [],
                                                  "terms": PREDICTORS}},
                        reference=ref, metrics={}, training_fingerprint="x",
                        interval={"method": "cv_conformal", "level": 0.95, "half_width": 0.4, "n_residuals": 40})
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    new = counts.iloc[:6]
    src = _write_matrix(new, tmp_path / "n.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv")]) == 0
    out = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert all(c in help_text for c in out.columns), (list(out.columns), help_text)
    logcpm = np.log2(new.to_numpy() / new.to_numpy().sum(axis=1, keepdims=True) * 1e6 + 1)
    expected = coef[0] + logcpm[:, :3] @ coef[1:]
    np.testing.assert_allclose(out["predicted"], expected, rtol=1e-10)
    np.testing.assert_allclose(out["pi_high"] - out["pi_low"], 0.8, rtol=1e-12)
    with pytest.raises(SystemExit):
        main(["monitor", "--help"])
    monitor_help = " ".join(capsys.readouterr().out.split())
    assert "not for a model normalized by log_cpm" in monitor_help and "use --truth-from-input" in monitor_help
    truth = tmp_path / "truth.tsv"
    pd.DataFrame({"sample": new.index, TARGET: new[TARGET].to_numpy()}).to_csv(truth, sep="\t", index=False)
    log = tmp_path / "m.log"
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(truth), "--out-dir",
                 str(tmp_path / "mon"), "--log", str(log)]) == 1
    assert "--truth-from-input" in log.read_text() and not (tmp_path / "mon").exists()


def test_log_cpm_bundle_refuses_negative_counts(tmp_path):
    rng = np.random.default_rng(0)
    counts = pd.DataFrame(rng.poisson(50, size=(40, 4)).astype(float), columns=GENES,
                          index=[f"c{i}" for i in range(40)])
    norm = fit_normalization(counts.to_numpy(), GENES, list(counts.index), ["log_cpm"])
    sub = subset_normalization(norm, PREDICTORS)
    assert sub["genes"] == GENES and sub["library_size_genes"]  # library sizes need every gene
    ref = pd.DataFrame({"sample": counts.index, **{g: 0.0 for g in PREDICTORS}, "prediction": 0.0, "observed": 0.0})
    path = write_bundle(tmp_path / "b", target=TARGET, model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": PREDICTORS, "intercept": 0.0, "coef": [1, 1, 1]},
                        preprocessing={"normalization": sub, "design": {"predictors": PREDICTORS, "covariates": {},
                                                                        "interactions": [], "terms": PREDICTORS}},
                        reference=ref, metrics={}, training_fingerprint="x")
    bad = counts.iloc[:3].copy()
    bad.iloc[1, 0] = -5
    src = _write_matrix(bad, tmp_path / "neg.tsv")
    log = tmp_path / "e.log"
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(log)]) == 1
    assert "negative" in log.read_text()


def test_a_log_cpm_bundle_scores_a_genome_wide_batch_exactly_and_in_linear_time(tmp_path):
    """A log-CPM model needs every training gene (library sizes): on a batch of 20,000 genes, in another order and
    with a gene training never had, the predictions equal log2(count / library * 1e6 + 1) over the training genes,
    z-scored with the training means and SDs and put through the linear model, all computed here with numpy.
    Preparing the batch took 25 s (a set of the genes built once per gene of the batch: quadratic in the genes;
    about 4 minutes at 60,000); now well under a second."""
    import time

    from gexpred.deploy import prepare_inputs

    rng = np.random.default_rng(3)
    genes = [f"g{i}" for i in range(20000)]
    train = rng.poisson(rng.gamma(2.0, 10.0, len(genes)), size=(30, len(genes))).astype(float)
    norm = fit_normalization(train, genes, [f"s{i}" for i in range(30)], ["log_cpm", "zscore"])
    predictors, coef = ["g1", "g2", "g3"], np.array([0.3, 0.5, -0.25, 0.75])
    ref = pd.DataFrame({"sample": [f"s{i}" for i in range(30)], **{g: 0.0 for g in predictors}, "prediction": 0.0,
                        "observed": 0.0})
    path = write_bundle(tmp_path / "b", target="g0", model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": predictors, "intercept": coef[0],
                                      "coef": coef[1:].tolist()},
                        preprocessing={"normalization": subset_normalization(norm, [*predictors, "g0"]),
                                       "design": {"predictors": predictors, "covariates": {}, "interactions": [],
                                                  "terms": predictors}},
                        reference=ref, metrics={}, training_fingerprint="x")
    counts = rng.poisson(rng.gamma(2.0, 10.0, len(genes)), size=(12, len(genes))).astype(float)
    batch = pd.DataFrame(counts, columns=genes, index=[f"n{i}" for i in range(12)])
    batch["new_gene"] = 1e6
    batch = batch[batch.columns[::-1]]
    start = time.perf_counter()
    X, _ = prepare_inputs(load_bundle(path), batch, None, "the batch")
    assert time.perf_counter() - start < 5
    log_cpm = lambda c: np.log2(c / c.sum(axis=1, keepdims=True) * 1e6 + 1.0)  # noqa: E731
    mean, sd = log_cpm(train).mean(axis=0), log_cpm(train).std(axis=0, ddof=1)
    z = (log_cpm(counts) - mean) / sd
    np.testing.assert_allclose(X.to_numpy(), z[:, 1:4], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(load_bundle(path).predict_design(X.to_numpy()), coef[0] + z[:, 1:4] @ coef[1:],
                               rtol=1e-10, atol=1e-12)


def _monitor(tmp_path, bundle, batch: pd.DataFrame, name: str, truth: bool = True) -> dict:
    src = _write_matrix(batch, tmp_path / f"{name}.tsv")
    out = tmp_path / name
    args = ["monitor", "--bundle", str(bundle), "--input", src, "--out-dir", str(out)]
    if truth:
        args.append("--truth-from-input")
    assert main(args) == 0
    for f in ("drift.tsv", "performance.tsv", "verdict.json", "drift.png"):
        assert (out / f).is_file()
    return json.loads((out / "verdict.json").read_text())


def test_monitor_ok_for_training_distribution_alert_for_shift(tmp_path, linear_bundle):
    path, _, _ = linear_bundle
    same = _monitor(tmp_path, path, _raw(80, seed=5), "same")
    assert same["verdict"] == "ok", same["reasons"]
    shifted = _monitor(tmp_path, path, _raw(80, seed=6, shift={"gA": 2.0}), "shifted")
    assert shifted["verdict"] == "alert"
    drift = pd.read_csv(tmp_path / "shifted" / "drift.tsv", sep="\t").set_index("feature")
    assert drift.loc["gA", "status"] == "alert" and drift.loc["gC", "status"] == "ok"
    assert drift.loc["gA", "mean_shift_sd"] == pytest.approx(2.0, abs=0.35)
    # the counts are of the model's inputs; the prediction's own drift is said apart
    inputs = drift[drift["kind"] == "input"]
    assert shifted["n_inputs"] == len(inputs) == 3
    assert shifted["n_drifted"] == int((inputs["status"] != "ok").sum()) >= 1
    assert shifted["prediction_drifted"] == bool((drift.loc[drift["kind"] == "prediction", "status"] != "ok").any())
    assert same["n_drifted"] == 0 and not same["prediction_drifted"]
    # a batch where the target no longer follows the model: inputs fine, accuracy alert
    noisy = _monitor(tmp_path, path, _raw(80, seed=7, noise=1.0), "noisy")
    perf = pd.read_csv(tmp_path / "noisy" / "performance.tsv", sep="\t").set_index("metric")
    assert perf.loc["mse", "ratio"] > 2 and noisy["verdict"] == "alert" and perf.loc["mse", "p_value"] < 0.001
    assert any("mse on the batch" in r and "permutation p = " in r for r in noisy["reasons"])
    # without truth there is no performance row
    _monitor(tmp_path, path, _raw(20, seed=8), "notruth", truth=False)
    assert pd.read_csv(tmp_path / "notruth" / "performance.tsv", sep="\t").empty


@pytest.mark.parametrize("losses", [[-1.0], ["x"], [float("nan")], "0.5"])
def test_a_bundle_with_edited_test_losses_is_refused(linear_bundle, losses):
    from gexpred.deploy import CARD

    path, _, _ = linear_bundle
    card = json.loads((path / CARD).read_text())
    card["test_losses"] = losses
    (path / CARD).write_text(json.dumps(card))
    with pytest.raises(InputError, match="test_losses are not a list of finite, non-negative numbers"):
        load_bundle(path)


def test_error_rise_test_exact_and_by_random_splits():
    """Few samples: every split of the pooled losses, counted here with itertools; more: random splits, against
    scipy's permutation test of the same one-sided difference of means (Monte Carlo error about 0.005 each)."""
    from itertools import combinations

    from scipy import stats

    from gexpred.monitor import error_rise_test

    rng = np.random.default_rng(11)
    a, b = rng.normal(size=9) ** 2, (1.8 * rng.normal(size=4)) ** 2
    pooled = np.r_[a, b]
    want = np.mean([pooled[list(c)].mean() >= b.mean() - 1e-12 for c in combinations(range(13), 4)])
    assert error_rise_test(a, b) == pytest.approx(want, abs=1e-12)  # 715 splits: all of them
    a, b = rng.standard_t(3, 47) ** 2, (1.5 * rng.standard_t(3, 30)) ** 2
    ref = stats.permutation_test((b, a), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 permutation_type="independent", alternative="greater", n_resamples=9999,
                                 vectorized=True, random_state=0).pvalue
    p = error_rise_test(a, b)
    assert abs(p - ref) < 0.03 and 0 < p < 1
    assert error_rise_test(a, b) == p  # seeded: the same losses, the same p-value
    assert np.isnan(error_rise_test(a, np.array([])))


def test_error_rise_test_does_not_depend_on_sample_order():
    """The random splits are seeded: the same losses in another order of the batch's (or the test split's)
    samples give the very same p-value, not another Monte Carlo draw (which differs by about 0.005 here, and could
    fall on the other side of monitor.error_alpha). Both orders agree with scipy's permutation test."""
    from scipy import stats

    from gexpred.monitor import error_rise_test

    rng = np.random.default_rng(13)
    a, b = rng.standard_t(3, 47) ** 2, (1.4 * rng.standard_t(3, 30)) ** 2
    ref = stats.permutation_test((b, a), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                 permutation_type="independent", alternative="greater", n_resamples=9999,
                                 vectorized=True, random_state=0).pvalue
    ps = {error_rise_test(a, b), error_rise_test(a, b[::-1]), error_rise_test(a[::-1], b),
          error_rise_test(rng.permutation(a), rng.permutation(b))}
    assert len(ps) == 1
    assert abs(ps.pop() - ref) < 0.03


def test_error_ratio_flags_an_unchanged_model_rarely_and_a_worse_one_often():
    """Heavy-tailed errors (t with 3 df), a batch of 30 against a test split of 47: the ratio alone reaches
    monitor.error_warn for an unchanged model in about a quarter of the batches; gated by the permutation test,
    at most about error_alpha of them. A model whose errors grew 3-fold is still flagged in most batches with
    normal errors."""
    from gexpred.monitor import Thresholds, performance_table

    rng = np.random.default_rng(12)
    th = Thresholds()
    def flags(scale: float, dist: str, reps: int = 200) -> tuple[float, float]:
        by_ratio = tested = 0
        for _ in range(reps):
            draw = (lambda n: rng.standard_t(3, n)) if dist == "t3" else (lambda n: rng.normal(size=n))
            a, b = draw(47) ** 2, (scale * draw(30)) ** 2
            perf = performance_table({"mse": a.mean()}, {"mse": b.mean()}, "regression", th, a, b)
            row = perf.set_index("metric").loc["mse"]
            by_ratio += row["ratio"] >= th.error_warn
            tested += row["status"] != "ok"
        return by_ratio / reps, tested / reps

    by_ratio, tested = flags(1.0, "t3")
    assert by_ratio > 0.15 and tested < 0.09
    assert flags(np.sqrt(3.0), "normal")[1] > 0.8


def test_error_ratio_within_chance_reads_ok_with_its_p_value():
    from gexpred.monitor import Thresholds, performance_table, verdict

    th = Thresholds()
    a, b = np.array([1.0, 0.5, 2.0, 0.1, 0.3, 4.0]), np.array([0.2, 6.0, 0.4])  # ratio 1.69, p = 0.35 (exact)
    perf = performance_table({"mse": a.mean()}, {"mse": b.mean()}, "regression", th, a, b).set_index("metric")
    assert perf.loc["mse", "ratio"] == pytest.approx(b.mean() / a.mean()) and perf.loc["mse", "ratio"] > 1.5
    assert perf.loc["mse", "p_value"] == pytest.approx(
        np.mean([np.r_[a, b][list(c)].sum() >= b.sum() - 1e-12
                 for c in __import__("itertools").combinations(range(9), 3)]))
    assert perf.loc["mse", "status"] == "ok"
    # a bundle without the test split's losses: the ratio alone, said in the reason
    old = performance_table({"mse": a.mean()}, {"mse": b.mean()}, "regression", th)
    assert np.isnan(old.set_index("metric").loc["mse", "p_value"])
    drift = pd.DataFrame(columns=["feature", "kind", "status", "n_new"])
    reasons = verdict(drift.astype({"n_new": int}), old, Thresholds(min_samples=1))["reasons"]
    assert any("not tested for chance" in r for r in reasons)


def test_monitor_truth_if_measured_takes_the_truth_only_where_the_batch_has_the_target(tmp_path, linear_bundle):
    """The pipeline's flag: a batch that measures the target is judged against it (as --truth-from-input); one
    that does not, the usual case of deployment, is monitored on its inputs and predictions, not refused."""
    path, _, _ = linear_bundle
    batch = _raw(40, seed=9, noise=1.0)
    for name, frame, truth_given in (("with", batch, True), ("without", batch.drop(columns=[TARGET]), False)):
        src = _write_matrix(frame, tmp_path / f"{name}.tsv")
        out = tmp_path / name
        assert main(["monitor", "--bundle", str(path), "--input", src, "--truth-if-measured",
                     "--out-dir", str(out), "--log", str(tmp_path / f"{name}.log")]) == 0
        v = json.loads((out / "verdict.json").read_text())
        perf = pd.read_csv(out / "performance.tsv", sep="\t")
        assert v["truth_given"] is truth_given and perf.empty is not truth_given
    # the summary of verdicts says the accuracy was not checked where the batch had no truth, not "no accuracy
    # problem found"
    assert main(["deploy-summary", "--verdicts", str(tmp_path / "with" / "verdict.json"),
                 str(tmp_path / "without" / "verdict.json"), "--performance", str(tmp_path / "with" / "performance.tsv"),
                 str(tmp_path / "without" / "performance.tsv"), "--out", str(tmp_path / "verdicts.tsv")]) == 0
    summary = pd.read_csv(tmp_path / "verdicts.tsv", sep="\t")
    reasons = summary["reasons"].tolist()
    assert "accuracy not checked" not in reasons[0] and "mse on the batch" in reasons[0]
    perf = pd.read_csv(tmp_path / "with" / "performance.tsv", sep="\t").set_index("metric")
    assert summary.loc[0, "error_p_value"] == perf.loc["mse", "p_value"] < 0.05
    assert np.isnan(summary.loc[1, "error_p_value"])
    assert "accuracy not checked: no truth for the batch" in reasons[1] and "accuracy problem" not in reasons[1]
    # the explicit flag still refuses a batch without the target
    assert main(["monitor", "--bundle", str(path), "--input", str(tmp_path / "without.tsv"), "--truth-from-input",
                 "--out-dir", str(tmp_path / "strict"), "--log", str(tmp_path / "strict.log")]) == 1
    assert "has no gene" in (tmp_path / "strict.log").read_text()


def test_a_gap_in_the_target_gene_is_no_reason_to_refuse_monitoring_the_batch(tmp_path, linear_bundle):
    """The target gene is not an input of its model: a batch measuring it in some samples only is monitored (its
    predictions as the linear model computed here gives them); before, the monitor refused the batch for a missing
    value 'in the genes the model uses'. --truth-from-input, which asks for the target as the truth, refuses it by
    sample."""
    path, norm, coef = linear_bundle
    batch = _raw(30, seed=11)
    batch.loc[batch.index[4], TARGET] = np.nan
    src = _write_matrix(batch, tmp_path / "gap.tsv")
    mean = np.asarray(norm["steps"][0]["mean"][:3])
    sd = np.asarray(norm["steps"][0]["sd"][:3])
    want = coef[0] + ((batch[PREDICTORS].to_numpy() - mean) / sd) @ coef[1:]
    out = tmp_path / "mon"
    assert main(["monitor", "--bundle", str(path), "--input", src, "--out-dir", str(out),
                 "--out-predictions", str(out / "p.tsv"), "--log", str(tmp_path / "m.log")]) == 0
    got = pd.read_csv(out / "p.tsv", sep="\t", index_col="sample")["predicted"]
    np.testing.assert_allclose(got.loc[batch.index], want, rtol=1e-12)
    assert json.loads((out / "verdict.json").read_text())["truth_given"] is False
    assert pd.read_csv(out / "performance.tsv", sep="\t").empty
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth-from-input", "--out-dir",
                 str(tmp_path / "strict"), "--log", str(tmp_path / "strict.log")]) == 1
    text = " ".join((tmp_path / "strict.log").read_text().split())  # the message wraps with the path's length
    assert f"lacks the target gene {TARGET!r}" in text and f"in 1 of its 30 samples: '{batch.index[4]}'" in text


def test_truth_known_for_part_of_a_batch_is_judged_on_those_samples(tmp_path):
    """Truth often arrives for part of a batch (some samples measured again, some labels confirmed). Before, one
    sample without it turned the accuracy check off for the whole batch under --truth-if-measured, and a --truth
    table with an empty cell was refused. Now the error, its permutation test and the intervals' coverage are judged
    on the samples whose truth is known, and the verdict says how many (recomputed here with numpy from the bundle's
    own normalization and coefficients)."""
    from scipy.stats import betabinom

    from gexpred.monitor import error_rise_test

    interval = {"method": "cv_conformal", "level": 0.9, "half_width": 0.5, "n_residuals": 40}
    path, norm, coef = _linear_bundle(tmp_path, interval)
    batch = _raw(30, seed=11, shift={"gA": 0.8}, noise=1.2)
    gaps = [2, 4, 17, 25]
    measured = batch.copy()
    measured.iloc[gaps, measured.columns.get_loc(TARGET)] = np.nan
    src = _write_matrix(measured, tmp_path / "gap.tsv")
    m, sd = np.asarray(norm["steps"][0]["mean"]), np.asarray(norm["steps"][0]["sd"])
    Z = (batch[GENES].to_numpy() - m) / sd
    pred = coef[0] + Z[:, :3] @ coef[1:]
    keep = np.ones(30, dtype=bool)
    keep[gaps] = False
    sq = (Z[keep, 3] - pred[keep]) ** 2
    test_losses = np.asarray(json.loads((path / "card.json").read_text())["test_losses"])
    inside = np.abs(Z[keep, 3] - pred[keep]) <= 0.5
    k = int(np.ceil(41 * 0.9))
    runs = {}
    # the same 26 truths from the batch's own gene and from a table with empty cells (raw scale)
    table = pd.DataFrame({"sample": batch.index, TARGET: [None if not k else v for k, v in zip(keep, batch[TARGET])]})
    table.to_csv(tmp_path / "truth.tsv", sep="\t", index=False)
    for name, flags in (("measured", ["--truth-if-measured"]), ("table", ["--truth", str(tmp_path / "truth.tsv")])):
        out = tmp_path / name
        assert main(["monitor", "--bundle", str(path), "--input", src, *flags, "--out-dir", str(out),
                     "--out-predictions", str(out / "p.tsv"), "--log", str(tmp_path / f"{name}.log")]) == 0
        v = json.loads((out / "verdict.json").read_text())
        perf = pd.read_csv(out / "performance.tsv", sep="\t").set_index("metric")
        assert v["truth_given"] is True and v["n_truth"] == 26 and v["n_samples"] == 30
        assert perf.loc["n", "new_batch"] == 26
        assert perf.loc["mse", "new_batch"] == pytest.approx(sq.mean(), rel=1e-10)
        assert perf.loc["mse", "p_value"] == pytest.approx(error_rise_test(test_losses, sq), rel=1e-12)
        assert perf.loc["mse", "ratio"] == pytest.approx(sq.mean() / test_losses.mean(), rel=1e-10)
        # the intervals' coverage of the 26, and its beta-binomial test (k-th of 40 residuals at 90 %)
        assert perf.loc["interval_coverage (90%)", "new_batch"] == pytest.approx(inside.mean(), rel=1e-12)
        assert perf.loc["interval_coverage (90%)", "p_value"] == pytest.approx(
            betabinom.cdf(int(inside.sum()), 26, k, 41 - k), rel=1e-9)
        # every sample is still predicted, with its interval
        got = pd.read_csv(out / "p.tsv", sep="\t", index_col="sample")
        np.testing.assert_allclose(got.loc[batch.index, "predicted"], pred, rtol=1e-10)
        np.testing.assert_allclose(got.loc[batch.index, "pi_high"] - got.loc[batch.index, "pi_low"], 1.0, rtol=1e-12)
        runs[name] = perf
        assert "accuracy judged on the other 26 samples" in " ".join((tmp_path / f"{name}.log").read_text().split())
    pd.testing.assert_frame_equal(runs["measured"], runs["table"])
    # the gathered verdicts count the samples judged, and their reasons say it
    assert main(["deploy-summary", "--verdicts", str(tmp_path / "measured" / "verdict.json"), "--performance",
                 str(tmp_path / "measured" / "performance.tsv"), "--out", str(tmp_path / "verdicts.tsv")]) == 0
    summary = pd.read_csv(tmp_path / "verdicts.tsv", sep="\t")
    assert summary.loc[0, "n_truth"] == 26 and summary.loc[0, "n_samples"] == 30
    flagged = json.loads((tmp_path / "measured" / "verdict.json").read_text())["reasons"]
    assert summary.loc[0, "reasons"] == "; ".join(
        [*(flagged or ["no drift or accuracy problem found"]), "accuracy judged on the 26 of 30 samples whose truth "
         "is known"])
    # a table with no value at all is a mistake, said as one
    pd.DataFrame({"sample": batch.index, TARGET: [None] * 30}).to_csv(tmp_path / "empty.tsv", sep="\t", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(tmp_path / "empty.tsv"),
                 "--out-dir", str(tmp_path / "e"), "--log", str(tmp_path / "e.log")]) == 1
    assert "has no 'gD' value for any sample of the batch" in " ".join((tmp_path / "e.log").read_text().split())
    assert not (tmp_path / "e").exists()


def test_monitor_truth_table_csv_and_its_mistakes(tmp_path, linear_bundle):
    """A truth table is read like a sample sheet (TSV or CSV); a sample listed twice, samples without a row,
    missing or non-numeric values get one clear message naming the file and the samples, no traceback, and no
    output left behind."""
    path, _, _ = linear_bundle
    batch = _raw(12, seed=11)
    src = _write_matrix(batch.drop(columns=[TARGET]), tmp_path / "batch.tsv")
    truth = pd.DataFrame({"sample": batch.index, TARGET: batch[TARGET].to_numpy()})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(tmp_path / "truth.csv"),
                 "--out-dir", str(tmp_path / "ok")]) == 0
    by_input = tmp_path / "by_input"  # the same truth taken from the matrix gives the same metrics
    assert main(["monitor", "--bundle", str(path), "--input", _write_matrix(batch, tmp_path / "full.tsv"),
                 "--truth-from-input", "--out-dir", str(by_input)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ok" / "performance.tsv", sep="\t"),
                                  pd.read_csv(by_input / "performance.tsv", sep="\t"))
    first = batch.index[0]
    cases = {
        "dup": (pd.concat([truth, truth.iloc[:1]]), ["lists samples more than once", repr(first)]),
        "short": (truth.iloc[3:], ["has no row for 3 of the 12 samples", repr(first)]),
        # an empty cell is a truth not known yet (judged on the others: test_truth_known_for_part_of_a_batch_...);
        # a column without any value is a mistake
        "empty": (truth.assign(**{TARGET: [""] * 12}), [f"no {TARGET!r} value for any sample", repr(first)]),
        "text": (truth.assign(**{TARGET: ["high"] + [1.0] * 11}), ["1 non-numeric or infinite", f"{first} ('high')"]),
    }
    for name, (table, needles) in cases.items():
        table.to_csv(tmp_path / f"{name}.tsv", sep="\t", index=False)
        log = tmp_path / f"{name}.log"
        assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(tmp_path / f"{name}.tsv"),
                     "--out-dir", str(tmp_path / name), "--log", str(log)]) == 1, name
        text = " ".join(log.read_text().split())  # the log wraps long messages
        assert "Traceback" not in text and str(tmp_path / f"{name}.tsv") in text, text
        assert all(n in text for n in needles), (name, text)
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("flags", [["--truth", "T.tsv", "--truth-from-input"],
                                   ["--truth", "T.tsv", "--truth-if-measured"],
                                   ["--truth-from-input", "--truth-if-measured"]])
def test_two_sources_of_truth_are_a_usage_error(tmp_path, linear_bundle, flags, capsys):
    """--truth with --truth-from-input used the batch's gene and ignored the table without a word."""
    path, _, _ = linear_bundle
    src = _write_matrix(_raw(12, seed=3), tmp_path / "new.tsv")
    with pytest.raises(SystemExit) as exc:
        main(["monitor", "--bundle", str(path), "--input", src, *flags, "--out-dir", str(tmp_path / "m")])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_psi_and_ks_from_definitions():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=500)
    new = rng.normal(0.5, 1.0, size=120)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    p = (np.histogram(ref, np.r_[-np.inf, edges, np.inf])[0] + 0.5) / (500 + 5)
    q = (np.histogram(new, np.r_[-np.inf, edges, np.inf])[0] + 0.5) / (120 + 5)
    assert psi(ref, new) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    table = drift_table(pd.DataFrame({"x": ref}), pd.DataFrame({"x": new}), ["x"], Thresholds())
    grid = np.sort(np.r_[ref, new])
    ks = np.max(np.abs(np.searchsorted(np.sort(ref), grid, side="right") / 500
                       - np.searchsorted(np.sort(new), grid, side="right") / 120))
    assert table.loc[0, "ks_stat"] == pytest.approx(ks, rel=1e-12)
    assert table.loc[0, "mean_shift_sd"] == pytest.approx((new.mean() - ref.mean()) / ref.std(ddof=1))


def test_psi_of_a_batch_without_drift_is_near_its_chance_level():
    # the drift caption's claim: with no drift, the PSI (a symmetric Kullback-Leibler divergence over B bins)
    # averages roughly (B - 1)(1/n + 1/N), its chi-square limit, by chance (the half-counts pull it a little lower):
    # about 0.3 for 30 samples against 189, so a small batch's PSI alone reaches psi_warn 0.1
    rng = np.random.default_rng(5)
    for n_new, lo in ((30, 0.25), (100, 0.11)):
        chance = 9 * (1 / n_new + 1 / 189)
        mean = np.mean([psi(rng.normal(size=189), rng.normal(size=n_new)) for _ in range(1000)])
        assert lo < mean < chance * 1.05, (n_new, mean, chance)
    assert Thresholds().psi_warn < 0.25


def test_psi_leaves_out_bins_neither_side_reaches():
    # a 0/1 column with the same 30 % of ones on both sides: the deciles' lowest edge is the minimum, so the
    # bin below it is empty on both sides; it must not add (q - p) ln(q / p) > 0 through the half-counts
    ref = np.r_[np.zeros(133), np.ones(57)]
    new = np.r_[np.zeros(7), np.ones(3)]
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    c_ref = np.histogram(ref, np.r_[-np.inf, edges, np.inf])[0]
    c_new = np.histogram(new, np.r_[-np.inf, edges, np.inf])[0]
    reached = (c_ref + c_new) > 0
    assert not reached.all()  # the case at hand
    B = reached.sum()
    p = (c_ref[reached] + 0.5) / (190 + 0.5 * B)
    q = (c_new[reached] + 0.5) / (10 + 0.5 * B)
    assert psi(ref, new) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert psi(ref, new) < 0.01
    # a batch below the reference's range keeps the bin the reference leaves empty (a discrete input: one bin per
    # value, -1 one of them)
    assert psi(ref, np.full(10, -1.0)) > 1.0
    # a rare level that becomes common: 5 % -> 80 % ones (its deciles all read 0, which held both values in one bin)
    rare, common = np.r_[np.zeros(190), np.ones(10)], np.r_[np.zeros(2), np.ones(8)]
    p = (np.array([190, 10]) + 0.5) / (200 + 1.0)
    q = (np.array([2, 8]) + 0.5) / (10 + 1.0)
    assert psi(rare, common) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert psi(rare, common) > 1.0


def test_binary_input_uses_fisher_exact_and_bh_over_inputs_only():
    from scipy import stats

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"cov[T.b]": np.r_[np.zeros(133), np.ones(57)], "g": rng.normal(size=190)})
    new = pd.DataFrame({"cov[T.b]": np.r_[np.zeros(8), np.ones(12)], "g": rng.normal(0.8, 1.0, size=20)})
    pred = (rng.normal(size=190), rng.normal(0.8, 1.0, size=20))
    table = drift_table(ref, new, ["cov[T.b]", "g"], Thresholds(), prediction=pred).set_index("feature")
    fisher = stats.fisher_exact([[133, 57], [8, 12]]).pvalue
    assert table.loc["cov[T.b]", "test"] == "fisher_exact"
    assert table.loc["cov[T.b]", "pvalue"] == pytest.approx(fisher, rel=1e-12)
    assert table.loc["cov[T.b]", "ks_stat"] == pytest.approx(abs(133 / 190 - 8 / 20), rel=1e-12)
    assert table.loc["g", "test"] == "ks"
    assert table.loc["g", "pvalue"] == pytest.approx(stats.ks_2samp(ref["g"], new["g"]).pvalue, rel=1e-12)
    # Benjamini-Hochberg over the two inputs; the predictions' q-value is their own p-value
    p = table.loc[["cov[T.b]", "g"], "pvalue"].to_numpy()
    want = np.minimum(1, np.minimum.accumulate((p[np.argsort(p)] * 2 / np.arange(1, 3))[::-1])[::-1])
    np.testing.assert_allclose(table.loc[["cov[T.b]", "g"], "qvalue"].to_numpy()[np.argsort(p)], want, rtol=1e-12)
    assert table.loc["prediction", "qvalue"] == table.loc["prediction", "pvalue"] == pytest.approx(
        stats.ks_2samp(*pred).pvalue, rel=1e-12)
    # the null: batches of 20 drawn with the training share of ones flag about as often as the level says
    null = np.random.default_rng(4)
    hits = [drift_table(ref[["cov[T.b]"]], pd.DataFrame({"cov[T.b]": (null.random(20) < 0.3).astype(float)}),
                        ["cov[T.b]"], Thresholds()).loc[0, "pvalue"] < 0.05 for _ in range(400)]
    assert 0.01 < np.mean(hits) <= 0.07


def test_network_bundle_loads_weights_only(tmp_path):
    from gexpred.nn import GeneMLP

    model = GeneMLP(3, [4], "tanh")
    torch.save({k: v for k, v in model.state_dict().items()}, tmp_path / "w.pt")
    arch = {"n_in": 3, "hidden": [4], "activation": "tanh", "n_out": 1, "dropout": 0.0}
    ref = pd.DataFrame({"sample": ["a", "b"], **{g: [0.0, 1.0] for g in PREDICTORS}, "prediction": 0.0,
                        "observed": 0.0})
    norm = {"steps": [], "genes": [*PREDICTORS, TARGET]}
    path = write_bundle(tmp_path / "mlp", target=TARGET, model="mlp", task="regression", classes=None,
                        model_params={"kind": "mlp", "task": "regression", "architecture": arch},
                        preprocessing={"normalization": norm, "design": {"predictors": PREDICTORS, "covariates": {},
                                                                         "interactions": [], "terms": PREDICTORS}},
                        reference=ref, metrics={}, training_fingerprint="x", weights=tmp_path / "w.pt")
    b = load_bundle(path)
    X = np.random.default_rng(0).normal(size=(5, 3))
    with torch.no_grad():
        want = model(torch.tensor(X, dtype=torch.float32)).numpy()[:, 0]
    np.testing.assert_allclose(b.predict_design(X), want, rtol=1e-6)
    # a pickled object in place of the weights is refused by weights_only loading, after the checksums pass
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"net.0.weight": Evil()}))
    path2 = write_bundle(tmp_path / "mlp2", target=TARGET, model="mlp", task="regression", classes=None,
                         model_params={"kind": "mlp", "task": "regression", "architecture": arch},
                         preprocessing={"normalization": norm, "design": {"predictors": PREDICTORS,
                                                                          "covariates": {}, "interactions": [],
                                                                          "terms": PREDICTORS}},
                         reference=ref, metrics={}, training_fingerprint="x", weights=tmp_path / "evil.pt")
    with pytest.raises(InputError, match="not a readable tensors-only state dict") as exc:
        load_bundle(path2)
    assert "weights_only=True" in str(exc.value) and "nothing of it was executed" in str(exc.value)


def _rehash(path) -> None:
    """Update a bundle card's checksums to its files' (an edit by hand that passes verification)."""
    from gexpred.deploy import CARD, sha256_file

    card = json.loads((path / CARD).read_text())
    card["files"] = {name: sha256_file(path / name) for name in card["files"]}
    (path / CARD).write_text(json.dumps(card))


@pytest.mark.parametrize("damage, needle", [
    ("truncated", "not a readable tensors-only state dict"),
    ("pickle", "not a readable tensors-only state dict"),
    ("architecture", "do not fit the network its model.json describes (3 inputs, hidden layers [5], 1 member)"),
])
def test_network_weights_that_do_not_load_are_refused_by_name_with_checksums_updated(tmp_path, damage, needle):
    """weights.pt cut short, replaced by a pickle that would run a command, or model.json's architecture edited,
    each with the card's checksums updated: one message naming the file, no traceback, nothing executed."""
    from gexpred.nn import GeneMLP

    model = GeneMLP(3, [4], "tanh")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    arch = {"n_in": 3, "hidden": [4], "activation": "tanh", "n_out": 1, "dropout": 0.0}
    ref = pd.DataFrame({"sample": ["a", "b"], **{g: [0.0, 1.0] for g in PREDICTORS}, "prediction": 0.0,
                        "observed": 0.0})
    path = write_bundle(tmp_path / "mlp", target=TARGET, model="mlp", task="regression", classes=None,
                        model_params={"kind": "mlp", "task": "regression", "architecture": arch},
                        preprocessing={"normalization": {"steps": [], "genes": [*PREDICTORS, TARGET]},
                                       "design": {"predictors": PREDICTORS, "covariates": {}, "interactions": [],
                                                  "terms": PREDICTORS}},
                        reference=ref, metrics={}, training_fingerprint="x", weights=tmp_path / "w.pt")
    marker = tmp_path / "executed"
    if damage == "truncated":
        with open(path / "weights.pt", "r+b") as fh:
            fh.truncate(200)
    elif damage == "pickle":
        import os
        import pickle

        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        (path / "weights.pt").write_bytes(pickle.dumps(Evil()))
    else:
        params = json.loads((path / "model.json").read_text())
        params["architecture"]["hidden"] = [5]
        (path / "model.json").write_text(json.dumps(params))
    _rehash(path)
    with pytest.raises(InputError) as exc:
        load_bundle(path)
    assert needle in str(exc.value) and "weights.pt" in str(exc.value)
    err = tmp_path / "err.log"
    src = _write_matrix(_raw(5, seed=3), tmp_path / "new.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv"),
                 "--log", str(err)]) == 1
    assert needle in " ".join(err.read_text().split()) and "Traceback" not in err.read_text()
    assert not (tmp_path / "p.tsv").exists() and not marker.exists()


@pytest.mark.parametrize("edit, needle", [
    (lambda ref: ref.iloc[:0], "0 rows where the card counts 200 training samples"),
    (lambda ref: ref.drop(columns=["gB"]), "no column for 'gB'"),
    (lambda ref: ref.assign(prediction=np.nan), "missing or not finite"),
])
def test_an_edited_reference_is_refused_instead_of_monitoring_against_it(tmp_path, linear_bundle, edit, needle):
    """reference.tsv cut to its header would give every batch an 'ok' (nothing to drift from); without a term's
    column the monitor stopped on a KeyError. Both refused by name, checksums updated or not."""
    path, _, _ = linear_bundle
    ref = pd.read_csv(path / "reference.tsv", sep="\t")
    edit(ref).to_csv(path / "reference.tsv", sep="\t", index=False)
    _rehash(path)
    with pytest.raises(InputError, match="reference.tsv") as exc:
        load_bundle(path)
    assert needle in str(exc.value)
    src = _write_matrix(_raw(30, seed=3, shift={"gA": 3.0}), tmp_path / "new.tsv")
    err = tmp_path / "err.log"
    assert main(["monitor", "--bundle", str(path), "--input", src, "--out-dir", str(tmp_path / "m"),
                 "--log", str(err)]) == 1
    assert needle in " ".join(err.read_text().split()) and "Traceback" not in err.read_text()
    assert not (tmp_path / "m" / "verdict.json").exists()


def test_classification_bundle_predict_and_monitor_with_truth_table(tmp_path):
    """A logistic bundle: class probabilities by the softmax formula; the truth table's labels give accuracy."""
    rng = np.random.default_rng(4)
    coef = [[-0.2], [1.5], [-1.0], [0.0]]  # const, gA, gB, gC for the non-reference class 'up'
    train = _raw(150, seed=9)
    norm = {"steps": [], "genes": PREDICTORS}
    eta = coef[0][0] + train[PREDICTORS].to_numpy() @ np.array([c[0] for c in coef[1:]])
    p_up = 1 / (1 + np.exp(-(eta - eta.mean())))
    ref = pd.DataFrame({"sample": train.index, **{g: train[g] for g in PREDICTORS}, "p[down]": 1 - p_up,
                        "p[up]": p_up, "prediction": p_up, "observed": np.where(p_up > 0.5, "up", "down")})
    path = write_bundle(tmp_path / "clf", target="state", model="ols", task="classification", classes=["down", "up"],
                        model_params={"kind": "logistic", "terms": PREDICTORS, "classes": ["down", "up"],
                                      "coef": coef},
                        preprocessing={"normalization": norm, "design": {"predictors": PREDICTORS, "covariates": {},
                                                                         "interactions": [], "terms": PREDICTORS}},
                        reference=ref, metrics={"test": {"n": 40, "accuracy": 0.8, "auroc": 0.9, "log_loss": 0.45}},
                        training_fingerprint="x")
    new = _raw(40, seed=10)
    src = _write_matrix(new, tmp_path / "new.tsv")
    assert main(["predict", "--bundle", str(path), "--input", src, "--out", str(tmp_path / "p.tsv")]) == 0
    got = pd.read_csv(tmp_path / "p.tsv", sep="\t").set_index("sample").loc[new.index]
    eta_new = coef[0][0] + new[PREDICTORS].to_numpy() @ np.array([c[0] for c in coef[1:]])
    np.testing.assert_allclose(got["p[up]"], 1 / (1 + np.exp(-eta_new)), rtol=1e-12)
    np.testing.assert_array_equal(got["predicted"], np.where(eta_new > 0, "up", "down"))
    labels = np.where(rng.random(40) < 1 / (1 + np.exp(-eta_new)), "up", "down")
    pd.DataFrame({"sample": new.index, "state": labels}).to_csv(tmp_path / "truth.tsv", sep="\t", index=False)
    out = tmp_path / "mon"
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(tmp_path / "truth.tsv"),
                 "--out-dir", str(out)]) == 0
    perf = pd.read_csv(out / "performance.tsv", sep="\t").set_index("metric")
    assert perf.loc["accuracy", "new_batch"] == pytest.approx(np.mean(got["predicted"].to_numpy() == labels))
    assert perf.loc["accuracy", "test"] == 0.8
    p_true = np.where(labels == "up", got["p[up]"], got["p[down]"])
    assert perf.loc["log_loss", "new_batch"] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-9)
    assert perf.loc["log_loss", "ratio"] == pytest.approx(perf.loc["log_loss", "new_batch"] / 0.45)
    # a truth table with a class the model does not know is refused
    pd.DataFrame({"sample": new.index, "state": "sideways"}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth", str(tmp_path / "bad.tsv"),
                 "--out-dir", str(tmp_path / "mon2")]) == 1
    assert not (tmp_path / "mon2").exists()
    # --truth-from-input on a classification bundle: refused for what it is (a label is no gene's expression),
    # not as a batch without the gene, which this batch (measuring 'state' too) is not
    _write_matrix(new.assign(state=1.0), tmp_path / "with_state.tsv")
    assert main(["monitor", "--bundle", str(path), "--input", str(tmp_path / "with_state.tsv"), "--truth-from-input",
                 "--out-dir", str(tmp_path / "mon3"), "--log", str(tmp_path / "mon3.log")]) == 1
    log = (tmp_path / "mon3.log").read_text()
    assert "classification target" in log and "--truth TABLE" in log and "has no gene" not in log
    assert not (tmp_path / "mon3").exists()
    # without labels the verdicts table says the labels were missing, not that the batch does not measure the target
    assert main(["monitor", "--bundle", str(path), "--input", src, "--out-dir", str(tmp_path / "mon4")]) == 0
    assert main(["deploy-summary", "--verdicts", str(tmp_path / "mon4" / "verdict.json"), "--performance",
                 str(tmp_path / "mon4" / "performance.tsv"), "--out", str(tmp_path / "verdicts.tsv")]) == 0
    reasons = pd.read_csv(tmp_path / "verdicts.tsv", sep="\t")["reasons"].iloc[0]
    assert "accuracy not checked: no class labels for the batch" in reasons and "measure" not in reasons


def test_bundle_encodes_the_test_splits_unseen_levels_as_the_fit_did_and_deploy_refuses_them():
    """A level seen only in the test split is the reference level for the fitting steps (with their warning);
    the bundle step re-encodes the run's samples the same way (unseen_as_reference), so it reproduces the
    fitted models' predictions instead of failing; a new batch with such a level is refused, naming the
    samples and the fix. Numeric covariates with text are refused naming the samples and values."""
    from gexpred.deploy import encode_covariates_like
    from gexpred.design import encode_covariates

    samples = ["s0", "s1", "s2", "s3", "s4"]
    obs = pd.DataFrame({"batch": ["b1", "b2", "b1", "b9", "b2"], "dose": [0.1, 0.2, 0.3, 0.4, 0.5]}, index=samples)
    train = np.array([True, True, True, False, True])
    cov, enc = encode_covariates(obs, ["batch", "dose"], train)
    again = encode_covariates_like(obs, enc, "sheet.tsv", unseen_as_reference=True)
    pd.testing.assert_frame_equal(cov, again)
    assert again.loc["s3", "batch[T.b2]"] == 0.0  # b9 -> the reference level b1
    with pytest.raises(InputError, match=r"levels 'b9' .* in samples 's3'.*Leave them out of the batch"):
        encode_covariates_like(obs, enc, "sheet.tsv")
    text = obs.assign(dose=["0.1", "high", "0.3", "0.4", "0.5"])
    with pytest.raises(InputError, match=r"'dose' of sheet.tsv must be numeric.*s1 \('high'\)"):
        encode_covariates_like(text, enc, "sheet.tsv", unseen_as_reference=True)


def _covariate_bundle(tmp_path, coef: list[float], covariate_terms: list[str], encoding: dict) -> Path:
    """A linear bundle on the raw PREDICTORS (intercept 1, ``coef``) and the ``covariate_terms`` of one
    categorical covariate encoded as ``encoding`` says."""
    terms = [*PREDICTORS, *covariate_terms]
    train = _raw(20, seed=4)
    ref = pd.DataFrame({"sample": train.index, **{g: train[g] for g in PREDICTORS},
                        **dict.fromkeys(covariate_terms, 0.0), "prediction": 0.0, "observed": 0.0})
    return write_bundle(tmp_path / "b", target=TARGET, model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": terms, "intercept": 1.0, "coef": coef},
                        preprocessing={"normalization": {"steps": [], "genes": PREDICTORS},
                                       "design": {"predictors": PREDICTORS, "covariates": encoding,
                                                  "interactions": [], "terms": terms}},
                        reference=ref, metrics={}, training_fingerprint="x")


@pytest.mark.parametrize("sheet_suffix", [".tsv", ".h5ad"])
def test_a_batch_sheets_number_like_levels_are_the_training_levels(tmp_path, sheet_suffix):
    """A categorical covariate learnt from a training sheet where one level was text ('high') has the levels
    '001', '2', 'high'; a new batch's own sheet holding only '001' and '2' is all numbers, and was read as 1 and
    2.0, refused as levels the model never saw. The batch's categorical covariates are read as text: the
    predictions equal the linear model computed here with the training encoding (001 the reference)."""
    import anndata as ad

    coef = [0.5, -0.25, 0.75, 2.0, -3.0]  # gA, gB, gC, site[T.2], site[T.high]
    path = _covariate_bundle(tmp_path, coef, ["site[T.2]", "site[T.high]"],
                             {"site": {"type": "categorical", "levels": ["001", "2", "high"], "reference": "001"}})
    new = _raw(4, seed=5)
    src = _write_matrix(new[PREDICTORS], tmp_path / "new.tsv")
    site = ["001", "2", "2", "001"]
    sheet = tmp_path / f"sheet{sheet_suffix}"
    if sheet_suffix == ".tsv":
        sheet.write_text("sample\tsite\n" + "".join(f"{s}\t{v}\n" for s, v in zip(new.index, site)))
    else:  # an .h5ad sheet whose obs column holds the numbers 1 and 2 ('001' is lost there: level 2 only)
        site = ["2"] * 4
        ad.AnnData(obs=pd.DataFrame({"site": [2] * 4}, index=list(new.index))).write_h5ad(sheet)
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out", str(out),
                 "--log", str(tmp_path / "p.log")]) == 0, (tmp_path / "p.log").read_text()
    got = pd.read_csv(out, sep="\t", dtype={"sample": str}).set_index("sample").loc[new.index, "predicted"]
    want = 1.0 + new[PREDICTORS].to_numpy() @ np.array(coef[:3]) + np.where(np.array(site) == "2", coef[3], 0.0)
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-12)


def test_a_covariate_declared_categorical_is_read_from_a_batch_sheet_as_in_training(tmp_path):
    """A model that adjusts for C(plate) (plates 1, 2, 10 as categories): a new batch's sheet that writes the
    plates 2.0 and 10 is read with the training levels (2.0 is level 2), the predictions equal the linear model
    computed here; a plate the model never saw (3) is refused by name."""
    coef = [0.5, -0.25, 0.75, 2.0, -3.0]  # gA, gB, gC, C(plate)[T.2], C(plate)[T.10]
    path = _covariate_bundle(tmp_path, coef, ["C(plate)[T.2]", "C(plate)[T.10]"],
                             {"C(plate)": {"type": "categorical", "levels": ["1", "2", "10"], "reference": "1",
                                           "column": "plate"}})
    new = _raw(4, seed=5)
    src = _write_matrix(new[PREDICTORS], tmp_path / "new.tsv")
    plates = ["2.0", "10", "1", "2"]
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tplate\n" + "".join(f"{s}\t{v}\n" for s, v in zip(new.index, plates)))
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out", str(out),
                 "--log", str(tmp_path / "p.log")]) == 0, (tmp_path / "p.log").read_text()
    got = pd.read_csv(out, sep="\t", dtype={"sample": str}).set_index("sample").loc[new.index, "predicted"]
    effect = {"2.0": coef[3], "2": coef[3], "10": coef[4], "1": 0.0}
    want = 1.0 + new[PREDICTORS].to_numpy() @ np.array(coef[:3]) + np.array([effect[p] for p in plates])
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-12)
    sheet.write_text("sample\tplate\n" + "".join(f"{s}\t{v}\n" for s, v in zip(new.index, ["3", "1", "1", "2"])))
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out",
                 str(tmp_path / "p2.tsv"), "--log", str(tmp_path / "p2.log")]) != 0
    msg = (tmp_path / "p2.log").read_text()
    assert "'C(plate)'" in msg and "'3'" in msg and "never saw" in msg


def test_monitor_warns_on_a_batch_too_small_to_judge(tmp_path, linear_bundle):
    """One sample from the training distribution: the drift tests cannot find a shift in it, so the verdict is
    'warn' with the reason, not a confident 'ok'; monitor.min_samples sets the bar."""
    path, _, _ = linear_bundle
    one = _monitor(tmp_path, path, _raw(1, seed=12), "one")
    assert one["verdict"] == "warn" and any("only 1 sample in the batch" in r for r in one["reasons"])
    src = _write_matrix(_raw(1, seed=12), tmp_path / "one1.tsv")
    assert main(["monitor", "--bundle", str(path), "--input", src, "--truth-from-input",
                 "--thresholds", json.dumps({"min_samples": 1}), "--out-dir", str(tmp_path / "bar1")]) == 0
    assert not any("only 1 sample" in r for r in json.loads((tmp_path / "bar1" / "verdict.json").read_text())["reasons"])


@pytest.mark.parametrize("value", ["x", "0.1", None, True, float("nan"), [0.1]])
def test_thresholds_that_are_not_numbers_are_refused_by_name(value):
    """``gexpred monitor --thresholds`` is JSON a user may write by hand: a value that is not a finite number is a
    ConfigError naming the threshold (it was a ValueError or TypeError from float())."""
    with pytest.raises(ConfigError, match=r"monitor: thresholds are numbers; got psi_warn="):
        Thresholds.from_config({"psi_warn": value})


def test_numeric_thresholds_are_kept():
    t = Thresholds.from_config({"psi_warn": 0.2, "psi_alert": 1, "min_samples": 3})
    assert (t.psi_warn, t.psi_alert, t.min_samples, t.ks_alpha) == (0.2, 1.0, 3.0, Thresholds().ks_alpha)


def test_sigterm_while_writing_a_bundle_removes_its_temporary_directory(tmp_path, monkeypatch):
    """A bundle is built in a hidden directory beside its place; stopped by SIGTERM (with the gexpred command's
    handler) in the middle, that directory is removed and no bundle appears."""
    import os
    import signal

    import gexpred.io
    from gexpred.cli import exit_on_sigterm

    real = gexpred.io.write_table

    def stopped(df, path, index=False):
        real(df, path, index=index)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        exit_on_sigterm()
        monkeypatch.setattr(gexpred.io, "write_table", stopped)
        ref = pd.DataFrame({"sample": ["a", "b"], **{g: 0.0 for g in PREDICTORS}, "prediction": 0.0, "observed": 0.0})
        with pytest.raises(SystemExit) as exc:
            write_bundle(tmp_path / "models" / "b", target=TARGET, model="ols", task="regression", classes=None,
                         model_params={"kind": "linear", "terms": PREDICTORS, "intercept": 0.0, "coef": [1, 1, 1]},
                         preprocessing={}, reference=ref, metrics={}, training_fingerprint="x")
        assert exc.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list((tmp_path / "models").iterdir()) == []


def _logistic_bundle(tmp_path, target: str, classes: list[str], binarize_threshold: float | None = None):
    """A logistic bundle on the raw predictors (no normalization), P(classes[1]) = logistic(-0.2 + 1.5 gA - gB)
    around the training mean; test log-loss 0.45 from 40 test samples."""
    coef = [[-0.2], [1.5], [-1.0], [0.0]]
    train = _raw(150, seed=9)
    p_up = 1 / (1 + np.exp(-(train[PREDICTORS].to_numpy() @ np.array([1.5, -1.0, 0.0]) - 0.2)))
    ref = pd.DataFrame({"sample": train.index, **{g: train[g] for g in PREDICTORS}, f"p[{classes[0]}]": 1 - p_up,
                        f"p[{classes[1]}]": p_up, "prediction": p_up, "observed": classes[1]})
    return write_bundle(tmp_path / target, target=target, model="ols", task="classification", classes=classes,
                        model_params={"kind": "logistic", "terms": PREDICTORS, "classes": classes, "coef": coef},
                        preprocessing={"normalization": {"steps": [], "genes": PREDICTORS},
                                       "design": {"predictors": PREDICTORS, "covariates": {}, "interactions": [],
                                                  "terms": PREDICTORS}},
                        reference=ref, metrics={"test": {"n": 40, "accuracy": 0.8, "log_loss": 0.45}},
                        training_fingerprint="x", test_losses=np.full(40, 0.45),
                        binarize_threshold=binarize_threshold)


def _p_second(batch: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(batch[PREDICTORS].to_numpy() @ np.array([1.5, -1.0, 0.0]) - 0.2)))


def test_prediction_drift_of_three_classes_watches_every_class(tmp_path):
    """With more than two classes the prediction drift watched the probability of the last class alone, which can
    miss a batch that moves samples between the others (an audit). Each class's probability has its row now: the
    KS p-values recomputed with scipy on the probabilities computed here (softmax of the bundle's linear
    predictors), the q-values Benjamini-Hochberg over the three with statsmodels; a binary bundle keeps one row."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    classes = ["A", "B", "C"]
    B = np.array([[-16.0, -16.5], [2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])  # B against A on gA, C against A on gB

    def proba(frame: pd.DataFrame) -> np.ndarray:
        eta = B[0] + frame[PREDICTORS].to_numpy() @ B[1:]
        z = np.column_stack([np.zeros(len(frame)), eta])
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    train = _raw(150, seed=9)
    p_train = proba(train)
    ref = pd.DataFrame({"sample": train.index, **{g: train[g] for g in PREDICTORS},
                        **{f"p[{c}]": p_train[:, k] for k, c in enumerate(classes)},
                        "prediction": p_train[:, -1], "observed": "A"})
    path = write_bundle(tmp_path / "cls", target="cls", model="ols", task="classification", classes=classes,
                        model_params={"kind": "logistic", "terms": PREDICTORS, "classes": classes,
                                      "coef": B.tolist()},
                        preprocessing={"normalization": {"steps": [], "genes": PREDICTORS},
                                       "design": {"predictors": PREDICTORS, "covariates": {}, "interactions": [],
                                                  "terms": PREDICTORS}},
                        reference=ref, metrics={"test": {"n": 40, "accuracy": 0.8, "log_loss": 0.6}},
                        training_fingerprint="x")
    new = _raw(60, seed=12, shift={"gA": 0.8})
    src = _write_matrix(new, tmp_path / "new.tsv")
    assert main(["monitor", "--bundle", str(path), "--input", src, "--out-dir", str(tmp_path / "m")]) == 0
    drift = pd.read_csv(tmp_path / "m" / "drift.tsv", sep="\t").set_index("feature")
    rows = [f"p[{c}]" for c in classes]
    assert list(drift.index[drift["kind"] == "prediction"]) == rows
    p_new = proba(new)
    want_p = [stats.ks_2samp(p_train[:, k], p_new[:, k]).pvalue for k in range(3)]
    np.testing.assert_allclose(drift.loc[rows, "pvalue"], want_p, rtol=1e-9)
    np.testing.assert_allclose(drift.loc[rows, "qvalue"], multipletests(want_p, method="fdr_bh")[1], rtol=1e-9)
    v = json.loads((tmp_path / "m" / "verdict.json").read_text())
    flagged = [r for r in rows if drift.loc[r, "status"] != "ok"]
    assert flagged and v["prediction_drifted"]  # the shift of gA moves samples from A to B
    assert all(f"the model's predicted {r} drifted (KS q = " in " ".join(v["reasons"]) for r in flagged)
    # two classes: P(last class) says it all, one row as before
    two = _logistic_bundle(tmp_path, "state", ["0", "1"])
    assert main(["monitor", "--bundle", str(two), "--input", src, "--out-dir", str(tmp_path / "two")]) == 0
    drift2 = pd.read_csv(tmp_path / "two" / "drift.tsv", sep="\t")
    assert drift2.loc[drift2["kind"] == "prediction", "feature"].tolist() == ["prediction"]


def test_monitor_labels_a_classification_batch_from_its_sample_sheet(tmp_path):
    """What the pipeline passes (--truth-if-measured): a sample sheet with a column named after the target gives the
    truth (labels as the training labels are read: 1.0 is '1'); a sheet with a gap gives the truth of the other
    samples, which are judged, said in the log; one without the column gives none; a class the model does not know
    is refused."""
    path = _logistic_bundle(tmp_path, "state", ["0", "1"])
    new = _raw(40, seed=10)
    src = _write_matrix(new, tmp_path / "new.tsv")
    labels = np.where(np.random.default_rng(3).random(40) < _p_second(new), 1.0, 0.0)

    def monitor(sheet: pd.DataFrame, name: str) -> int:
        sheet.to_csv(tmp_path / f"{name}.tsv", sep="\t", index=False)
        return main(["monitor", "--bundle", str(path), "--input", src, "--sample-sheet", str(tmp_path / f"{name}.tsv"),
                     "--truth-if-measured", "--out-dir", str(tmp_path / name), "--log", str(tmp_path / f"{name}.log")])

    assert monitor(pd.DataFrame({"sample": new.index, "state": labels, "batch": "b1"}), "sheet") == 0
    perf = pd.read_csv(tmp_path / "sheet" / "performance.tsv", sep="\t").set_index("metric")
    p1 = _p_second(new)
    want = -np.mean(np.log(np.where(labels == 1.0, p1, 1 - p1)))
    assert perf.loc["log_loss", "new_batch"] == pytest.approx(want, rel=1e-9)
    assert perf.loc["accuracy", "new_batch"] == pytest.approx(np.mean((p1 > 0.5) == (labels == 1.0)))
    assert json.loads((tmp_path / "sheet" / "verdict.json").read_text())["truth_given"]
    gap = pd.DataFrame({"sample": new.index, "state": np.r_[labels[:-1], np.nan], "batch": "b1"})
    assert monitor(gap, "gap") == 0
    perf = pd.read_csv(tmp_path / "gap" / "performance.tsv", sep="\t").set_index("metric")
    want = -np.mean(np.log(np.where(labels == 1.0, p1, 1 - p1))[:-1])
    assert perf.loc["n", "new_batch"] == 39 and perf.loc["log_loss", "new_batch"] == pytest.approx(want, rel=1e-9)
    assert json.loads((tmp_path / "gap" / "verdict.json").read_text())["n_truth"] == 39
    assert "no 'state' label in 1 of 40 samples" in " ".join((tmp_path / "gap.log").read_text().split())
    assert monitor(pd.DataFrame({"sample": new.index, "batch": "b1"}), "none") == 0
    assert not json.loads((tmp_path / "none" / "verdict.json").read_text())["truth_given"]
    assert monitor(pd.DataFrame({"sample": new.index, "state": 2, "batch": "b1"}), "unknown") == 1
    assert "classes '2' that the model does not know" in " ".join((tmp_path / "unknown.log").read_text().split())
    assert not (tmp_path / "unknown").exists()


def test_a_labels_sheet_without_a_row_for_some_samples_is_a_gap_for_a_model_without_covariates(tmp_path):
    """A model without covariates reads a batch's sheet for its labels only: a sample without a row has no label,
    as one with an empty cell (the accuracy judged on the others, said in the log), and the batch is still predicted and
    monitored (before, the whole batch was refused: 'Sample sheet ... has no row for 1 of the 40 samples'). A
    sheet naming none of the batch's samples is still refused (a wrong file, or a transposed matrix); a model
    with covariates still needs every sample's row."""
    path = _logistic_bundle(tmp_path, "state", ["0", "1"])
    new = _raw(40, seed=10)
    src = _write_matrix(new, tmp_path / "new.tsv")
    labels = np.where(np.random.default_rng(3).random(40) < _p_second(new), 1.0, 0.0)
    pd.DataFrame({"sample": new.index[1:], "state": labels[1:]}).to_csv(tmp_path / "part.tsv", sep="\t", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", src, "--sample-sheet", str(tmp_path / "part.tsv"),
                 "--truth-if-measured", "--out-dir", str(tmp_path / "m"), "--out-predictions",
                 str(tmp_path / "p.tsv"), "--log", str(tmp_path / "m.log")]) == 0
    v = json.loads((tmp_path / "m" / "verdict.json").read_text())
    assert v["truth_given"] and v["n_truth"] == 39 and v["n_samples"] == 40
    assert "no 'state' label in 1 of 40 samples" in " ".join((tmp_path / "m.log").read_text().split())
    got = pd.read_csv(tmp_path / "p.tsv", sep="\t", dtype={"sample": str}).set_index("sample")
    np.testing.assert_allclose(got.loc[new.index, "p[1]"], _p_second(new), rtol=1e-12)
    assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(tmp_path / "part.tsv"),
                 "--out", str(tmp_path / "p2.tsv"), "--log", str(tmp_path / "p2.log")]) == 0
    pd.DataFrame({"sample": ["x1", "x2"], "state": [0, 1]}).to_csv(tmp_path / "other.tsv", sep="\t", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", src, "--sample-sheet", str(tmp_path / "other.tsv"),
                 "--truth-if-measured", "--out-dir", str(tmp_path / "o"), "--log", str(tmp_path / "o.log")]) == 1
    assert "has no row for 40 of the 40 samples" in " ".join((tmp_path / "o.log").read_text().split())
    cov = _covariate_bundle(tmp_path, [0.5, -0.25, 0.75, 2.0], ["site[T.b]"],
                            {"site": {"type": "categorical", "levels": ["a", "b"], "reference": "a"}})
    pd.DataFrame({"sample": new.index[1:], "site": "a"}).to_csv(tmp_path / "site.tsv", sep="\t", index=False)
    assert main(["predict", "--bundle", str(cov), "--input", src, "--sample-sheet", str(tmp_path / "site.tsv"),
                 "--out", str(tmp_path / "p3.tsv"), "--log", str(tmp_path / "p3.log")]) == 1
    said = " ".join((tmp_path / "p3.log").read_text().split())
    assert "has no row for 1 of the 40 samples" in said
    # ... and says where a batch's covariates come from: the workflow reads a batch without new_batch_sheets from
    # the run's sample sheet, and the message named only 'the matrices' and the training sheet (an audit)
    assert "The model adjusts for 'site' (ols.covariates)" in said and "new_batch_sheets" in said, said


def _check_binarized_log_loss(tmp_path, path, new: pd.DataFrame, threshold: float) -> np.ndarray:
    """Monitor a batch measuring the binarized gene gD with the bundle at ``path``: its log-loss equals the one of
    the logistic model's probabilities (numpy) against the cut at ``threshold``; returns the cut."""
    out = tmp_path / "mon"
    assert main(["monitor", "--bundle", str(path), "--input", _write_matrix(new, tmp_path / "new.tsv"),
                 "--truth-if-measured", "--out-dir", str(out)]) == 0
    perf = pd.read_csv(out / "performance.tsv", sep="\t").set_index("metric")
    above, p1 = new["gD"].to_numpy() > threshold, _p_second(new)
    assert perf.loc["log_loss", "new_batch"] == pytest.approx(-np.mean(np.log(np.where(above, p1, 1 - p1))), rel=1e-9)
    return above


def test_monitor_labels_a_batch_measuring_a_binarized_gene_at_the_bundles_threshold(tmp_path):
    """A binarized gene's threshold is kept in the card: a batch measuring the gene (raw scale) is labelled by it,
    as the training labels were (> threshold), and judged; a batch without the gene is monitored without."""
    path = _logistic_bundle(tmp_path, "gD", ["<= 9", "> 9"], binarize_threshold=9.0)
    assert load_bundle(path).card["binarize_threshold"] == 9.0
    new = _raw(40, seed=10)
    above = _check_binarized_log_loss(tmp_path, path, new, 9.0)
    assert 5 < above.sum() < 35
    without = tmp_path / "without"
    assert main(["monitor", "--bundle", str(path), "--input",
                 _write_matrix(new.drop(columns=["gD"]), tmp_path / "w.tsv"), "--truth-if-measured",
                 "--out-dir", str(without)]) == 0
    assert pd.read_csv(without / "performance.tsv", sep="\t").empty
    # a truth table of the gene's expression instead of its classes: refused with the way to give it, the values
    # previewed (not all 40 listed)
    pd.DataFrame({"sample": new.index, "gD": new["gD"]}).to_csv(tmp_path / "values.tsv", sep="\t", index=False)
    assert main(["monitor", "--bundle", str(path), "--input", str(tmp_path / "new.tsv"), "--truth",
                 str(tmp_path / "values.tsv"), "--out-dir", str(tmp_path / "v"), "--log", str(tmp_path / "v.log")]) == 1
    text = " ".join((tmp_path / "v.log").read_text().split())
    assert "has 40 classes the model does not know" in text and "and 35 more" in text
    assert "'gD' is a gene binarized at 9: give its classes, or put the gene in the batch's matrix and use " \
           "--truth-if-measured" in text


def test_monitor_labels_a_binarized_gene_by_the_bundles_own_class_names(tmp_path):
    """A bundle whose classes were named with the threshold rounded (as before the names held it exactly:
    '<= 9' for 9.0000001) labels a batch by its own names, the cut at the exact threshold (numpy here)."""
    path = _logistic_bundle(tmp_path, "gD", ["<= 9", "> 9"], binarize_threshold=9.0000001)
    _check_binarized_log_loss(tmp_path, path, _raw(40, seed=10), 9.0000001)


@pytest.mark.parametrize("training", ["text", "bool"])
def test_a_true_false_covariate_is_read_alike_from_a_tsv_and_an_h5ad_sheet(tmp_path, training):
    """A true/false covariate learnt from a TSV sheet (TRUE/FALSE: a categorical, term treated[T.TRUE]) or from an
    .h5ad sheet (bool: 0/1, term treated) is read from a new batch's sheet of the other format, or with another
    spelling (true, 0/1), by its truth value; the predictions equal the linear model computed here. Both were
    refused ('levels the model never saw' / 'must be numeric')."""
    import anndata as ad

    from gexpred.deploy import encode_covariates_like

    coef = [0.5, -0.25, 0.75, 2.0]
    if training == "text":
        term, enc = "treated[T.TRUE]", {"treated": {"type": "categorical", "levels": ["FALSE", "TRUE"],
                                                      "reference": "FALSE"}}
    else:
        term, enc = "treated", {"treated": {"type": "numeric"}}
    path = _covariate_bundle(tmp_path, coef, [term], enc)
    new = _raw(4, seed=5)
    src = _write_matrix(new[PREDICTORS], tmp_path / "new.tsv")
    treated = [True, False, False, True]
    sheets = {"h5ad": tmp_path / "sheet.h5ad", "tsv": tmp_path / "sheet.tsv", "lower": tmp_path / "lower.tsv",
              "01": tmp_path / "01.tsv"}
    ad.AnnData(obs=pd.DataFrame({"treated": treated}, index=list(new.index))).write_h5ad(sheets["h5ad"])
    for name, words in (("tsv", ("TRUE", "FALSE")), ("lower", ("true", "false")), ("01", ("1", "0"))):
        sheets[name].write_text("sample\ttreated\n" + "".join(f"{s}\t{words[0] if t else words[1]}\n"
                                                              for s, t in zip(new.index, treated)))
    want = 1.0 + new[PREDICTORS].to_numpy() @ np.array(coef[:3]) + np.where(treated, coef[3], 0.0)
    for name, sheet in sheets.items():
        out = tmp_path / f"pred_{name}.tsv"
        assert main(["predict", "--bundle", str(path), "--input", src, "--sample-sheet", str(sheet), "--out",
                     str(out), "--log", str(tmp_path / f"{name}.log")]) == 0, (tmp_path / f"{name}.log").read_text()
        got = pd.read_csv(out, sep="\t", dtype={"sample": str}).set_index("sample").loc[new.index, "predicted"]
        np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-12, err_msg=name)
    # a level training never saw stays refused: a model that only saw TRUE cannot score FALSE
    only = {"treated": {"type": "categorical", "levels": ["TRUE"], "reference": "TRUE"}}
    with pytest.raises(InputError, match=r"levels 'FALSE' the model never saw"):
        encode_covariates_like(pd.DataFrame({"treated": [1.0, 0.0]}, index=["a", "b"]), only, "s.h5ad")
    # and a column that is not true/false is not read as one
    with pytest.raises(InputError, match=r"'1.0', '2.0' the model never saw"):
        encode_covariates_like(pd.DataFrame({"treated": [1.0, 2.0]}, index=["a", "b"]),
                               {"treated": enc["treated"]} if training == "text" else
                               {"treated": {"type": "categorical", "levels": ["FALSE", "TRUE"], "reference": "FALSE"}},
                               "s.h5ad")


def test_conformal_half_width_covers_a_new_draw_with_probability_k_over_n_plus_one():
    """Exchangeable residuals: the interval from the ceil((n + 1) level)-th smallest of n absolute residuals
    covers the next draw with probability exactly k / (n + 1) (rank argument, continuous draws); simulated
    4,000 times at n = 19, level 0.9 (k = 18: 0.9) and level 0.8 on heavy-tailed draws (k = 16: 0.8). Too few
    residuals for the level: an infinite half-width."""
    from gexpred.deploy import conformal_half_width, prediction_interval

    rng = np.random.default_rng(1)
    for level, draw in ((0.9, rng.normal), (0.8, rng.standard_cauchy)):
        hits = 0
        for _ in range(4000):
            r = draw(size=20)
            hits += abs(r[-1]) <= conformal_half_width(r[:-1], level)
        k = np.ceil(20 * level)
        assert abs(hits / 4000 - k / 20) < 3 * np.sqrt(0.1 * 0.9 / 4000) + 0.005
    assert conformal_half_width(np.arange(5.0), 0.9) == np.inf  # ceil(6 x 0.9) = 6 > 5 residuals
    assert conformal_half_width(np.array([3.0, -1.0, np.nan, 2.0, -4.0]), 0.6) == 3.0  # ceil(5 x 0.6) = 3rd of 1,2,3,4
    got = prediction_interval(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.0, 3.0, 6.0]), 0.6,
                              np.array([0.0, 1.0, np.nan]), np.array([0.5, 3.0, 1.0]))
    assert got["half_width"] == 1.0 and got["n_residuals"] == 4  # |r| = .5, 1, 0, 2: ceil(5 x .6) = 3rd = 1
    assert got["test_coverage"] == 0.5 and got["n_test"] == 2


def test_drift_reasons_name_the_predictions_p_value_and_a_constant_inputs_values():
    """The predictions' drift row is one test, so its reason gives its p-value (it read 'q'); an input constant in
    training whose batch mean differs has an infinite shift in training SDs, which the reason gives as the two
    means instead of '+inf training SD' (an audit)."""
    from scipy import stats

    from gexpred.monitor import verdict

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"a": rng.normal(size=80), "c": np.full(80, 2.0)})
    new = pd.DataFrame({"a": rng.normal(3.0, 1.0, 40), "c": np.full(40, 2.5)})
    pred = (rng.normal(size=80), rng.normal(3.0, 1.0, 40))
    drift = drift_table(ref, new, ["a", "c"], Thresholds(), prediction=pred)
    reasons = " | ".join(verdict(drift, None, Thresholds())["reasons"])
    p_pred = stats.ks_2samp(pred[0], pred[1]).pvalue
    assert f"the model's predictions drifted (KS p = {p_pred:.2g}," in reasons, reasons
    assert "input 'c' drifted" in reasons and "mean 2.5, constant 2 in training" in reasons, reasons
    assert "inf" not in reasons


@pytest.mark.parametrize("covered", [40, 56])
def test_a_batch_its_intervals_undercover_is_a_warning(covered):
    """The coverage row's status: 'warn' when the exact one-sided test of fewer covered than the level (here
    binomial, scipy: the spec gives no calibration size; a bundle's is beta-binomial, tested below) is below
    monitor.error_alpha, 'ok' otherwise; a warning names the shares and p in the verdict's
    reasons, whatever the error's row says (an audit: the row only informed, so 40 of 60 inside a 90 % interval
    left the verdict 'ok')."""
    from scipy import stats

    from gexpred.monitor import PERFORMANCE_COLUMNS, interval_coverage, verdict

    interval = {"level": 0.9, "half_width": 1.0, "test_coverage": 0.92}
    truth = np.zeros(60)
    pred = np.where(np.arange(60) < covered, 0.5, 1.5)  # |error| 0.5 inside, 1.5 outside
    row = interval_coverage(interval, truth, pred, alpha=0.05)
    p = stats.binom.cdf(covered, 60, 0.9)
    assert row["new_batch"] == covered / 60 and row["p_value"] == pytest.approx(p, rel=1e-9)
    assert row["status"] == ("warn" if p < 0.05 else "ok") and (covered == 40) == (p < 0.05)
    assert interval_coverage(interval, truth, pred)["status"] == ""  # without alpha: informs only
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=80)})
    drift = drift_table(ref, pd.DataFrame({"a": rng.normal(size=60)}), ["a"], Thresholds())
    perf = pd.DataFrame([{"metric": "mse", "test": 1.0, "new_batch": 1.0, "ratio": 1.0, "p_value": 0.5,
                          "status": "ok"}, row], columns=PERFORMANCE_COLUMNS)
    out = verdict(drift, perf, Thresholds())
    if covered == 40:
        assert out["verdict"] == "warn" and len(out["reasons"]) == 1, out
        assert f"cover {covered / 60:.0%} of the batch's samples against 92% of the test split's" in out["reasons"][0]
        assert f"p = {p:.2g}" in out["reasons"][0] and "(90%)" in out["reasons"][0]
    else:
        assert out["verdict"] == "ok" and out["reasons"] == []


def _beta_binomial_cdf(covered: int, n: int, n_residuals: int, level: float) -> float:
    """P(at most ``covered`` of ``n`` new samples inside a conformal interval calibrated on ``n_residuals`` scores),
    by numerical integration of the binomial over the Beta(k, n_residuals + 1 - k) law of the interval's
    coverage, k = ceil((n_residuals + 1) level) (scipy's quad, binom and beta)."""
    from scipy import integrate, stats

    k = int(np.ceil((n_residuals + 1) * level))
    a, b = k, n_residuals + 1 - k
    value, _ = integrate.quad(lambda t: stats.binom.cdf(covered, n, t) * stats.beta.pdf(t, a, b), 0, 1,
                              epsabs=1e-13, epsrel=1e-11, limit=200)
    return value


def test_the_coverage_test_counts_the_calibrations_own_chance():
    """A conformal interval's coverage is itself random (Beta(k, n + 1 - k) for n calibration residuals): the
    binomial test of the batch's count against the level, which took the coverage as known, warned for batches
    exchangeable with the calibration samples in 15 % of batches of 200 against 80 residuals at a 5 % level (an
    audit; 8 % of batches of 40). The beta-binomial p-value (the binomial over the Beta law, integrated here) holds
    the level: on 4,000 simulated calibrations and batches from one distribution the warnings stay at about 5 %.
    Without the calibration's size (a hand-made spec) the binomial test is kept."""
    from scipy import stats

    from gexpred.monitor import coverage_p_value, interval_coverage

    for covered, n, n_res, level in ((35, 40, 80, 0.95), (170, 200, 80, 0.95), (25, 30, 189, 0.95),
                                     (50, 60, 47, 0.9), (1, 1, 19, 0.95)):
        assert coverage_p_value(covered, n, level, n_res) == pytest.approx(
            _beta_binomial_cdf(covered, n, n_res, level), rel=1e-7, abs=1e-12)
    assert coverage_p_value(35, 40, 0.95) == pytest.approx(stats.binom.cdf(35, 40, 0.95), rel=1e-9)
    rng = np.random.default_rng(1)
    n_res, m, reps = 80, 200, 4000
    k = int(np.ceil((n_res + 1) * 0.95))
    warned = binomial_warned = 0
    for _ in range(reps):
        q = np.sort(np.abs(rng.standard_t(5, n_res)))[k - 1]  # the split-conformal half-width, by numpy
        errors = rng.standard_t(5, m)
        row = interval_coverage({"level": 0.95, "half_width": q, "n_residuals": n_res}, errors, np.zeros(m),
                                alpha=0.05)
        covered = int(np.sum(np.abs(errors) <= q))
        assert row["new_batch"] == covered / m
        warned += row["status"] == "warn"
        binomial_warned += stats.binom.cdf(covered, m, 0.95) < 0.05
    assert warned / reps < 0.065 and binomial_warned / reps > 0.12, (warned / reps, binomial_warned / reps)


def test_neighbour_distance_and_difficulty_against_brute_force():
    """neighbour_distance: the mean of the k smallest Euclidean distances (scipy's cdist) on columns in units of
    their scale, a constant column (scale inf) ignored, in blocks of rows; neighbour_difficulty: a training sample
    against its own fold's training part, a new sample averaged over every fold's."""
    from scipy.spatial.distance import cdist

    from gexpred.deploy import interval_scale, neighbour_difficulty, neighbour_distance

    rng = np.random.default_rng(5)
    R = np.column_stack([rng.normal(0, 1, 40), rng.normal(5, 3, 40), np.full(40, 2.0)])
    X = np.column_stack([rng.normal(0, 2, 7), rng.normal(5, 3, 7), rng.normal(size=7)])
    scale = interval_scale(R)
    assert np.isinf(scale[2]) and scale[0] == pytest.approx(R[:, 0].std())
    want = np.sort(cdist(X[:, :2] / scale[:2], R[:, :2] / scale[:2]), axis=1)[:, :4].mean(axis=1)
    np.testing.assert_allclose(neighbour_distance(R, X, 4, scale, block=3), want, rtol=1e-10)
    folds = np.arange(40) % 4
    d_cv = neighbour_difficulty(R, folds, None, 4, scale)
    for i in (0, 5, 38):
        others = R[folds != folds[i], :2] / scale[:2]
        assert d_cv[i] == pytest.approx(np.sort(cdist(R[[i], :2] / scale[:2], others)[0])[:4].mean(), rel=1e-10)
    d_new = neighbour_difficulty(R, folds, X, 4, scale)
    np.testing.assert_allclose(d_new, np.mean([neighbour_distance(R[folds != f], X, 4, scale) for f in range(4)],
                                              axis=0), rtol=1e-12)


def test_neighbour_distance_memory_does_not_grow_with_the_reference_set():
    """Distances were computed 1,024 rows of the batch at a time against every reference row, in four
    temporaries: 306 MB for 10,000 reference samples (3 GB for 100,000, beside the bundle step's matrix). The block
    now shrinks as the reference grows (NEIGHBOUR_BLOCK_CELLS) and is computed in place: the peak (tracemalloc)
    stays below 100 MB, and the distances are scipy's cdist's."""
    import tracemalloc

    from scipy.spatial.distance import cdist

    from gexpred.deploy import NEIGHBOUR_BLOCK_CELLS, neighbour_distance

    rng = np.random.default_rng(0)
    R, X = rng.normal(size=(10_000, 5)), rng.normal(size=(2_000, 5))
    tracemalloc.start()
    try:
        got = neighbour_distance(R, X, 10, np.ones(5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2 ** 20 and NEIGHBOUR_BLOCK_CELLS * 8 <= 40 * 2 ** 20, peak
    rows = [0, 999, 1999]
    np.testing.assert_allclose(got[rows], np.sort(cdist(X[rows], R), axis=1)[:, :10].mean(axis=1), rtol=1e-10)


def test_neighbour_scaled_intervals_keep_their_coverage_and_follow_a_shifted_batch():
    """A linear model of a curved truth (y = x1 + 0.4 x1^2 + noise), 5-fold CV residuals on 300 samples: on new
    samples from the training distribution both intervals cover about 90 % (split-conformal); on a batch whose x1
    is shifted by 2 SDs, where the model's error grows with the distance from the data, the constant interval
    covers far fewer, the neighbour-scaled one much closer to its level. Coverage counted on 4,000 new samples."""
    from gexpred.deploy import interval_scale, neighbour_difficulty, prediction_interval
    from gexpred.search import cv_ols, kfold

    rng = np.random.default_rng(11)

    def draw(n, shift=0.0):
        X = rng.normal(size=(n, 3))
        X[:, 0] += shift
        return X, X[:, 0] + 0.4 * X[:, 0] ** 2 + rng.normal(0, 0.5, n)

    X, y = draw(300)
    folds = kfold([f"s{i}" for i in range(300)], 5, seed=0)
    oof = cv_ols(X, y, folds)
    A = np.column_stack([np.ones(300), X])
    beta = np.linalg.lstsq(A, y, rcond=None)[0]
    scale = interval_scale(X)
    d_cv = neighbour_difficulty(X, folds, None, 10, scale)
    for shift, lo in ((0.0, 0.87), (2.0, None)):
        Xn, yn = draw(4000, shift)
        pred = np.column_stack([np.ones(4000), Xn]) @ beta
        const = prediction_interval(y, oof, 0.9, yn, pred)
        adapt = prediction_interval(y, oof, 0.9, yn, pred, cv_difficulty=d_cv,
                                    test_difficulty=neighbour_difficulty(X, folds, Xn, 10, scale))
        if lo is not None:
            assert const["test_coverage"] > lo and adapt["test_coverage"] > lo, (const, adapt)
            assert adapt["test_coverage"] < 0.95 and const["test_coverage"] < 0.95
        else:
            assert const["test_coverage"] < 0.75 and adapt["test_coverage"] > const["test_coverage"] + 0.1, \
                (const, adapt)
        assert adapt["method"] == "cv_conformal_neighbours" and const["method"] == "cv_conformal"


def test_neighbour_intervals_of_a_design_with_ties_stay_finite_and_keep_their_coverage(tmp_path):
    """One predictor, a sparse gene: 40 % of the samples are 0, so each of them has 10 neighbours at distance 0.
    Its residual divided by 0 (by the smallest float) made q about 1e307: the zeros' intervals 0 wide, every other
    sample's 1e306 wide, 60 % covered. A difficulty below a quarter of the training samples' mean counts as that quarter
    (card's min_distance); q, the bundle's half-widths and the coverage of 4,000 new samples recomputed with scipy's
    cdist and a sort."""
    from scipy.spatial.distance import cdist

    from gexpred.cli import _bundle_interval
    from gexpred.search import cv_ols, kfold

    rng = np.random.default_rng(0)

    def draw(n):
        x = np.where(rng.random(n) < 0.4, 0.0, rng.normal(2, 1, n))
        return x, 0.5 * x + 0.1 * x ** 2 + rng.normal(0, 0.5, n)

    x, y = draw(300)
    folds = kfold([f"s{i}" for i in range(300)], 5, seed=0)
    oof = cv_ols(x[:, None], y, folds)
    beta = np.polyfit(x, y, 1)
    xn, yn = draw(4000)
    names = [f"s{i}" for i in range(300)]
    cvp = pd.DataFrame({"sample": names, "fold": folds + 1, "observed": y, "predicted": oof})
    got = _bundle_interval(cvp, 0.9, yn, np.polyval(beta, xn), "gZ / ols", "neighbours", 10,
                           reference=pd.DataFrame({"gA": x}, index=names), test_design=xn[:, None])
    sd = x.std()

    def knn(rows, z):
        return np.sort(cdist(z[:, None] / sd, rows[:, None] / sd), axis=1)[:, :10].mean(axis=1)

    d_cv = np.empty(300)
    for f in range(5):
        d_cv[folds == f] = knn(x[folds != f], x[folds == f])
    assert np.sum(d_cv == 0) > 100
    floor = 0.25 * d_cv.mean()
    ratio = np.sort(np.abs(y - oof) / np.maximum(d_cv, floor))
    q = ratio[int(np.ceil(0.9 * 301)) - 1]
    assert got["q"] == pytest.approx(q, rel=1e-9) and got["min_distance"] == pytest.approx(floor, rel=1e-9)
    half = q * np.maximum(np.mean([knn(x[folds != f], xn) for f in range(5)], axis=0), floor)
    inside = np.abs(yn - np.polyval(beta, xn)) <= half
    assert got["test_coverage"] == pytest.approx(inside.mean(), abs=1e-12) and 0.87 < inside.mean() < 0.97
    const = np.sort(np.abs(y - oof))[int(np.ceil(0.9 * 301)) - 1]  # the constant interval's half-width
    assert np.all(half > 0) and np.median(half) < 3 * const, (np.median(half), const)
    ref = pd.DataFrame({"sample": names, "gA": x, "prediction": np.polyval(beta, x), "observed": y})
    path = write_bundle(tmp_path / "gZ" / "ols", target="gZ", model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": ["gA"], "intercept": beta[1], "coef": [beta[0]]},
                        preprocessing={"normalization": {"steps": [], "genes": ["gA", "gZ"]},
                                       "design": {"predictors": ["gA"], "covariates": {}, "interactions": [],
                                                  "terms": ["gA"]}},
                        reference=ref, metrics={}, training_fingerprint="x", interval=got)
    np.testing.assert_allclose(load_bundle(path).half_widths(xn[:50, None]), half[:50], rtol=1e-9)


def test_conformal_prediction_sets_hold_the_class_at_their_level():
    """Least-ambiguous sets: the threshold is 1 - the ceil((n + 1) level)-th smallest 1 - p(true class) over the
    calibration samples (numpy sort); on 5,000 new samples whose classes are drawn from their probabilities the
    sets hold the class of ~90 % (the level), an ambiguous sample's set has more classes than a sure one's, and
    the batch's coverage row and its beta-binomial p follow the sets."""
    from gexpred.deploy import prediction_sets, set_members
    from gexpred.monitor import set_coverage

    rng = np.random.default_rng(4)

    def draw(n):
        logits = rng.normal(size=(n, 3)) * rng.choice([0.3, 3.0], size=(n, 1))  # half unsure, half sure
        P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        codes = np.array([rng.choice(3, p=p) for p in P])
        return P, codes

    P, codes = draw(300)
    Pn, codes_n = draw(5000)
    got = prediction_sets(codes, P, 0.9, codes_n, Pn)
    scores = np.sort(1 - P[np.arange(300), codes])
    threshold = 1 - scores[int(np.ceil(0.9 * 301)) - 1]
    assert got["threshold"] == pytest.approx(threshold, rel=1e-12) and got["method"] == "cv_conformal_lac"
    inside = Pn >= threshold
    assert got["test_coverage"] == pytest.approx(inside[np.arange(5000), codes_n].mean(), abs=1e-12)
    assert 0.87 < got["test_coverage"] < 0.93, got
    assert got["test_mean_size"] == pytest.approx(inside.sum(axis=1).mean(), abs=1e-12)
    np.testing.assert_array_equal(set_members(got, Pn), inside)
    sure = Pn.max(axis=1) > 0.9
    assert inside[sure].sum(axis=1).mean() < inside[~sure].sum(axis=1).mean()
    row = set_coverage(got, codes_n[:40], Pn[:40], alpha=0.05)
    k = int(inside[np.arange(40), codes_n[:40]].sum())
    assert row["metric"] == "set_coverage (90%)" and row["new_batch"] == k / 40
    # the sets' coverage is calibrated on the 300 samples: beta-binomial (numerical integration here)
    assert row["p_value"] == pytest.approx(_beta_binomial_cdf(k, 40, 300, 0.9), rel=1e-7)
    assert row["status"] == ("warn" if row["p_value"] < 0.05 else "ok")
    few = prediction_sets(codes[:5], P[:5], 0.9, codes_n, Pn)  # ceil(6 x 0.9) = 6 > 5: every class
    assert few["threshold"] == -np.inf and few["test_coverage"] == 1.0


@pytest.mark.parametrize("case", ["constant", "near_half", "three_classes"])
def test_conformal_prediction_sets_keep_a_class_that_ties_with_the_threshold(case):
    """LAC sets hold every class whose score 1 - p is at most q, the ceil((n + 1) level)-th smallest score:
    recomputed in exact rational arithmetic (fractions). A class tied with the threshold is in the set: the
    threshold was 1 - q in floats, and 1 - (1 - 0.3) = 0.30000000000000004 > 0.3, so a model with one
    probability for every sample (0.3 / 0.7, 70 % of the second class) left the first class out of every set
    and covered 70 % at level 0.95 instead of every sample. Also a binary model unsure of every sample
    (probabilities within 1e-3 of 0.5) and three classes, the new samples' probabilities copied from the
    calibration samples' (exact ties); the fewest samples for the level (19 at 0.95) and one fewer."""
    from fractions import Fraction

    from gexpred.deploy import prediction_sets, set_members
    from gexpred.monitor import set_coverage

    rng = np.random.default_rng(7)
    if case == "constant":
        P = np.tile([0.3, 0.7], (100, 1))
        codes = np.r_[np.zeros(30, dtype=int), np.ones(70, dtype=int)]
    elif case == "near_half":
        d = rng.uniform(-1e-3, 1e-3, 100)
        P = np.column_stack([0.5 - d, 0.5 + d])
        codes = rng.integers(0, 2, 100)
    else:
        logits = rng.normal(size=(100, 3))
        P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        codes = rng.integers(0, 3, 100)
    level = 0.95
    new = rng.integers(0, 100, 60)  # new samples: copies of calibration samples' probabilities and classes
    Pn, codes_n = P[new], codes[new]
    got = prediction_sets(codes, P, level, codes_n, Pn)
    scores = sorted(1 - Fraction(float(P[i, c])) for i, c in enumerate(codes))
    q = scores[int(np.ceil(level * 101)) - 1]
    want = np.array([[1 - Fraction(float(v)) <= q for v in row] for row in Pn])
    members = set_members(got, Pn)
    np.testing.assert_array_equal(members, want)
    covered = want[np.arange(60), codes_n]
    assert got["test_coverage"] == covered.mean() and got["test_mean_size"] == want.sum(axis=1).mean()
    assert set_coverage(got, codes_n, Pn, alpha=0.05)["new_batch"] == covered.mean()
    if case == "constant":
        assert covered.all() and want.all()  # every score (0.3 or 0.7) is at most q = 0.7
    for n, finite in ((19, True), (18, False)):  # ceil(20 x 0.95) = 19 <= 19; ceil(19 x 0.95) = 19 > 18
        few = prediction_sets(codes[:n], P[:n], level, codes_n, Pn)
        lowest = min(float(P[i, c]) for i, c in enumerate(codes[:n]))  # the 19th smallest score of 19
        assert few["threshold"] == (lowest if finite else -np.inf) and few["n_residuals"] == n


def test_too_few_cross_validation_residuals_for_the_level_leave_the_bundle_without_an_interval(tmp_path, caplog):
    """At level 0.99 a split-conformal interval needs n >= 0.99 / 0.01 = 99 residuals (ceil((n + 1) 0.99) <= n);
    with 80 the half-width is infinite, which card.json (JSON without inf) could not hold: the bundle step crashed
    with 'Out of range float values are not JSON compliant'. Now the bundle is written without an interval and
    the log says how many residuals the level needs; at 99 residuals the half-width is the largest |residual|."""
    from fractions import Fraction

    from gexpred.cli import _bundle_interval, _conformal_min_n

    for level, want in ((0.95, 19), (0.99, 99), (0.9, 9), (0.8, 4), (0.5, 1)):
        f = Fraction(level).limit_denominator(1000)
        assert _conformal_min_n(level) == int(np.ceil(f / (1 - f))) == want
    rng = np.random.default_rng(3)
    obs = rng.normal(size=99)
    cvp = pd.DataFrame({"sample": [f"s{i}" for i in range(99)], "observed": obs, "predicted": np.zeros(99)})
    with caplog.at_level("WARNING"):
        assert _bundle_interval(cvp.iloc[:80], 0.99, np.zeros(5), np.zeros(5), "gD / ols") is None
    assert "80 cross-validation residuals are too few for a 99% prediction interval (it needs at least 99" \
        in caplog.text
    got = _bundle_interval(cvp, 0.99, np.array([0.0, 10.0]), np.zeros(2), "gD / ols")
    assert got["half_width"] == np.max(np.abs(obs)) and got["test_coverage"] == 0.5
    ref = pd.DataFrame({"sample": ["a", "b"], "gA": [0.0, 1.0], "prediction": [0.0, 1.0], "observed": [0.0, 1.0]})
    path = write_bundle(tmp_path / "gD" / "ols", target="gD", model="ols", task="regression", classes=None,
                        model_params={"kind": "linear", "terms": ["gA"], "intercept": 0.0, "coef": [1.0]},
                        preprocessing={"normalization": {}, "design": {}}, reference=ref, metrics={},
                        training_fingerprint="x", interval=None)
    assert "interval" not in json.loads((path / "card.json").read_text())
