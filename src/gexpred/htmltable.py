"""A self-contained, sortable HTML table for the report.

:func:`sortable_table` renders a DataFrame as one HTML page: no external files,
a few lines of inline JavaScript that sort the rows when a column header is
clicked (numbers numerically, missing values last) and filter them by a text
box. Every header and cell goes through :func:`html.escape`, and the page's
Content-Security-Policy allows only its own script (by hash) and no external
resource, so a name such as ``<img src=x onerror=alert(1)>`` is shown as text
and could not run even if it slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import numbers

import pandas as pd

_SCRIPT = """
(function () {
  var table = document.getElementById("t");
  var body = table.tBodies[0];
  function key(cell) {
    var v = cell.getAttribute("data-value");
    return v === null ? cell.textContent : (v === "" ? null : parseFloat(v));
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[col]), y = key(b.cells[col]);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filter = document.getElementById("filter");
  filter.addEventListener("input", function () {
    var q = filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (r) {
      r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
})();
"""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; margin: 1em; color: #222; }
h1 { font-size: 1.2em; margin: 0 0 0.4em 0; }
p { max-width: 60em; }
table { border-collapse: collapse; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { cursor: pointer; background: #f2f2f2; position: sticky; top: 0; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.best td { font-weight: 600; }
tr:hover td { background: #f7f7ff; }
input { margin: 0.3em 0 0.8em 0; padding: 0.2em 0.4em; width: 20em; }
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def format_cell(x: object, digits: int = 4) -> tuple[str, str | None]:
    """(text shown, sort value) of one cell: numbers with ``digits`` significant digits, missing as ''."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "", ""
    if _is_number(x):
        if float(x).is_integer() and abs(float(x)) < 1e15:
            return f"{int(x):d}", repr(float(x))
        return f"{float(x):.{digits}g}", repr(float(x))
    return str(x), None


def sortable_table(df: pd.DataFrame, title: str, intro: str = "", digits: int = 4,
                   highlight: str | None = None) -> str:
    """``df`` as a self-contained HTML page whose columns sort on click.

    ``intro`` is plain text shown above the table (escaped like everything
    else). Rows whose ``highlight`` column starts with ``"best"`` or ``"chosen"`` are bold.
    """
    e = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False, name=None):
        cells = []
        for value in rec:
            text, sort_value = format_cell(value, digits)
            if sort_value is None:
                cells.append(f"<td>{e(text)}</td>")
            else:
                cells.append(f'<td class="num" data-value="{e(sort_value)}">{e(text)}</td>')
        best = highlight is not None and str(dict(zip(df.columns, rec)).get(highlight, "")).startswith(
            ("best", "chosen"))
        rows.append(("<tr class=\"best\">" if best else "<tr>") + "".join(cells) + "</tr>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{e(_csp())}\">\n"
        f"<title>{e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{e(title)}</h1>\n"
        + (f"<p>{e(intro)}</p>\n" if intro else "")
        + "<input id=\"filter\" type=\"search\" placeholder=\"filter rows (e.g. a target or model)\" "
          "aria-label=\"filter rows\">\n"
        f"<table id=\"t\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"
        f"<p>{len(df)} rows. Click a column header to sort by it (again to reverse).</p>\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
