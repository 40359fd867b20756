"""gexpred: predict a target gene's expression from other genes' expression.

The package holds every step of the modelling lifecycle as plain functions over
arrays and :class:`anndata.AnnData` objects; the Snakemake workflow only calls
its command-line interface (:mod:`gexpred.cli`).
"""

__version__ = "0.1.0"
