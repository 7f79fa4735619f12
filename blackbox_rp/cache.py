"""One SQLite file that is the cache, the audit log and the source for resuming.

Every answered query is written, in the same transaction as the answers of its
request, under a key that hashes (oracle identity, exposure, input bytes). A
run that is killed — ``kill -9`` included — and started again with the same
journal replays what was answered at no call cost and goes on from there.

Why SQLite: one file, atomic transactions and crash safety come with the
standard library. WAL mode lets readers work while a writer writes, and with
``synchronous=NORMAL`` a committed transaction survives the process being
killed (only a power loss can drop the last transactions, never corrupt the
file). A row is either fully there or absent: no half-written answer is ever
read back.

Example::

    >>> import numpy as np, tempfile, os
    >>> from blackbox_rp.cache import Journal
    >>> from blackbox_rp.exposure import Response
    >>> j = Journal(os.path.join(tempfile.mkdtemp(), "run.sqlite"))
    >>> r = Response.from_probs(np.array([[0.2, 0.8]], dtype=np.float32))
    >>> j.put_many([b"k" * 16], r, oracle="demo", phase="train")
    >>> j.get_many([b"k" * 16])[0].labels.tolist()
    [1]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .exposure import Response

logger = logging.getLogger(__name__)

FORMAT = "blackbox_rp-journal"
VERSION = 1
_KINDS = {"logits": 0, "probs": 1, "topk": 2, "label": 3}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}

__all__ = ["Journal", "JournalError"]


class JournalError(RuntimeError):
    """The journal file cannot be used (corrupt, foreign, newer format)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    key BLOB PRIMARY KEY,
    oracle TEXT NOT NULL,
    phase TEXT NOT NULL,
    kind INTEGER NOT NULL,
    num_classes INTEGER NOT NULL,
    label INTEGER NOT NULL,
    scores BLOB,
    indices BLOB,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    oracle TEXT NOT NULL,
    phase TEXT NOT NULL,
    n_inputs INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT
);
"""


class Journal:
    """Thread-safe append-only store of answered queries (and an audit log of calls).

    ``path`` is created if missing. An existing file must be a journal written
    by this library; anything else raises :class:`JournalError` with advice.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 30.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.is_dir():  # was an IsADirectoryError from deep inside the header check
            raise JournalError(f"{self.path}: is a folder; a journal is one SQLite file, "
                               f"e.g. {self.path / 'journal.sqlite'}")
        existed = self.path.exists() and self.path.stat().st_size > 0
        if existed:
            self._check_header()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=timeout, check_same_thread=False,
                                       isolation_level=None)
            if existed:
                self._check_meta()  # before any PRAGMA that writes: a foreign file stays untouched
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not existed:
                with self._tx():
                    for stmt in _SCHEMA.strip().split(";"):
                        if stmt.strip():
                            self._db.execute(stmt)
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT,))
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(VERSION),))
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{self.path}: cannot be opened as a blackbox_rp journal ({e}). "
                               f"It may be corrupt; move it away to start a fresh journal.") from e

    # ------------------------------------------------------------- integrity
    def _check_header(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(16)
        if head != b"SQLite format 3\x00":
            raise JournalError(
                f"{self.path} is not a blackbox_rp journal (not an SQLite file). "
                f"Pass a new path, or move this file away if it is a damaged journal.")

    def _check_meta(self) -> None:
        try:
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise JournalError(
                f"{self.path} is an SQLite file but not a blackbox_rp journal ({e}). "
                f"Use another path; this tool will not write into a foreign database.") from e
        if rows.get("format") != FORMAT:
            raise JournalError(f"{self.path} is an SQLite file but not a blackbox_rp journal "
                               f"(format {rows.get('format')!r}). Use another path.")
        if int(rows.get("version", "0")) > VERSION:
            raise JournalError(f"{self.path} was written by a newer blackbox_rp (journal version "
                               f"{rows.get('version')}, this one reads {VERSION}). Upgrade blackbox_rp.")
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise JournalError(f"{self.path} is damaged (sqlite quick_check: {check}). "
                               f"Move it away; answered queries in it cannot be trusted.")

    # ------------------------------------------------------------ internals
    class _Tx:
        def __init__(self, j: "Journal"):
            self.j = j

        def __enter__(self):
            self.j._lock.acquire()
            self.j._db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, exc, tb):
            try:
                self.j._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.j._lock.release()

    def _tx(self) -> "Journal._Tx":
        return Journal._Tx(self)

    # ---------------------------------------------------------------- public
    def get_many(self, keys: Sequence[bytes]) -> list[Response | None]:
        """The journaled single-row response for each key, or None."""
        if not keys:
            return []
        found: dict[bytes, Response] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                q = "SELECT key, kind, num_classes, label, scores, indices FROM answers WHERE key IN (%s)" % (
                    ",".join("?" * len(chunk)))
                for key, kind, c, label, scores, indices in self._db.execute(q, chunk):
                    found[bytes(key)] = _decode(kind, c, label, scores, indices)
        return [found.get(bytes(k)) for k in keys]

    def put_many(self, keys: Sequence[bytes], response: Response, *, oracle: str, phase: str) -> None:
        """Store the answers of one request atomically (all rows and its audit line, or nothing)."""
        if len(keys) != len(response):
            raise ValueError(f"{len(keys)} keys for {len(response)} answers")
        now = time.time()
        kind = _KINDS[response.kind]
        rows = []
        for i, k in enumerate(keys):
            scores = None if response.scores is None else np.ascontiguousarray(response.scores[i], np.float32).tobytes()
            idx = None if response.indices is None else np.ascontiguousarray(response.indices[i], np.int64).tobytes()
            rows.append((bytes(k), oracle, phase, kind, response.num_classes, int(response.labels[i]),
                         scores, idx, now))
        with self._tx():
            self._db.executemany("INSERT OR IGNORE INTO answers VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self._db.execute("INSERT INTO calls (t, oracle, phase, n_inputs, ok, detail) VALUES (?,?,?,?,1,NULL)",
                             (now, oracle, phase, len(rows)))

    def log_call(self, *, oracle: str, phase: str, n_inputs: int, ok: bool, detail: str | None = None) -> None:
        """Append one request to the audit log. ``detail`` must never carry secrets."""
        with self._tx():
            self._db.execute("INSERT INTO calls (t, oracle, phase, n_inputs, ok, detail) VALUES (?,?,?,?,?,?)",
                             (time.time(), oracle, phase, int(n_inputs), int(ok), detail))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def stats(self) -> dict[str, object]:
        """Answers per (oracle, phase) and calls logged: what ``blackbox-rp journal`` shows."""
        with self._lock:
            answers = self._db.execute(
                "SELECT oracle, phase, COUNT(*) FROM answers GROUP BY oracle, phase").fetchall()
            calls = self._db.execute("SELECT COUNT(*), COALESCE(SUM(1 - ok), 0) FROM calls").fetchone()
        return {"path": str(self.path),
                "answers": [{"oracle": o, "phase": p, "count": n} for o, p, n in answers],
                "calls_logged": calls[0], "failed_calls_logged": calls[1]}

    def calls_log(self) -> Iterator[dict]:
        with self._lock:
            rows = self._db.execute("SELECT t, oracle, phase, n_inputs, ok, detail FROM calls ORDER BY id").fetchall()
        for t, o, p, n, ok, d in rows:
            yield {"t": t, "oracle": o, "phase": p, "n_inputs": n, "ok": bool(ok), "detail": d}

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover - closing twice
                pass

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"


def _decode(kind: int, c: int, label: int, scores: bytes | None, indices: bytes | None) -> Response:
    name = _KIND_NAMES[kind]
    lab = np.array([label], dtype=np.int64)
    s = None if scores is None else np.frombuffer(scores, dtype=np.float32)[None, :]
    i = None if indices is None else np.frombuffer(indices, dtype=np.int64)[None, :]
    return Response(name, c, lab, s, i)
