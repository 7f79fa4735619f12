"""Promise 4 at the command line (issue 12): every bad value is one line naming the option, never a traceback.

Values are checked by argparse ``type=`` functions from one module (``commands/_values.py``);
whatever the library raises is caught at one boundary in ``cli.py`` and printed as
``blackbox-rp CMD: error: ...``; ``-v`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blackbox_rp.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def cli(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr), argparse's exits included."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(argv, capsys, *words: str, code: int = 2) -> str:
    """Assert ``argv`` is refused with exit ``code``: no traceback, the last line the CLI's error line."""
    rc, out, err = cli(argv, capsys)
    assert rc == code, (rc, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"blackbox-rp {argv[0]}: error: "), err
    for w in words:
        assert w in last, (w, last)
    return last


# ------------------------------------------------------------------ paths
def test_a_journal_that_is_a_folder_is_refused_in_every_command(tmp_path, capsys):
    refused(["query", "--model", "fmnist-cnn", "--sample-images", "--journal", tmp_path], capsys,
            "argument --journal", "is a folder", "journal.sqlite")
    refused(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--budget", "100", "--journal", tmp_path,
             "--out", tmp_path / "o"], capsys, "argument --journal", "is a folder")
    refused(["demo", "--quick", "--journal", tmp_path, "--out", tmp_path / "o"], capsys, "argument --journal")
    refused(["journal", tmp_path], capsys, "is a folder")
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_an_output_folder_that_is_a_file_is_refused_before_any_query(tmp_path, capsys):
    f = tmp_path / "results.json"
    f.write_text("{}")
    refused(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--budget", "100", "--out", f], capsys,
            "argument --out", "is a file")
    refused(["demo", "--quick", "--out", f / "sub"], capsys, "argument --out", "is a file")
    assert f.read_text() == "{}"


def test_journal_calls_must_be_a_count(tmp_path, capsys):
    from blackbox_rp.cache import Journal

    Journal(tmp_path / "j.sqlite").close()
    refused(["journal", tmp_path / "j.sqlite", "--calls", "-1"], capsys, "argument --calls", "'-1'")
    rc, out, _ = cli(["journal", tmp_path / "j.sqlite", "--calls", "0"], capsys)
    assert rc == 0 and "answers" in json.loads(out)


# ------------------------------------------------------------------ serve
@pytest.mark.parametrize("port", ["70000", "-1", "80.5", "http"])
def test_serve_refuses_a_port_out_of_range(port, capsys):
    refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--port", port], capsys, "argument --port",
            "0..65535", repr(port))


def test_serve_refuses_an_impossible_host(capsys):
    refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--host", "999.1.1.1"], capsys,
            "argument --host", "'999.1.1.1'", "not an IP address")


def test_serve_on_a_port_in_use_says_so_in_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--port", taken], capsys,
                f"127.0.0.1:{taken}", "in use", "--port")


def test_serve_numbers_are_checked(capsys):
    refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--fault-429", "1.5"], capsys,
            "argument --fault-429", "probability")
    refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--max-batch", "0"], capsys, "argument --max-batch")
    refused(["serve", "--model", "fmnist-cnn", "--no-auth", "--rate-limit", "nan"], capsys, "argument --rate-limit")


# ------------------------------------------------------------------ models and images
def test_a_factory_that_is_not_a_model_is_one_line_and_v_shows_the_traceback(capsys):
    refused(["query", "--model", "os:getcwd", "--sample-images"], capsys, "os:getcwd", "nn.Module")
    for argv in (["-v", "query", "--model", "os:getcwd", "--sample-images"],
                 ["query", "--model", "os:getcwd", "--sample-images", "-v"]):
        rc, _, err = cli(argv, capsys)
        assert rc == 2 and "Traceback" in err and "os:getcwd" in err


@pytest.mark.parametrize("content", [b"", b"hello, not an image\n"])
def test_query_of_a_file_that_is_not_an_image_is_one_line(tmp_path, capsys, content):
    p = tmp_path / "photo.png"
    p.write_bytes(content)
    refused(["query", "--model", "fmnist-cnn", p], capsys, "photo.png")


def test_query_of_a_missing_file_or_a_folder(tmp_path, capsys):
    refused(["query", "--model", "fmnist-cnn", tmp_path / "nope.png"], capsys, "does not exist")
    refused(["query", "--model", "fmnist-cnn", tmp_path], capsys, "is a folder")


def test_query_reads_a_16_bit_png_like_its_8_bit_twin(tmp_path, capsys):
    img8 = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    Image.fromarray(img8).save(tmp_path / "eight.png")
    Image.fromarray(img8.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")  # the same levels, 16-bit
    rc, out, err = cli(["query", "--model", "fmnist-cnn", "--exposure", "probs", "--size", "28", "--json",
                        tmp_path / "eight.png", tmp_path / "sixteen.png"], capsys)
    assert rc == 0, err
    a, b = json.loads(out)["answers"]
    assert a["label"] == b["label"]
    assert [t["class"] for t in a["probs_top5"]] == [t["class"] for t in b["probs_top5"]]
    np.testing.assert_allclose([t["score"] for t in a["probs_top5"]], [t["score"] for t in b["probs_top5"]],
                               atol=1e-4)


# ------------------------------------------------------------------ exposures
@pytest.mark.parametrize("spec,word", [("rounded-1", "rounded<n>"), ("top0", "top<k>"), ("rounded99", "0..8")])
def test_bad_exposures_name_the_option_and_the_spec(spec, word, capsys):
    refused(["query", "--model", "fmnist-cnn", "--sample-images", "--exposure", spec], capsys,
            "argument --exposure", repr(spec), word)


def test_top_k_beyond_the_model_classes_is_refused(capsys):
    refused(["query", "--model", "fmnist-cnn", "--sample-images", "--exposure", "top20"], capsys,
            "top20", "10 classes")


# ------------------------------------------------------------------ reprogram / optimize options
def test_reprogram_options_are_named(tmp_path, capsys):
    base = ["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--budget", "100", "--out", tmp_path / "o"]
    refused(base + ["--readout-lr", "-1"], capsys, "argument --readout-lr", "'-1'")
    refused(base + ["--seed", "-1"], capsys, "argument --seed", "'-1'")
    refused(base + ["--seed", "1.5"], capsys, "argument --seed")
    refused(base + ["--whitebox-steps", "-3"], capsys, "argument --whitebox-steps")
    refused(base + ["--split", "0.6,0.6,0.2"], capsys, "argument --split", "sum to 1.4")
    refused(base + ["--split", "0.5,10,20"], capsys, "argument --split", "mixes")
    assert not (tmp_path / "o").exists()


def test_reprogram_transform_none_says_why_not(tmp_path, capsys):
    last = refused(["reprogram", "--model", "fmnist-cnn", "--data", "digits", "--budget", "100",
                    "--transform", "none"], capsys, "argument --transform")
    assert "baseline" in last


def test_optimize_seed_and_params_are_named(capsys):
    refused(["optimize", "spsa", "--seed", "-1"], capsys, "argument --seed")
    refused(["optimize", "spsa", "--param", "q=true"], capsys, "q must be an integer", "True")
    refused(["optimize", "spsa", "--param", "alpha=nan"], capsys, "alpha must be a number")
    refused(["optimize", "zo-sgd", "--param", "estimator=cge", "--param", "coords=0"], capsys, "coords")
    refused(["optimize", "spsa", "--param", "q=1", "--param", "q=2"], capsys, "'q' twice")
    last = refused(["optimize", "ng:Nope"], capsys, "'Nope'", "ng:NGOpt")
    assert "sorted(" not in last


def test_demo_budget_and_seed_are_checked(tmp_path, capsys):
    refused(["demo", "--quick", "--budget", "0", "--out", tmp_path / "o"], capsys, "argument --budget")
    refused(["demo", "--quick", "--seed", "-2", "--out", tmp_path / "o"], capsys, "argument --seed")


# ------------------------------------------------------------------ the class, not the instances
def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_typed_option_is_checked_in_the_one_place():
    """No option takes a bare int/float/Path: those accept -1, nan, 70000 or a folder silently."""
    from blackbox_rp.commands import _values

    loose = []
    for name, p in _subparsers().items():
        for a in p._actions:
            where = f"{name} {'/'.join(a.option_strings) or a.dest}"
            if a.type in (int, float, Path) and a.choices is None:
                loose.append(f"{where}: type={a.type.__name__}")
            elif a.type is not None and a.choices is None and a.type is not str \
                    and getattr(a.type, "__module__", "") != _values.__name__:
                loose.append(f"{where}: type {a.type.__name__} is not from {_values.__name__}")
    assert not loose, loose


def test_help_shows_every_default(capsys):
    for name, p in _subparsers().items():
        text = " ".join(p.format_help().split())
        for a in p._actions:
            if a.option_strings and a.default not in (None, False, [], (), argparse.SUPPRESS) \
                    and a.help != argparse.SUPPRESS:
                assert "default" in (a.help or "") or f"(default: {a.default}" in text, (name, a.option_strings)
    text = " ".join(_subparsers()["reprogram"].format_help().split())
    assert "efficientnet-lite0" in text and "mnist5k" in text and "runs/reprogram" in text
    assert "none" in text  # --transform says why the no-prompt transform is not offered


def test_top_level_help_says_v_shows_tracebacks():
    out = subprocess.run([sys.executable, "-m", "blackbox_rp", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "traceback" in out.stdout


def test_an_unexpected_error_is_one_line_too(monkeypatch, capsys):
    from blackbox_rp.commands import models

    def broken(args):
        raise AttributeError("'NoneType' object has no attribute 'name'")

    monkeypatch.setattr(models, "run", broken)
    last = refused(["models"], capsys, "internal error", "AttributeError", "-v", code=1)
    assert "report" in last
