"""The sortable HTML table: every cell escaped, self-contained, numbers sortable as numbers."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from gexpred.htmltable import _SCRIPT, format_cell, sortable_table

HOSTILE = "<img src=x onerror=alert(1)>"


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.cells, self.attrs = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_every_cell_is_escaped_text():
    df = pd.DataFrame({"target": [HOSTILE, "a&b", '"q"'], "model": ["ols", "<script>x</script>", "mlp"],
                       HOSTILE: [1.5, np.nan, 2]})
    page = sortable_table(df, "T <b>", intro="about <i>")
    p = Collect()
    p.feed(page)
    assert set(p.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "p", "input", "table", "thead",
                           "tbody", "tr", "th", "td", "script"}
    assert p.tags.count("script") == 1  # only the page's own sort script
    assert not any(name.startswith("on") for name, _ in p.attrs)
    assert HOSTILE in p.cells and "<script>x</script>" in p.cells and "a&b" in p.cells  # shown as text
    assert "<b>" not in page and html.escape("T <b>") in page


def test_self_contained_and_csp_hash_matches_script():
    page = sortable_table(pd.DataFrame({"a": [1]}), "t")
    assert "http://" not in page and "https://" not in page and "src=" not in page
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert f"'sha256-{digest}'" in html.unescape(csp) and "default-src 'none'" in html.unescape(csp)
    assert f"<script>{_SCRIPT}</script>" in page


def test_numbers_carry_exact_sort_values_and_missing_sorts_last():
    assert format_cell(0.123456789) == ("0.1235", repr(0.123456789))
    assert format_cell(15) == ("15", "15.0")
    assert format_cell(np.float64(-2.5e-7))[1] == repr(-2.5e-7)
    assert format_cell(float("nan")) == ("", "")
    assert format_cell(None) == ("", "")
    assert format_cell("x") == ("x", None)
    assert format_cell(True) == ("True", None)


def test_best_rows_are_highlighted():
    df = pd.DataFrame({"model": ["ols", "mlp", "mean"], "verdict": ["best: mse 10% below mlp", "x", "chosen: y"]})
    page = sortable_table(df, "t", highlight="verdict")
    assert page.count('<tr class="best">') == 2
