"""Tests of gexpred.design: predictor choice on the training split, design checks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from gexpred.design import PREDICTOR_COLUMNS, check_design, predictors_for, select_predictors
from gexpred.errors import ConfigError, ModelError


@pytest.fixture
def expr() -> tuple[np.ndarray, list[str], np.ndarray]:
    """30 samples x 12 genes; T1 and T2 are targets driven by a few genes."""
    rng = np.random.default_rng(1)
    n, g = 30, 12
    X = rng.normal(size=(n, g))
    genes = [f"G{j}" for j in range(g)]
    genes[0], genes[1] = "T1", "T2"
    X[:, 0] = 2 * X[:, 3] - X[:, 5] + 0.5 * X[:, 8] + 0.3 * rng.normal(size=n)
    X[:, 1] = -X[:, 4] + 0.8 * X[:, 0] + 0.3 * rng.normal(size=n)
    train = np.arange(n) < 20
    return X, genes, train


def _expected_top(X: np.ndarray, genes: list[str], target: str, k: int, candidates=None) -> list[str]:
    t = genes.index(target)
    C = np.corrcoef(X, rowvar=False)[t]
    pool = [j for j, g in enumerate(genes) if g != target and (candidates is None or g in candidates)]
    return [genes[j] for j in sorted(pool, key=lambda j: -abs(C[j]))[:k]]


def test_top_correlated_on_training_rows(expr):
    X, genes, train = expr
    k = 4
    table = select_predictors(X[train], genes, ["T1", "T2"], {"top_correlated": k})
    assert list(table.columns) == PREDICTOR_COLUMNS
    for t in ("T1", "T2"):
        chosen = predictors_for(table, t)
        assert chosen == _expected_top(X[train], genes, t, k)
        assert t not in chosen
        sub = table[table["target"] == t].sort_values("rank")
        assert sub["rank"].tolist() == list(range(1, k + 1))
        C = np.corrcoef(X[train], rowvar=False)
        exp_r = [C[genes.index(t), genes.index(g)] for g in chosen]
        np.testing.assert_allclose(sub["train_corr"].to_numpy(), exp_r, rtol=1e-10)
        assert (np.diff(np.abs(sub["train_corr"].to_numpy())) <= 0).all()
    # another target may be a predictor
    assert "T1" in predictors_for(table, "T2")


def test_top_correlated_ignores_non_training_rows(expr):
    X, genes, train = expr
    spec = {"top_correlated": 3}
    base = select_predictors(X[train], genes, ["T1"], spec)
    # a test-split perturbation that would make G11 the best predictor if it were looked at
    X2 = X.copy()
    X2[~train, genes.index("G11")] = X2[~train, 0] * 100
    X2[~train, genes.index("G3")] = -X2[~train, 0]
    assert "G11" in _expected_top(X2, genes, "T1", 3)  # on all rows the choice would differ
    again = select_predictors(X2[train], genes, ["T1"], spec)
    pd.testing.assert_frame_equal(base, again)
    assert "G11" not in predictors_for(again, "T1")


def test_top_correlated_from_candidates_list_and_file(tmp_path, expr):
    X, genes, train = expr
    cands = ["G5", "G6", "G7", "G8", "T1", "NOT_A_GENE"]
    table = select_predictors(X[train], genes, ["T1"], {"top_correlated": 2, "from": cands})
    assert predictors_for(table, "T1") == _expected_top(X[train], genes, "T1", 2, candidates=set(cands))
    f = tmp_path / "tfs.txt"
    f.write_text("# transcription factors\n" + "\n".join(cands) + "\n")
    from_file = select_predictors(X[train], genes, ["T1"], {"top_correlated": 2, "from": str(f)})
    pd.testing.assert_frame_equal(table, from_file)


def test_top_correlated_more_than_available(expr, caplog):
    X, genes, train = expr
    with caplog.at_level(logging.WARNING):
        table = select_predictors(X[train], genes, ["T1"], {"top_correlated": 3, "from": ["G3", "T1", "G4"]})
    assert sorted(predictors_for(table, "T1")) == ["G3", "G4"]
    assert "fewer than top_correlated" in caplog.text


def test_constant_and_near_constant_candidates_never_chosen(expr):
    X, genes, train = expr
    X = X.copy()
    X[:, genes.index("G9")] = 0.1  # constant, with rounding noise in its mean
    X[:, genes.index("G10")] = 5.0
    table = select_predictors(X[train], genes, ["T1"], {"top_correlated": 11})
    chosen = predictors_for(table, "T1")
    assert "G9" not in chosen and "G10" not in chosen and len(chosen) == 9


def test_constant_target_rejected(expr):
    X, genes, train = expr
    X = X.copy()
    X[:, 0] = 0.7
    with pytest.raises(ConfigError, match="T1"):
        select_predictors(X[train], genes, ["T1"], {"top_correlated": 2})


@pytest.mark.parametrize("spec", [{"top_correlated": 0}, {"top_correlated": -2}, {"top_correlated": "5"},
                                  {"top": 5}, {"top_correlated": 3, "form": ["G3"]}, "G3", 5])
def test_bad_spec_is_config_error(expr, spec):
    X, genes, train = expr
    with pytest.raises(ConfigError):
        select_predictors(X[train], genes, ["T1"], spec)


def test_explicit_list(expr):
    X, genes, train = expr
    table = select_predictors(X[train], genes, ["T1", "T2"], ["G3", "G5", "G8"])
    for t in ("T1", "T2"):
        assert predictors_for(table, t) == ["G3", "G5", "G8"]
        C = np.corrcoef(X[train], rowvar=False)
        np.testing.assert_allclose(table[table.target == t]["train_corr"],
                                   [C[genes.index(t), genes.index(g)] for g in ["G3", "G5", "G8"]], rtol=1e-10)


def test_explicit_list_missing_gene_named(expr):
    X, genes, train = expr
    with pytest.raises(ConfigError, match="BSU99999"):
        select_predictors(X[train], genes, ["T1"], ["G3", "BSU99999"])


def test_target_listed_as_predictor(expr):
    X, genes, train = expr
    with pytest.raises(ConfigError, match="T1"):
        select_predictors(X[train], genes, ["T1"], ["G3", "T1"])


def test_explicit_list_duplicates_and_empty(expr):
    X, genes, train = expr
    with pytest.raises(ConfigError, match="G3"):
        select_predictors(X[train], genes, ["T1"], ["G3", "G4", "G3"])
    with pytest.raises(ConfigError):
        select_predictors(X[train], genes, ["T1"], [])


def test_unknown_target_named(expr):
    X, genes, train = expr
    with pytest.raises(ConfigError, match="NOPE"):
        select_predictors(X[train], genes, ["NOPE"], {"top_correlated": 2})


# ----------------------------------------------------------------------------- check_design
def test_check_design_drops_constant_predictors(caplog):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4))
    X[:, 1] = 3.0
    X[:, 3] = 0.1  # constant up to rounding
    with caplog.at_level(logging.WARNING):
        Xk, names = check_design(X, ["a", "b", "c", "d"], "T")
    assert names == ["a", "c"]
    np.testing.assert_array_equal(Xk, X[:, [0, 2]])
    assert "'b'" in caplog.text and "'d'" in caplog.text


def test_check_design_passes_good_design_unchanged():
    X = np.random.default_rng(1).normal(size=(5, 3))  # n = p + 2: just enough
    Xk, names = check_design(X, ["a", "b", "c"], "T")
    np.testing.assert_array_equal(Xk, X)
    assert names == ["a", "b", "c"]


def test_check_design_too_few_samples():
    X = np.random.default_rng(2).normal(size=(4, 3))  # n = p + 1 < p + 2
    with pytest.raises(ModelError, match="'T'") as exc:
        check_design(X, ["a", "b", "c"], "T")
    assert "4 training samples" in str(exc.value)


def test_check_design_all_constant():
    with pytest.raises(ModelError):
        check_design(np.ones((10, 2)), ["a", "b"], "T")


def test_check_design_collinear_names_culprit():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 4))
    X[:, 2] = 2 * X[:, 0] - X[:, 1] + 5  # c is a combination of a, b and the intercept
    with pytest.raises(ModelError, match="collinear") as exc:
        check_design(X, ["a", "b", "c", "d"], "T")
    msg = str(exc.value)
    assert "'c'" in msg and "1 redundant" in msg
    # a duplicated gene
    Y = rng.normal(size=(20, 3))
    Y = np.column_stack([Y, Y[:, 1]])
    with pytest.raises(ModelError, match="'dup'"):
        check_design(Y, ["a", "b", "c", "dup"], "T")


# --------------------------------------------------------------------------- covariates and interactions
def test_covariates_match_statsmodels_formula():
    """Treatment contrasts and interaction terms give the same fit as statsmodels' formula API (patsy)."""
    import statsmodels.formula.api as smf

    from gexpred.design import build_design, encode_covariates
    from gexpred.ols import fit_ols

    rng = np.random.default_rng(5)
    n = 90
    samples = [f"s{i}" for i in range(n)]
    expr = pd.DataFrame(rng.normal(size=(n, 3)), index=samples, columns=["gA", "gB", "gC"])
    obs = pd.DataFrame({"batch": rng.choice(["b2", "b1", "b3"], n), "age": rng.uniform(20, 60, n)}, index=samples)
    y = (expr["gA"] - 0.5 * expr["gB"] + 0.8 * expr["gA"] * expr["gB"] + (obs["batch"] == "b3") * 1.5
         + 0.02 * obs["age"] + rng.normal(0, 0.3, n))
    train = np.ones(n, dtype=bool)
    cov, enc = encode_covariates(obs, ["batch", "age"], train)
    assert list(cov.columns) == ["batch[T.b2]", "batch[T.b3]", "age"]
    assert enc["batch"] == {"type": "categorical", "levels": ["b1", "b2", "b3"], "reference": "b1"}
    X = build_design(expr, ["gA", "gB"], cov, [["gA", "gB"]])
    assert list(X.columns) == ["gA", "gB", "batch[T.b2]", "batch[T.b3]", "age", "gA:gB"]
    ours = fit_ols(X.to_numpy(), y.to_numpy(), list(X.columns)).table().set_index("term")
    df = pd.concat([expr, obs], axis=1).assign(y=y)
    ref = smf.ols("y ~ gA + gB + C(batch) + age + gA:gB", data=df).fit()
    rename = {"Intercept": "const", "C(batch)[T.b2]": "batch[T.b2]", "C(batch)[T.b3]": "batch[T.b3]"}
    for term, coef in ref.params.items():
        np.testing.assert_allclose(ours.loc[rename.get(term, term), "coef"], coef, rtol=1e-9)
        np.testing.assert_allclose(ours.loc[rename.get(term, term), "std_err"], ref.bse[term], rtol=1e-9)


def test_a_covariate_declared_categorical_matches_statsmodels_c():
    """C(plate) makes a column of numbers (plates 1, 2, 10) categorical, as statsmodels' formula C() does: the
    same terms, named the same, levels ordered by value (10 after 2), and the same fit; an .h5ad-style float
    column (2.0) gives the same levels. Without C() the column is one slope over the codes."""
    import statsmodels.formula.api as smf

    from gexpred.design import build_design, encode_covariates
    from gexpred.ols import fit_ols

    rng = np.random.default_rng(8)
    n = 60
    samples = [f"s{i}" for i in range(n)]
    expr = pd.DataFrame(rng.normal(size=(n, 2)), index=samples, columns=["gA", "gB"])
    plate = rng.choice([1, 2, 10], n)
    obs = pd.DataFrame({"plate": plate}, index=samples)
    y = expr["gA"] + np.where(plate == 10, 2.0, np.where(plate == 2, -1.0, 0.0)) + rng.normal(0, 0.3, n)
    train = np.ones(n, dtype=bool)
    cov, enc = encode_covariates(obs, ["C(plate)"], train)
    assert list(cov.columns) == ["C(plate)[T.2]", "C(plate)[T.10]"]
    assert enc["C(plate)"] == {"type": "categorical", "levels": ["1", "2", "10"], "reference": "1", "column": "plate"}
    X = build_design(expr, ["gA", "gB"], cov, [])
    ours = fit_ols(X.to_numpy(), y.to_numpy(), list(X.columns)).table().set_index("term")
    ref = smf.ols("y ~ gA + gB + C(plate)", data=pd.concat([expr, obs], axis=1).assign(y=y)).fit()
    for term, coef in ref.params.items():
        np.testing.assert_allclose(ours.loc[{"Intercept": "const"}.get(term, term), "coef"], coef, rtol=1e-9)
        np.testing.assert_allclose(ours.loc[{"Intercept": "const"}.get(term, term), "std_err"], ref.bse[term],
                                   rtol=1e-9)
    cov_f, enc_f = encode_covariates(obs.astype(float), ["C(plate)"], train)
    assert enc_f == enc and cov_f.equals(cov)
    numeric, _ = encode_covariates(obs, ["plate"], train)
    assert list(numeric.columns) == ["plate"]


@pytest.mark.parametrize("covariate, levels", [("const", None), ("const", ["a", "b"])])
def test_design_terms_may_not_take_the_intercepts_name(covariate, levels):
    """A covariate named 'const' (numeric: term 'const'; categorical: 'const[T.b]') would pass for the intercept
    in every table and be left out of the multiple-testing correction: refused, saying how to fix it."""
    from gexpred.design import build_design, encode_covariates

    samples = [f"s{i}" for i in range(6)]
    expr = pd.DataFrame(np.arange(12.0).reshape(6, 2) % 5, index=samples, columns=["gA", "gB"])
    values = [1.0, 2.0, 4.0, 3.0, 0.0, 5.0] if levels is None else levels * 3
    cov, _ = encode_covariates(pd.DataFrame({covariate: values}, index=samples), [covariate], np.ones(6, bool))
    with pytest.raises(ConfigError, match="name of the intercept.*Rename the covariate"):
        build_design(expr, ["gA"], cov)


def test_an_interaction_listed_twice_is_named():
    """[gB, gA] and [gA, gB] are one product: refused naming both spellings, not as 'collinear predictors'."""
    from gexpred.design import build_design

    expr = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 2)), columns=["gA", "gB"])
    with pytest.raises(ConfigError, match=r"lists the product gA:gB twice \(as \['gB', 'gA'\] and \['gA', 'gB'\]\)"):
        build_design(expr, ["gA", "gB"], None, [["gB", "gA"], ["gA", "gB"]])
    assert list(build_design(expr, ["gA", "gB"], None, [["gA", "gA"], ["gA", "gB"]]).columns) == \
        ["gA", "gB", "gA:gA", "gA:gB"]


def test_is_intercept_marks_binary_and_multinomial_intercepts_only():
    from gexpred.ols import is_intercept

    terms = ["const", "const[1]", "const[up]", "gA", "gA[1]", "constant", "x:const_"]
    assert is_intercept(terms).tolist() == [True, True, True, False, False, False, False]


def test_covariate_errors():
    from gexpred.design import encode_covariates
    from gexpred.errors import ConfigError

    obs = pd.DataFrame({"batch": ["a", None, "b"]}, index=["s1", "s2", "s3"])
    with pytest.raises(ConfigError, match="'batch'.*missing.*'s2'"):
        encode_covariates(obs, ["batch"], np.ones(3, dtype=bool))
    with pytest.raises(ConfigError, match="'nope'"):
        encode_covariates(obs, ["nope"], np.ones(3, dtype=bool))


def test_a_level_written_na_is_refused_saying_that_na_reads_as_missing(tmp_path):
    """'NA' (North America) in a sheet is a missing value, as in R; the refusal said only that the covariate is
    missing and to fill in the values, which the user had done. It now names the words that read as missing
    (every one of the reader's, gexpred.io.TEXT_NA) and how to spell such a level, at fit and at deploy time."""
    from gexpred.deploy import encode_covariates_like
    from gexpred.design import MISSING_WORDS, encode_covariates
    from gexpred.errors import InputError
    from gexpred.io import TEXT_NA, read_sample_sheet

    assert sorted(w for w in TEXT_NA if w) == sorted(MISSING_WORDS.replace(" or ", ", ").split(", "))
    path = tmp_path / "sheet.tsv"
    path.write_text("sample\tregion\ns1\tEU\ns2\tNA\ns3\tAS\n")
    sheet = read_sample_sheet(path)
    with pytest.raises(ConfigError) as info:
        encode_covariates(sheet, ["region"], np.ones(3, dtype=bool))
    msg = " ".join(str(info.value).split())
    assert "missing for 1 sample, e.g. 's2'" in msg and "NA, NaN, nan, N/A, NULL or null, which read as missing" in msg
    assert "'NA' for North America, must be spelt otherwise" in msg
    enc = {"region": {"type": "categorical", "levels": ["AS", "EU"], "reference": "AS"}}
    with pytest.raises(InputError, match=r"'s2' .*NA, NaN.*read as missing.*spelt otherwise"):
        encode_covariates_like(sheet, enc, "sheet.tsv")


def test_required_genes_added_to_every_target():
    from gexpred.design import select_predictors

    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 6))
    genes = [f"g{i}" for i in range(6)]
    table = select_predictors(X, genes, ["g0", "g5"], {"top_correlated": 2}, required=["g4", "g5"])
    for t in ["g0", "g5"]:
        chosen = table[table["target"] == t].sort_values("rank")["gene"].tolist()
        assert "g4" in chosen and t not in chosen
        assert chosen.index("g4") >= min(2, chosen.index("g4"))  # appended after the top-K unless chosen
    assert "g5" in table[table["target"] == "g0"]["gene"].tolist()


def test_absent_genes_say_why_dropped_or_near_match():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    genes = ["G1", "G2", "Abc"]
    with pytest.raises(ConfigError) as e:
        select_predictors(X, genes, ["G0"], {"top_correlated": 1}, "the data",
                          dropped={"G0": "not measured in every stacked matrix (a.tsv)"})
    msg = " ".join(str(e.value).split())
    assert "'G0' was dropped while collecting the data" in msg and "not measured in every stacked matrix (a.tsv)" in msg
    assert "results/data/dropped.tsv" in msg and "spelling" not in msg
    with pytest.raises(ConfigError) as e:
        select_predictors(X, genes, ["G1"], ["abc"], "the data")
    msg = " ".join(str(e.value).split())
    assert "Predictor gene 'abc' is not in the data" in msg and "'abc' -> 'Abc'" in msg


def test_genome_design_holds_predictors_covariates_and_products():
    """The shared design of genome-wide mode: the predictors, treatment dummies of a categorical covariate with
    levels from the training samples, a numeric covariate, and products, in that order (as statsmodels' formula
    interface names them)."""
    from gexpred.design import genome_design

    rng = np.random.default_rng(0)
    n = 12
    values = rng.normal(size=(n, 2))
    samples = [f"s{i}" for i in range(n)]
    batch = np.array(["b", "a", "c"])[np.arange(n) % 3]
    age = rng.normal(40, 5, n)
    obs = pd.DataFrame({"batch": batch, "age": age}, index=samples).iloc[::-1]  # any row order
    train = np.arange(n) < 9
    design = {"predictors": ["gA", "gB"], "covariates": ["batch", "age"], "interactions": [["gA", "age"]]}
    X = genome_design(values, samples, design, train, obs)
    assert list(X.columns) == ["gA", "gB", "batch[T.b]", "batch[T.c]", "age", "gA:age"]
    want = np.column_stack([values, batch == "b", batch == "c", age, values[:, 0] * age]).astype(float)
    np.testing.assert_array_equal(X.to_numpy(), want)
    plain = genome_design(values, samples, {"predictors": ["gA", "gB"]}, train)
    np.testing.assert_array_equal(plain.to_numpy(), values)


def test_check_genome_terms_refuses_what_a_shared_design_cannot_hold():
    from gexpred.design import check_genome_terms

    genes = ["gA", "gB", "gC"]
    check_genome_terms(["gA", "gB"], ["age"], [["gA", "gB"], ["gA", "age"]], genes, {"age"})
    with pytest.raises(ConfigError, match=r"'gC'.*neither shared predictors nor numeric covariates"):
        check_genome_terms(["gA", "gB"], [], [["gA", "gC"]], genes, set())
    with pytest.raises(ConfigError, match=r"'batch'.*neither"):  # a categorical covariate has no single column
        check_genome_terms(["gA", "gB"], ["batch"], [["gA", "batch"]], genes, set())
    with pytest.raises(ConfigError, match=r"Covariates 'gC'.*also gene ids"):
        check_genome_terms(["gA", "gB"], ["gC"], [], genes, set())


def test_ids_that_differ_only_by_a_version_suffix_are_named_as_close_matches(tmp_path, caplog):
    # Ensembl ids with versions in the matrix, without in the config or the candidates file (or the reverse)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 4))
    genes = ["ENSG00000141510.17", "ENSG00000136997.21", "ENSG00000102145.15", "ENSG00000111640"]
    with pytest.raises(ConfigError) as e:
        select_predictors(X, genes, ["ENSG00000141510"], {"top_correlated": 1}, "the data")
    msg = " ".join(str(e.value).split())
    assert "'ENSG00000141510' -> 'ENSG00000141510.17'" in msg and "version suffix" in msg
    tfs = tmp_path / "tfs.txt"
    tfs.write_text("ENSG00000136997\nENSG00000102145\n")
    with pytest.raises(ConfigError) as e:
        select_predictors(X, genes, ["ENSG00000141510.17"], {"top_correlated": 1, "from": str(tfs)}, "the data")
    msg = " ".join(str(e.value).split())
    assert "None of the candidate predictors" in msg and "'ENSG00000136997' -> 'ENSG00000136997.21'" in msg
    # some candidates present: the warning names the close matches of the skipped ones
    tfs.write_text("ENSG00000136997\nENSG00000102145.15\nENSG00000111640.3\n")
    with caplog.at_level(logging.WARNING):
        table = select_predictors(X, genes, ["ENSG00000141510.17"], {"top_correlated": 1, "from": str(tfs)})
    assert table["gene"].tolist() == ["ENSG00000102145.15"]
    assert "'ENSG00000111640.3' -> 'ENSG00000111640'" in caplog.text
    # a case or quoting difference keeps its own hint
    with pytest.raises(ConfigError) as e:
        select_predictors(X, genes, ["ensg00000141510.17"], {"top_correlated": 1}, "the data")
    assert "case-sensitive" in str(e.value) and "version" not in str(e.value)


def test_infinite_numeric_covariate_is_refused_naming_the_sample(tmp_path):
    """A sample sheet's 'Inf' or '-inf' reads as an infinite number: the covariate then looked constant to
    check_design (its SD is NaN) and vanished from the design with the warning 'constant over the training
    samples'; in a test sample it made the prediction infinite. Refused, naming the covariate and the samples."""
    from gexpred.design import encode_covariates
    from gexpred.io import read_sample_sheet

    rows = "".join(f"S{i}\t{v}\n" for i, v in enumerate(["1", "2", "Inf", "4", "-inf", "6"]))
    (tmp_path / "sheet.tsv").write_text("sample\tdose\n" + rows)
    obs = read_sample_sheet(tmp_path / "sheet.tsv")
    assert pd.api.types.is_numeric_dtype(obs["dose"])
    with pytest.raises(ConfigError) as info:
        encode_covariates(obs, ["dose"], np.ones(6, dtype=bool), "the sample sheet 'sheet.tsv'")
    msg = str(info.value)
    assert "'dose'" in msg and "'sheet.tsv'" in msg and "'S2'" in msg and "'S4'" in msg and "2 samples" in msg
    # declared categorical, the same cells are levels (text), as any other code
    cov, enc = encode_covariates(obs, ["C(dose)"], np.ones(6, dtype=bool))
    assert np.isfinite(cov.to_numpy()).all() and "inf" in enc["C(dose)"]["levels"]


@pytest.mark.parametrize("bad", [["1e999"], ["n/a2", "12x", "7.5.1"]])
def test_a_covariate_of_numbers_with_cells_that_are_not_numbers_is_refused(tmp_path, caplog, bad):
    """A sample-sheet column of numbers with cells pandas cannot read as a number ('1e999' overflows a float, a
    stray 'n/a2') became categorical, silently when fewer than 80 % were numbers: as a covariate it entered the
    model as one level per distinct dose. The reader now logs it whatever the share, and a covariate that is at
    least half numbers is refused naming the cells and both fixes; C(dose) takes it as categories."""
    from gexpred.design import encode_covariates
    from gexpred.io import read_sample_sheet

    doses = [str(0.5 * i) for i in range(6 - len(bad))] + bad  # 5 of 6, or 3 of 6, numbers
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("sample\tdose\n" + "".join(f"s{i}\t{d}\n" for i, d in enumerate(doses)))
    with caplog.at_level(logging.WARNING, logger="gexpred.io"):
        obs = read_sample_sheet(sheet)
    assert f"column 'dose' holds numbers but for {len(bad)} value" in caplog.text
    train = np.ones(len(doses), dtype=bool)
    with pytest.raises(ConfigError) as info:
        encode_covariates(obs, ["dose"], train, f"sample sheet '{sheet}'")
    msg = str(info.value)
    assert str(sheet) in msg and all(repr(b) in msg for b in bad) and "'C(dose)'" in msg
    cols, enc = encode_covariates(obs, ["C(dose)"], train)
    assert enc["C(dose)"]["type"] == "categorical" and cols.shape[1] == len(doses) - 1


def test_a_categorical_covariate_with_a_few_numbers_stays_categorical():
    from gexpred.design import encode_covariates

    obs = pd.DataFrame({"site": ["north", "south", "east", "3"]}, index=[f"s{i}" for i in range(4)])
    cols, enc = encode_covariates(obs, ["site"], np.ones(4, dtype=bool))
    assert enc["site"]["levels"] == sorted(["north", "south", "east", "3"]) and cols.shape[1] == 3
