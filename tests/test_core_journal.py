"""Promise 2: nothing is lost. The journal survives kill -9, resumes without paying twice,
and refuses files it cannot trust."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from blackbox_rp import Journal, JournalError, Ledger
from oracles import TorchOracle

from killable import run_killable


# A run that queries 40 batches of 16 fmnist-cnn inputs, one small "optimizer step" per batch,
# journaled; it prints one line per step and a final JSON summary.
RUN = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    from oracles import TorchOracle
    journal, steps = sys.argv[1], int(sys.argv[2])
    o = TorchOracle("fmnist-cnn", journal=journal, max_batch=4)
    rng = np.random.default_rng(0)
    theta = np.zeros((1, 28, 28), np.float32)
    h = hashlib.sha256()
    for k in range(steps):
        x = rng.random((16, 1, 28, 28), dtype=np.float32) * 0.5 + 0.25 * (1 + np.tanh(theta))
        r = o(np.clip(x, 0, 1))
        theta = theta + 0.01 * (r.scores.mean() - r.scores[:, 0].mean())  # the next step depends on answers
        h.update(r.scores.tobytes())
        print("step", k, flush=True)
    t = o.ledger.total()
    print(json.dumps({"digest": h.hexdigest(), "queries": t.queries, "calls": t.calls,
                      "cache_hits": t.cache_hits}), flush=True)
""")


def _run(journal: Path, steps: int = 40, kill_after: int | None = None) -> dict | None:
    return run_killable(RUN, str(journal), str(steps), kill_after=kill_after)


def test_killed_run_resumes_to_the_same_result_without_paying_again(tmp_path):
    ref = _run(tmp_path / "ref.sqlite")
    assert ref["queries"] == 640 and ref["cache_hits"] == 0
    journal = tmp_path / "killed.sqlite"
    for kill_after in (5, 17):  # killed twice, at different points
        assert _run(journal, kill_after=kill_after) is None
        with Journal(journal) as j:  # opens cleanly: never corrupt after kill -9
            answered = len(j)
        assert answered >= (kill_after + 1) * 16
    resumed = _run(journal)
    assert resumed["digest"] == ref["digest"], "resumed run must reach the identical result"
    assert resumed["queries"] == ref["queries"], "queries are the algorithm's, wherever the answers came from"
    assert resumed["cache_hits"] == answered, "every answer journaled before the kill is replayed"
    assert resumed["calls"] == -(-(640 - answered) // 4), "zero calls re-spent on what was answered"


def test_not_a_database_is_refused_with_advice(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(JournalError, match="not an SQLite file"):
        Journal(p)


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    before = hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(JournalError, match="not a blackbox_rp journal"):
        Journal(p)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == before


def test_damaged_journal_is_refused(tmp_path):
    p = tmp_path / "j.sqlite"
    o = TorchOracle("fmnist-cnn", journal=p)
    o(np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32))
    o.journal.close()
    con = sqlite3.connect(p)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(p.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page: 3 * page] = os.urandom(page)  # scribble over a page in the middle
    p.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="damaged|cannot be opened|not a blackbox_rp journal"):
        Journal(p)


def test_newer_format_is_refused(tmp_path):
    p = tmp_path / "j.sqlite"
    Journal(p).close()
    con = sqlite3.connect(p)
    con.execute("UPDATE meta SET value='99' WHERE key='version'")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="newer blackbox_rp"):
        Journal(p)


def test_threads_share_one_journal_and_counts_add_up(tmp_path):
    o = TorchOracle("fmnist-cnn", journal=tmp_path / "j.sqlite", max_batch=8)
    pool = np.random.default_rng(1).random((64, 1, 28, 28), dtype=np.float32)
    errors = []

    def worker(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            for _ in range(10):
                idx = r.choice(64, size=12, replace=False)
                got = o(pool[idx])
                want = o.forward(pool[idx])
                np.testing.assert_allclose(got.scores, np.exp(want) / np.exp(want).sum(1, keepdims=True), rtol=1e-5)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    t = o.ledger.total()
    assert t.queries == 6 * 10 * 12
    assert len(o.journal) <= 64
    # two threads may both miss the same input before either writes it; the journal keeps one row
    assert t.queries - t.cache_hits >= len(o.journal)


def test_journal_keys_separate_exposures_and_models(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    x = np.random.default_rng(2).random((5, 1, 28, 28), dtype=np.float32)
    probs = TorchOracle("fmnist-cnn", journal=j)
    top2 = probs.with_exposure("top2")
    probs(x)
    r = top2(x)
    assert r.kind == "topk" and top2.ledger.total().cache_hits == 0, "another exposure is another answer"
    assert top2.ledger is probs.ledger
    other = TorchOracle("fmnist-cnn", journal=j, ledger=Ledger(), name="renamed")
    other(x)
    assert other.ledger.cache_hits == 0 and len(j) == 15
