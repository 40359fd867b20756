"""The report of a tiny end-to-end run, opened in headless Chromium as a reviewer would open it.

The run's gene and sample ids include markup and math text (``<img src=x onerror=alert(1)>``,
``$x^2$``): the report must show them as text. A small script injected into a copy of the
report records script errors and ``alert`` calls, shows every category and every figure
through the report's own viewer, and checks that each image decodes; ``--dump-dom`` returns
what it found. Skipped only when no Chromium is installed (``.ci/run`` installs Debian's).
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from test_workflow import make_dataset, run_snakemake, write_config

pytestmark = pytest.mark.slow

HOSTILE_GENE = "<img src=x onerror=alert(1)>"
MATH_GENE = "$x^2$_`a`"
HOSTILE_SAMPLE = "<b>S1</b>"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                                              "chromium; .ci/run installs it)")

# Runs before any of the report's scripts: records errors and any alert() a name could smuggle in.
GUARD = """<script>
window.__gexpred = {errors: [], alerts: []};
window.addEventListener("error", function (e) {
  window.__gexpred.errors.push(String(e.message || e.type) + " @ " + (e.filename || "") + ":" + (e.lineno || ""));
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__gexpred.errors.push("rejection: " + e.reason); });
var __err = console.error;
console.error = function () {
  window.__gexpred.errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
  __err.apply(console, arguments);
};
window.alert = function (m) { window.__gexpred.alerts.push(String(m)); };
</script>"""

# Runs after the report's app has started: drives it, then writes what it saw into the page.
CHECK = """<script>
(function () {
  var out = window.__gexpred;
  var pre = document.createElement("pre");
  pre.id = "gexpred-check";
  document.body.appendChild(pre);
  out.categories = Object.keys(categories);
  out.images = {};
  out.shown = {};
  out.html = {};
  function sleep(ms) {
    pre.textContent = JSON.stringify(out);
    return new Promise(function (r) { setTimeout(r, ms); });
  }
  async function run() {
    await sleep(200);
    out.app = typeof app !== "undefined" && app !== null;
    for (var cat of Object.keys(categories)) {
      out.step = "category " + cat;
      app.showCategory(cat);
      await sleep(50);
      for (var sub of Object.keys(categories[cat])) {
        out.step = "subcategory " + cat + " / " + sub;
        app.setView({navbarMode: "subcategory", category: cat, subcategory: sub});
        await sleep(30);
      }
    }
    for (var path of Object.keys(results)) {
      var r = results[path];
      out.step = "result " + path;
      if (r.mime_type.indexOf("image/") === 0) {
        out.images[path] = await new Promise(function (resolve) {
          var img = new Image();
          img.onload = function () { resolve([img.naturalWidth, img.naturalHeight]); };
          img.onerror = function () { resolve("does not decode"); };
          setTimeout(function () { resolve("not loaded within 5 s"); }, 5000);
          img.src = r.data_uri;
        });
        app.showResultInfo(path);
        app.setView({content: "img", contentPath: r.data_uri, resultPath: path});
        await sleep(50);
        var shown = Array.prototype.find.call(document.querySelectorAll("#app img"), function (i) {
          return i.getAttribute("src") === r.data_uri; });
        out.shown[path] = shown ? [shown.complete, shown.naturalWidth] : "no img element";
      } else if (r.mime_type === "text/html") {
        out.html[path] = atob(r.data_uri.split(",")[1]).length;
        app.setView({content: "html", contentPath: r.data_uri, resultPath: path});
        await sleep(100);
      }
    }
    app.setView({content: "rulegraph", navbarMode: "menu"});
    await sleep(100);
    out.descriptionText = document.querySelector("#app").innerText.slice(0, 4000);
    out.imgElementsWithOnerror = document.querySelectorAll("[onerror]").length;
  }
  function report() {
    out.done = true;
    pre.textContent = JSON.stringify(out);
  }
  run().catch(function (e) { out.errors.push("check failed at " + out.step + ": " + e); }).finally(report);
})();
</script>"""


def browse(report: Path, workdir: Path, screenshot: Path | None = None) -> tuple[dict, str]:
    """Open ``report`` (with the guard and check scripts injected) in headless Chromium.

    Returns what the check script found and Chromium's stderr (console messages included).
    """
    page = report.read_text(encoding="utf-8")
    head = page.index("<head>") + len("<head>")
    page = page[:head] + GUARD + page[head:]
    end = page.rindex("</body>")
    page = page[:end] + CHECK + page[end:]
    checked = workdir / "report.checked.html"
    checked.write_text(page, encoding="utf-8")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", f"--user-data-dir={workdir / 'chromium-profile'}",
            "--enable-logging=stderr", "--v=0", "--window-size=1400,1000", "--virtual-time-budget=60000",
            "--dump-dom", checked.as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r'<pre id="gexpred-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the check script did not finish; Chromium said:\n{proc.stderr[-3000:]}"
    found = json.loads(html.unescape(m.group(1)))
    if screenshot is not None:
        shot = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking",
                               f"--user-data-dir={workdir / 'chromium-profile-shot'}", "--window-size=1400,1000",
                               "--virtual-time-budget=5000", f"--screenshot={screenshot}", report.as_uri()],
                              capture_output=True, text=True, timeout=300)
        assert shot.returncode == 0, shot.stderr[-3000:]
    return found, proc.stderr


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The tiny workflow run with markup and math text in a gene id and a sample id, and its report."""
    root = tmp_path_factory.mktemp("report")
    make_dataset(root)
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0)
    expr = expr.rename(index={"G2": HOSTILE_GENE, "G4": MATH_GENE}, columns={"S001": HOSTILE_SAMPLE})
    expr.to_csv(root / "data/expr.tsv", sep="\t", index_label="gene")
    write_config(root)
    run_snakemake(root)
    run_snakemake(root, "--report", "results/report.html")
    return root


def _script_var(report_html: str, name: str):
    """The JSON value of ``var <name> = ...`` in the report's ``<script id="<name>">`` block."""
    block = report_html.index(f'<script id="{name.replace("_", "-")}">')
    start = report_html.index(f"var {name} = ", block) + len(f"var {name} = ")
    obj, _ = json.JSONDecoder().raw_decode(report_html[start:])
    return obj


def _results(report_html: str) -> dict:
    return _script_var(report_html, "results")


def test_report_registers_every_figure_in_lifecycle_order(hostile_run):
    page = (hostile_run / "results/report.html").read_text(encoding="utf-8")
    res = _results(page)
    cats = _script_var(page, "categories")
    # the report's menu sorts categories by name: the numbers keep the lifecycle order
    assert sorted(cats) == ["1. Data", "2. Preprocessing", "3. Hypothesis evaluation", "4. Prediction",
                            "5. Model comparison"]
    figures = {Path(p).name for p, r in res.items() if r["mime_type"] == "image/png"}
    assert {"samples.png", "normalization.png", "pvalues.png", "model_comparison.png", "observed_vs_predicted.png",
            "coefficients.png", "diagnostics.png", "loss.png", "activation_functions.png"} <= figures
    assert any(Path(p).name == "model_comparison.html" for p in res)
    for path, r in res.items():
        assert r["labels"], f"{path} has no labels to filter by"
        if "/G0/" in path or "/G1/" in path:
            assert r["labels"].get("target") in {"G0", "G1"}
    assert "System Message" not in page  # docutils marks broken reStructuredText in captions this way


def test_captions_state_the_numbers(hostile_run):
    """Samples, genes, split sizes and the best model per target, recomputed from the TSVs, are in the captions."""
    root = hostile_run
    page = (root / "results/report.html").read_text(encoding="utf-8")
    res = _results(page)
    captions = {Path(p).name + ("" if "/G" not in p else ":" + Path(p).parent.name): r["caption"]
                for p, r in res.items()}
    splits = pd.read_csv(root / "results/data/splits.tsv", sep="\t", dtype=str)
    n_train, n_test = int((splits["split"] == "train").sum()), int((splits["split"] == "test").sum())
    expr = pd.read_csv(root / "data/expr.tsv", sep="\t", index_col=0)
    data_caption = captions["samples.png"]
    assert f"{expr.shape[1]} samples and {expr.shape[0]} genes were used" in data_caption
    assert "Nothing was dropped" in data_caption
    assert f"{n_train} training samples and {n_test} test samples" in data_caption
    metrics = pd.read_csv(root / "results/compare/metrics.tsv", sep="\t")
    test = metrics[metrics["split"] == "test"]
    names = {"ols": "OLS regression", "mlp": "the neural network", "mean": "the training mean",
             "penalized": "penalized regression"}
    for target in ("G0", "G1"):
        sub = test[test["target"] == target].set_index("model")
        best = sub["mse"].idxmin()
        caption = captions[f"observed_vs_predicted.png:{target}"]
        assert f"{names[best]} has the lowest mean squared error, {sub.loc[best, 'mse']:.3g}" in caption, caption
        for model in sub.index.drop(best):
            share = (sub.loc[model, "mse"] - sub.loc[best, "mse"]) / sub.loc[model, "mse"] * 100
            pct = f"{share:.0f}%" if share >= 10 else f"{share:.1f}%" if share >= 0.1 else f"{share:.2g}%"
            assert f"{names[model]} ({names[best]}: {pct} lower)" in caption, (model, pct, caption)
        fits = pd.read_csv(root / "results/ols/all_fits.tsv", sep="\t").set_index("target")
        diag = captions[f"diagnostics.png:{target}"]
        if fits.loc[target, "failed_assumptions"] == "none":
            assert "No OLS assumption check fails" in diag
        else:
            assert "fail" in diag
    # the start page says it too
    assert f"{n_train} training samples and {n_test} test samples" in _script_var(page, "workflow_desc")


def test_names_are_escaped(hostile_run):
    """The hostile ids appear only as escaped text: in captions, the HTML table, and the figures' text."""
    root = hostile_run
    page = (root / "results/report.html").read_text(encoding="utf-8")
    assert HOSTILE_GENE not in page and "<b>S1</b>" not in page
    res = _results(page)
    captions = " ".join(r["caption"] for r in res.values())
    assert html.escape(HOSTILE_GENE, quote=False) in captions  # shown as text (predictors, significance)
    table = next(r for p, r in res.items() if p.endswith("model_comparison.html"))
    body = base64.b64decode(table["data_uri"].split(",", 1)[1]).decode()
    assert "<img" not in body.lower() or "src=x" not in body
    for p, r in res.items():
        if r["mime_type"] == "image/png":
            data = base64.b64decode(r["data_uri"].split(",", 1)[1], validate=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n", p


@needs_chromium
def test_report_in_headless_chromium(hostile_run, tmp_path):
    """The page loads, every figure decodes and is shown by the report's viewer, no script error, no alert."""
    from matplotlib import image

    report = hostile_run / "results/report.html"
    shot = tmp_path / "report.png"
    found, stderr = browse(report, tmp_path, screenshot=shot)
    assert found["app"], "the report's app did not start"
    assert found["errors"] == [], found["errors"]
    assert found["alerts"] == [], "a name ran as script: " + repr(found["alerts"])
    assert found["imgElementsWithOnerror"] == 0
    assert "1. Data" in found["categories"] and "5. Model comparison" in found["categories"]
    res = _results(report.read_text(encoding="utf-8"))
    pngs = [p for p, r in res.items() if r["mime_type"] == "image/png"]
    assert len(pngs) >= 9
    for p in pngs:
        size = found["images"][p]
        assert isinstance(size, list) and size[0] > 100 and size[1] > 100, (p, size)
        assert found["shown"][p] == [True, size[0]], (p, found["shown"][p])
    assert any(p.endswith("model_comparison.html") for p in found["html"])
    console = [line for line in stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)]
    assert console == [], console
    assert "This run in numbers" in found["descriptionText"]
    menu = found["descriptionText"]
    order = [menu.index(c) for c in ("1. Data", "2. Preprocessing", "3. Hypothesis evaluation", "4. Prediction",
                                      "5. Model comparison")]
    assert order == sorted(order), "the menu does not list the categories in lifecycle order"
    img = image.imread(shot)
    assert img.shape[0] >= 900 and img.shape[1] >= 1300 and img.std() > 0.05  # not a blank page
    # the screenshot is of the rendered app, not the loading screen
    assert "Loading Snakemake Report" not in found["descriptionText"]


@needs_chromium
def test_model_table_sorts_and_filters_in_chromium(hostile_run, tmp_path):
    """The sortable table's own script runs under its Content-Security-Policy and sorts numerically."""
    table = (hostile_run / "results/compare/model_comparison.html").read_text(encoding="utf-8")
    probe = """<script>
    (function () {
      var ths = document.querySelectorAll("th");
      var col = Array.prototype.findIndex.call(ths, function (th) { return th.textContent === "test_mse"; });
      ths[col].click();
      var asc = Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
        return parseFloat(r.cells[col].getAttribute("data-value")); });
      ths[col].click();
      var desc = Array.prototype.map.call(document.querySelectorAll("tbody tr"), function (r) {
        return parseFloat(r.cells[col].getAttribute("data-value")); });
      var f = document.getElementById("filter"); f.value = "G1"; f.dispatchEvent(new Event("input"));
      var visible = Array.prototype.filter.call(document.querySelectorAll("tbody tr"), function (r) {
        return !r.hidden; }).length;
      var pre = document.createElement("pre"); pre.id = "probe";
      pre.textContent = JSON.stringify({asc: asc, desc: desc, visible: visible});
      document.body.appendChild(pre);
    })();
    </script>"""
    # The page's CSP allows only its own script: run the probe by adding its hash to the policy.
    import hashlib

    body = probe[len("<script>"):-len("</script>")]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    policy = "script-src &#x27;sha256-"  # the attribute value is escaped like everything else
    assert policy in table
    page = table.replace(policy, f"{policy}{digest}&#x27; &#x27;sha256-", 1)
    page = page.replace("</body>", probe + "</body>")
    path = tmp_path / "table.html"
    path.write_text(page, encoding="utf-8")
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    got = json.loads(html.unescape(m.group(1)))
    assert got["asc"] == sorted(got["asc"]) and got["desc"] == sorted(got["desc"], reverse=True)
    n_g1 = table.count("<td>G1</td>")
    assert got["visible"] == n_g1 > 0
    assert HOSTILE_GENE not in proc.stdout  # the table holds no raw markup from the data
