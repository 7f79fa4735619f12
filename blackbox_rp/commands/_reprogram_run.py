"""Shared pieces of the run commands (``reprogram``, ``run``, ``demo``, ``resume``, ``sweep``).

Not a subcommand (the leading underscore keeps it out of discovery). The work itself is
:mod:`blackbox_rp.experiments.run`: every command builds a :class:`~blackbox_rp.experiments.config.RunConfig`
and runs it in a run directory, so a flag and a config key cannot mean two things.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


class LazyChoices:
    """argparse ``choices`` read from a registry only when a value is checked, so ``--help`` stays instant.

    ``prefixes`` accepts families such as ``ng:<name>`` (checked when the object is built).
    """

    def __init__(self, loader: Callable[[], Iterable[str]], prefixes: tuple[str, ...] = ()):
        self._loader = loader
        self._prefixes = prefixes

    def _names(self) -> list[str]:
        return sorted(self._loader())

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and (value in self._names() or value.startswith(self._prefixes))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _transform_names() -> list[str]:
    from blackbox_rp.transforms import TRANSFORMS

    return [n for n in TRANSFORMS if n != "none"]


def _mapping_names() -> list[str]:
    from blackbox_rp.mapping import MAPPINGS

    return list(MAPPINGS)


def _optimizer_names() -> list[str]:
    from blackbox_rp.optim import available

    return available()


def _loss_names() -> tuple[str, ...]:
    from blackbox_rp.losses import LOSSES

    return LOSSES


def _refit_names() -> tuple[str, ...]:
    from blackbox_rp.reprogram import REFITS

    return REFITS


TRANSFORM_CHOICES = LazyChoices(_transform_names)
MAPPING_CHOICES = LazyChoices(_mapping_names)
OPTIMIZER_CHOICES = LazyChoices(_optimizer_names, prefixes=("ng:",))
LOSS_CHOICES = LazyChoices(_loss_names)
REFIT_CHOICES = LazyChoices(_refit_names)


def run_and_print(cfg: Any, run_dir: Path, *, progress: bool) -> dict[str, Any]:
    """Run ``cfg`` in ``run_dir`` (the one code path of ``reprogram``, ``run``, ``demo`` and ``resume``)
    and print the summary lines."""
    import sys

    from blackbox_rp.experiments.run import run, summary_lines

    results = run(cfg, run_dir, progress=progress, echo=lambda s: print(s, file=sys.stderr))
    for line in summary_lines(results, run_dir):
        print(line)
    return results


def default_run_dir(prefix: str, cfg: Any) -> Path:
    """``runs/PREFIX-<hash of the config>``: a new directory per config, the same one to resume it."""
    import hashlib

    from blackbox_rp.experiments.config import dumps_toml

    return Path("runs") / f"{prefix}-{hashlib.sha256(dumps_toml(cfg).encode()).hexdigest()[:8]}"
