"""Reading a Snakemake report as a reviewer's browser would (helpers of the tests, not tests).

``browse`` opens a report in headless Chromium with a small script injected into a copy: it records
script errors and ``alert`` calls, shows every category and every figure through the report's own
viewer, and checks that each image decodes; ``--dump-dom`` returns what it found. ``results`` and
``script_var`` read the JSON the report embeds. The tests that use them skip only when no Chromium is
installed (``.ci/run`` installs Debian's): tests/test_workflow.py (the shared run's report, whose ids
hold markup and math text) and tests/test_report_captions.py.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def script_var(report_html: str, name: str):
    """The JSON value of ``var <name> = ...`` in the report's ``<script id="<name>">`` block."""
    block = report_html.index(f'<script id="{name.replace("_", "-")}">')
    start = report_html.index(f"var {name} = ", block) + len(f"var {name} = ")
    obj, _ = json.JSONDecoder().raw_decode(report_html[start:])
    return obj


def results(report_html: str) -> dict:
    return script_var(report_html, "results")
