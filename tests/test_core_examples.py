"""The oracle quick-start example runs, and a second run with its journal spends no calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_oracle_quickstart_runs_and_replays_for_free(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "examples" / "oracle_quickstart.py"), "--journal", str(tmp_path / "j.sqlite")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "refused: query budget exhausted: 200 of 256" in first.stdout
    assert "total: 300 queries, 6 calls, 0 from the journal" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "total: 300 queries, 0 calls, 300 from the journal" in second.stdout
