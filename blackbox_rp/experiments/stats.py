"""Mean ± sample standard deviation over seeds, the one way every report and benchmark summarizes runs.

Why one function: a table that says "mean ± sd over seeds" must mean the same thing everywhere (the
sample sd, 0 for a single run, missing runs left out rather than counted as zero).

Example::

    >>> mean_sd([0.5, 0.7, None])
    (0.6, 0.14142135623730948)
    >>> mean_sd([0.5]), mean_sd([])
    ((0.5, 0.0), (None, None))
    >>> format_mean_sd([0.5, 0.7])
    '60.0 ± 14.1'
"""

from __future__ import annotations

import statistics
from typing import Iterable

__all__ = ["mean_sd", "format_mean_sd"]


def mean_sd(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values that are not None (sd 0.0 for one; (None, None)
    for none)."""
    xs = [x for x in values if x is not None]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def format_mean_sd(values: Iterable[float | None], scale: float = 100.0, digits: int = 1,
                   signed: bool = False) -> str:
    """``"m ± sd"`` of the values times ``scale`` (percent by default), ``"n/a"`` when there is none."""
    m, sd = mean_sd(values)
    if m is None:
        return "n/a"
    sign = "+" if signed else ""
    return f"{scale * m:{sign}.{digits}f} ± {scale * sd:.{digits}f}"
