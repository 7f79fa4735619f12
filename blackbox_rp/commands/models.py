"""List the bundled source models: name, input, classes, and where the weights come from.

Image models (the torch zoo) and language models (GGUF files run by llama.cpp, whose classes are
the tokens of their vocabulary: they answer with next-token distributions)."""

from __future__ import annotations

import argparse
import json

HELP = "list bundled source models (input size, number of classes, source of weights)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from oracles.llama_cpp_oracle import GGUF_MODELS
    from oracles.models import MODELS

    rows = [{"name": m.name, "input": m.describe_input(),
             "classes": m.num_classes, "description": m.description, "source": m.source}
            for m in MODELS.values()]
    rows += [{"name": m.name, "input": "text (answers: next-token distribution)", "classes": m.vocab_size,
              "description": m.description, "source": m.source} for m in GGUF_MODELS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max(len(r["name"]) for r in rows)
    print(f"{'name':<{w}}  {'input':<40}  classes  description")
    for r in rows:
        print(f"{r['name']:<{w}}  {r['input']:<40}  {r['classes']:>7}  {r['description']}")
        print(f"{'':<{w}}  weights: {r['source']}")
    return 0
