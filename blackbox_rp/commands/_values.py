"""The one place that checks user-facing command-line values: argparse ``type=`` functions.

Every subcommand declares its options with these, so a bad value is refused by
argparse before anything runs (no query spent, no file written), in one line
that names the option typed: ``blackbox-rp serve: error: argument --port: a port
is a whole number in 0..65535 (0: any free port), got '70000'``. A ``type=``
function raises :class:`argparse.ArgumentTypeError`, whose message argparse
prints after the option's name; the messages here therefore say what is
accepted and what was typed, never which option (argparse adds that).

They stay import-light (no numpy, no torch): ``--help`` must be instant.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from pathlib import Path
from typing import Callable

__all__ = ["integer", "positive_int", "non_negative_int", "seed", "port", "number", "positive_float",
           "non_negative_float", "probability", "host", "exposure", "journal_path", "existing_journal",
           "existing_file", "out_dir", "sizes", "split"]

Bad = argparse.ArgumentTypeError


def integer(low: int | None = None, high: int | None = None, what: str = "a whole number") -> Callable[[str], int]:
    """A ``type=`` for whole numbers in [low, high]; ``what`` names the quantity in the message."""
    bounds = (f" >= {low}" if high is None else f" in {low}..{high}") if low is not None else \
        (f" <= {high}" if high is not None else "")
    if what.startswith("a positive") and low == 1 and high is None:
        bounds = ""  # "a positive integer" says it all

    def parse(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except (ValueError, AttributeError):
            raise Bad(f"expected {what}{bounds}, got {text!r}") from None
        if (low is not None and v < low) or (high is not None and v > high):
            raise Bad(f"expected {what}{bounds}, got {text!r}")
        return v

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = integer(1, what="a positive integer")
non_negative_int = integer(0, what="a whole number")
#: numpy's SeedSequence takes any integer >= 0; a negative one used to fail inside numpy without naming the seed
seed = integer(0, what="a seed (a whole number)")
port = integer(0, 65535, what="a port number (0: any free port)")


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, what: str = "a number") -> Callable[[str], float]:
    """A ``type=`` for finite numbers in an interval (open or closed at each end)."""
    lo = "" if low is None else ("> " if low_open else ">= ") + f"{low:g}"
    hi = "" if high is None else ("< " if high_open else "<= ") + f"{high:g}"
    bounds = " " + " and ".join(p for p in (lo, hi) if p) if (lo or hi) else ""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except (ValueError, TypeError):
            raise Bad(f"expected {what}{bounds}, got {text!r}") from None
        if not math.isfinite(v):
            raise Bad(f"expected a finite {what.removeprefix('a ')}{bounds}, got {text!r}")
        if low is not None and (v < low or (low_open and v == low)):
            raise Bad(f"expected {what}{bounds}, got {text!r}")
        if high is not None and (v > high or (high_open and v == high)):
            raise Bad(f"expected {what}{bounds}, got {text!r}")
        return v

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_float = number(0.0, low_open=True)
non_negative_float = number(0.0)
probability = number(0.0, 1.0, what="a probability")

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*\.?$")


def host(text: str) -> str:
    """An interface to bind: an IPv4/IPv6 address or a host name (999.1.1.1 is neither)."""
    t = text.strip()
    if re.fullmatch(r"[0-9.]+", t) or ":" in t:
        try:
            return str(ipaddress.ip_address(t.strip("[]")))
        except ValueError:
            raise Bad(f"{text!r} is not an IP address (IPv4 is four numbers 0-255, e.g. 127.0.0.1; "
                      f"0.0.0.0 listens on every interface)") from None
    if not _HOSTNAME.match(t):
        raise Bad(f"{text!r} is neither an IP address nor a host name (e.g. 127.0.0.1, localhost)")
    return t


def exposure(text: str) -> str:
    """An exposure spec, checked now (the oracle checks k against its classes when it is built)."""
    from blackbox_rp.exposure import parse_exposure

    try:
        return parse_exposure(text).key()
    except ValueError as e:
        raise Bad(str(e)) from None


def journal_path(text: str) -> Path:
    """A journal file to create or reuse: not a folder, and its folder must be creatable."""
    p = Path(text)
    if p.is_dir():
        found = sorted(q.name for q in p.glob("*.sqlite"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise Bad(f"{text!r} is a folder{hint}; a journal is one SQLite file, e.g. {p / 'journal.sqlite'}")
    _parents_are_folders(p, text)
    return p


def existing_journal(text: str) -> Path:
    """A journal file that exists (for reading)."""
    p = Path(text)
    if p.is_dir():
        found = sorted(q.name for q in p.glob("*.sqlite"))[:3]
        hint = f"; it holds {', '.join(found)}" if found else ""
        raise Bad(f"{text!r} is a folder, not a journal file{hint}")
    if not p.exists():
        raise Bad(f"{text!r} does not exist")
    return p


def existing_file(text: str) -> Path:
    """An input file that exists and is a file."""
    p = Path(text)
    if p.is_dir():
        raise Bad(f"{text!r} is a folder; give the files in it")
    if not p.exists():
        raise Bad(f"{text!r} does not exist")
    return p


def out_dir(text: str) -> Path:
    """An output folder: existing or creatable; a file of that name is refused before anything runs."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise Bad(f"{text!r} is a file; give a folder for the results (it is created if missing)")
    _parents_are_folders(p, text)
    return p


def _parents_are_folders(p: Path, text: str) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise Bad(f"{text!r} cannot be created: {str(parent)!r} is a file, not a folder")
            return


def sizes(text: str) -> tuple[int, ...]:
    """Image sizes in pixels separated by commas (48,64)."""
    try:
        return tuple(positive_int(t) for t in text.split(","))
    except Bad:
        raise Bad(f"expected image sizes in pixels separated by commas (48,64), got {text!r}") from None


def split(text: str) -> tuple[float, float, float]:
    """TRAIN,VAL,TEST as three fractions summing to 1 or three whole counts >= 1."""
    parts = text.split(",")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    form = "TRAIN,VAL,TEST as fractions summing to 1 (0.6,0.2,0.2) or whole counts (3000,1000,1000)"
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise Bad(f"expected {form}, got {text!r}")
    if min(vals) >= 1:
        if not all(v == int(v) for v in vals):
            raise Bad(f"expected {form}; counts must be whole numbers, got {text!r}")
    elif max(vals) >= 1:
        raise Bad(f"expected {form}; {text!r} mixes fractions and counts")
    elif abs(sum(vals) - 1.0) > 1e-6:
        raise Bad(f"expected {form}; the fractions {text!r} sum to {sum(vals):g}")
    return vals  # type: ignore[return-value]
