"""The remote examples run: the quick-start's second run is answered from its journal at no call."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("starlette")

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_remote_quickstart_counts_retries_and_replays_for_free(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "remote_quickstart.py"), "--journal", str(tmp_path / "j.sqlite")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert first.returncode == 0, first.stderr
    m = re.search(r"total: 512 queries, (\d+) calls \((\d+) failed and retried\), 0 from the journal", first.stdout)
    assert m, first.stdout
    faults = sum(int(v) for v in re.findall(r"'fault_\w+': (\d+)", first.stdout))
    assert int(m.group(2)) == faults and int(m.group(1)) == 512 // 32 + faults
    second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "total: 512 queries, 0 calls (0 failed and retried), 512 from the journal" in second.stdout


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None, reason="llama-cpp-python is installed")
def test_llama_cpp_example_says_how_to_install_when_missing():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "remote_llama_cpp.py")], capture_output=True,
                       text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and "pip install 'llama-cpp-python[server]==0.3.36'" in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_llama_cpp_example_runs():
    env = dict(ENV, OMP_WAIT_POLICY="passive")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "remote_llama_cpp.py")], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "total: 6 queries, 6 calls" in r.stdout
    assert r.stdout.count("p(pos)=") == 6
