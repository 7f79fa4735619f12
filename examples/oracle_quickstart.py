"""The oracle layer in one page: a budget that is never crossed, a journal that makes re-runs free.

    python examples/oracle_quickstart.py [--journal run.sqlite]

Run it twice with the same --journal: the second run answers everything from
the journal (cache_hits) and spends no calls.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from blackbox_rp import Budget, BudgetExhausted, Ledger
from blackbox_rp.data import load_dataset
from oracles import TorchOracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--journal", type=Path, default=Path(tempfile.mkdtemp()) / "run.sqlite")
    args = ap.parse_args()

    digits = load_dataset("mnist5k")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(digits), size=300, replace=False)
    # grey 28x28 digits, centred on a 64 px RGB canvas: what the ImageNet model will see
    canvas = np.zeros((300, 3, 64, 64), np.float32)
    canvas[:, :, 18:46, 18:46] = digits.x[idx]

    ledger = Ledger([Budget(max_queries=256, phases=("train", "validation")), Budget(max_queries=64, phases="test")])
    oracle = TorchOracle("efficientnet-lite0", exposure="top5", ledger=ledger, journal=args.journal, max_batch=64)

    r = oracle(canvas[:200], phase="train")
    names = oracle.class_names
    print("zero-shot, what ImageNet sees in the first digits:",
          ", ".join(f"{digits.y[idx[i]]}->{names[r.labels[i]]}" for i in range(5)))
    try:
        oracle(canvas[200:300], phase="validation")  # 200 + 100 > 256: refused before sending
    except BudgetExhausted as e:
        print("refused:", str(e).split(";")[0])
    oracle(canvas[200:256], phase="validation")      # exactly up to the budget
    oracle(canvas[256:300], phase="test")
    for phase, c in ledger.snapshot().items():
        print(f"{phase:>10}: {c['queries']} queries, {c['calls']} calls, {c['cache_hits']} from the journal")
    print(f"journal: {args.journal}")


if __name__ == "__main__":
    main()
