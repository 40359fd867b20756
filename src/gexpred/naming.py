"""Safe, unique and stable directory names for gene ids.

Gene and sample ids come from users' files and can hold anything: ``/``,
``..``, spaces, quotes, HTML. A target's outputs live in a directory named by
:func:`safe_name`, which keeps ordinary ids as they are and maps every other
id to a sanitised stem plus a short hash of the original, so two different
ids never share a directory and the same id always gets the same one.

This module uses the standard library only: the Snakemake workflow loads it
directly to name its output paths.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """Return a file-system-safe directory name for ``name``.

    Parameters
    ----------
    name
        Any string, typically a gene id.

    Returns
    -------
    str
        ``name`` itself when it is made of letters, digits, ``.``, ``_`` and
        ``-`` only, starts with a letter or digit and is at most 80 characters
        long (and is not ``.``/``..``); otherwise a sanitised prefix of it
        followed by ``_`` and the first 10 hex digits of its SHA-256.

    Examples
    --------
    >>> safe_name("BSU04730")
    'BSU04730'
    >>> safe_name("../etc/passwd").startswith("etc_passwd_")
    True
    """
    if _PLAIN.match(name) and name not in {".", ".."}:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    stem = _UNSAFE.sub("_", name).strip("._-")[:40] or "gene"
    return f"{stem}_{digest}"


def safe_names(names: list[str]) -> dict[str, str]:
    """Map each name to its safe directory name, checking uniqueness.

    Raises
    ------
    ValueError
        If two names map to the same directory name (only possible when two
        ids differ by letter case on a case-insensitive file system, or when a
        plain id collides with another id's hashed form, which needs a SHA-256
        prefix collision).
    """
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        safe = safe_name(name)
        key = safe.lower()
        if key in seen and seen[key] != name:
            raise ValueError(
                f"gene ids {seen[key]!r} and {name!r} map to the same output directory "
                f"{safe!r}; rename one of them"
            )
        seen[key] = name
        out[name] = safe
    return out
