"""What every benchmark script needs and used to write again: comma lists, mean ± sd, rows kept as JSON lines.

Benchmarks import this file as ``_common`` (a script's own folder is first on ``sys.path``); the
statistics live in the library (:mod:`blackbox_rp.experiments.stats`) because the experiments report
uses them too, and the library never imports a benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blackbox_rp.experiments.stats import format_mean_sd, mean_sd

__all__ = ["csv_list", "mean_sd", "format_mean_sd", "append_row", "read_rows"]


def csv_list(text: Any) -> list[str]:
    """``"a,b,,c"`` → ``["a", "b", "c"]``: an option's comma list, empty items dropped (``""`` → ``[]``)."""
    return [t for t in str(text).split(",") if t]


def append_row(path: Path | None, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (None: keep nothing), so a killed grid keeps every finished
    cell and a run started again skips them."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path | None) -> list[dict[str, Any]]:
    """The rows :func:`append_row` kept in ``path`` (none if it is None or does not exist yet)."""
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
