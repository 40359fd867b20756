"""Target ids from users' files never become paths outside results/, and never collide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexpred.naming import safe_name, safe_names

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.mark.parametrize("name", ["BSU04730", "AT1G01010.1", "HLA-A", "gene_1", "G1"])
def test_plain_ids_are_kept(name):
    assert safe_name(name) == name


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "..", ".", "x y", "<img src=x onerror=alert(1)>",
                                  "ß-gène", "'quoted'", "a" * 300, "", "-leading-dash", ".hidden", "C:\\x"])
def test_hostile_ids_become_one_safe_component(tmp_path, name):
    safe = safe_name(name)
    assert SAFE.match(safe) and len(safe) <= 80
    assert safe not in {".", ".."} and "/" not in safe and "\\" not in safe
    resolved = (tmp_path / "results" / "ols" / safe).resolve()
    assert resolved.parent == (tmp_path / "results" / "ols").resolve()


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=120))
def test_any_id_is_safe_and_stable(name):
    safe = safe_name(name)
    assert SAFE.match(safe) and len(safe) <= 80 and safe not in {".", ".."}
    assert safe_name(name) == safe  # stable: the same id always gets the same directory
    assert Path(safe).name == safe


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=20, unique=True))
def test_distinct_ids_get_distinct_directories(names):
    try:
        mapping = safe_names(names)
    except ValueError as exc:  # only when two ids differ by letter case alone
        assert "same output directory" in str(exc)
        lowered = [safe_name(n).lower() for n in names]
        assert len(set(lowered)) < len(lowered)
        return
    assert len(set(v.lower() for v in mapping.values())) == len(names)


def test_case_collision_is_refused():
    with pytest.raises(ValueError, match="same output directory"):
        safe_names(["GeneA", "genea"])
