"""Send a few inputs through an oracle under a chosen exposure; print the answers and the ledger.

Inputs: image files (PNG/JPEG, resized to --size), an .npz holding an array `x`
(N, C, H, W) or (N, H, W[, C]) — floats in [0, 1] or uint8 — or
--sample-images (scikit-learn's two sample photos). With --journal, answers are
journaled and a repeated query is answered from the journal at no call cost.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import _values as v

HELP = "query an oracle with images or an .npz and print the response and the ledger"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", type=v.existing_file, help="image files or one .npz with array x")
    p.add_argument("--model", default="efficientnet-lite0",
                   help="bundled model name (see `blackbox-rp models`), TorchScript file, module:factory, or the "
                        "URL of a `blackbox-rp serve` server (default efficientnet-lite0)")
    p.add_argument("--api-key-env", default=None,
                   help="NAME of the environment variable holding the API key of a remote --model")
    p.add_argument("--exposure", default="top5", type=v.exposure,
                   help="what the oracle shows: probs, logits, label, top<k> (top5), rounded<n> (rounded2)")
    p.add_argument("--sample-images", action="store_true", help="use scikit-learn's sample photos")
    p.add_argument("--size", type=v.positive_int, default=None,
                   help="resize images to SIZE x SIZE (default: the model's input size if fixed, else 224)")
    p.add_argument("--journal", type=v.journal_path, default=None, help="SQLite journal file (cache + audit log)")
    p.add_argument("--max-queries", type=v.positive_int, default=None,
                   help="query budget for this command (default: unlimited)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _load_images(paths: list[Path], size: int, channels: int):
    import numpy as np

    from blackbox_rp.data import read_image

    # read_image rescales 16-bit images (a plain convert("RGB") saturates them to white) and turns a file
    # Pillow cannot read into one DataError naming it
    return np.stack([read_image(p, "RGB" if channels == 3 else "L", (size, size)) for p in paths])


def _load_npz(path: Path):
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z:
                raise ValueError(f"{path} has arrays {sorted(z.files)}; expected one named 'x'")
            x = z["x"]
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz ({e}); save one with np.savez(path, x=images)") from e
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from blackbox_rp import Budget, Ledger
    from oracles.resolve import resolve_oracle

    ledger = Ledger(Budget(max_queries=args.max_queries) if args.max_queries is not None else None)
    oracle = resolve_oracle(args.model, exposure=args.exposure, ledger=ledger, journal=args.journal,
                            api_key_env=args.api_key_env)
    if oracle.input_spec.kind != "image":
        raise ValueError(f"model {args.model} takes {oracle.input_spec.describe()}; `query` sends images")
    channels = oracle.input_spec.channels or 3
    args.size = args.size or oracle.input_spec.height or 224
    names: list[str]
    if args.sample_images:
        from PIL import Image
        from sklearn.datasets import load_sample_images

        imgs = load_sample_images()
        x = np.stack([np.asarray(Image.fromarray(im).convert("RGB" if channels == 3 else "L")
                                 .resize((args.size, args.size), Image.BILINEAR), dtype=np.float32) / 255.0
                      for im in imgs.images])
        x = x.transpose(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
        names = [Path(f).name for f in imgs.filenames]
    elif len(args.inputs) == 1 and args.inputs[0].suffix == ".npz":
        x = _load_npz(args.inputs[0])
        names = [f"{args.inputs[0].name}[{i}]" for i in range(len(x))]
    elif args.inputs:
        x = _load_images(args.inputs, args.size, channels)
        names = [p.name for p in args.inputs]
    else:
        raise ValueError("nothing to query: give image files, one .npz, or --sample-images")
    r = oracle(x, phase="test")
    label = (lambda i: oracle.class_names[i]) if oracle.class_names else str
    rows = []
    for i, name in enumerate(names):
        row = {"input": name, "label": int(r.labels[i]), "label_name": label(int(r.labels[i]))}
        if r.kind == "topk":
            row["top"] = [{"class": int(c), "name": label(int(c)), "p": round(float(s), 5)}
                          for c, s in zip(r.indices[i], r.scores[i])]
        elif r.kind in ("probs", "logits"):
            top = np.argsort(-r.scores[i])[:5]
            row[r.kind + "_top5"] = [{"class": int(c), "name": label(int(c)), "score": round(float(r.scores[i, c]), 5)}
                                     for c in top]
        rows.append(row)
    snap = ledger.snapshot()
    if args.json:
        print(json.dumps({"oracle": oracle.describe(), "answers": rows, "ledger": snap}, indent=2))
        return 0
    print(f"oracle {oracle.identity}  exposure {oracle.exposure.key()}")
    for row in rows:
        extra = ""
        if "top" in row:
            extra = "  " + ", ".join(f"{t['name']} {t['p']:.3f}" for t in row["top"])
        print(f"{row['input']}: {row['label_name']} ({row['label']}){extra}")
    t = snap["total"]
    print(f"ledger: {t['queries']} queries, {t['calls']} calls, {t['cache_hits']} answered from the journal")
    return 0
