"""User-facing errors.

Every mistake a user can make with their data or configuration is raised as a
:class:`GexpredError`. The command-line interface prints its message as one
paragraph, without a traceback, and exits with status 1. Anything else that
escapes is a bug in gexpred and keeps its traceback.
"""

from __future__ import annotations

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


def preview(items: Iterable[object], limit: int = 5) -> str:
    """Format the first ``limit`` items for an error message, quoting each.

    >>> preview(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
    """
    items = list(items)
    shown = ", ".join(repr(str(x)) for x in items[:limit])
    rest = len(items) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def near_ids(absent, available, limit: int = 5) -> str:
    """A sentence naming ids of ``available`` that ``absent`` ids match but for letter case or surrounding
    quotes and spaces (" Close matches: 's001' -> 'S001' (ids are case-sensitive)."), or "" when none do."""
    folded: dict[str, list[str]] = {}
    for a in available:
        folded.setdefault(str(a).casefold(), []).append(str(a))

    def key(i) -> str:
        return str(i).strip().strip("'\"").strip().casefold()

    near = [(str(i), folded[key(i)]) for i in absent if key(i) in folded]
    if not near:
        return ""
    shown = ", ".join(f"{i!r} -> {'/'.join(map(repr, m))}" for i, m in near[:limit])
    more = f" and {len(near) - limit} more" if len(near) > limit else ""
    return f" Close matches: {shown}{more} (ids are case-sensitive)."
