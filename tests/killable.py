"""Run a Python script in a subprocess and, if asked, kill it with SIGKILL mid-run (for the resume tests).

The script prints ``step K`` lines as it goes and one JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_killable(code: str, *args: str, kill_after: int | None = None, seconds: float = 120,
                 env: dict[str, str] | None = None) -> dict | None:
    """The script's final JSON, or None when it was killed once it printed ``step kill_after``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        lines, deadline = [], time.monotonic() + seconds
        for line in proc.stdout:  # bounded: the script prints a line per step and one JSON line
            lines.append(line)
            if kill_after is not None and line.startswith("step") and int(line.split()[1]) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)  # mid-run, likely mid-write: the next batch is in flight
                proc.wait(timeout=30)
                return None
            assert time.monotonic() < deadline, "run took too long"
        assert proc.wait(timeout=60) == 0
        return json.loads(lines[-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
