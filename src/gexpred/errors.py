"""User-facing errors.

Every mistake a user can make with their data or configuration is raised as a
:class:`GexpredError`. The command-line interface prints its message as one
paragraph, without a traceback, and exits with status 1. Anything else that
escapes is a bug in gexpred and keeps its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class GexpredError(Exception):
    """A problem with the user's input that the user can fix.

    The message must name the file and the gene, sample, row or column at
    fault, and say what to do about it.
    """


class InputError(GexpredError):
    """A data file that cannot be read or does not make sense."""


class ConfigError(GexpredError):
    """A configuration value that cannot be used with the data given."""


class ModelError(GexpredError):
    """Data that cannot support the model asked for (too few samples, collinearity)."""


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """A count with its noun, singular for one: ``plural(1, "gene")`` is ``'1 gene'``, ``plural(2, "gene")``
    ``'2 genes'``; give ``plural_form`` for a noun that does not take an ``s`` (``plural(3, "class", "classes")``).

    >>> plural(1, "sample"), plural(0, "sample"), plural(2, "missing value")
    ('1 sample', '0 samples', '2 missing values')
    """
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def preview(items: Iterable[object], limit: int = 5) -> str:
    """Format the first ``limit`` items for an error message, quoting each.

    >>> preview(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
    """
    items = list(items)
    shown = ", ".join(repr(str(x)) for x in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


_VERSION = re.compile(r"\.\d+$")
"""A version suffix of an id (Ensembl's ``.17``), ignored when looking for close matches."""


def near_ids(absent, available, limit: int = 5,
             strip_versions: str = "strip them from the matrices or add them to the config") -> str:
    """A sentence naming ids of ``available`` that ``absent`` ids match but for letter case, surrounding quotes
    and spaces, a version suffix (Ensembl's ``ENSG00000141510`` against ``ENSG00000141510.17``), or the leading
    zeros of a numeric id (``'001'`` against ``'1'``, as a spreadsheet rewrites it), e.g.
    " Close matches: 's001' -> 'S001' (ids are case-sensitive).", or "" when none do. ``strip_versions``: the
    fix named for version suffixes (a bundle's genes are fixed: there only the batch's spelling can change)."""
    def key(i) -> str:
        return str(i).strip().strip("'\"").strip().casefold()

    def unversioned(i) -> str:
        return _VERSION.sub("", key(i))

    def unpadded(i) -> str | None:
        k = key(i)
        return (k.lstrip("0") or "0") if k.isdigit() else None

    folded: dict[str, list[str]] = {}
    bare: dict[str, list[str]] = {}
    numbers: dict[str, list[str]] = {}
    for a in available:
        folded.setdefault(str(a).casefold(), []).append(str(a))
        bare.setdefault(unversioned(a), []).append(str(a))
        if (u := unpadded(a)) is not None:
            numbers.setdefault(u, []).append(str(a))
    near, versions, zeros = [], False, False
    for i in absent:
        if key(i) in folded:
            near.append((str(i), folded[key(i)]))
        elif unversioned(i) in bare:
            near.append((str(i), bare[unversioned(i)]))
            versions = True
        elif unpadded(i) is not None and unpadded(i) in numbers:
            near.append((str(i), numbers[unpadded(i)]))
            zeros = True
    if not near:
        return ""
    shown = ", ".join(f"{i!r} -> {'/'.join(map(repr, m))}" for i, m in near[:limit])
    more = f" and {len(near) - limit} more" if len(near) > limit else ""
    why = f"ids must match exactly, version suffixes such as '.17' included: {strip_versions}" if versions else (
        "ids must match exactly, leading zeros included: a spreadsheet program drops them from ids that look like "
        "numbers, so write the ids as text in every file") if zeros else "ids are case-sensitive"
    return f" Close matches: {shown}{more} ({why})."
