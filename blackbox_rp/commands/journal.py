"""Inspect a journal: answered queries per oracle and phase, and the audit log of calls."""

from __future__ import annotations

import argparse
import json
from . import _values as v

HELP = "show what a journal (SQLite cache + audit log) holds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=v.existing_journal, help="journal file")
    p.add_argument("--calls", type=v.non_negative_int, default=0, metavar="N",
                   help="also print the last N logged calls (default 0: none)")


def run(args: argparse.Namespace) -> int:
    from blackbox_rp.cache import Journal

    with Journal(args.path) as j:
        stats = j.stats()
        if args.calls:
            stats["last_calls"] = list(j.calls_log())[-args.calls:]
    print(json.dumps(stats, indent=2))
    return 0
