"""``KEY=VALUE`` command-line parameters, shared by the subcommands that pass options through to a registry."""

from __future__ import annotations

import json
from typing import Any


def parse_params(items: list[str] | None, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values read as JSON where they parse (numbers, true, null, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{what} parameters are KEY=VALUE, got {item!r}")
        if key in out:
            raise ValueError(f"{what} parameter {key!r} twice ({key}={json.dumps(out[key], default=str)} and "
                             f"{item}); give each parameter once")
        try:
            out[key] = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):  # not JSON (or absurdly nested): the text itself
            out[key] = raw
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out
