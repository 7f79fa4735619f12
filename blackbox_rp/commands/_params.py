"""``KEY=VALUE`` command-line parameters, shared by the subcommands that pass options through to a registry."""

from __future__ import annotations

import json
from typing import Any


def parse_params(items: list[str] | None, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values read as JSON where they parse (numbers, true, null, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} parameters are KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out
