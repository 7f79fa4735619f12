"""Apply what a run learned (prompt θ and mapping ω) to new inputs: predictions as CSV, with the queries spent.

Works for image and text runs alike: the run's transform is rebuilt the way the run built it and its
learned θ and ω are applied. The inputs are a dataset spec of the run's modality, like --data of
`reprogram` — images: a bundled name, .npz, CSV or image folder; texts: mr, chatterbot-topics or a
.csv / .tsv / .jsonl file with text and label columns. Their labels (matched to the run's classes by
name) give an accuracy line. --model sends the queries to another oracle holding the same model (e.g. a
`blackbox-rp serve` URL); one whose outputs or vocabulary differ from the run's is refused before any query.

examples:
  blackbox-rp apply runs/one --data new_images/ --out predictions.csv
  blackbox-rp apply runs/text --data reviews.csv        # a text run: columns text,label
"""

from __future__ import annotations

import argparse

from . import _values as v
HELP = "apply a finished run's prompt and mapping to new inputs (predictions CSV, queries spent)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=v.existing_dir, help="a finished run directory")
    p.add_argument("--data", required=True,
                   help="inputs of the run's modality: images (bundled name, .npz, CSV, image folder) or texts "
                        "(mr, chatterbot-topics, .csv/.tsv/.jsonl with text and label columns)")
    p.add_argument("--out", type=v.out_file, default=None, help="predictions CSV (default RUN_DIR/predictions.csv)")
    p.add_argument("--model", default=None, help="another oracle spec holding the run's model (default: the run's)")
    p.add_argument("--api-key-env", default=None, help="NAME of the variable holding the key of a remote --model")
    p.add_argument("--limit", type=v.positive_int, default=None, help="only the first N inputs")


def run(args: argparse.Namespace) -> int:
    import csv

    from blackbox_rp.experiments.apply import apply_run

    r = apply_run(args.run_dir, args.data, model=args.model, api_key_env=args.api_key_env, limit=args.limit)
    out = args.out or args.run_dir / "predictions.csv"
    text = r["inputs"] is not None
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "prediction", "class", "label"] + (["text"] if text else []))
        for i, (pr, y) in enumerate(zip(r["pred"], r["labels"])):
            w.writerow([i, int(pr), r["classes"][int(pr)], int(y)] + ([r["inputs"][i]] if text else []))
    acc = "" if r["accuracy"] is None else f"; accuracy against the given labels {100 * r['accuracy']:.1f}%"
    prompt = f" with prompt {r['prompt']!r}" if "prompt" in r else ""
    print(f"{len(r['pred'])} predictions -> {out}; spent {r['queries']} queries / {r['calls']} calls on "
          f"{r['oracle']}{prompt}{acc}")
    return 0
